"""Loop health: inference time, duty cycle, latency, drops and missed hops, stream problems."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


class HealthPanel(Widget):
    """Whether the runtime keeps up with its hop clock."""

    infer_ms: reactive[float | None] = reactive(None)
    """Inference time of the last hop."""
    duty: reactive[float | None] = reactive(None)
    """Compute (inference + loop) / hop period of the last hop."""
    latency_p50: reactive[float | None] = reactive(None)
    """Recent median of last sample read → frame written (ms)."""
    latency_p99: reactive[float | None] = reactive(None)
    """Recent 99th percentile of the same."""
    drops: reactive[int | None] = reactive(None)
    """Samples the source dropped since start (None: not known, e.g. a replay)."""
    missed_hops: reactive[int] = reactive(0)
    """Hops skipped because the loop fell behind."""
    stream_gaps: reactive[int] = reactive(0)
    """Gaps in the EMG stream since start."""
    stream_duplicates: reactive[int] = reactive(0)
    """Duplicate packets in the EMG stream since start."""
    stream_stalls: reactive[int | None] = reactive(None)
    """Stalls of the EMG stream since start (None: not known, e.g. a replay)."""

    def render(self) -> Text:
        out = Text()
        out.append(f"infer {_ms(self.infer_ms)} ms duty ")
        if self.duty is None:
            out.append("—\n")
        else:
            out.append(f"{self.duty * 100:.0f}%\n", style="bold red" if self.duty > 0.8 else "")
        out.append(f"p50/99 {_ms(self.latency_p50)}/{_ms(self.latency_p99)} ms\n")
        out.append("drops ")
        out.append("—" if self.drops is None else f"{self.drops}", style="bold yellow" if self.drops else "")
        out.append("  missed ")
        out.append(f"{self.missed_hops}\n", style="bold red" if self.missed_hops else "")
        gaps_dups = self.stream_gaps or self.stream_duplicates
        out.append(
            f"stream gaps {self.stream_gaps} dups {self.stream_duplicates}\n", style="bold yellow" if gaps_dups else ""
        )
        stalls = "—" if self.stream_stalls is None else str(self.stream_stalls)
        out.append(f"stream stalls {stalls}", style="bold yellow" if self.stream_stalls else "")
        return out
