"""Session files (HDF5): the contract between recording, simulation and training.

Layout (a superset of the seed project's, so its recordings load unchanged)::

    emg/raw (N,C) µV · emg/filtered (N,C) · emg/timestamps (N,) s
    pose/mano_theta (M,45) rad · pose/joints_3d (M,21,3) m · pose/timestamps (M,) s
    pose/ik_error (M,) mm · pose/mp_confidence (M,) · optional pose/landmarks (M,21,3)
    gestures/labels · gestures/start_times · gestures/end_times
    anything else (e.g. truth/emg2pose_angles) → Session.extras
    root attrs: subject_id, session_id, hand, emg_channels, emg_sampling_rate, camera_fps,
                duration_sec, schema_version (ours; seed files have none)

The writer appends in chunks and flushes at least once per `flush_interval_s`, so a killed recorder
loses at most the last second and the file still opens.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from firmware_bridge.errors import UserError

SCHEMA_VERSION = 1
MIN_EMG_SAMPLES = 2  # fewer cannot even give a rate; a killed recorder's first second may hold none
N_THETA = 45
N_JOINTS = 21

# A real hand spans well under half a metre between any two joints; joints stored in millimetres
# would span tens or hundreds of "metres".
_MAX_PLAUSIBLE_HAND_SPAN_M = 0.5
# Rates beyond any EMG amplifier or camera: a corrupted attribute (filters cannot even be designed there).
_MAX_EMG_RATE_HZ = 100_000.0
_MAX_CAMERA_FPS = 10_000.0

_REQUIRED = (
    "emg/raw",
    "emg/timestamps",
    "pose/mano_theta",
    "pose/joints_3d",
    "pose/timestamps",
    "pose/ik_error",
    "pose/mp_confidence",
)
_KNOWN = {*_REQUIRED, "emg/filtered", "pose/landmarks", "gestures/labels", "gestures/start_times", "gestures/end_times"}


class SessionFormatError(UserError, ValueError):
    """A session file breaks the contract; names the file, the dataset and the problem."""

    def __init__(self, path: str | Path, dataset: str, problem: str) -> None:
        self.path = str(path)
        self.dataset = dataset
        self.problem = problem
        super().__init__(f"{self.path}: {dataset}: {problem}")


@dataclass
class Session:
    path: Path
    attrs: dict[str, Any]
    emg_raw: np.ndarray
    emg_filtered: np.ndarray | None
    emg_timestamps: np.ndarray
    mano_theta: np.ndarray
    joints_3d: np.ndarray
    pose_timestamps: np.ndarray
    ik_error: np.ndarray
    mp_confidence: np.ndarray
    landmarks: np.ndarray | None = None
    gestures: list[tuple[str, float, float]] = field(default_factory=list)
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def emg_rate(self) -> float:
        return float(self.attrs.get("emg_sampling_rate", 500.0))

    @property
    def subject_id(self) -> str:
        return str(self.attrs.get("subject_id", "unknown"))

    @property
    def session_id(self) -> str:
        return str(self.attrs.get("session_id", self.path.stem))

    @property
    def key(self) -> str:
        """`subject/session`, the name used for held-out splits."""
        return f"{self.subject_id}/{self.session_id}"

    @property
    def duration(self) -> float:
        if len(self.emg_timestamps) < 2:
            return 0.0
        return float(self.emg_timestamps[-1] - self.emg_timestamps[0])

    def valid_pose_mask(self, max_ik_error_mm: float = 15.0, min_confidence: float = 0.5) -> np.ndarray:
        """The seed guide's label-quality filter: `ik_error < 15 mm` and `mp_confidence > 0.5`."""
        return (self.ik_error < max_ik_error_mm) & (self.mp_confidence > min_confidence)


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.generic):
        return value.item()
    return value


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


