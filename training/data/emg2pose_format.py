"""The official emg2pose HDF5 layout, so the same code reads our 16-ch synthetic stream and Meta's files.

Group `emg2pose`, compound dataset `timeseries` with fields `time` (f8, s), `joint_angles` (20,) and
`emg` (16,) (f4 here; f8/f4 in Meta's test asset); attributes sample_rate, num_channels, user, session,
stage, side. Frames whose 20 angles are all ≈ 0 are IK failures (emg2pose-facts.md d).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from firmware_bridge.atomic_write import atomic_path
from firmware_bridge.errors import UserError


class Emg2PoseFormatError(UserError, ValueError):
    pass


@dataclass
class Emg2PoseRecording:
    path: Path
    time: np.ndarray  # (T,) f8
    emg: np.ndarray  # (T,16) f4
    joint_angles: np.ndarray  # (T,20) f4
    attrs: dict[str, Any]

    @property
    def no_ik_failure(self) -> np.ndarray:
        return ~np.all(np.isclose(self.joint_angles, 0.0), axis=1)

    @property
    def sample_rate(self) -> float:
        return float(self.attrs.get("sample_rate", 2000.0))


def write_emg2pose_file(
    path: str | Path,
    time: np.ndarray,
    emg: np.ndarray,
    joint_angles: np.ndarray,
    *,
    user: str,
    session: str,
    stage: str,
    side: str = "right",
    sample_rate: float = 2000.0,
) -> Path:
    path = Path(path)
    n = len(time)
    if emg.shape != (n, 16) or joint_angles.shape != (n, 20):
        raise ValueError(
            f"{path}: expected emg (T,16) and joint_angles (T,20) for T={n}, got {emg.shape}, {joint_angles.shape}"
        )
    dtype = np.dtype([("time", "<f8"), ("joint_angles", "<f4", (20,)), ("emg", "<f4", (16,))])
    table = np.empty(n, dtype=dtype)
    table["time"] = time
    table["joint_angles"] = joint_angles
    table["emg"] = emg
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        group = f.create_group("emg2pose")
        group.create_dataset("timeseries", data=table, chunks=(min(n, 4096),) if n else None)
        for key, value in dict(
            filename=path.stem,
            session=session,
            stage=stage,
            user=user,
            side=side,
            sample_rate=sample_rate,
            num_channels=16,
            start=float(time[0]) if n else 0.0,
            end=float(time[-1]) if n else 0.0,
        ).items():
            group.attrs[key] = value
    return path


def read_emg2pose_file(path: str | Path) -> Emg2PoseRecording:
    path = Path(path)
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise Emg2PoseFormatError(f"{path}: not a readable HDF5 file ({error})") from error
    with handle as f:
        if "emg2pose/timeseries" not in f:
            raise Emg2PoseFormatError(f"{path}: emg2pose/timeseries: missing (not an emg2pose-layout file)")
        table = f["emg2pose/timeseries"][()]
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f["emg2pose"].attrs.items()}
    where = f"{path}: emg2pose/timeseries"
    names = table.dtype.names or ()
    for field in ("time", "joint_angles", "emg"):
        if field not in names:
            raise Emg2PoseFormatError(f"{where}: missing field '{field}'")
    if table.ndim != 1:
        raise Emg2PoseFormatError(f"{where}: expected one row per sample (shape (T,)), got {table.shape}")
    try:
        emg = np.asarray(table["emg"], dtype=np.float32)
        angles = np.asarray(table["joint_angles"], dtype=np.float32)
        time = np.asarray(table["time"], np.float64)
    except (TypeError, ValueError) as error:
        raise Emg2PoseFormatError(f"{where}: fields time/emg/joint_angles must be numbers ({error})") from error
    if emg.ndim != 2 or emg.shape[1] != 16 or angles.shape[1:] != (20,):
        raise Emg2PoseFormatError(f"{where}: expected emg (T,16), joint_angles (T,20)")
    if len(time) < 2:
        raise Emg2PoseFormatError(f"{where}: holds {len(time)} samples: an empty recording")
    if np.any(np.diff(time) <= 0):
        raise Emg2PoseFormatError(f"{where}: time is not strictly increasing")
    for name, values in (("time", time), ("emg", emg), ("joint_angles", angles)):
        if not np.all(np.isfinite(values)):
            raise Emg2PoseFormatError(f"{where}: {name} contains NaN or inf")
    rate = attrs.get("sample_rate", 2000.0)
    if isinstance(rate, bool) or not isinstance(rate, int | float | np.number) or not 0 < float(rate) < 1e6:
        raise Emg2PoseFormatError(f"{path}: emg2pose attr sample_rate must be a positive number, got {rate!r}")
    return Emg2PoseRecording(path=path, time=time, emg=emg, joint_angles=angles, attrs=attrs)
