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
