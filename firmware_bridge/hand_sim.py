"""The emulated hand: the C reference firmware built for this machine, running behind a pseudo-terminal.

`HandSimProcess` starts it, reads the positions it would drive and its state from its status lines, and
can kill and restart it behind the same symlink path to emulate a cable pulled and plugged back.

What it guarantees (the firmware, `firmware/host/host_main.c`, enforces each one itself, so running the
binary by hand gets the same):
- the watchdog is 20–2000 ms on every way in (as CONFIGURE enforces); anything else is refused;
- the emulated hand never outlives the program that started it: killed parent (even SIGKILL) → it eases
  to the safe pose and exits; `stop()` (SIGTERM) does the same and its last status line is the safe pose;
- `link` is only ever a symlink of ours: a live link (held by another hand-sim, `PATH.lock`) is refused and
  named, a stale one (its hand-sim gone) is replaced, anything else at the path is refused and left alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import operator
import os
import select
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from firmware_bridge.errors import UserError
from firmware_bridge.firmware_build import build
from firmware_bridge.protocol import WATCHDOG_MAX_MS, WATCHDOG_MIN_MS, DeviceState

STATUS_EVERY_MAX_MS = 60_000
LOCK_SUFFIX = ".lock"  # beside the link, flock-ed by the live firmware process
FIRMWARE_SHUTDOWN_MAX_S = 5.0  # the firmware eases to the safe pose for at most this long (SHUTDOWN_MAX_MS)


class HandSimError(UserError):
    """The emulated hand refused to start; the message is the firmware's own reason (e.g. the link)."""


@dataclass(frozen=True)
class HandStatus:
    time_ms: int
    state: DeviceState
    faults: int
    positions_mrad: tuple[int, ...]
    received_at: float  # time.monotonic() when the line was read


def _whole_number(value: object, name: str, low: int, high: int, unit: str) -> int:
    try:
        number = operator.index(value)  # type: ignore[arg-type]  # ints only: no 150.7, no True
    except TypeError:
        number = None
    if number is None or isinstance(value, bool) or not low <= number <= high:
        raise UserError(f"{name} must be a whole number of {unit} from {low} to {high}, got {value!r}")
    return number


def check_watchdog_ms(value: object, name: str = "watchdog_ms") -> int:
    """The watchdog period as the firmware accepts it, or a UserError naming `name`."""
    return _whole_number(value, name, WATCHDOG_MIN_MS, WATCHDOG_MAX_MS, "milliseconds")


