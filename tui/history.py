"""What the dashboard keeps from every hop, however rarely it redraws: recent series and derived counters.

The app redraws at most `RENDER_HZ` times a second, but feeds this from every hop, so sparklines, the
confidence plot and the serial sequence-gap count never skip a hop just because the screen did.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

HISTORY_HOPS = 200  # 10 s at the runtime's 20 Hz


def as_float(value: Any) -> float | None:
    """A telemetry number, or None for null/NaN (the wire sends NaN and ±inf as null)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if value == value and abs(value) != float("inf") else None


@dataclass
class HopHistory:
    """Series and counters over the hops seen since the last hello."""

    confidence: deque[float | None] = field(default_factory=lambda: deque(maxlen=HISTORY_HOPS))
    emg: deque[tuple[float, ...]] = field(default_factory=lambda: deque(maxlen=HISTORY_HOPS))
    hops: int = 0
    seq_gaps: int = 0  # frames missing between consecutive commands' `seq` (the runtime's serial numbering)
    last_seq: int | None = None

    def add(self, hop: dict[str, Any]) -> None:
        self.hops += 1
        self.confidence.append(as_float(hop.get("confidence")))
        self.emg.append(tuple(as_float(v) or 0.0 for v in hop.get("emg_rms_uv") or ()))
        seq = hop.get("seq")
        if isinstance(seq, int) and seq >= 0:
            if self.last_seq is not None and seq > self.last_seq + 1:
                self.seq_gaps += seq - self.last_seq - 1
            self.last_seq = seq

    def restart(self) -> None:
        """A replay seek jumps in time: the series would join unrelated stretches, so start them afresh
        (the counters carry on, they count what this dashboard saw)."""
        self.confidence.clear()
        self.emg.clear()
        self.last_seq = None