def _expect_shape(path: Path, name: str, values: np.ndarray, tail: tuple[int, ...], length: int | None) -> None:
    if values.ndim != 1 + len(tail) or tuple(values.shape[1:]) != tail:
        want = "(N" + "".join(f",{t}" for t in tail) + ")"
        raise SessionFormatError(path, name, f"expected shape {want}, got {values.shape}")
    if length is not None and values.shape[0] != length:
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
    for name, highest in (("emg_sampling_rate", _MAX_EMG_RATE_HZ), ("camera_fps", _MAX_CAMERA_FPS)):
        value = session.attrs.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SessionFormatError(path, f"attrs/{name}", f"must be a number (Hz), got {value!r}")
        if not math.isfinite(value) or not 0 < value <= highest:
            raise SessionFormatError(
                path, f"attrs/{name}", f"must be a positive rate of at most {highest:g} Hz, got {value!r}"
            )


def validate_session(session: Session) -> None:
    """Raise SessionFormatError on the first contract violation."""
    path = session.path
    _check_attrs(session)
    _check_monotonic(path, "emg/timestamps", session.emg_timestamps)
    n_emg = len(session.emg_timestamps)
    if n_emg < MIN_EMG_SAMPLES:
        raise SessionFormatError(
            path, "emg/timestamps", f"holds {n_emg} EMG samples: an empty or aborted recording, nothing to use"
        )
    channels = session.emg_raw.shape[1] if session.emg_raw.ndim == 2 else -1
    _expect_shape(path, "emg/raw", session.emg_raw, (channels,), n_emg)
    if channels < 1:
        raise SessionFormatError(path, "emg/raw", f"has no channels (shape {session.emg_raw.shape})")
    declared = session.attrs.get("emg_channels")
    if declared is not None and int(declared) != channels:
        raise SessionFormatError(path, "emg/raw", f"has {channels} channels but attr emg_channels = {declared}")
    if session.emg_filtered is not None:
        _expect_shape(path, "emg/filtered", session.emg_filtered, (channels,), n_emg)
    n_pose = len(session.pose_timestamps)
    _check_monotonic(path, "pose/timestamps", session.pose_timestamps)
    _expect_shape(path, "pose/mano_theta", session.mano_theta, (N_THETA,), n_pose)
    _expect_shape(path, "pose/joints_3d", session.joints_3d, (N_JOINTS, 3), n_pose)
    _expect_shape(path, "pose/ik_error", session.ik_error, (), n_pose)
    _expect_shape(path, "pose/mp_confidence", session.mp_confidence, (), n_pose)
    if session.landmarks is not None:
        _expect_shape(path, "pose/landmarks", session.landmarks, (N_JOINTS, 3), n_pose)
    for name, values in (
        ("emg/raw", session.emg_raw),
        ("emg/filtered", session.emg_filtered),
        ("emg/timestamps", session.emg_timestamps),
        ("pose/mano_theta", session.mano_theta),
        ("pose/joints_3d", session.joints_3d),
        ("pose/timestamps", session.pose_timestamps),
        ("pose/ik_error", session.ik_error),
        ("pose/mp_confidence", session.mp_confidence),
    ):
        if values is not None:
            _check_finite(path, name, values)
    if n_pose:
        span = np.ptp(session.joints_3d, axis=1).max(axis=-1)  # per frame, largest extent over x/y/z
        typical = float(np.median(span))
        if typical > _MAX_PLAUSIBLE_HAND_SPAN_M:
            raise SessionFormatError(
                path,
                "pose/joints_3d",
                f"hand spans {typical:.1f} units per frame (median); joints must be in metres "
                f"(a hand spans ~0.2 m) — they look like millimetres",
            )
    if n_pose and (np.any(session.mp_confidence < 0) or np.any(session.mp_confidence > 1)):
        raise SessionFormatError(path, "pose/mp_confidence", "values outside [0, 1]")
    if n_pose and np.any(session.ik_error < 0):
        raise SessionFormatError(path, "pose/ik_error", "negative IK error")


