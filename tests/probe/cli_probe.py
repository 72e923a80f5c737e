"""Run `mode2` as a user would (a subprocess) and check how it treats bad input.

The contract every command keeps (README "What happens on bad input"): a user error ends with exit
status 2 and one line on stderr naming what is wrong, never a Python traceback, and no user file is
changed or removed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_mode2(*args: str, timeout: float = 180.0, cwd: str | Path | None = None) -> subprocess.CompletedProcess[str]:
    """`mode2 ARGS…` in a subprocess, headless, with the repo importable; never raises on a bad exit."""
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=str(REPO_ROOT))
    return subprocess.run(
        [sys.executable, "-m", "runtime.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd or REPO_ROOT,
        env=env,
    )


def assert_user_error(result: subprocess.CompletedProcess[str], *mentions: str, status: int = 2) -> str:
    """Exit `status`, no traceback, one non-empty error line on stderr that contains every `mentions`
    (case-insensitive). Returns that line."""
    where = f"stdout:\n{result.stdout[-2000:]}\nstderr:\n{result.stderr[-4000:]}"
    assert "Traceback" not in result.stderr, f"a traceback instead of a clear error\n{where}"
    assert result.returncode == status, f"exit status {result.returncode}, expected {status}\n{where}"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    assert errors, f"no error line on stderr\n{where}"
    line = errors[-1]
    for mention in mentions:
        assert mention.lower() in line.lower(), f"the error line does not name {mention!r}: {line!r}\n{where}"
    return line


def fingerprint(paths: Iterable[str | Path]) -> dict[str, str | None]:
    """sha256 of every file under `paths` (None for a path that does not exist), to prove nothing changed."""
    prints: dict[str, str | None] = {}
    for root in map(Path, paths):
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for file in files:
            prints[str(file)] = hashlib.sha256(file.read_bytes()).hexdigest() if file.exists() else None
    return prints
