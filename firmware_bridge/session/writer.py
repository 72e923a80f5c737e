"""`SessionWriter`: append-only, crash-tolerant writing of a session file, by the dataset list in `schema.py`.

The writer appends in chunks and flushes at least once per `flush_interval_s`, so a killed recorder
loses at most the last second and the file still opens.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from firmware_bridge.session.schema import (
    DATASETS,
    KNOWN,
    MAX_PLAUSIBLE_HAND_SPAN_M,
    SCHEMA_VERSION,
    SPECS,
    median_hand_span_m,
)
from firmware_bridge.session.validator import shape_text

LANDMARKS = "pose/landmarks"


CHUNK_BYTES = 16384


class SessionWriter:
    """Append-only session writer that survives being killed (loses at most `flush_interval_s`).

    Every append is checked before anything touches the file, so bad input raises a clear error and
    leaves what was already written intact.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        subject_id: str,
        session_id: str,
        hand: str = "right",
        emg_channels: int = 8,
        emg_sampling_rate: float = 500.0,
        camera_fps: float = 30.0,
        attrs: dict[str, Any] | None = None,
        flush_interval_s: float = 1.0,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.channels = int(emg_channels)
        self.flush_interval_s = float(flush_interval_s)
        # Default (oldest compatible) file format on purpose: "latest" adds superblock status flags that
        # make a killed writer's file refuse to open until `h5clear` is run.
        self._file = h5py.File(self.path, "w")
        root = self._file.attrs
        root["subject_id"] = subject_id
        root["session_id"] = session_id
        root["hand"] = hand
        root["emg_channels"] = self.channels
        root["emg_sampling_rate"] = float(emg_sampling_rate)
        root["camera_fps"] = float(camera_fps)
        root["duration_sec"] = 0.0
        root["schema_version"] = SCHEMA_VERSION
        for key, value in (attrs or {}).items():
            root[key] = value
        self._datasets: dict[str, h5py.Dataset] = {}
        self._last_time: dict[str, float | None] = {"emg": None, "pose": None}
        self._first_time: float | None = None
        self._gestures: list[tuple[str, float, float]] = []
        self._last_flush = time.monotonic()
        for spec in DATASETS:
            if spec.presence != "optional":  # optional ones are created by the first append that has them
                self._create(spec.name, spec.row_shape(self.channels), spec.dtype)
        self._file.flush()

    # -- internals -------------------------------------------------------------------------------
    def _create(self, name: str, tail: tuple[int, ...], dtype: Any) -> h5py.Dataset:
        # ~16 KiB chunks whatever the row size: a row count alone made one 160-byte string chunk 655 kB
        row_bytes = np.dtype(dtype).itemsize * (int(np.prod(tail)) if tail else 1)
        chunk_rows = max(1, CHUNK_BYTES // max(1, row_bytes))
        dataset = self._file.create_dataset(
            name, shape=(0, *tail), maxshape=(None, *tail), dtype=dtype, chunks=(chunk_rows, *tail)
        )
        self._datasets[name] = dataset
        return dataset

    def _append(self, name: str, values: np.ndarray) -> None:
        dataset = self._datasets[name]
        start = dataset.shape[0]
        dataset.resize(start + len(values), axis=0)
        dataset[start:] = values

    def _prepare(self, name: str, values: Any, rows: int | None) -> np.ndarray:
        """`values` for dataset `name`, checked (shape, row count, finite) before anything is written."""
        tail = SPECS[name].row_shape(self.channels)
        array = np.asarray(values)
        if array.ndim != 1 + len(tail) or tuple(array.shape[1:]) != tail:
            raise ValueError(f"{self.path}: {name}: expected shape {shape_text(tail, 'n')}, got {array.shape}")
        if rows is not None and len(array) != rows:
            raise ValueError(f"{self.path}: {name}: {len(array)} rows but {rows} timestamps")
        if array.dtype.kind in "fc" and not np.all(np.isfinite(array)):
            raise ValueError(f"{self.path}: {name}: contains NaN or inf; nothing of this chunk was written")
        return array

    def _timestamps(self, clock: str, timestamps: Any) -> np.ndarray:
        """Checked timestamps of one append: strictly increasing, also across appends."""
        name = f"{clock}/timestamps"
        stamps = self._prepare(name, timestamps, None).astype(np.float64)
        last = self._last_time[clock]
        if len(stamps) and (np.any(np.diff(stamps) <= 0) or (last is not None and stamps[0] <= last)):
            raise ValueError(f"{self.path}: {name}: timestamps must be strictly increasing across appends")
        return stamps

    def _commit(self, clock: str, stamps: np.ndarray, rows: dict[str, np.ndarray]) -> None:
        """Append one checked chunk of `clock`'s datasets (in schema order), then track time and flush."""
        rows = {**rows, f"{clock}/timestamps": stamps}
        for spec in DATASETS:
            if spec.name in rows:
                self._append(spec.name, rows[spec.name])
        if len(stamps):
            self._last_time[clock] = float(stamps[-1])
            if self._first_time is None:
                self._first_time = float(stamps[0])
            self._file.attrs["duration_sec"] = max(
                float(self._file.attrs["duration_sec"]), float(stamps[-1]) - self._first_time
            )
        self._maybe_flush()

    def _maybe_flush(self) -> None:
        if time.monotonic() - self._last_flush >= self.flush_interval_s:
            self.flush()

    # -- public API ------------------------------------------------------------------------------
    def append_emg(self, raw: Any, timestamps: Any, filtered: Any | None = None) -> None:
        """EMG rows (n, channels) µV with their n timestamps (s); `filtered` defaults to a copy of `raw`."""
        stamps = self._timestamps("emg", timestamps)
        n = len(stamps)
        raw_array = self._prepare("emg/raw", raw, n)
        filtered_array = raw_array if filtered is None else self._prepare("emg/filtered", filtered, n)
        self._commit("emg", stamps, {"emg/raw": raw_array, "emg/filtered": filtered_array})

    def append_pose(
        self,
        mano_theta: Any,
        joints_3d: Any,
        timestamps: Any,
        ik_error: Any,
        mp_confidence: Any,
        landmarks: Any | None = None,
    ) -> None:
        """Camera frames: θ (n,45), joints (n,21,3) in metres, IK error (mm), confidence [, landmarks]."""
        stamps = self._prepare("pose/timestamps", timestamps, None)
        n = len(stamps)
        rows = {
            "pose/mano_theta": self._prepare("pose/mano_theta", mano_theta, n),
            "pose/joints_3d": self._prepare("pose/joints_3d", joints_3d, n),
        }
        if n and median_hand_span_m(rows["pose/joints_3d"]) > MAX_PLAUSIBLE_HAND_SPAN_M:
            raise ValueError(f"{self.path}: pose/joints_3d: joints must be in metres, these look like millimetres")
        rows["pose/ik_error"] = self._prepare("pose/ik_error", ik_error, n)
        rows["pose/mp_confidence"] = self._prepare("pose/mp_confidence", mp_confidence, n)
        if landmarks is not None:
            rows[LANDMARKS] = self._prepare(LANDMARKS, landmarks, n)
            if LANDMARKS not in self._datasets and self._datasets["pose/timestamps"].shape[0]:
                raise ValueError(f"{self.path}: {LANDMARKS}: must be given from the first pose append on")
        elif LANDMARKS in self._datasets:
            raise ValueError(f"{self.path}: {LANDMARKS}: given before, missing in this append")
        stamps = self._timestamps("pose", stamps)
        if landmarks is not None and LANDMARKS not in self._datasets:
            spec = SPECS[LANDMARKS]
            self._create(LANDMARKS, spec.row_shape(self.channels), spec.dtype)
        self._commit("pose", stamps, rows)

    def append_extra(self, name: str, values: Any) -> None:
        """Append rows to an extra dataset (created on first use), e.g. `truth/emg2pose_angles`."""
        if name in KNOWN:
            raise ValueError(f"{self.path}: {name}: use append_emg/append_pose for contract datasets")
        array = np.asarray(values)
        if array.ndim == 0:
            raise ValueError(f"{self.path}: {name}: needs at least one axis")
        if array.dtype.kind in "fc" and not np.all(np.isfinite(array)):
            raise ValueError(f"{self.path}: {name}: contains NaN or inf; nothing of this chunk was written")
        if name not in self._datasets:
            self._create(name, tuple(array.shape[1:]), array.dtype)
        elif tuple(self._datasets[name].shape[1:]) != tuple(array.shape[1:]):
            raise ValueError(
                f"{self.path}: {name}: row shape {array.shape[1:]} differs from earlier "
                f"{self._datasets[name].shape[1:]}"
            )
        self._append(name, array)
        self._maybe_flush()

    def add_gesture(self, label: str, start: float, end: float) -> None:
        if not end >= start:
            raise ValueError(f"{self.path}: gestures: '{label}' ends ({end}) before it starts ({start})")
        self._gestures.append((str(label), float(start), float(end)))
        self._write_gestures()
        self._maybe_flush()

    def _write_gestures(self) -> None:
        group = self._file.require_group("gestures")
        for key in ("labels", "start_times", "end_times"):
            if key in group:
                del group[key]
        group.create_dataset("labels", data=np.array([g[0] for g in self._gestures], dtype=h5py.string_dtype()))
        group.create_dataset("start_times", data=np.array([g[1] for g in self._gestures], dtype=np.float64))
        group.create_dataset("end_times", data=np.array([g[2] for g in self._gestures], dtype=np.float64))

    def set_attr(self, key: str, value: Any) -> None:
        """Set a root attribute (e.g. a summary known only at the end of a recording)."""
        self._file.attrs[key] = value

    def flush(self) -> None:
        self._file.flush()
        self._last_flush = time.monotonic()

    def close(self) -> None:
        if self._file.id.valid:
            self._file.flush()
            self._file.close()

    def __enter__(self) -> SessionWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
