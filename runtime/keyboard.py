"""Operator keys in the terminal that runs `mode2 run`: arm, disarm, e-stop, clear (confirmed), threshold.

Active only when stdin is a terminal; the terminal goes to cbreak mode (keys without Enter, still
Ctrl-C) and is restored on exit. Keys become `Controls` requests, applied on the loop's thread.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import threading

HELP = "a arm · d disarm · e/space E-STOP · c+y clear e-stop · +/- threshold · q quit"


class KeyboardControls:
    help = HELP

    def __init__(self, controls, stop: threading.Event, threshold_step: float = 0.05) -> None:
        self.controls = controls
        self.stop = stop
        self.step = threshold_step
        self.active = False
        self._saved = None
        self._thread: threading.Thread | None = None
        self._threshold: float | None = None
        self._confirming = False

    def __enter__(self) -> KeyboardControls:
        if not sys.stdin.isatty():
            return self
        import termios
        import tty

        fd = sys.stdin.fileno()
        self._saved = termios.tcgetattr(fd)
        tty.setcbreak(fd)
        self.active = True
        self._thread = threading.Thread(target=self._read, name="keyboard", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.active = False
        if self._saved is not None:
            import termios

            with contextlib.suppress(Exception):
                termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, self._saved)

    def set_threshold_hint(self, threshold: float) -> None:
        self._threshold = threshold

    def _read(self) -> None:
        fd = sys.stdin.fileno()
        while self.active and not self.stop.is_set():
            ready, _, _ = select.select([fd], [], [], 0.1)
            if not ready:
                continue
            key = os.read(fd, 1).decode(errors="ignore")
            self.handle(key)

    def handle(self, key: str) -> None:
        submit = self.controls.submit
        if self._confirming:
            self._confirming = False
            if key in "yY":
                submit("clear_estop", "keyboard")
            else:
                print("[keys] e-stop stays latched", flush=True)
            return
        if key in "eE ":
            submit("estop", "keyboard")
        elif key in "aA":
            submit("arm", "keyboard")
        elif key in "dD":
            submit("disarm", "keyboard")
        elif key in "cC":
            self._confirming = True
            print("[keys] clear the e-stop? press y to confirm, any other key to keep it", flush=True)
        elif key in "+-" and self._threshold is not None:
            self._threshold = min(1.0, max(0.0, self._threshold + (self.step if key == "+" else -self.step)))
            submit("set_threshold", "keyboard", self._threshold)
        elif key in "qQ":
            self.stop.set()
        elif key in "h?":
            print(f"[keys] {HELP}", flush=True)
