"""The recorder's display filter (`emg/filtered`): what a person looks at, never what training reads.

Training filters `emg/raw` itself with the model's input filter; `emg/filtered` exists because the seed
layout has it and because the screen's EMG levels need the DC and mains out. One design
(`display_filter_sos`) serves the recorder (chunk by chunk, `DisplayFilter`) and the synthetic world's
recorder imitation (`training.synth.world.filter_like_recorder`, whole arrays), so the two agree.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from scipy.signal import butter, iirnotch, sosfilt, sosfilt_zi, tf2sos

from firmware_bridge.emg_filter import RESET_GAP_SAMPLES
from firmware_bridge.emg_rows import hold_over_zero_rows

HIGHPASS_HZ = 20.0
HIGHPASS_ORDER = 4
NOTCH_Q = 30.0


def display_filter_sos(rate_hz: float, mains_hz: float) -> np.ndarray:
    """Butterworth high-pass (order 4, 20 Hz) followed by a Q-30 notch at the mains frequency, as SOS."""
    highpass = butter(HIGHPASS_ORDER, HIGHPASS_HZ, btype="high", fs=rate_hz, output="sos")
    return np.concatenate([highpass, tf2sos(*iirnotch(mains_hz, NOTCH_Q, fs=rate_hz))])


class DisplayFilter:
    """The recorder's display filter, chunk by chunk: `training.synth.world.filter_like_recorder` (4th-order
    Butterworth high-pass at 20 Hz + a Q-30 notch at the mains frequency, started in the steady state of
    its first row), all-zero rows held over, restarted after a gap of more than `RESET_GAP_SAMPLES`."""

    def __init__(self, rate_hz: float, mains_hz: float) -> None:
        self.sos = display_filter_sos(rate_hz, mains_hz)
        self.description = f"causal Butterworth high-pass order 4 at 20 Hz + notch {mains_hz:g} Hz (Q 30)"
        self._zi_unit = sosfilt_zi(self.sos)[:, :, None]
        self._zi: np.ndarray | None = None
        self._last: np.ndarray | None = None

    def __call__(self, raw: np.ndarray, events: Any = ()) -> np.ndarray:
        x, _ = hold_over_zero_rows(np.asarray(raw, dtype=np.float64), self._last)
        if not len(x):
            return x.astype(np.float32)
        restarts = sorted(
            {
                min(max(int(e.index), 0), len(x))
                for e in events
                if e.kind == "backlog" or (e.kind == "gap" and int(e.samples) > RESET_GAP_SAMPLES)
            }
        )
        out = np.empty_like(x)
        bounds = [0, *[r for r in restarts if 0 < r < len(x)], len(x)]
        for i, (a, b) in enumerate(itertools.pairwise(bounds)):
            if self._zi is None or (i > 0) or (a == 0 and 0 in restarts):
                self._zi = self._zi_unit * x[a][None, None, :]
            out[a:b], self._zi = sosfilt(self.sos, x[a:b], axis=0, zi=self._zi)
        self._last = x[-1].copy()
        return out.astype(np.float32)
