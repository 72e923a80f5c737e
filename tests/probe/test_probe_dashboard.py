"""`mode2 dashboard` on bad input: one clear line naming the option, exit status 2, no traceback, no file
touched."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
from cli_probe import REPO_ROOT, assert_user_error, fingerprint, run_mode2


def test_replay_problems_name_the_option_and_the_file(tmp_path: Path) -> None:
    text = tmp_path / "notes.h5"
    text.write_text("not a run file\n")
    session = tmp_path / "session.h5"
    with h5py.File(session, "w") as f:
        f.create_dataset("emg/raw", data=np.zeros((4, 8), np.float32))
    before = fingerprint([tmp_path])
    cases = [
        (tmp_path / "missing.h5", "no such file"),
        (text, "not an HDF5 file"),
        (session, "runtime/"),
        (tmp_path, "is a folder"),
    ]
    for path, problem in cases:
        assert_user_error(run_mode2("dashboard", "--replay", path, timeout=60), "--replay", str(path), problem)
    assert fingerprint([tmp_path]) == before


def test_attach_with_a_malformed_address_names_the_option() -> None:
    assert_user_error(run_mode2("dashboard", "--attach", "localhost:port", timeout=60), "--attach", "port")


def test_modes_are_required_and_exclusive() -> None:
    fixture = REPO_ROOT / "tests" / "fixtures" / "tui" / "run_small.h5"
    assert_user_error(run_mode2("dashboard", timeout=60), "--attach", "--replay", "--demo")
    assert_user_error(run_mode2("dashboard", "--replay", fixture, "--demo", timeout=60), "--demo", "--replay")
    assert_user_error(run_mode2("dashboard", "--replay", fixture, "--speed", "100", timeout=60), "--speed")
