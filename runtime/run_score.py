"""Score the runtime's own predictions against the camera labels of the session it replayed.

Same rules as `mode2 evaluate`: labels pass the guide's filter (ik_error < 15 mm, mp_confidence > 0.5),
are interpolated linearly at the prediction's instant, and count only where both neighbouring frames
are valid and at most 100 ms apart. The prediction's instant is the model's "now": its last backbone
output, the ×4-upsampled window's last sample, (4·W − 1)/(4·rate) after the window's first sample.

Two numbers come out. `all hops`: every hop whose "now" has a valid label — what the device achieves.
`evaluate's windows`: only the hops whose window is one that `mode2 evaluate` scores (starting on the
export's hop grid, contiguous in time, with a valid label at the initial-state instant and at "now"), so
the runtime can be checked against evaluate number for number.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from firmware_bridge.session_file import read_session

MAX_LABEL_GAP_S = 0.1
UPSAMPLE = 4  # the model's internal 500 Hz → 2 kHz
INITIAL_STATE_SAMPLE_2KHZ = 1790  # the backbone's left context: the initial state's instant


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


def _labels_at(session, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    stamps, valid = session.pose_timestamps, session.valid_pose_mask()
    right = np.clip(np.searchsorted(stamps, times), 1, len(stamps) - 1)
    left = right - 1
    span = stamps[right] - stamps[left]
    weight = np.clip((times - stamps[left]) / np.where(span > 0, span, 1.0), 0.0, 1.0)[:, None, None]
    joints = session.joints_3d[left] * (1 - weight) + session.joints_3d[right] * weight
    ok = valid[left] & valid[right] & (span <= MAX_LABEL_GAP_S) & (times >= stamps[0]) & (times <= stamps[-1])
    return joints, ok


def score_predictions(
    session_path: str | Path,
    t_first: np.ndarray,
    start_index: np.ndarray,
    joints: np.ndarray,
    *,
    rate_hz: float,
    window: int,
    grid: int,
    active: np.ndarray | None = None,
) -> RunScore | None:
    """MPJPE (mm) of `joints` (H,21,3) m predicted on windows starting at `t_first` (H,) / sample
    `start_index` (H,); None when the session has no usable labels."""
    session = read_session(session_path, validate=False)
    if session.pose_timestamps is None or len(session.pose_timestamps) < 2 or len(t_first) == 0:
        return None
    t_first = np.asarray(t_first, np.float64)
    now = t_first + (UPSAMPLE * window - 1) / (UPSAMPLE * rate_hz)
    labels, ok = _labels_at(session, now)
    if not ok.any():
        return None
    error_mm = np.linalg.norm(np.asarray(joints) - labels, axis=-1).mean(axis=-1) * 1000.0
    active_ok = ok & (np.asarray(active, bool) if active is not None else np.zeros(len(ok), bool))
    _, initial_ok = _labels_at(session, t_first + INITIAL_STATE_SAMPLE_2KHZ / (UPSAMPLE * rate_hz))
    stamps = session.emg_timestamps
    start = np.asarray(start_index)
    last = np.minimum(start + window - 1, len(stamps) - 1)
    contiguous = (stamps[last] - stamps[np.minimum(start, len(stamps) - 1)]) < (window - 1) / rate_hz * 1.05
    evaluated = ok & initial_ok & (start % grid == 0) & contiguous
    return RunScore(
        float(error_mm[ok].mean()),
        float(np.median(error_mm[ok])),
        int(ok.sum()),
        len(t_first),
        float(error_mm[active_ok].mean()) if np.any(active_ok) else None,
        int(np.sum(active_ok)),
        float(error_mm[evaluated].mean()) if np.any(evaluated) else None,
        int(evaluated.sum()),
    )
