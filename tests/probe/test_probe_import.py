"""`mode2 import` as a user runs it: bad input → exit 2, one line naming the file and line, no output file.

Until `import` is registered in runtime/cli.py, the command is added to COMMANDS in the subprocess (the
real `main()` then parses, dispatches and turns the UserError into one line); once it is, that entry wins.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cli_probe import REPO_ROOT, assert_user_error, fingerprint

BOOT = (
    "import sys, runtime.cli as cli; "
    "cli.COMMANDS.setdefault('import', cli.Command('firmware_bridge.import_command', "
    "'MindRove CSV recordings → session files', 'device')); "
    "raise SystemExit(cli.main(sys.argv[1:]))"
)


def run_import(*args: object) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.run(
        [sys.executable, "-c", BOOT, "import", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
        env=env,
    )


def test_help_shows_the_defaults_and_an_example() -> None:
    result = run_import("--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "example: mode2 import" in text
    assert "(default: auto)" in text  # --format and --units
    assert "--drop-backlog" in text


def test_bad_file_is_one_line_naming_file_and_line_and_nothing_is_written(tmp_path: Path) -> None:
    """The CLI route (exit 2, one line, nothing written); each kind of bad file's message is asserted in
    process by tests/firmware_bridge/test_import.py (test_bad_input_is_one_user_error_naming_file_and_line…)."""
    bad = tmp_path / "rec.csv"
    bad.write_text("Timestamp,CH1,CH2\n0.000,1,2\n0.002,1,abc\n")
    before = fingerprint([tmp_path])
    result = run_import(bad, "--out", tmp_path / "out.h5")
    assert_user_error(result, "mode2 import", str(bad), "line 3 column 3", "'abc' is not a number")
    assert fingerprint([tmp_path]) == before, "no output (and no temporary file) left behind"


def test_bad_options_are_refused_by_name(tmp_path: Path) -> None:
    good = tmp_path / "a.csv"
    good.write_text("Timestamp,CH1\n0.000,1.5\n0.002,2.5\n")
    assert_user_error(run_import(good, "--units", "volts"), "--units", "volts")
    assert_user_error(run_import(good, good, "--out", tmp_path / "one.h5"), "--out", "single file")
    assert_user_error(run_import(good, tmp_path / "b.csv", "--session", "x"), "--session")
    assert_user_error(run_import(tmp_path / "missing.csv"), "missing.csv", "no such file")


def test_good_file_prints_the_summary_and_writes_the_session(tmp_path: Path) -> None:
    rows = "\n".join(f"{i * 2},{1000 + i % 5},{2000 - i % 3}" for i in range(50))  # ms, whole numbers
    good = tmp_path / "p1_rest.csv"
    good.write_text("Timestamp,CH1,CH2\n" + rows + "\n")
    result = run_import(good, "--out", tmp_path / "sessions")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "sessions" / "p1_rest.h5").is_file()
    assert "samples: 50" in result.stdout
    assert "units: counts × 0.045 µV (auto: every value is a whole number" in result.stdout
    assert "timestamps in milliseconds" in result.stdout
