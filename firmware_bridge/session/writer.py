"""`SessionWriter`: append-only, crash-tolerant writing of a session file, by the dataset list in `schema.py`.

The writer appends in chunks and flushes at least once per `flush_interval_s`, so a killed recorder
loses at most the last second and the file still opens.

Until the first good append the file is written under a hidden temporary name beside the final one
(`atomic_write.temp_path_for`) and renamed to its name by that append: a writer whose appends were all
refused leaves no empty file behind (a file of zero samples that `mode2 inspect` would have to read) and
leaves an older file of the same name untouched. A writer closed without any append attempted still
leaves its (empty) file, as before.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from firmware_bridge.atomic_write import temp_path_for
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

    Every append is checked before anything touches the file, so bad input raises a clear error (naming
    the dataset, the absolute row index and its timestamp) and leaves what was already written intact.
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
        pending = temp_path_for(self.path)
        self._pending: Path | None = pending  # renamed to self.path by the first good append
        self._refused = False  # an append was refused while nothing was written: close() leaves no file
        self._file = h5py.File(pending, "w")
        self._datasets: dict[str, h5py.Dataset] = {}
        self._last_time: dict[str, float | None] = {"emg": None, "pose": None}
        self._first_time: float | None = None
        self._gestures: list[tuple[str, float, float]] = []
        self._last_flush = time.monotonic()
        try:  # an attribute h5py cannot store must not leave the hidden file behind
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
            for spec in DATASETS:
                if spec.presence != "optional":  # optional ones are created by the first append that has them
                    self._create(spec.name, spec.row_shape(self.channels), spec.dtype)
            self._file.flush()
        except BaseException:
            self._file.close()
            pending.unlink(missing_ok=True)
            raise

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

    def _publish(self) -> None:
        """Give the file its final name (at the first good append; an open HDF5 file may be renamed)."""
        if self._pending is not None:
            os.replace(self._pending, self.path)
            self._pending = None

    def _where(self, name: str, row: int, stamps: np.ndarray | None) -> str:
        """`emg/raw row 1234 (t = 2.468 s)`: an offending sample by absolute row index and its timestamp."""
        clock = SPECS[name].clock if name in SPECS else None
        done = self._datasets[f"{clock}/timestamps"].shape[0] if clock else self._rows_of(name)
        when = f" (t = {float(stamps[row]):.6g} s)" if stamps is not None and 0 <= row < len(stamps) else ""
        return f"{name} row {done + row}{when}"

    def _rows_of(self, name: str) -> int:
        return self._datasets[name].shape[0] if name in self._datasets else 0

    def _append(self, name: str, values: np.ndarray) -> None:
        dataset = self._datasets[name]
        start = dataset.shape[0]
        dataset.resize(start + len(values), axis=0)
        dataset[start:] = values

    def _prepare(self, name: str, values: Any, stamps: np.ndarray | None) -> np.ndarray:
        """`values` for dataset `name`, checked (shape, row count, finite) before anything is written;
        `stamps` (the chunk's timestamps, None for the timestamps themselves) locate an offending row."""
        tail = SPECS[name].row_shape(self.channels)
        array = np.asarray(values)
        if array.ndim != 1 + len(tail) or tuple(array.shape[1:]) != tail:
            raise self._refuse(
                f"{self.path}: {name}: expected shape {shape_text(tail, 'n')}, got {array.shape} in the chunk "
                f"starting at {self._where(name, 0, stamps)}; nothing of this chunk was written"
            )
        if stamps is not None and len(array) != len(stamps):
            raise self._refuse(
                f"{self.path}: {name}: {len(array)} rows but {len(stamps)} timestamps in the chunk starting at "
                f"{self._where(name, 0, stamps)}; nothing of this chunk was written"
            )
        if array.dtype.kind in "fc" and not np.all(np.isfinite(array)):
            bad = np.argwhere(~np.isfinite(array))[0]
            column = f", column {tuple(int(i) for i in bad[1:])}" if len(bad) > 1 else ""
            raise self._refuse(
                f"{self.path}: {name}: NaN or inf at {self._where(name, int(bad[0]), stamps)}{column}; "
                "nothing of this chunk was written"
            )
        return array

    def _timestamps(self, clock: str, timestamps: Any) -> np.ndarray:
        """Checked timestamps of one append: strictly increasing, also across appends."""
        name = f"{clock}/timestamps"
        stamps = self._prepare(name, timestamps, None).astype(np.float64)
        last = self._last_time[clock]
        if not len(stamps):
            return stamps
        if last is not None and stamps[0] <= last:
            raise self._refuse(
                f"{self.path}: {name}: timestamps must be strictly increasing across appends: "
                f"{self._where(name, 0, stamps)} is not after the previous append's last ({last:.6g} s); "
                "nothing of this chunk was written"
            )
        steps = np.diff(stamps)
        if np.any(steps <= 0):
            i = int(np.argmax(steps <= 0)) + 1
            raise self._refuse(
                f"{self.path}: {name}: timestamps must be strictly increasing: {self._where(name, i, stamps)} "
                f"follows {float(stamps[i - 1]):.6g} s; nothing of this chunk was written"
            )
        return stamps

    def _commit(self, clock: str, stamps: np.ndarray, rows: dict[str, np.ndarray]) -> None:
        """Append one checked chunk of `clock`'s datasets (in schema order), then track time and flush."""
        rows = {**rows, f"{clock}/timestamps": stamps}
        self._publish()
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
        raw_array = self._prepare("emg/raw", raw, stamps)
        filtered_array = raw_array if filtered is None else self._prepare("emg/filtered", filtered, stamps)
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
        stamps = self._prepare("pose/timestamps", timestamps, None).astype(np.float64)
        n = len(stamps)
        rows = {
            "pose/mano_theta": self._prepare("pose/mano_theta", mano_theta, stamps),
            "pose/joints_3d": self._prepare("pose/joints_3d", joints_3d, stamps),
        }
        if n and median_hand_span_m(rows["pose/joints_3d"]) > MAX_PLAUSIBLE_HAND_SPAN_M:
            raise self._refuse(
                f"{self.path}: pose/joints_3d: joints must be in metres, these look like millimetres (the chunk "
                f"starting at {self._where('pose/joints_3d', 0, stamps)}); nothing of this chunk was written"
            )
        rows["pose/ik_error"] = self._prepare("pose/ik_error", ik_error, stamps)
        rows["pose/mp_confidence"] = self._prepare("pose/mp_confidence", mp_confidence, stamps)
        if landmarks is not None:
            rows[LANDMARKS] = self._prepare(LANDMARKS, landmarks, stamps)
            if LANDMARKS not in self._datasets and self._datasets["pose/timestamps"].shape[0]:
                raise self._refuse(f"{self.path}: {LANDMARKS}: must be given from the first pose append on")
        elif LANDMARKS in self._datasets:
            raise self._refuse(f"{self.path}: {LANDMARKS}: given before, missing in this append")
        stamps = self._timestamps("pose", stamps)
        if landmarks is not None and LANDMARKS not in self._datasets:
            spec = SPECS[LANDMARKS]
            self._create(LANDMARKS, spec.row_shape(self.channels), spec.dtype)
        self._commit("pose", stamps, rows)

    def append_extra(self, name: str, values: Any) -> None:
        """Append rows to an extra dataset (created on first use), e.g. `truth/emg2pose_angles`."""
        if name in KNOWN:
            raise self._refuse(f"{self.path}: {name}: use append_emg/append_pose for contract datasets")
        array = np.asarray(values)
        if array.ndim == 0:
            raise self._refuse(f"{self.path}: {name}: needs at least one axis")
        if array.dtype.kind in "fc" and not np.all(np.isfinite(array)):
            bad = int(np.argwhere(~np.isfinite(array))[0][0])
            raise self._refuse(
                f"{self.path}: {name}: NaN or inf at {name} row {self._rows_of(name) + bad}; "
                "nothing of this chunk was written"
            )
        self._publish()
        if name not in self._datasets:
            self._create(name, tuple(array.shape[1:]), array.dtype)
        elif tuple(self._datasets[name].shape[1:]) != tuple(array.shape[1:]):
            raise self._refuse(
                f"{self.path}: {name}: row shape {array.shape[1:]} differs from earlier "
                f"{self._datasets[name].shape[1:]}"
            )
        self._append(name, array)
        self._maybe_flush()

    def add_gesture(self, label: str, start: float, end: float) -> None:
        if not end >= start:
            raise self._refuse(f"{self.path}: gestures: '{label}' ends ({end}) before it starts ({start})")
        self._gestures.append((str(label), float(start), float(end)))
        self._publish()
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
        """Close the file; one whose every append was refused is removed (no empty session is left)."""
        if self._file.id.valid:
            self._file.flush()
            self._file.close()
        if self._pending is not None:
            if self._refused:
                self._pending.unlink(missing_ok=True)
            else:
                self._publish()

    def _refuse(self, message: str) -> ValueError:
        """The error for a refused append (remembered: a file with nothing written is then not kept)."""
        if self._pending is not None:
            self._refused = True
        return ValueError(message)

    def __enter__(self) -> SessionWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
