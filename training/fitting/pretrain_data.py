"""Pretraining windows streamed from emg2pose-layout files, so memory stays bounded whatever the corpus size.

An index of (file, start) pairs is built once by reading only the `joint_angles` field of each file (to skip
windows with IK failures, exactly as the in-memory `_windows` does); batches are then read from disk with
h5py through a small LRU cache of open files. Subjects are identified by the file's `user` attribute,
qualified by the synthetic world's seed when the 8-ch sibling file (`sNN_rNN.h5`) records one — our
simulator names subjects s01, s02, … in every world, so `s01` of seed 1000 and `s01` of seed 2000 are
different people.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from firmware_bridge.errors import UserError
from training.data.emg2pose_format import Emg2PoseFormatError
from training.models.backbone import LEFT_CONTEXT

RMS_SAMPLE_WINDOWS = 2048  # windows drawn (seeded) to estimate the input RMS; all of them when fewer


@dataclass(frozen=True)
class WindowIndex:
    files: tuple[str, ...]
    entries: np.ndarray  # (N, 2) int64: file number, first sample
    length: int
    subjects: tuple[str, ...]  # one per file

    def __len__(self) -> int:
        return len(self.entries)


def subject_of(path: Path, user: str) -> str:
    sibling = path.with_name(path.name.removesuffix("_2k.h5") + ".h5")
    if sibling != path and sibling.exists():
        try:
            with h5py.File(sibling, "r") as f:
                if "seed" in f.attrs:
                    return f"seed{int(f.attrs['seed'])}/{user}"
        except OSError:
            pass
    return user


def subjects_of(paths: list[Path]) -> list[str]:
    """The subject of each file, from its attributes only (cheap: run before indexing a large corpus)."""
    subjects = []
    for path in paths:
        try:
            with h5py.File(path, "r") as f:
                user = f["emg2pose"].attrs.get("user", path.stem.split("_")[0]) if "emg2pose" in f else None
        except OSError as error:
            raise Emg2PoseFormatError(f"{path}: not a readable HDF5 file ({error})") from error
        if user is None:
            raise Emg2PoseFormatError(f"{path}: emg2pose/timeseries: missing (not an emg2pose-layout file)")
        subjects.append(subject_of(path, user.decode() if isinstance(user, bytes) else str(user)))
    return subjects


def check_subjects_disjoint(train: list[Path], val: list[Path]) -> None:
    """Held out by subject means no person of --val-data is in --data."""
    train_subjects = set(subjects_of(train))
    val_subjects = subjects_of(val)
    shared = sorted(train_subjects & set(val_subjects))
    if shared:
        examples = [str(f) for f, s in zip(val, val_subjects, strict=True) if s in shared][:3]
        raise UserError(
            f"--val-data: subject(s) {', '.join(shared[:5])}{'…' if len(shared) > 5 else ''} also in --data "
            f"(e.g. {', '.join(examples)}); held-out subjects must be other people"
        )


def _table(handle: h5py.File, path: Path) -> h5py.Dataset:
    if "emg2pose/timeseries" not in handle:
        raise Emg2PoseFormatError(f"{path}: emg2pose/timeseries: missing (not an emg2pose-layout file)")
    table = handle["emg2pose/timeseries"]
    names = table.dtype.names or ()
    if table.ndim != 1 or not {"joint_angles", "emg"} <= set(names):
        raise Emg2PoseFormatError(f"{path}: emg2pose/timeseries: expected rows with fields emg and joint_angles")
    return table


def index_windows(paths: list[Path], length: int, stride: int) -> WindowIndex:
    """Every `length`-sample window at `stride` whose predicted span has no IK failure, over all files."""
    entries, subjects = [], []
    for number, path in enumerate(paths):
        try:
            handle = h5py.File(path, "r")
        except OSError as error:
            raise Emg2PoseFormatError(f"{path}: not a readable HDF5 file ({error})") from error
        with handle as f:
            table = _table(f, path)
            angles = table.fields("joint_angles")[()]
            user = f["emg2pose"].attrs.get("user", path.stem.split("_")[0])
        user = user.decode() if isinstance(user, bytes) else str(user)
        subjects.append(subject_of(path, user))
        valid = ~np.all(np.isclose(angles, 0.0), axis=1)
        # a window is usable when valid[start+LEFT_CONTEXT : start+length] is all true
        bad = np.concatenate([[0], np.cumsum(~valid)])
        starts = np.arange(0, len(valid) - length + 1, stride)
        ok = bad[starts + length] - bad[starts + LEFT_CONTEXT] == 0
        entries += [(number, int(s)) for s in starts[ok]]
    if not entries:
        raise UserError(
            f"{', '.join(str(p) for p in paths)}: no {length}-sample window ({length / 2000:g} s at 2 kHz) without "
            "an IK failure"
        )
    return WindowIndex(tuple(str(p) for p in paths), np.asarray(entries, np.int64), length, tuple(subjects))


class WindowReader:
    """Reads windows of an index as (B,16,T) EMG and (B,20,T) angles, keeping at most `max_open` files open."""

    def __init__(self, index: WindowIndex, max_open: int = 16) -> None:
        self.index = index
        self.max_open = max_open
        self._open: OrderedDict[int, h5py.Dataset] = OrderedDict()
        self._handles: dict[int, h5py.File] = {}

    def _dataset(self, number: int) -> h5py.Dataset:
        if number in self._open:
            self._open.move_to_end(number)
            return self._open[number]
        if len(self._open) >= self.max_open:
            oldest, _ = self._open.popitem(last=False)
            self._handles.pop(oldest).close()
        handle = h5py.File(self.index.files[number], "r")
        self._handles[number] = handle
        self._open[number] = _table(handle, Path(self.index.files[number]))
        return self._open[number]

    def read(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n, length = len(rows), self.index.length
        emg = np.empty((n, 16, length), np.float32)
        angles = np.empty((n, 20, length), np.float32)
        for i, row in enumerate(rows):
            number, start = self.index.entries[row]
            chunk = self._dataset(int(number))[int(start) : int(start) + length]
            emg[i] = chunk["emg"].T
            angles[i] = chunk["joint_angles"].T
        return emg, angles

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._open.clear()
        self._handles.clear()


def estimate_input_rms(reader: WindowReader, seed: int, n: int = RMS_SAMPLE_WINDOWS) -> tuple[float, int]:
    """RMS of the EMG over a seeded sample of `n` windows (all windows when there are fewer)."""
    total = len(reader.index)
    rows = np.arange(total) if total <= n else np.sort(np.random.default_rng([seed, 7]).choice(total, n, False))
    sum_sq, count = 0.0, 0
    for start in range(0, len(rows), 64):
        emg, _ = reader.read(rows[start : start + 64])
        sum_sq += float(np.square(emg, dtype=np.float64).sum())
        count += emg.size
    return float(np.sqrt(sum_sq / count)), len(rows)
