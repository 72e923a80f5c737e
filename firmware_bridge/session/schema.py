"""The session file contract (HDF5): THE list of datasets, the root attributes, and the in-memory `Session`.

Layout (a superset of the seed project's, so its recordings load unchanged)::

    emg/raw (N,C) µV · emg/filtered (N,C) · emg/timestamps (N,) s
    pose/mano_theta (M,45) rad · pose/joints_3d (M,21,3) m · pose/timestamps (M,) s
    pose/ik_error (M,) mm · pose/mp_confidence (M,) · optional pose/landmarks (M,21,3)
    gestures/labels · gestures/start_times · gestures/end_times
    anything else (e.g. truth/emg2pose_angles) → Session.extras
    root attrs: subject_id, session_id, hand, emg_channels, emg_sampling_rate, camera_fps,
                duration_sec, schema_version (ours; seed files have none)

`DATASETS` is the one place the per-sample datasets are listed: the reader loads them, the validator
checks them and the writer creates them from it. A new dataset is one new `DatasetSpec` (and one
`Session` field).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from firmware_bridge.errors import UserError

SCHEMA_VERSION = 1
MIN_EMG_SAMPLES = 2  # fewer cannot even give a rate; a killed recorder's first second may hold none
N_THETA = 45
N_JOINTS = 21
CHANNELS = "C"  # in a DatasetSpec tail: the file's EMG channel count

# A real hand spans well under half a metre between any two joints; joints stored in millimetres
# would span tens or hundreds of "metres".
MAX_PLAUSIBLE_HAND_SPAN_M = 0.5
# Rates beyond any EMG amplifier or camera: a corrupted attribute (filters cannot even be designed there).
MAX_EMG_RATE_HZ = 100_000.0
MAX_CAMERA_FPS = 10_000.0

Presence = Literal["required", "written", "optional"]


@dataclass(frozen=True)
class DatasetSpec:
    """One per-sample dataset: rows follow the `clock`'s timestamps (EMG samples or camera frames).

    presence: "required" — every file has it (the reader refuses a file without it);
              "written" — our writer always writes it, seed files may lack it (read as None);
              "optional" — present only when the recorder had it (read as None otherwise).
    """

    name: str  # HDF5 path
    attribute: str  # the Session field that holds it
    dtype: type[np.generic]  # what the reader converts it to and the writer stores
    tail: tuple[int | str, ...]  # the shape after the row axis; CHANNELS stands for the EMG channel count
    clock: Literal["emg", "pose"]
    presence: Presence
    finite: bool = True  # the validator refuses NaN/inf in it

    def row_shape(self, channels: int) -> tuple[int, ...]:
        return tuple(channels if t == CHANNELS else int(t) for t in self.tail)

    @property
    def timestamps(self) -> str:
        return f"{self.clock}/timestamps"


DATASETS: tuple[DatasetSpec, ...] = (
    DatasetSpec("emg/raw", "emg_raw", np.float32, (CHANNELS,), "emg", "required"),
    DatasetSpec("emg/filtered", "emg_filtered", np.float32, (CHANNELS,), "emg", "written"),
    DatasetSpec("emg/timestamps", "emg_timestamps", np.float64, (), "emg", "required"),
    DatasetSpec("pose/mano_theta", "mano_theta", np.float32, (N_THETA,), "pose", "required"),
    DatasetSpec("pose/joints_3d", "joints_3d", np.float32, (N_JOINTS, 3), "pose", "required"),
    DatasetSpec("pose/timestamps", "pose_timestamps", np.float64, (), "pose", "required"),
    DatasetSpec("pose/ik_error", "ik_error", np.float32, (), "pose", "required"),
    DatasetSpec("pose/mp_confidence", "mp_confidence", np.float32, (), "pose", "required"),
    # never checked for NaN by the reader (seed recordings are taken as they are); our writer refuses NaN
    DatasetSpec("pose/landmarks", "landmarks", np.float32, (N_JOINTS, 3), "pose", "optional", finite=False),
)
SPECS: dict[str, DatasetSpec] = {spec.name: spec for spec in DATASETS}
GESTURE_DATASETS = ("gestures/labels", "gestures/start_times", "gestures/end_times")  # one row per gesture
REQUIRED = tuple(spec.name for spec in DATASETS if spec.presence == "required")
KNOWN = frozenset({*SPECS, *GESTURE_DATASETS})  # everything else in a file is an extra


class SessionFormatError(UserError, ValueError):
    """A session file breaks the contract; names the file, the dataset and the problem."""

    def __init__(self, path: str | Path, dataset: str, problem: str) -> None:
        self.path = str(path)
        self.dataset = dataset
        self.problem = problem
        super().__init__(f"{self.path}: {dataset}: {problem}")


@dataclass
class Session:
    """A session file in memory: one field per `DatasetSpec` (its `attribute`), plus attrs, gestures, extras."""

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

    def dataset(self, spec: DatasetSpec) -> np.ndarray | None:
        """The values of `spec`'s dataset (None for an absent optional one)."""
        return getattr(self, spec.attribute)

    def valid_pose_mask(self, max_ik_error_mm: float = 15.0, min_confidence: float = 0.5) -> np.ndarray:
        """The seed guide's label-quality filter: `ik_error < 15 mm` and `mp_confidence > 0.5`."""
        return (self.ik_error < max_ik_error_mm) & (self.mp_confidence > min_confidence)


def median_hand_span_m(joints: np.ndarray) -> float:
    """Median over frames of the hand's largest extent along x/y/z: ~0.2 in metres, hundreds in mm."""
    return float(np.median(np.ptp(joints, axis=1).max(axis=-1)))
