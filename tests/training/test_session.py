"""Session files: round trip, the seed project's layout, validation errors, crash safety."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import h5py
import numpy as np
import pytest

from firmware_bridge.session import DATASETS, DatasetSpec, SessionFormatError, SessionWriter, read_session
from training.hand.fk_numpy import forward_kinematics_np
from training.hand.open_hand import open_hand_model

RNG = np.random.default_rng(0)


def _pose_block(n: int) -> tuple[np.ndarray, np.ndarray]:
    theta = RNG.normal(0, 0.2, (n, 45)).astype(np.float32)
    joints = forward_kinematics_np(open_hand_model(), theta).astype(np.float32)
    return theta, joints


def _write_seed_layout(
    path: Path,
    *,
    joints_scale: float = 1.0,
    emg_times: np.ndarray | None = None,
    drop: str | None = None,
    theta_nan: bool = False,
) -> Path:
    """A file the way the seed project's recorder wrote it: plain datasets, no schema_version."""
    n, m = 1000, 60
    theta, joints = _pose_block(m)
    if theta_nan:
        theta[5, 3] = np.nan
    data = {
        "emg/raw": RNG.normal(0, 50, (n, 8)),
        "emg/filtered": RNG.normal(0, 50, (n, 8)),
        "emg/timestamps": np.arange(n) / 500.0 if emg_times is None else emg_times,
        "pose/mano_theta": theta,
        "pose/joints_3d": joints * joints_scale,
        "pose/timestamps": np.arange(m) / 30.0,
        "pose/ik_error": RNG.uniform(2, 20, m),
        "pose/mp_confidence": RNG.uniform(0.3, 1.0, m),
    }
    with h5py.File(path, "w") as f:
        for name, values in data.items():
            if name != drop:
                f.create_dataset(name, data=values)
        f.create_dataset("gestures/labels", data=np.array([b"fist", b"open"]))
        f.create_dataset("gestures/start_times", data=np.array([0.5, 1.0]))
        f.create_dataset("gestures/end_times", data=np.array([0.9, 1.5]))
        f.attrs.update(
            dict(
                subject_id="P1",
                session_id="20251213_101010",
                hand="right",
                emg_channels=8,
                emg_sampling_rate=500,
                camera_fps=30,
                duration_sec=2.0,
            )
        )
    return path


def test_seed_project_layout_loads_unchanged(tmp_path: Path) -> None:
    session = read_session(_write_seed_layout(tmp_path / "seed.h5"))
    assert session.emg_raw.shape == (1000, 8)
    assert session.mano_theta.shape == (60, 45)
    assert session.gestures == [("fist", 0.5, 0.9), ("open", 1.0, 1.5)]
    assert session.key == "P1/20251213_101010"
    assert "schema_version" not in session.attrs
    mask = session.valid_pose_mask()
    assert np.array_equal(mask, (session.ik_error < 15) & (session.mp_confidence > 0.5))


@pytest.mark.parametrize(
    ("kwargs", "dataset", "words"),
    [
        ({"drop": "pose/ik_error"}, "pose/ik_error", "missing"),
        ({"joints_scale": 1000.0}, "pose/joints_3d", "millimetres"),
        ({"emg_times": np.r_[np.arange(500) / 500.0, np.arange(500) / 500.0]}, "emg/timestamps", "increasing"),
        ({"theta_nan": True}, "pose/mano_theta", "NaN"),
    ],
)
def test_malformed_files_name_file_dataset_and_problem(tmp_path: Path, kwargs: dict, dataset: str, words: str) -> None:
    path = _write_seed_layout(tmp_path / "bad.h5", **kwargs)
    with pytest.raises(SessionFormatError) as info:
        read_session(path)
    assert info.value.dataset == dataset
    assert words in info.value.problem
    assert str(path) in str(info.value)


def test_wrong_shape_and_not_hdf5(tmp_path: Path) -> None:
    path = _write_seed_layout(tmp_path / "shape.h5")
    with h5py.File(path, "a") as f:
        del f["pose/mano_theta"]
        f.create_dataset("pose/mano_theta", data=np.zeros((60, 48)))
    with pytest.raises(SessionFormatError, match=r"pose/mano_theta: expected shape \(N,45\)"):
        read_session(path)
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all")
    with pytest.raises(SessionFormatError, match="not a readable HDF5"):
        read_session(junk)


def test_writer_round_trip_and_extras(tmp_path: Path) -> None:
    path = tmp_path / "ours.h5"
    theta, joints = _pose_block(30)
    with SessionWriter(path, subject_id="s01", session_id="r01") as writer:
        for k in range(3):
            t = k + np.arange(500) / 500.0
            writer.append_emg(RNG.normal(0, 40, (500, 8)), t)
            sl = slice(10 * k, 10 * (k + 1))
            writer.append_pose(theta[sl], joints[sl], k + np.arange(10) / 10.0, np.full(10, 4.0), np.full(10, 0.9))
            writer.append_extra("truth/emg2pose_angles", np.zeros((10, 20), np.float32))
        writer.add_gesture("fist", 0.2, 0.8)
    session = read_session(path)
    assert session.emg_raw.shape == (1500, 8) and session.mano_theta.shape == (30, 45)
    assert np.allclose(session.mano_theta, theta)
    assert session.extras["truth/emg2pose_angles"].shape == (30, 20)
    assert session.attrs["schema_version"] == 1
    assert session.attrs["duration_sec"] == pytest.approx(2 + 499 / 500.0)


