"""The emulated hand: the C reference firmware built for this machine, running behind a pseudo-terminal.

`HandSimProcess` starts it, reads the positions it would drive and its state from its status lines, and
can kill and restart it behind the same symlink path to emulate a cable pulled and plugged back.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from firmware_bridge.firmware_build import build
from firmware_bridge.protocol import DeviceState


@dataclass(frozen=True)
class HandStatus:
    time_ms: int
    state: DeviceState
    faults: int
    positions_mrad: tuple[int, ...]
    received_at: float  # time.monotonic() when the line was read


class HandSimProcess:
    def __init__(self, link: str | Path | None = None, *, watchdog_ms: int = 150, status_every_ms: int = 5) -> None:
        self.link = Path(link) if link else None
        self.watchdog_ms = watchdog_ms
        self.status_every_ms = status_every_ms
        self.binary = build("hand_sim")
        self.process: subprocess.Popen[str] | None = None
        self.pty_path: str | None = None
        self.history: list[HandStatus] = []
        self._lock = threading.Lock()
        self._reader: threading.Thread | None = None

    @property
    def port(self) -> str:
        """What a host should open: the stable link when there is one, else the pty itself."""
        if self.link is not None:
            return str(self.link)
        if self.pty_path is None:
            raise RuntimeError("hand-sim is not running")
        return self.pty_path

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
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        first = self.process.stdout.readline() if self.process.stdout else ""
        if not first.startswith("PTY "):
            self.stop()
            raise RuntimeError(f"hand-sim did not start: {first!r}")
        self.pty_path = first.split(" ", 1)[1].strip()
        self._reader = threading.Thread(target=self._read_status, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while self.latest() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        return self

    def _read_status(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
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
            with self._lock:
                self.history.append(status)
                if len(self.history) > 20000:
                    del self.history[:10000]

    def latest(self) -> HandStatus | None:
        with self._lock:
            return self.history[-1] if self.history else None

    def wait_for(self, predicate: Callable[[HandStatus], bool], timeout: float = 2.0) -> HandStatus | None:
        """The first status (from now on) for which `predicate(status)` holds, or None after `timeout`."""
        deadline = time.monotonic() + timeout
        with self._lock:
            seen = len(self.history)
        while time.monotonic() < deadline:
            with self._lock:
                fresh = self.history[seen:]
                seen = len(self.history)
            for status in fresh:
                if predicate(status):
                    return status
            time.sleep(0.002)
        return None

    def stop(self) -> None:
        """Terminate the firmware process (SIGTERM; it removes its link)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._reader is not None:
            self._reader.join(timeout=1)

    def unplug(self) -> None:
        """Kill the device abruptly, as when the cable is pulled: the pty vanishes under the host."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
        if self.link is not None and self.link.is_symlink():
            self.link.unlink()

    def __enter__(self) -> HandSimProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
