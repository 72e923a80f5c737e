"""`mode2 run` on bad input: one clear line, exit status 2, no traceback, nothing left half-written."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from cli_probe import REPO_ROOT, assert_user_error, run_mode2

from firmware_bridge.hand_sim import HandSimProcess
from firmware_bridge.link import HandLink


@pytest.fixture(scope="module")
def replay(small_world) -> str:
    return f"replay:{small_world / 's01_r03.h5'}"


def test_model_problems_are_named(tmp_path, replay) -> None:
    missing = run_mode2("run", "--model", tmp_path / "nope.onnx", "--source", replay, "--port", "sim")
    assert_user_error(missing, "nope.onnx")
    text = tmp_path / "notes.onnx"
    text.write_text("this is not a model\n")
    assert_user_error(run_mode2("run", "--model", text, "--source", replay, "--port", "sim"), "notes.onnx")


@pytest.mark.parametrize(
    ("source", "named"),
    [
        ("bogus:thing", "bogus"),
        ("replay:/nonexistent/session.h5", "session.h5"),
        ("playback:/nonexistent/rec.csv", "rec.csv"),
    ],
)
def test_bad_sources_are_named(exported_model, source: str, named: str) -> None:
    assert_user_error(run_mode2("run", "--model", exported_model, "--source", source, "--port", "sim"), named)


def test_ports_that_are_missing_or_busy_are_named(exported_model, replay) -> None:
    result = run_mode2("run", "--model", exported_model, "--source", replay, "--port", "/dev/ttyNOSUCHPORT")
    assert_user_error(result, "/dev/ttyNOSUCHPORT")
    with HandSimProcess(None) as hand, HandLink.open(hand.port):  # another host holds the hand
        busy = run_mode2("run", "--model", exported_model, "--source", replay, "--port", hand.port)
        assert_user_error(busy, "in use")


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--hop-ms", "3"], "--hop-ms"),
        (["--hop-ms", "0"], "--hop-ms"),
        (["--threshold", "2"], "--threshold"),
        (["--speed", "nan"], "--speed"),
        (["--config", "/nonexistent/hand.toml"], "hand.toml"),
        (["--engine", "magic"], "--engine"),
    ],
)
def test_bad_options_are_named(exported_model, replay, extra: list[str], named: str) -> None:
    result = run_mode2("run", "--model", exported_model, "--source", replay, "--port", "sim", *extra)
    assert_user_error(result, named)


def test_record_into_a_missing_folder_is_refused_before_anything_moves(exported_model, replay, tmp_path) -> None:
    target = tmp_path / "missing" / "run.h5"
    result = run_mode2("run", "--model", exported_model, "--source", replay, "--port", "sim", "--record", target)
    assert_user_error(result, str(target.parent))
    assert not target.parent.exists()


def test_the_sdk_synthetic_board_can_never_be_armed(exported_model) -> None:
    result = run_mode2("run", "--model", exported_model, "--source", "sdk-synthetic", "--port", "sim", "--armed")
    assert_user_error(result, "not EMG")


def test_no_mindrove_package_is_named(exported_model, tmp_path) -> None:
    """As on a board where the SDK did not install: the import fails, the message says what to install."""
    blocker = tmp_path / "mindrove"
    blocker.mkdir()
    (blocker / "__init__.py").write_text("raise ModuleNotFoundError('No module named mindrove', name='mindrove')\n")
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{REPO_ROOT}")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "runtime.cli",
            "run",
            "--model",
            str(exported_model),
            "--source",
            "mindrove",
            "--port",
            "sim",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=120,
    )
    assert_user_error(result, "mindrove")
