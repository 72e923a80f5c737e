"""`mode2 hand-sim` on bad input: exit 2, one line naming the problem, no traceback, no user file touched."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cli_probe import assert_user_error, fingerprint, run_mode2

from firmware_bridge.hand_sim import HandSimProcess


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--watchdog-ms", "-1"),  # was cast to 65,535 ms in C: the hand stayed ACTIVE after its host died
        ("--watchdog-ms", "100000"),  # was 34,464 ms
        ("--print-every", "-1"),  # was a traceback
        ("--print-every", "0"),
        ("--print-every", "nan"),
        ("--duration", "-1"),
        ("--duration", "nan"),
    ],
)
def test_bad_numbers_are_refused_before_the_hand_starts(tmp_path: Path, option: str, value: str) -> None:
    link = tmp_path / "hand"
    args = ["hand-sim", "--link", link, option, value]
    if option != "--duration":
        args += ["--duration", "0.1"]  # should it start after all, it stops by itself
    assert_user_error(run_mode2(*args), option, value)
    assert not link.exists() and not link.is_symlink(), "no hand was started"


def test_a_regular_file_at_link_survives_byte_identical(tmp_path: Path) -> None:
    precious = tmp_path / "notes.txt"
    precious.write_bytes(b"a user's file that happens to be where --link points\n")
    before = fingerprint([tmp_path])
    result = run_mode2("hand-sim", "--link", precious, "--duration", "0.1")
    assert_user_error(result, str(precious), "regular file")
    assert fingerprint([tmp_path]) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"], "no lock file left behind"


def test_link_on_a_folder_names_it_and_keeps_it(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "session.h5").write_bytes(b"\x89HDF")
    before = fingerprint([tmp_path])
    assert_user_error(run_mode2("hand-sim", "--link", folder, "--duration", "0.1"), str(folder), "folder")
    assert fingerprint([tmp_path]) == before


def test_link_in_a_missing_folder_says_which_folder(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir"
    result = run_mode2("hand-sim", "--link", missing / "hand", "--duration", "0.1")
    assert_user_error(result, str(missing), "does not exist")
    assert not missing.exists()


def test_empty_link_is_refused(tmp_path: Path) -> None:
    assert_user_error(run_mode2("hand-sim", "--link", "", "--duration", "0.1", cwd=tmp_path), "link", "empty")
    assert list(tmp_path.iterdir()) == []


def test_a_second_hand_sim_on_a_live_link_names_the_link_and_the_live_process(tmp_path: Path) -> None:
    link = tmp_path / "hand"
    with HandSimProcess(link) as first:
        result = run_mode2("hand-sim", "--link", link, "--duration", "0.1")
        assert_user_error(result, str(link), "in use", f"pid {first.process.pid}")
        assert os.readlink(link) == first.pty_path and first.running, "the first hand-sim is untouched"


def test_hand_sim_tells_the_user_the_command_that_connects(tmp_path: Path) -> None:
    link = tmp_path / "hand"
    result = run_mode2("hand-sim", "--link", link, "--duration", "0.2", "--print-every", "0.1")
    assert result.returncode == 0, result.stderr
    assert f"mode2 run --port {link}" in result.stdout
    assert not link.is_symlink(), "the link is removed on a normal exit"
