"""The confidence gate: may the hand follow the model right now?

A command goes out as *active* only when all of these hold: the runtime is armed, no e-stop is latched,
the signal is sound, and the model's confidence has been over the threshold for at least the minimum
dwell. It closes at once when the signal fails or confidence falls below threshold − hysteresis. While
closed the hand holds the last good pose; after `safe_after_hold_s` it eases to the safe pose. Every
closed state carries a reason in words (which check, which channel).

Times are seconds on the EMG clock (the hop's last sample), so a replay decides exactly as live did.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum


class GateState(StrEnum):
    ACTIVE = "ACTIVE"  # follow the model
    HOLD = "HOLD"  # gate closed recently: keep the last good pose
    SAFE = "SAFE"  # gate closed for a while (or never opened): ease to the safe pose
    ESTOP = "ESTOP"  # latched emergency stop: safe pose until cleared on purpose


@dataclass(frozen=True)
class GateSettings:
    threshold: float = 0.5
    hysteresis: float = 0.05
    open_dwell_s: float = 0.1
    safe_after_hold_s: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"gate threshold must be in [0, 1], got {self.threshold}")
        if not 0.0 <= self.hysteresis < 1.0:
            raise ValueError(f"gate hysteresis must be in [0, 1), got {self.hysteresis}")
        if not (self.open_dwell_s >= 0.0 and self.safe_after_hold_s >= 0.0):
            raise ValueError("gate dwell and hold times must be ≥ 0")


@dataclass(frozen=True)
class GateInput:
    t: float  # seconds, EMG clock
    signal_ok: bool
    signal_reason: str  # "" when ok
    confidence: float
    armed: bool
    estop: bool


@dataclass(frozen=True)
class GateDecision:
    state: GateState
    active: bool  # send the model's pose as an active command
    reason: str  # "" only when active

    @property
    def target(self) -> str:
        """What the hand should do: "pose" (the model's), "hold" (last good pose) or "safe"."""
        return {GateState.ACTIVE: "pose", GateState.HOLD: "hold"}.get(self.state, "safe")


class ConfidenceGate:
    def __init__(self, settings: GateSettings | None = None) -> None:
        self.settings = settings or GateSettings()
        self._good_since: float | None = None  # when the open condition started to hold
        self._closed_at: float | None = None  # when an open gate last closed
        self._open = False

    @property
    def threshold(self) -> float:
        return self.settings.threshold

    def set_threshold(self, threshold: float) -> None:
        self.settings = replace(self.settings, threshold=threshold)

    def reset(self) -> None:
        """Forget history (after an e-stop is cleared or the stream restarted): the gate starts closed."""
        self._good_since = None
        self._closed_at = None
        self._open = False

    def _close(self, t: float) -> None:
        if self._open:
            self._closed_at = t
        self._open = False
        self._good_since = None

    def update(self, gate_input: GateInput) -> GateDecision:
        s, x = self.settings, gate_input
        if x.estop:
            self._close(x.t)
            self._closed_at = None  # after an e-stop there is no "last good pose" to hold
            return GateDecision(GateState.ESTOP, False, "e-stop latched")
        reason = ""
        if not x.signal_ok:
            reason = f"signal: {x.signal_reason or 'not sound'}"
        elif x.confidence != x.confidence:  # NaN
            reason = "confidence is not a number"
        elif self._open and x.confidence < s.threshold - s.hysteresis:
            reason = f"confidence {x.confidence:.2f} < {s.threshold - s.hysteresis:.2f} (threshold − hysteresis)"
        elif not self._open and x.confidence < s.threshold:
            reason = f"confidence {x.confidence:.2f} < threshold {s.threshold:.2f}"
        elif not x.armed:
            reason = "disarmed"
        if reason:
            self._close(x.t)
            return self._closed(x.t, reason)
        if not self._open:
            if self._good_since is None:
                self._good_since = x.t
            waited = x.t - self._good_since
            if waited + 1e-9 < s.open_dwell_s:
                return self._closed(x.t, f"waiting {s.open_dwell_s * 1000:.0f} ms of good signal and confidence")
            self._open = True
        return GateDecision(GateState.ACTIVE, True, "")

    def _closed(self, t: float, reason: str) -> GateDecision:
        if self._closed_at is not None and t - self._closed_at < self.settings.safe_after_hold_s:
            return GateDecision(GateState.HOLD, False, reason)
        return GateDecision(GateState.SAFE, False, reason)