@pytest.mark.parametrize("spec", [s for s in DATASETS if s.presence == "required"], ids=lambda s: s.name)
def test_every_required_dataset_of_the_schema_is_demanded_by_the_reader(tmp_path: Path, spec: DatasetSpec) -> None:
    with pytest.raises(SessionFormatError) as info:
        read_session(_write_seed_layout(tmp_path / "seed.h5", drop=spec.name))
    assert (info.value.dataset, info.value.problem) == (spec.name, "missing dataset")


def test_writer_creates_the_schema_datasets_with_their_dtype_and_row_shape(tmp_path: Path) -> None:
    theta, joints = _pose_block(4)
    with SessionWriter(tmp_path / "w.h5", subject_id="s", session_id="r", emg_channels=3) as writer:
        writer.append_emg(np.ones((5, 3)), np.arange(5) / 500.0)
        writer.append_pose(theta, joints, np.arange(4) / 30, np.ones(4), np.ones(4), landmarks=joints)
    with h5py.File(tmp_path / "w.h5") as f:
        for spec in DATASETS:
            rows = 5 if spec.clock == "emg" else 4
            assert f[spec.name].shape == (rows, *spec.row_shape(3)), spec.name
            assert f[spec.name].dtype == spec.dtype, spec.name
    session = read_session(tmp_path / "w.h5")
    assert all(session.dataset(spec) is not None for spec in DATASETS)


def test_a_writer_whose_attributes_cannot_be_stored_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    path.write_bytes(b"an older recording")
    with pytest.raises(TypeError):
        SessionWriter(path, subject_id="s", session_id="r", attrs={"notes": {"not": "storable"}})
    assert [p.name for p in tmp_path.iterdir()] == ["s.h5"] and path.read_bytes() == b"an older recording"


def test_writer_rejects_bad_chunks_without_losing_data(tmp_path: Path) -> None:
    path = tmp_path / "guarded.h5"
    writer = SessionWriter(path, subject_id="s01", session_id="r01")
    writer.append_emg(np.ones((100, 8)), np.arange(100) / 500.0)
    with pytest.raises(ValueError, match="emg/raw: expected shape"):
        writer.append_emg(np.ones((100, 7)), 1 + np.arange(100) / 500.0)
    bad = np.ones((100, 8))
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        writer.append_emg(bad, 1 + np.arange(100) / 500.0)
    with pytest.raises(ValueError, match="strictly increasing"):
        writer.append_emg(np.ones((10, 8)), np.arange(10) / 500.0)
    theta, joints = _pose_block(5)
    with pytest.raises(ValueError, match="millimetres"):
        writer.append_pose(theta, joints * 1000, np.arange(5) / 30, np.ones(5), np.ones(5))
    writer.close()
    with h5py.File(path) as f:
        assert f["emg/raw"].shape == (100, 8)
        assert f["emg/timestamps"].shape == (100,)


def _pump(stream: IO[str], lines: queue.Queue[str]) -> None:
    """Every line of `stream` into `lines`, then "" at its end."""
    for line in stream:
        lines.put(line.strip())
    lines.put("")


def _wait_for_line(lines: queue.Queue[str], predicate: Callable[[str], bool], timeout: float) -> str | None:
    """The first line from `lines` for which `predicate` holds, or None after `timeout` (or at end of output)."""
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            return None
        if line == "" or predicate(line):
            return line or None
    return None


def test_killed_writer_loses_at_most_the_last_second(tmp_path: Path) -> None:
    """The child reports the data time it has appended; it is killed once 3 s are in, and the file must
    hold everything up to the last flush interval (1 s) before that report."""
    path = tmp_path / "killed.h5"
    script = textwrap.dedent(
        f"""
        import time, numpy as np
        from firmware_bridge.session import SessionWriter
        w = SessionWriter({str(path)!r}, subject_id="s01", session_id="r01", flush_interval_s=1.0)
        for k in range(10_000):
            t = k * 0.02 + np.arange(10) / 500.0
            w.append_emg(np.full((10, 8), float(k)), t)
            print("appended", t[-1], flush=True)
            time.sleep(0.02)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    lines: queue.Queue[str] = queue.Queue()
    pump = threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True)
    pump.start()
    try:
        line = _wait_for_line(lines, lambda s: float(s.split()[1]) >= 3.0, timeout=60.0)
        assert line is not None, "the writer never reported 3 s of appended data"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        pump.join(timeout=10)
    appended = float(line.split()[1])
    with h5py.File(path) as f:  # the file still opens after SIGKILL
        stamps = f["emg/timestamps"][()]
        raw = f["emg/raw"][()]
    assert len(stamps) == len(raw) > 0
    # the data clock runs no faster than the wall clock (20 ms of data per ≥ 20 ms sleep), so data up to
    # the last flush, ≤ 1 s of wall time before the report, is on disk; one 20 ms chunk of slack
    assert np.all(np.diff(stamps) > 0)
    assert stamps[-1] >= appended - 1.0 - 0.02, f"only {stamps[-1]:.2f} s of {appended:.2f} s survived"
    assert np.array_equal(raw[:, 0], np.repeat(np.arange(len(raw) // 10), 10)[: len(raw)])
