"""Per-channel EMG level: a bar, a sparkline of the recent hops, the µV value and the quality flags named."""

from __future__ import annotations

import math

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

SPARK = "▁▂▃▄▅▆▇█"
LOW_UV, HIGH_UV = 5.0, 1000.0  # the bar and sparkline span 5 µV (a quiet channel) to 1 mV, on a log scale


def level(uv: float) -> float:
    """µV RMS → 0..1 on the log scale both the bar and the sparkline use."""
    if not uv > LOW_UV:
        return 0.0
    return min(1.0, math.log(uv / LOW_UV) / math.log(HIGH_UV / LOW_UV))


def flag_names(bits: int, names: dict[str, int]) -> list[str]:
    """The names (hello `quality_bits`) of the bits set in `bits`; unknown bits as hex."""
    out = [name for name, bit in sorted(names.items(), key=lambda kv: kv[1]) if bits & bit]
    rest = bits & ~sum(names.values())
    if rest:
        out.append(f"0x{rest:x}")
    return out


class EmgLevels(Widget):
    """One row per channel; the sparkline takes whatever width is left, so a wider terminal shows more history."""

    levels: reactive[tuple[float, ...]] = reactive(())
    """RMS per channel over the last hop (µV)."""
    flags: reactive[tuple[int, ...]] = reactive(())
    """Quality bitmask per channel (0 = sound)."""
    history: reactive[tuple[tuple[float, ...], ...]] = reactive(())
    """RMS per channel of the recent hops, oldest first."""
    bit_names: reactive[dict[str, int]] = reactive(dict, always_update=True)
    """Flag name → bit, from the hello's `quality_bits`."""

    def render(self) -> Text:
        width = self.size.width
        if not self.levels:
            return Text("no EMG yet", style="dim")
        flag_w = 10 if width < 60 else 22
        bar_w = 8 if width < 60 else 12
        spark_w = max(0, width - (3 + bar_w + 5 + 1 + flag_w + 1))
        out = Text(no_wrap=True, overflow="crop")
        for ch, uv in enumerate(self.levels):
            frac = level(uv)
            filled = round(frac * bar_w)
            bad = bool(ch < len(self.flags) and self.flags[ch])
            colour = "red" if bad else "green" if frac < 0.8 else "yellow"
            out.append(f"{ch:>2} ", style="bold")  # 0-based, as the runtime names channels in reasons
            out.append("█" * filled, style=colour)
            out.append("░" * (bar_w - filled), style="grey30")
            out.append(f"{uv:>5.0f}" if uv < 99999 else "  big")
            out.append(" ")
            series = [row[ch] for row in self.history[-spark_w:] if ch < len(row)] if spark_w else []
            spark = "".join(SPARK[min(7, int(level(v) * 8))] for v in series)
            out.append(spark.rjust(spark_w), style="cyan")
            out.append(" ")
            names = flag_names(self.flags[ch], self.bit_names) if bad else []
            label = ",".join(names) if names else "ok"
            if len(label) > flag_w:
                label = label[: flag_w - 1] + "…"
            out.append(label, style="bold red" if names else "dim green")
            if ch < len(self.levels) - 1:
                out.append("\n")
        return out
