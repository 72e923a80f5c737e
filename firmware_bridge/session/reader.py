"""Read a session file (ours or the seed project's) into a `Session`, by the dataset list in `schema.py`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from firmware_bridge.session.schema import DATASETS, KNOWN, REQUIRED, DatasetSpec, Session, SessionFormatError
from firmware_bridge.session.validator import validate_session


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.generic):
        return value.item()
    return value


def _dataset(path: Path, f: h5py.File, name: str) -> h5py.Dataset | None:
    """The dataset at `name`, None if absent; a group in its place is an error."""
    if name not in f:
        return None
    if not isinstance(f[name], h5py.Dataset):
        raise SessionFormatError(path, name, "is a group, expected a dataset")
    return f[name]


def _load(path: Path, f: h5py.File, spec: DatasetSpec) -> np.ndarray | None:
    dataset = _dataset(path, f, spec.name)
    if dataset is None:
        return None
    raw = np.asarray(dataset[()])
    if raw.dtype.kind not in "biuf":
        raise SessionFormatError(path, spec.name, f"holds {raw.dtype} values, expected numbers")
    values = raw.astype(spec.dtype, copy=False)
    if values.ndim == 0:
        raise SessionFormatError(path, spec.name, "is a single value (scalar), expected one row per sample")
    return values


def _read_gestures(path: Path, f: h5py.File) -> list[tuple[str, float, float]]:
    """`gestures/labels|start_times|end_times`; a scalar label (one gesture) is one gesture, not its letters."""
    if "gestures/labels" not in f:
        return []

    def column(name: str, kind: str) -> np.ndarray | None:
        dataset = _dataset(path, f, name)
        if dataset is None:
            return None
        values = np.atleast_1d(np.asarray(dataset[()], dtype=object))
        if values.ndim != 1:
            raise SessionFormatError(path, name, f"expected one value per gesture (shape (G,)), got {values.shape}")
        if kind == "time":
            try:
                return values.astype(np.float64)
            except (TypeError, ValueError) as error:
                raise SessionFormatError(path, name, "expected times in seconds") from error
        return values

    labels = column("gestures/labels", "label")
    assert labels is not None
    starts = column("gestures/start_times", "time")
    ends = column("gestures/end_times", "time")
    starts = np.zeros(len(labels)) if starts is None else starts
    ends = np.zeros(len(labels)) if ends is None else ends
    if not (len(labels) == len(starts) == len(ends)):
        raise SessionFormatError(path, "gestures", "labels, start_times and end_times differ in length")
    return [(str(_decode(lab)), float(s), float(e)) for lab, s, e in zip(labels, starts, ends, strict=True)]


def _read_open_file(path: Path, f: h5py.File) -> Session:
    if "emg2pose/timeseries" in f and "emg/raw" not in f:
        raise SessionFormatError(
            path,
            "emg/raw",
            "missing: this is an emg2pose-layout 16-ch 2 kHz file (a `*_2k.h5` stream for "
            "`mode2 pretrain-backbone`), not an 8-ch session",
        )
    for name in REQUIRED:
        if _dataset(path, f, name) is None:
            raise SessionFormatError(path, name, "missing dataset")
    extras: dict[str, np.ndarray] = {}

    def collect(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and name not in KNOWN:
            extras[name] = obj[()]

    gestures = _read_gestures(path, f)
    f.visititems(collect)
    return Session(
        path=path,
        attrs={key: _decode(value) for key, value in f.attrs.items()},
        gestures=gestures,
        extras=extras,
        **{spec.attribute: _load(path, f, spec) for spec in DATASETS},
    )


def read_session(path: str | Path, *, validate: bool = True) -> Session:
    """Load a session file (ours or the seed project's) and validate it against the contract."""
    path = Path(path)
    if not path.exists():
        raise SessionFormatError(path, "(file)", "does not exist")
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise SessionFormatError(path, "(file)", f"not a readable HDF5 file ({error})") from error
    with handle as f:
        session = _read_open_file(path, f)
    if validate:
        validate_session(session)
    return session
