"""Check a `Session` against the contract in `schema.py`; the first violation raises SessionFormatError."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from firmware_bridge.session.schema import (
    DATASETS,
    MAX_CAMERA_FPS,
    MAX_EMG_RATE_HZ,
    MAX_PLAUSIBLE_HAND_SPAN_M,
    MIN_EMG_SAMPLES,
    SPECS,
    Session,
    SessionFormatError,
    median_hand_span_m,
)


def shape_text(row_shape: tuple[int | str, ...], rows: str = "N") -> str:
    """`(N,21,3)`: how an expected shape is written in error messages."""
    return "(" + rows + "".join(f",{t}" for t in row_shape) + ")"


def _check_finite(path: Path, name: str, values: np.ndarray) -> None:
    if values.dtype.kind in "fc" and not np.all(np.isfinite(values)):
        bad = np.argwhere(~np.isfinite(values))[0]
        raise SessionFormatError(path, name, f"contains NaN or inf (first at index {tuple(int(i) for i in bad)})")


def _check_monotonic(path: Path, name: str, stamps: np.ndarray) -> None:
    if stamps.ndim != 1:
        raise SessionFormatError(path, name, f"expected shape (N,), got {stamps.shape}")
    if len(stamps) > 1:
        steps = np.diff(stamps)
        if np.any(steps <= 0):
            i = int(np.argmax(steps <= 0))
            raise SessionFormatError(
                path, name, f"timestamps not strictly increasing at index {i + 1} ({stamps[i]} → {stamps[i + 1]})"
            )


def _expect_shape(path: Path, name: str, values: np.ndarray, tail: tuple[int, ...], length: int) -> None:
    if values.ndim != 1 + len(tail) or tuple(values.shape[1:]) != tail:
        raise SessionFormatError(path, name, f"expected shape {shape_text(tail)}, got {values.shape}")
    if values.shape[0] != length:
        raise SessionFormatError(path, name, f"has {values.shape[0]} rows but its timestamps have {length}")


def _check_attrs(session: Session) -> None:
    """Root attributes the readers compute with must be numbers of the right kind."""
    path = session.path
    channels = session.attrs.get("emg_channels")
    if channels is not None:
        whole = isinstance(channels, int) or (isinstance(channels, float) and channels.is_integer())
        if isinstance(channels, bool) or not whole:
            raise SessionFormatError(path, "attrs/emg_channels", f"must be a whole number, got {channels!r}")
        if channels < 1:
            raise SessionFormatError(path, "attrs/emg_channels", f"must be ≥ 1, got {channels!r}")
    for name, highest in (("emg_sampling_rate", MAX_EMG_RATE_HZ), ("camera_fps", MAX_CAMERA_FPS)):
        value = session.attrs.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SessionFormatError(path, f"attrs/{name}", f"must be a number (Hz), got {value!r}")
        if not math.isfinite(value) or not 0 < value <= highest:
            raise SessionFormatError(
                path, f"attrs/{name}", f"must be a positive rate of at most {highest:g} Hz, got {value!r}"
            )


def _emg_channels(session: Session) -> int:
    """The channel count of emg/raw, checked against attr emg_channels."""
    path, raw = session.path, session.emg_raw
    if raw.ndim != 2:
        raise SessionFormatError(
            path, "emg/raw", f"expected shape {shape_text(SPECS['emg/raw'].tail)}, got {raw.shape}"
        )
    channels = raw.shape[1]
    if channels < 1:
        raise SessionFormatError(path, "emg/raw", f"has no channels (shape {raw.shape})")
    declared = session.attrs.get("emg_channels")
    if declared is not None and int(declared) != channels:
        raise SessionFormatError(path, "emg/raw", f"has {channels} channels but attr emg_channels = {declared}")
    return channels


def _check_pose_values(session: Session) -> None:
    """Units and ranges the shapes cannot tell: metres not millimetres, confidence in [0, 1], IK error ≥ 0."""
    path = session.path
    if not len(session.pose_timestamps):
        return
    typical = median_hand_span_m(session.joints_3d)
    if typical > MAX_PLAUSIBLE_HAND_SPAN_M:
        raise SessionFormatError(
            path,
            "pose/joints_3d",
            f"hand spans {typical:.1f} units per frame (median); joints must be in metres "
            f"(a hand spans ~0.2 m) — they look like millimetres",
        )
    if np.any(session.mp_confidence < 0) or np.any(session.mp_confidence > 1):
        raise SessionFormatError(path, "pose/mp_confidence", "values outside [0, 1]")
    if np.any(session.ik_error < 0):
        raise SessionFormatError(path, "pose/ik_error", "negative IK error")


def validate_session(session: Session) -> None:
    """Raise SessionFormatError on the first contract violation."""
    path = session.path
    _check_attrs(session)
    rows = {}
    for clock in ("emg", "pose"):
        stamps = session.dataset(SPECS[f"{clock}/timestamps"])
        _check_monotonic(path, f"{clock}/timestamps", stamps)
        rows[clock] = len(stamps)
    if rows["emg"] < MIN_EMG_SAMPLES:
        raise SessionFormatError(
            path, "emg/timestamps", f"holds {rows['emg']} EMG samples: an empty or aborted recording, nothing to use"
        )
    channels = _emg_channels(session)
    for spec in DATASETS:
        values = session.dataset(spec)
        if values is not None:
            _expect_shape(path, spec.name, values, spec.row_shape(channels), rows[spec.clock])
    for spec in DATASETS:
        values = session.dataset(spec)
        if values is not None and spec.finite:
            _check_finite(path, spec.name, values)
    _check_pose_values(session)
