"""`mode2 inspect`: summaries of good files, clear refusals of bad ones, and the overview plot."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from firmware_bridge.session import read_session
from runtime.cli import main
from training.commands.inspect_command import summarise


def test_inspect_summarises_and_plots(small_world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plot = tmp_path / "overview.png"
    assert main(["inspect", str(small_world / "s01_r01.h5"), "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "subject s01, session r01" in out
    assert "Hz measured" in out
    assert "valid pose frames (ik_error < 15 mm, mp_confidence > 0.5)" in out
    assert plot.stat().st_size > 10_000 and plot.read_bytes()[:4] == b"\x89PNG"
    summary = summarise(read_session(small_world / "s01_r01.h5"))
    session = read_session(small_world / "s01_r01.h5")
    assert summary.valid_fraction == pytest.approx(session.valid_pose_mask().mean())
    assert np.all(summary.channel_rms_uv > 1) and np.all(summary.channel_rms_uv < 5000)
    assert np.all(np.abs(summary.dc_offset_mv) > 10), "raw DC offsets are reported in mV"


def test_inspect_reports_a_bad_file_and_goes_on(
    small_world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as f:
        f.create_dataset("emg/raw", data=np.zeros((10, 8)))
    assert main(["inspect", str(bad), str(small_world / "s01_r02.h5")]) == 2
    captured = capsys.readouterr()
    out = captured.out
    assert "1 of 2 files could not be read" in captured.err
    assert f"✗ {bad}: emg/timestamps: missing dataset" in out
    assert "session r02" in out


def test_the_ik_error_mean_counts_only_frames_where_the_camera_saw_the_hand(
    small_world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The recorder writes a frame without the hand as confidence 0, IK error 100 mm: inspect's mean must skip
    those, and say so when the hand was never seen."""
    import shutil

    lost = tmp_path / "hand_lost.h5"
    shutil.copy(small_world / "s01_r01.h5", lost)
    with h5py.File(lost, "a") as f:
        confidence, ik_error = f["pose/mp_confidence"], f["pose/ik_error"]
        tracked_mean = float(np.asarray(ik_error)[: len(ik_error) // 2].mean())
        confidence[len(confidence) // 2 :] = 0.0
        ik_error[len(ik_error) // 2 :] = 100.0
    assert summarise(read_session(lost)).ik_error_mean_mm == pytest.approx(tracked_mean)

    never = tmp_path / "never_seen.h5"
    shutil.copy(lost, never)
    with h5py.File(never, "a") as f:
        f["pose/mp_confidence"][:] = 0.0
    assert main(["inspect", str(never)]) == 0
    assert "the camera never saw the hand" in capsys.readouterr().out
