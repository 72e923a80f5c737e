"""Shared pytest fixtures: where ../shared lives, and headless plotting."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED_DIR.is_dir():
        pytest.fail(f"../shared not found beside the repo (looked at {SHARED_DIR})")
    return SHARED_DIR


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three 0.5-minute synthetic sessions of one subject (+ 2 kHz streams and a playback CSV), made once."""
    from training.synth import simulate

    out = tmp_path_factory.mktemp("world")
    simulate(out, sessions=3, subjects=1, minutes=0.5, seed=7, playback_csv=True, faults=True, progress=False)
    return out


@pytest.fixture(scope="session")
def trained_checkpoints(small_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Mode 2 and the direct baseline, one epoch each on s01 r01–r02 (r03 held out), plus a calibration
    written by `evaluate` on r03: made once and shared by the export and runtime suites."""
    from runtime.cli import main

    out = tmp_path_factory.mktemp("ckpt")
    common = ["--data", str(small_world / "s01_r0*.h5"), "--out", str(out), "--epochs", "1"]
    common += ["--val-sessions", "s01/r03", "--batch-size", "16"]
    # the policy is pinned: `auto` picks by a 1-epoch model's held-out score, which a change of the world can
    # flip to `feedback` (which the streaming engines refuse); the choice itself is tested in test_train.py
    assert main(["train", *common, "--initial-state", "train_mean"]) == 0
    assert main(["train", "--arch", "direct", *common]) == 0
    evaluate = ["evaluate", "--checkpoint", str(out / "transfer_mode2_best.pth"), "--data"]
    evaluate += [str(small_world / "s01_r03.h5"), "--out", str(out / "eval"), "--write-calibration"]
    assert main(evaluate) == 0
    return out


@pytest.fixture(scope="session")
def exported_model(trained_checkpoints: Path, small_world: Path) -> Path:
    """`mode2 export-onnx --int8` of the Mode 2 checkpoint (parity on the held-out r03)."""
    from runtime.cli import main

    out = trained_checkpoints / "onnx" / "model.onnx"
    export = ["export-onnx", "--checkpoint", str(trained_checkpoints / "transfer_mode2_best.pth"), "--out", str(out)]
    assert main([*export, "--data", str(small_world / "s01_r03.h5"), "--int8"]) == 0
    return out
