"""`mode2 record` as a user runs it (a subprocess): clear one-line errors and no file for a missing model,
a missing camera, an unreachable armband, an existing output and a bad --phase-scale; kill -9 in the middle
of a recording leaves a file that opens and holds what was recorded until about a second before."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cli_probe import REPO_ROOT, assert_user_error, fingerprint, run_mode2


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 15-s playback CSV from the synthetic world and a 1-s rendered clip of a moving hand."""
    from training.recording.render import gesture_clip_poses, render_clip
    from training.synth import simulate

    base = tmp_path_factory.mktemp("probe_record")
    simulate(base, sessions=1, minutes=0.25, seed=3, playback_csv=True, write_2k=False, progress=False)
    _, joints = gesture_clip_poses(1.0, 30.0, seed=2)
    clip = render_clip(joints, base / "clip.mp4", 30.0, size=(360, 480))
    return base / "s01_r01_mindrove.csv", clip


def _record(csv: Path, clip: Path, out: Path, *extra: str) -> list[str]:
    return ["record", "--emg", f"playback:{csv}", "--camera", str(clip), "--out", str(out), "--headless", *extra]


def test_a_missing_hand_model_says_how_to_get_one_and_writes_nothing(inputs: tuple[Path, Path], tmp_path: Path) -> None:
    csv, clip = inputs
    missing = tmp_path / "nowhere" / "hand_landmarker.task"
    result = run_mode2(*_record(csv, clip, tmp_path / "d", "--hand-model", str(missing)), timeout=60)
    assert_user_error(result, str(missing), "get-hand-model")
    assert not (tmp_path / "d").exists()


def test_a_missing_camera_is_named_and_nothing_is_written(inputs: tuple[Path, Path], tmp_path: Path) -> None:
    csv, _ = inputs
    missing = tmp_path / "no_such_clip.mp4"
    result = run_mode2(*_record(csv, missing, tmp_path / "d"), timeout=60)
    assert_user_error(result, str(missing))
    assert not (tmp_path / "d").exists()


def test_an_unreachable_armband_fails_after_the_timeout_with_no_file(inputs: tuple[Path, Path], tmp_path: Path) -> None:
    _, clip = inputs
    args = ["record", "--emg", "mindrove:127.0.0.1", "--camera", str(clip), "--out", str(tmp_path / "d")]
    result = run_mode2(*args, "--headless", "--connect-timeout", "1", timeout=60)
    assert_user_error(result, "mindrove", "cannot reach")
    assert not list((tmp_path / "d").glob("*")) if (tmp_path / "d").exists() else True


def test_an_existing_session_is_not_overwritten_without_force(inputs: tuple[Path, Path], tmp_path: Path) -> None:
    csv, clip = inputs
    existing = tmp_path / "d" / "S01_R01.h5"
    existing.parent.mkdir()
    existing.write_bytes(b"an earlier recording")
    before = fingerprint([tmp_path / "d"])
    assert_user_error(run_mode2(*_record(csv, clip, tmp_path / "d"), timeout=60), str(existing), "--force")
    assert_user_error(run_mode2(*_record(csv, clip, tmp_path / "e", "--phase-scale", "0"), timeout=60), "--phase-scale")
    assert fingerprint([tmp_path / "d"]) == before and not (tmp_path / "e").exists()


def _reader(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put((time.monotonic(), line))
    lines.put((time.monotonic(), None))


def test_kill_9_mid_recording_leaves_a_readable_file_with_all_but_the_last_second(
    inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    from firmware_bridge.session import read_session

    csv, clip = inputs
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), MPLBACKEND="Agg")
    command = [sys.executable, "-m", "runtime.cli", *_record(csv, clip, tmp_path / "d", "--phase-scale", "0.1")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_reader, args=(process.stdout, lines), daemon=True).start()
    progress: list[tuple[float, int, int]] = []  # (when printed, EMG samples, camera frames)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            try:
                at, line = lines.get(timeout=1.0)
            except queue.Empty:
                continue
            assert line is not None, f"mode2 record ended early: {process.stderr.read() if process.stderr else ''}"
            match = re.search(r"EMG\s+\d+ Hz (\d+) samples .* (\d+) frames", line)
            if match:
                progress.append((at, int(match.group(1)), int(match.group(2))))
                if progress[-1][1] >= 1500 and progress[-1][2] >= 20:  # 3 s of EMG, 20 camera frames
                    break
        else:
            pytest.fail(f"no progress within 60 s: {progress}")
        killed_at = time.monotonic()
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    session = read_session(tmp_path / "d" / "S01_R01.h5")
    safe = [p for p in progress if p[0] < killed_at - 1.5]  # printed more than 1.5 s before the kill
    assert safe, progress
    assert len(session.emg_timestamps) >= safe[-1][1]
    assert len(session.pose_timestamps) >= safe[-1][2]
    assert session.attrs["stop_reason"].startswith("recording")  # never closed: it says so
