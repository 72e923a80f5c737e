"""The inference step behind one small interface, so a faster engine can replace the windowed one.

An engine takes the newest window of raw EMG (the model's own window length, µV, channel order from
its metadata) at every hop and returns a `Prediction`. `WindowedEngine` is the reference: it runs the
exported window graph every hop, honouring the model's initial-state policy at any hop:

- `neutral`: zeros; `train_mean`: the training mean the metadata carries;
- `feedback`: the previous window's `feedback_angles` is the initial state of a window that starts
  exactly `recommended_hop_samples` later; at any other hop a ring of earlier outputs is kept so that
  the window starting now finds the estimate made one recommended hop ago, and falls back to the
  training mean after a reset (gap, stall, e-stop clear) until that history exists again.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from firmware_bridge.errors import UserError
from runtime.model_contract import EMG, INITIAL_POSE, N_ANGLES, OUTPUT_NAMES
from runtime.model_metadata import LoadedModel


@dataclass(frozen=True)
class Prediction:
    theta: np.ndarray  # (45,) MANO pose, rad
    joints: np.ndarray  # (21,3) m, wrist-relative
    angles: np.ndarray  # (20,) backbone angles at the window's end, rad
    confidence: float  # calibrated P(error ≤ 20 mm) when the model carries a calibration
    infer_ms: float


class InferenceEngine(Protocol):
    name: str
    window_samples: int

    def infer(self, window_uv: np.ndarray) -> Prediction:
        """`window_uv` (window_samples, channels) raw µV, oldest first; the last row is "now"."""
        ...

    def reset(self) -> None:
        """Forget carried state (after a gap or stall)."""
        ...


class WindowedEngine:
    """Recompute the exported 2-s window every hop (the reference engine)."""

    name = "windowed"

    def __init__(self, model: LoadedModel, hop_samples: int) -> None:
        meta = model.meta
        if hop_samples < 1 or hop_samples > meta.window_samples:
            raise UserError(
                f"--hop-ms gives {hop_samples} samples; the model needs 1–{meta.window_samples} "
                f"(its window is {meta.window_samples} samples at {meta.sampling_rate_hz:g} Hz)"
            )
        self.model = model
        self.session = model.session
        self.window_samples = meta.window_samples
        self.hop_samples = hop_samples
        self.policy = meta.initial_state_policy
        mean = meta.initial_state_mean
        if self.policy in ("train_mean", "feedback") and mean is None:
            raise UserError(f"{model.path}: policy '{self.policy}' but the metadata has no initial_state_mean")
        self.fallback = np.zeros(N_ANGLES, np.float32) if mean is None else np.asarray(mean, np.float32)
        if self.policy == "neutral":
            self.fallback = np.zeros(N_ANGLES, np.float32)
        # feedback: the estimate for "one recommended hop after this window's start" is produced by the
        # window that ended then; keep enough past feedback outputs to find it at any hop that divides it
        self._feedback_lag_hops = (
            meta.recommended_hop_samples // hop_samples if meta.recommended_hop_samples % hop_samples == 0 else None
        )
        if self.policy == "feedback" and self._feedback_lag_hops is None:
            raise UserError(
                f"--hop-ms gives {hop_samples} samples, which does not divide the model's feedback hop "
                f"({meta.recommended_hop_samples} samples); choose a hop that divides it"
            )
        self._history: deque[np.ndarray] = deque(maxlen=max(1, self._feedback_lag_hops or 1))
        self._emg = np.zeros((1, meta.channels, self.window_samples), np.float32)
        self._initial = np.zeros((1, N_ANGLES), np.float32)
        self._outputs = list(OUTPUT_NAMES)  # by name: theta, joints, angles, confidence, feedback_angles

    def reset(self) -> None:
        self._history.clear()

    def _initial_state(self) -> np.ndarray:
        if self.policy == "feedback" and len(self._history) == self._history.maxlen:
            return self._history[0]
        return self.fallback

    def infer(self, window_uv: np.ndarray) -> Prediction:
        started = time.perf_counter()
        self._emg[0] = window_uv.T
        self._initial[0] = self._initial_state()
        theta, joints, angles, confidence, feedback = self.session.run(
            self._outputs, {EMG.name: self._emg, INITIAL_POSE.name: self._initial}
        )
        if self.policy == "feedback":
            self._history.append(feedback[0].copy())
        return Prediction(
            theta[0].astype(np.float64),
            joints[0].astype(np.float64),
            angles[0].astype(np.float64),
            float(confidence[0]),
            (time.perf_counter() - started) * 1000.0,
        )


ENGINES = ("windowed",)


def make_engine(name: str, model: LoadedModel, hop_samples: int) -> InferenceEngine:
    if name == "windowed":
        return WindowedEngine(model, hop_samples)
    raise UserError(f"--engine {name!r}: this runtime has {', '.join(ENGINES)}")
