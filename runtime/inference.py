"""The inference step behind one small interface, so that faster engines can replace the windowed one.

Every engine is fed every sample the loop reads (`feed`, raw µV, in order — it runs the model's causal input
filter itself, runtime/input_stage.py), told about discontinuities (`restart`), asked for the pose of the
window that ends at an absolute sample count (`infer(end)`), and given the time after a hop's command has gone
out for deferred work (`idle`). Three engines (DESIGN.md):

- `windowed` (the reference): runs the exported 2-s window graph every hop, honouring the model's
  initial-state policy at any hop:
  `neutral`: zeros; `train_mean`: the training mean the metadata carries; `feedback`: the previous window's
  `feedback_angles` is the initial state of a window that starts exactly `recommended_hop_samples` later; at
  any other hop a ring of earlier outputs is kept so that the window starting now finds the estimate made one
  recommended hop ago, and falls back to the training mean after a restart until that history exists again.
- `exact` and `continuous`: runtime/streaming.py (incremental; `exact` equals `windowed`).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from firmware_bridge.errors import UserError
from runtime.input_stage import InputStage
from runtime.model_contract import EMG, ENGINE_NAMES, INITIAL_POSE, N_ANGLES, OUTPUT_NAMES
from runtime.model_metadata import LoadedModel


@dataclass(frozen=True)
class Prediction:
    theta: np.ndarray  # (45,) MANO pose, rad
    joints: np.ndarray  # (21,3) m, wrist-relative
    angles: np.ndarray  # (20,) backbone angles at the window's end, rad
    confidence: float  # calibrated P(error ≤ 20 mm) when the model carries a calibration
    infer_ms: float  # engine compute attributed to this hop (incremental engines: since the previous hop)
    call_ms: float = 0.0  # of which inside `infer` itself: the latency from the hop to the pose
    ready: bool = True  # False while an incremental engine warms up after a start or restart
    note: str = ""  # why not ready


class InferenceEngine(Protocol):
    name: str
    window_samples: int

    def feed(self, samples: np.ndarray) -> None:
        """Every (n, channels) block of raw µV the loop reads, in order (zero rows already repaired)."""
        ...

    def restart(self, offset: int = 0) -> None:
        """The stream is discontinuous before the `offset`-th sample of the next `feed` (a gap, stall or
        backlog): filter and carried state start afresh there."""
        ...

    def infer(self, end: int) -> Prediction:
        """The pose of the window whose last sample is absolute sample `end − 1` (the loop's count)."""
        ...

    def idle(self) -> None:
        """Deferred work, called after the hop's command is out."""
        ...


def initial_state(model: LoadedModel) -> np.ndarray:
    """The policy's fixed start (zeros for `neutral`, the training mean otherwise)."""
    meta = model.meta
    mean = meta.initial_state_mean
    if meta.initial_state_policy in ("train_mean", "feedback") and mean is None:
        raise UserError(
            f"{model.path}: policy '{meta.initial_state_policy}' but the metadata has no initial_state_mean"
        )
    if meta.initial_state_policy == "neutral" or mean is None:
        return np.zeros(N_ANGLES, np.float32)
    return np.asarray(mean, np.float32)


def check_hop(model: LoadedModel, hop_samples: int) -> None:
    meta = model.meta
    if hop_samples < 1 or hop_samples > meta.window_samples:
        raise UserError(
            f"--hop-ms gives {hop_samples} samples; the model needs 1–{meta.window_samples} "
            f"(its window is {meta.window_samples} samples at {meta.sampling_rate_hz:g} Hz)"
        )


def ring_capacity(window: int, hop_samples: int) -> int:
    """As much history as the loop's own ring keeps (catch-up mode infers several hops after one read)."""
    return window + 8 * max(hop_samples, 64)


class WindowedEngine:
    """Recompute the exported 2-s window every hop (the reference engine)."""

    name = "windowed"

    def __init__(self, model: LoadedModel, hop_samples: int) -> None:
        check_hop(model, hop_samples)
        meta = model.meta
        self.model = model
        self.session = model.session
        self.window_samples = meta.window_samples
        self.hop_samples = hop_samples
        self.policy = meta.initial_state_policy
        self.fallback = initial_state(model)
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
        self.stage = InputStage(model, ring_capacity(self.window_samples, hop_samples))
        self._history: deque[np.ndarray] = deque(maxlen=max(1, self._feedback_lag_hops or 1))
        self._clean_from = 0  # windows ending before this span a restart: their feedback is not kept
        self._emg = np.zeros((1, meta.channels, self.window_samples), np.float32)
        self._initial = np.zeros((1, N_ANGLES), np.float32)
        self._outputs = list(OUTPUT_NAMES)  # by name: theta, joints, angles, confidence, feedback_angles

    def feed(self, samples: np.ndarray) -> None:
        self.stage.feed(samples)

    def restart(self, offset: int = 0) -> None:
        at = self.stage.restart(offset)
        self._history.clear()
        self._clean_from = at + self.window_samples

    def idle(self) -> None:
        return None

    def _initial_state(self) -> np.ndarray:
        if self.policy == "feedback" and len(self._history) == self._history.maxlen:
            return self._history[0]
        return self.fallback

    def infer(self, end: int) -> Prediction:
        started = time.perf_counter()
        self._emg[0] = self.stage.window(end, self.window_samples).T
        self._initial[0] = self._initial_state()
        theta, joints, angles, confidence, feedback = self.session.run(
            self._outputs, {EMG.name: self._emg, INITIAL_POSE.name: self._initial}
        )
        if self.policy == "feedback":
            if end >= self._clean_from:
                self._history.append(feedback[0].copy())
            else:
                self._history.clear()  # carry no state out of a window that spans a restart
        elapsed = (time.perf_counter() - started) * 1000.0
        return Prediction(
            theta[0].astype(np.float64),
            joints[0].astype(np.float64),
            angles[0].astype(np.float64),
            float(confidence[0]),
            elapsed,
            elapsed,
        )


ENGINES = ENGINE_NAMES


def make_engine(name: str, model: LoadedModel, hop_samples: int, *, threads: int = 1) -> InferenceEngine:
    if name == "windowed":
        return WindowedEngine(model, hop_samples)
    if name in ("exact", "continuous"):
        from runtime.streaming import make_streaming_engine

        return make_streaming_engine(name, model, hop_samples, threads=threads)
    raise UserError(f"--engine {name!r}: this runtime has {', '.join(ENGINES)}")


def default_engine(model: LoadedModel) -> tuple[str, str]:
    """The model's own recommendation (its metadata), else the reference; and a note when the recommendation
    cannot be honoured here (its streaming files are not beside it, or it cannot run the model's policy)."""
    info = model.meta.streaming
    if info is None or info.default_engine == "windowed":
        return "windowed", ""
    missing = [entry["file"] for entry in info.files.values() if not model.path.with_name(entry["file"]).is_file()]
    if missing:
        return "windowed", (
            f"{model.path.name} recommends --engine {info.default_engine}, but its streaming graphs "
            f"{', '.join(missing)} are not beside it (copy the whole export): running --engine windowed"
        )
    if info.default_engine == "exact" and model.meta.initial_state_policy == "feedback":
        return "windowed", f"{model.path.name} uses the 'feedback' policy, which exact cannot run: --engine windowed"
    return info.default_engine, ""