class HandSimProcess:
    """The C firmware as a child process behind a pty (`link`: a stable symlink to it, or None for none).

    `start()` / `stop()` / `unplug()`, or use it as a context manager; `port` is what a host opens;
    `latest()`, `wait_for(predicate, timeout)` and `history` follow its status lines."""

    def __init__(self, link: str | Path | None = None, *, watchdog_ms: int = 150, status_every_ms: int = 5) -> None:
        if link is not None and str(link) == "":
            raise UserError("the hand-sim link path is empty: give a path such as /tmp/mode2-hand, or None")
        self.link = None if link is None else Path(link)
        self.watchdog_ms = check_watchdog_ms(watchdog_ms)
        self.status_every_ms = _whole_number(status_every_ms, "status_every_ms", 1, STATUS_EVERY_MAX_MS, "ms")
        self.binary = build("hand_sim")
        self.process: subprocess.Popen[str] | None = None
        self.pty_path: str | None = None
        self.history: list[HandStatus] = []  # the newest statuses (trimmed to the last 10,000-20,000)
        self._trimmed = 0  # statuses dropped from the front of `history` so far
        self.exit_message = ""  # the firmware's last stderr line after it stopped
        self._lock = threading.Lock()
        self._fresh = threading.Condition(self._lock)
        self._reader: threading.Thread | None = None

    @property
    def port(self) -> str:
        """What a host should open: the stable link when there is one, else the pty itself."""
        if self.link is not None:
            return str(self.link)
        if self.pty_path is None:
            raise RuntimeError("hand-sim is not running")
        return self.pty_path

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 5.0) -> HandSimProcess:
        command = [
            str(self.binary),
            "--watchdog-ms",
            str(self.watchdog_ms),
            "--status-every",
            str(self.status_every_ms),
        ]
        if self.link is not None:
            command += ["--link", str(self.link)]
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1
        )
        first = self._first_line(timeout)
        if not first.startswith("PTY "):
            raise HandSimError(f"hand-sim did not start: {self._failure_reason(first)}")
        self.pty_path = first.split(" ", 1)[1].strip()
        with self._lock:
            seen = len(self.history)
        self._reader = threading.Thread(target=self._read_status, args=(self.process,), daemon=True)
        self._reader.start()
        with self._fresh:
            self._fresh.wait_for(lambda: len(self.history) > seen or not self.running, timeout)
        return self

    def _first_line(self, timeout: float) -> str:
        assert self.process is not None and self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        return self.process.stdout.readline() if ready else ""

    def _failure_reason(self, first: str) -> str:
        """Why the firmware did not come up: its own stderr line (it exits 2 with one), never an empty ''."""
        assert self.process is not None
        try:
            self.process.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return f"the firmware printed nothing usable within the start timeout (first line {first!r})"
        stderr = self.process.stderr.read() if self.process.stderr else ""
        self._close_pipes(self.process)
        lines = [line.strip() for line in stderr.splitlines() if line.strip()]
        if lines:
            return lines[-1].removeprefix("hand_sim: ")
        return f"the firmware exited with status {self.process.returncode} and said nothing"

    def _read_status(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            parts = line.split()
            if len(parts) < 4 or parts[0] != "STATUS":
                continue
            status = HandStatus(
                int(parts[1]),
                DeviceState(int(parts[2])),
                int(parts[3]),
                tuple(int(p) for p in parts[4:]),
                time.monotonic(),
            )
            with self._fresh:
                self.history.append(status)
                if len(self.history) > 20000:
                    del self.history[:10000]
                    self._trimmed += 10000
                self._fresh.notify_all()
        with self._fresh:
            self._fresh.notify_all()  # the process ended: wake waiters

    def latest(self) -> HandStatus | None:
        with self._lock:
            return self.history[-1] if self.history else None

    def wait_for(self, predicate: Callable[[HandStatus], bool], timeout: float = 2.0) -> HandStatus | None:
        """The first status (from now on) for which `predicate(status)` holds, or None after `timeout`."""
        deadline = time.monotonic() + timeout
        with self._fresh:
            seen = self._trimmed + len(self.history)  # counted from the first status ever, trims included
            while True:
                for status in self.history[max(0, seen - self._trimmed) :]:
                    if predicate(status):
                        return status
                seen = self._trimmed + len(self.history)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._fresh.wait(remaining)

    def stop(self, timeout: float = FIRMWARE_SHUTDOWN_MAX_S + 3.0) -> None:
        """Stop the emulated hand as a device would be switched off: SIGTERM, on which the firmware eases to
        the safe pose at its slew limits (as its watchdog would), prints a last status line, removes its own
        link and exits. Only if it does not within `timeout` is it killed (and its link removed here)."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                self._remove_own_link()
        if self._reader is not None:
            self._reader.join(timeout=2.0)
        if process.stderr is not None and not process.stderr.closed:
            lines = [line.strip() for line in process.stderr.read().splitlines() if line.strip()]
            self.exit_message = lines[-1].removeprefix("hand_sim: ") if lines else ""
        self._close_pipes(process)

    def unplug(self) -> None:
        """Kill the device abruptly, as when the cable is pulled: the pty vanishes under the host."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            if self._reader is not None:
                self._reader.join(timeout=2.0)
            self._close_pipes(self.process)
        self._remove_own_link()

    def _remove_own_link(self) -> None:
        """After a kill: remove the link only if it still points at our pty, and the lock file if no one
        holds it (the firmware's own shutdown does both itself)."""
        if self.link is None:
            return
        with contextlib.suppress(OSError):
            if self.pty_path is not None and os.readlink(self.link) == self.pty_path:
                self.link.unlink()
        lock_path = self.link.with_name(self.link.name + LOCK_SUFFIX)
        with contextlib.suppress(OSError):
            fd = os.open(lock_path, os.O_RDWR | os.O_NOFOLLOW)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                lock_path.unlink()  # while holding it, as the firmware does: a waiter re-checks the inode
            finally:
                os.close(fd)

    @staticmethod
    def _close_pipes(process: subprocess.Popen[str]) -> None:
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()

    def __enter__(self) -> HandSimProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
