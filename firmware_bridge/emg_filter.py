"""The model's causal input filter, applied the same way by training (whole sessions) and the device (as samples
arrive).

Real MindRove recordings carry DC offsets of hundreds of mV, drift of tens of mV within a window and mains
hum; the model must see none of it. A causal IIR filter (Butterworth high-pass, optionally mains notches)
removes them before the window is cut, so the filtered value of a sample does not depend on which window it
ends up in: the streaming engines can then reuse every earlier computation (see runtime/inference.py).

All-zero rows (dropped packets) are repaired before the filter, by training and the device alike
(firmware_bridge/emg_rows.py): a zero row against a 200-mV offset would otherwise ring to hundreds of mV.

The state is defined at every discontinuity: the filter starts (or restarts, after a gap of more than
`reset_gap_samples` missing samples, a stall or a backlog) in the steady state of its first sample, so a DC
offset of 400 mV produces no start-up transient. Training restarts it at the same places in a session
(`filter_session`), the runtime at the events its EMG source reports.

The coefficients travel with the model (checkpoint and ONNX metadata) as second-order sections; designing a
filter needs scipy, applying one needs only `scipy.signal.sosfilt` (float64 state, float32 output).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.signal import butter, iirnotch, sosfilt, sosfilt_zi, sosfreqz, tf2sos

from firmware_bridge.emg_rows import repair_recording

DEFAULT_HIGHPASS_HZ = 20.0
DEFAULT_ORDER = 4
DEFAULT_NOTCH_Q = 30.0
# a gap of more missing samples than this restarts the filter (the runtime's LONG_GAP_SAMPLES)
RESET_GAP_SAMPLES = 10


class FilterSpecError(ValueError):
    """An input-filter description that cannot be applied (names what is wrong)."""


@dataclass(frozen=True)
class InputFilter:
    """Second-order sections (n, 6) at `sampling_rate_hz`, and what they are, for people."""

    sos: tuple[tuple[float, ...], ...]
    sampling_rate_hz: float
    description: str
    reset_gap_samples: int = RESET_GAP_SAMPLES

    @classmethod
    def design(
        cls,
        sampling_rate_hz: float = 500.0,
        highpass_hz: float = DEFAULT_HIGHPASS_HZ,
        order: int = DEFAULT_ORDER,
        notch_hz: tuple[float, ...] = (),
        notch_q: float = DEFAULT_NOTCH_Q,
    ) -> InputFilter:
        nyquist = sampling_rate_hz / 2
        if not 0 < highpass_hz < nyquist:
            raise FilterSpecError(f"high-pass corner {highpass_hz:g} Hz: must be between 0 and {nyquist:g} Hz")
        sections = [butter(order, highpass_hz, btype="highpass", fs=sampling_rate_hz, output="sos")]
        for hz in notch_hz:
            if not 0 < hz < nyquist:
                raise FilterSpecError(f"notch at {hz:g} Hz: must be between 0 and {nyquist:g} Hz")
            b, a = iirnotch(hz, notch_q, fs=sampling_rate_hz)
            sections.append(tf2sos(b, a))
        sos = np.concatenate(sections)
        text = f"causal Butterworth high-pass, order {order}, {highpass_hz:g} Hz"
        if notch_hz:
            text += f"; notches at {', '.join(f'{hz:g}' for hz in notch_hz)} Hz (Q {notch_q:g})"
        return cls(tuple(tuple(float(v) for v in row) for row in sos), float(sampling_rate_hz), text)

    @property
    def sos_array(self) -> np.ndarray:
        return np.asarray(self.sos, dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "sos",
            "sos": [list(row) for row in self.sos],
            "sampling_rate_hz": self.sampling_rate_hz,
            "description": self.description,
            "reset_gap_samples": self.reset_gap_samples,
            "initial_state": "steady state of the first sample after a start or reset",
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "input_filter") -> InputFilter:
        if not isinstance(data, Mapping):
            raise FilterSpecError(f"{where}: expected a table, got {type(data).__name__}")
        if data.get("kind") != "sos":
            raise FilterSpecError(f"{where}.kind: {data.get('kind')!r}; this version applies 'sos' filters only")
        try:
            sos = np.asarray(data["sos"], dtype=np.float64)
            rate = float(data["sampling_rate_hz"])
            gap = int(data.get("reset_gap_samples", RESET_GAP_SAMPLES))
        except (KeyError, TypeError, ValueError) as exc:
            raise FilterSpecError(f"{where}: missing or malformed sos / sampling_rate_hz ({exc})") from exc
        if sos.ndim != 2 or sos.shape[1] != 6 or not len(sos) or not np.isfinite(sos).all():
            raise FilterSpecError(f"{where}.sos: expected finite (n, 6) second-order sections, got shape {sos.shape}")
        if not np.allclose(sos[:, 3], 1.0):
            raise FilterSpecError(f"{where}.sos: every section's a0 must be 1")
        poles = np.concatenate([np.roots(row[3:]) for row in sos])
        if np.any(np.abs(poles) >= 1.0):
            raise FilterSpecError(f"{where}.sos: unstable (a pole on or outside the unit circle)")
        return cls(tuple(tuple(row) for row in sos.tolist()), rate, str(data.get("description", "")), gap)


MAINS_FAMILIES_HZ = (50.0, 60.0)
MAINS_TOLERANCE = 0.001  # grids hold their frequency within ±0.1 % in normal operation (±0.05 Hz at 50 Hz)


def notched_mains_families(spec: InputFilter, depth_db: float = 20.0, top_hz: float = 250.0) -> tuple[float, ...]:
    """The mains families (50, 60 Hz) whose every line up to `top_hz` (and below Nyquist) `spec` attenuates by
    at least `depth_db` across the grid's frequency tolerance: mains there never reaches the model."""
    nyquist = spec.sampling_rate_hz / 2
    families = []
    for f0 in MAINS_FAMILIES_HZ:
        lines = [k * f0 for k in range(1, int(min(top_hz, nyquist) // f0) + 1) if k * f0 < nyquist]
        probe = np.concatenate([np.array(lines) * (1 + d) for d in (-MAINS_TOLERANCE, 0.0, MAINS_TOLERANCE)])
        _, response = sosfreqz(spec.sos_array, worN=probe, fs=spec.sampling_rate_hz)
        if lines and np.max(np.abs(response)) <= 10 ** (-depth_db / 20):
            families.append(f0)
    return tuple(families)


class StreamFilter:
    """`InputFilter` applied chunk by chunk to an (n, channels) stream; equal to filtering it all at once."""

    def __init__(self, spec: InputFilter, channels: int) -> None:
        self.spec = spec
        self.channels = channels
        self._sos = spec.sos_array
        self._zi_unit = sosfilt_zi(self._sos)[:, :, None]  # (sections, 2, 1): steady state for a unit input
        self._state: np.ndarray | None = None

    def reset(self) -> None:
        """The next sample starts the filter afresh (steady state of that sample: no DC transient)."""
        self._state = None

    def process(self, samples: np.ndarray) -> np.ndarray:
        """(n, channels) raw µV → (n, channels) filtered µV, float32."""
        x = np.asarray(samples, dtype=np.float64)
        if not len(x):
            return np.zeros((0, self.channels), np.float32)
        if self._state is None:
            self._state = self._zi_unit * x[0][None, None, :]
        y, self._state = sosfilt(self._sos, x, axis=0, zi=self._state)
        return y.astype(np.float32)


def segment_starts(timestamps: np.ndarray, sampling_rate_hz: float, reset_gap_samples: int) -> np.ndarray:
    """Indices where the filter restarts in a recorded stream: 0 and every sample after a gap of more than
    `reset_gap_samples` missing samples (what the runtime's sources report as a long gap or stall)."""
    stamps = np.asarray(timestamps, dtype=np.float64)
    if len(stamps) < 2:
        return np.zeros(min(1, len(stamps)), dtype=np.int64)
    missing = np.diff(stamps) * sampling_rate_hz - 1.0
    return np.concatenate([[0], np.flatnonzero(missing > reset_gap_samples + 0.5) + 1]).astype(np.int64)


def device_input(emg: np.ndarray, timestamps: np.ndarray, spec: InputFilter) -> tuple[np.ndarray, np.ndarray]:
    """A recorded stream as the device's input stage takes it: (zero rows repaired, the sample indices where
    the filter restarts — 0, the first non-zero row of a session that starts with zero rows, and the sample
    after every long gap). For anything that feeds a recorded session to a model or an engine."""
    raw, onset = repair_recording(emg)
    starts = segment_starts(timestamps, spec.sampling_rate_hz, spec.reset_gap_samples)
    if onset is not None:
        starts = np.union1d(starts, [onset])
    return raw, starts


def filter_session(emg: np.ndarray, timestamps: np.ndarray, spec: InputFilter) -> np.ndarray:
    """A whole recorded (n, channels) stream filtered as the device would have filtered it live.

    The input stage is the zero-row repair, then the filter: all-zero rows (dropped packets) first repeat the
    last non-zero row before them (`firmware_bridge.emg_rows.hold_over_zero_rows`, the function the runtime
    loop applies to each chunk before its engines' input stage), and when the session starts with zero rows
    the filter restarts at its first non-zero row (`signal_onset`, where the loop restarts its engine), both
    by `repair_recording`. The filter then restarts after every long gap (`segment_starts`). The repair is
    not part of `InputFilter`: the checkpoint and ONNX metadata describe the filter alone, and every consumer
    of the raw stream (this function and runtime/loop.py) repairs before it.
    """
    raw, starts = device_input(emg, timestamps, spec)
    out = np.empty(raw.shape, np.float32)
    bounds = [*starts.tolist(), len(raw)]
    for begin, end in itertools.pairwise(bounds):
        out[begin:end] = StreamFilter(spec, raw.shape[1]).process(raw[begin:end])
    return out