def _read_gestures(path: Path, f: h5py.File) -> list[tuple[str, float, float]]:
    """`gestures/labels|start_times|end_times`; a scalar label (one gesture) is one gesture, not its letters."""
    if "gestures/labels" not in f:
        return []

    def column(name: str, kind: str) -> np.ndarray | None:
        if name not in f:
            return None
        if not isinstance(f[name], h5py.Dataset):
            raise SessionFormatError(path, name, "is a group, expected a dataset")
        values = np.atleast_1d(np.asarray(f[name][()], dtype=object))
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
        if "emg2pose/timeseries" in f and "emg/raw" not in f:
            raise SessionFormatError(
                path,
                "emg/raw",
                "missing: this is an emg2pose-layout 16-ch 2 kHz file (a `*_2k.h5` stream for "
                "`mode2 pretrain-backbone`), not an 8-ch session",
            )
        for name in _REQUIRED:
            if name not in f:
                raise SessionFormatError(path, name, "missing dataset")
            if not isinstance(f[name], h5py.Dataset):
                raise SessionFormatError(path, name, "is a group, expected a dataset")
        attrs = {key: _decode(value) for key, value in f.attrs.items()}

        def load(name: str, dtype: Any) -> np.ndarray | None:
            if name not in f:
                return None
            if not isinstance(f[name], h5py.Dataset):
                raise SessionFormatError(path, name, "is a group, expected a dataset")
            raw = f[name][()]
            if np.asarray(raw).dtype.kind not in "biuf":
                raise SessionFormatError(path, name, f"holds {np.asarray(raw).dtype} values, expected numbers")
            values = np.asarray(raw, dtype=dtype)
            if values.ndim == 0:
                raise SessionFormatError(path, name, "is a single value (scalar), expected one row per sample")
            return values

        gestures = _read_gestures(path, f)
        extras: dict[str, np.ndarray] = {}

        def collect(name: str, obj: Any) -> None:
            if isinstance(obj, h5py.Dataset) and name not in _KNOWN:
                extras[name] = obj[()]

        f.visititems(collect)
        session = Session(
            path=path,
            attrs=attrs,
            emg_raw=load("emg/raw", np.float32),
            emg_filtered=load("emg/filtered", np.float32),
            emg_timestamps=load("emg/timestamps", np.float64),
            mano_theta=load("pose/mano_theta", np.float32),
            joints_3d=load("pose/joints_3d", np.float32),
            pose_timestamps=load("pose/timestamps", np.float64),
            ik_error=load("pose/ik_error", np.float32),
            mp_confidence=load("pose/mp_confidence", np.float32),
            landmarks=load("pose/landmarks", np.float32),
            gestures=gestures,
            extras=extras,
        )
    if validate:
        validate_session(session)
    return session


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
        self._last_emg_time: float | None = None
        self._last_pose_time: float | None = None
        self._first_time: float | None = None
        self._gestures: list[tuple[str, float, float]] = []
        self._last_flush = time.monotonic()
        for name, tail, dtype in (
            ("emg/raw", (self.channels,), np.float32),
            ("emg/filtered", (self.channels,), np.float32),
            ("emg/timestamps", (), np.float64),
            ("pose/mano_theta", (N_THETA,), np.float32),
            ("pose/joints_3d", (N_JOINTS, 3), np.float32),
            ("pose/timestamps", (), np.float64),
            ("pose/ik_error", (), np.float32),
            ("pose/mp_confidence", (), np.float32),
        ):
            self._create(name, tail, dtype)
        self._file.flush()

    # -- internals -------------------------------------------------------------------------------
    def _create(self, name: str, tail: tuple[int, ...], dtype: Any) -> h5py.Dataset:
        chunk_rows = max(1, 4096 // max(1, int(np.prod(tail)) if tail else 1))
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

    def _prepare(self, name: str, values: Any, tail: tuple[int, ...], rows: int | None) -> np.ndarray:
        array = np.asarray(values)
        if array.ndim != 1 + len(tail) or tuple(array.shape[1:]) != tail:
            want = "(n" + "".join(f",{t}" for t in tail) + ")"
            raise ValueError(f"{self.path}: {name}: expected shape {want}, got {array.shape}")
        if rows is not None and len(array) != rows:
            raise ValueError(f"{self.path}: {name}: {len(array)} rows but {rows} timestamps")
        if array.dtype.kind in "fc" and not np.all(np.isfinite(array)):
            raise ValueError(f"{self.path}: {name}: contains NaN or inf; nothing of this chunk was written")
        return array

    def _check_times(self, name: str, stamps: np.ndarray, last: float | None) -> None:
        if len(stamps) == 0:
            return
        if np.any(np.diff(stamps) <= 0) or (last is not None and stamps[0] <= last):
            raise ValueError(f"{self.path}: {name}: timestamps must be strictly increasing across appends")

    def _maybe_flush(self) -> None:
        if time.monotonic() - self._last_flush >= self.flush_interval_s:
            self.flush()

    def _track_duration(self, stamps: np.ndarray) -> None:
        if len(stamps) == 0:
            return
        if self._first_time is None:
            self._first_time = float(stamps[0])
        self._file.attrs["duration_sec"] = max(
            float(self._file.attrs["duration_sec"]), float(stamps[-1]) - self._first_time
        )

    # -- public API ------------------------------------------------------------------------------
    def append_emg(self, raw: Any, timestamps: Any, filtered: Any | None = None) -> None:
        stamps = self._prepare("emg/timestamps", timestamps, (), None).astype(np.float64)
        raw_array = self._prepare("emg/raw", raw, (self.channels,), len(stamps))
        filtered_array = None
        if filtered is not None:
            filtered_array = self._prepare("emg/filtered", filtered, (self.channels,), len(stamps))
        self._check_times("emg/timestamps", stamps, self._last_emg_time)
        self._append("emg/raw", raw_array)
        self._append("emg/filtered", raw_array if filtered_array is None else filtered_array)
        self._append("emg/timestamps", stamps)
        if len(stamps):
            self._last_emg_time = float(stamps[-1])
        self._track_duration(stamps)
        self._maybe_flush()

    def append_pose(
        self,
        mano_theta: Any,
        joints_3d: Any,
        timestamps: Any,
        ik_error: Any,
        mp_confidence: Any,
        landmarks: Any | None = None,
    ) -> None:
        stamps = self._prepare("pose/timestamps", timestamps, (), None).astype(np.float64)
        n = len(stamps)
        theta = self._prepare("pose/mano_theta", mano_theta, (N_THETA,), n)
        joints = self._prepare("pose/joints_3d", joints_3d, (N_JOINTS, 3), n)
        if n and float(np.median(np.ptp(joints, axis=1).max(axis=-1))) > _MAX_PLAUSIBLE_HAND_SPAN_M:
            raise ValueError(f"{self.path}: pose/joints_3d: joints must be in metres, these look like millimetres")
        error = self._prepare("pose/ik_error", ik_error, (), n)
        confidence = self._prepare("pose/mp_confidence", mp_confidence, (), n)
        marks = None
        if landmarks is not None:
            marks = self._prepare("pose/landmarks", landmarks, (N_JOINTS, 3), n)
            if "pose/landmarks" not in self._datasets:
                if self._datasets["pose/timestamps"].shape[0]:
                    raise ValueError(f"{self.path}: pose/landmarks: must be given from the first pose append on")
                self._create("pose/landmarks", (N_JOINTS, 3), np.float32)
        elif "pose/landmarks" in self._datasets:
            raise ValueError(f"{self.path}: pose/landmarks: given before, missing in this append")
        self._check_times("pose/timestamps", stamps, self._last_pose_time)
        self._append("pose/mano_theta", theta)
        self._append("pose/joints_3d", joints)
        self._append("pose/timestamps", stamps)
        self._append("pose/ik_error", error)
        self._append("pose/mp_confidence", confidence)
        if marks is not None:
            self._append("pose/landmarks", marks)
        if n:
            self._last_pose_time = float(stamps[-1])
        self._track_duration(stamps)
        self._maybe_flush()

    def append_extra(self, name: str, values: Any) -> None:
        """Append rows to an extra dataset (created on first use), e.g. `truth/emg2pose_angles`."""
        if name in _KNOWN:
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
