"""Score the runtime's own predictions against the camera labels of the session it replayed.

Same rules as `mode2 evaluate`: labels pass the guide's filter (ik_error < 15 mm, mp_confidence > 0.5),
are interpolated linearly at the prediction's instant, and count only where both neighbouring frames
are valid and at most 100 ms apart. The prediction's instant is the model's "now": its last backbone
output, which lies at window sample 998.875 (training/models/mode2_model.py: 2-kHz encoder-input sample m is at
window sample (m + 25.5) / 4, and the last output is m = 3,970); the initial state's at m = 1,790.

Two numbers come out. `all hops`: every hop whose "now" has a valid label — what the device achieves.
`evaluate's windows`: only the hops whose window is one that `mode2 evaluate` scores (starting on the
export's hop grid, contiguous in time, with a valid label at the initial-state instant and at "now"), so
the runtime can be checked against evaluate number for number.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from firmware_bridge.session import Session, read_session

MAX_LABEL_GAP_S = 0.1
UPSAMPLE = 4  # the model's internal 500 Hz → 2 kHz
ENCODER_TIME_OFFSET_2KHZ = 25.5  # encoder-input sample m lies at 2-kHz window position m + 25.5
NOW_2KHZ = 3970 + ENCODER_TIME_OFFSET_2KHZ  # the last backbone output ("now")
INITIAL_STATE_SAMPLE_2KHZ = 1790 + ENCODER_TIME_OFFSET_2KHZ  # the backbone's left context: the initial state


@dataclass(frozen=True)
class RunScore:
    mpjpe_mm: float  # mean over scored hops
    median_mm: float
    scored_hops: int
    hops: int
    active_mpjpe_mm: float | None  # over hops whose command was active (what the hand actually followed)
    active_hops: int
    evaluate_windows_mpjpe_mm: float | None
    evaluate_windows: int


class RunScorer:
    """Scores each hop as it happens (memory stays flat however long the replay): the labels are read once,
    then every hop adds one error value."""

    def __init__(self, session: str | Path | Session, *, rate_hz: float, window: int, grid: int) -> None:
        """`session`: the replayed session file, or the Session already read from it."""
        if not isinstance(session, Session):
            session = read_session(session, validate=False)
        self.stamps = np.asarray(session.pose_timestamps, np.float64)
        self.valid = session.valid_pose_mask() if len(self.stamps) else np.zeros(0, bool)
        self.labels = np.asarray(session.joints_3d, np.float64)
        self.rate, self.window, self.grid = rate_hz, window, grid
        self.now_after_first = NOW_2KHZ / (UPSAMPLE * rate_hz)
        assert window == 1000, "the label instants above are the 1,000-sample window's"
        self.initial_after_first = INITIAL_STATE_SAMPLE_2KHZ / (UPSAMPLE * rate_hz)
        self.hops = 0
        self._errors = array("d")  # hops whose "now" has a valid label
        self._active = array("b")
        self._evaluated = array("b")

    def _label(self, time: float) -> tuple[np.ndarray | None, bool]:
        stamps = self.stamps
        if len(stamps) < 2 or not stamps[0] <= time <= stamps[-1]:
            return None, False
        right = min(max(int(np.searchsorted(stamps, time)), 1), len(stamps) - 1)
        left = right - 1
        span = stamps[right] - stamps[left]
        ok = bool(self.valid[left] and self.valid[right] and span <= MAX_LABEL_GAP_S)
        weight = min(max((time - stamps[left]) / span, 0.0), 1.0) if span > 0 else 0.0
        return self.labels[left] * (1 - weight) + self.labels[right] * weight, ok

    def add(self, t_first: float, t_last: float, start_index: int, joints: np.ndarray, active: bool) -> None:
        """One hop: its window's first/last sample times, first sample's index, predicted joints (21,3) m."""
        self.hops += 1
        label, ok = self._label(t_first + self.now_after_first)
        if label is None or not ok:
            return
        self._errors.append(float(np.linalg.norm(joints - label, axis=-1).mean() * 1000.0))
        self._active.append(bool(active))
        _, initial_ok = self._label(t_first + self.initial_after_first)
        contiguous = (t_last - t_first) < (self.window - 1) / self.rate * 1.05
        self._evaluated.append(bool(initial_ok and contiguous and start_index % self.grid == 0))

    def result(self) -> RunScore | None:
        if not self._errors:
            return None
        errors = np.frombuffer(self._errors, np.float64)
        active = np.frombuffer(self._active, np.int8).astype(bool)
        evaluated = np.frombuffer(self._evaluated, np.int8).astype(bool)
        return RunScore(
            float(errors.mean()),
            float(np.median(errors)),
            len(errors),
            self.hops,
            float(errors[active].mean()) if active.any() else None,
            int(active.sum()),
            float(errors[evaluated].mean()) if evaluated.any() else None,
            int(evaluated.sum()),
        )
