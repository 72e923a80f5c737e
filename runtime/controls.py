"""Arming and e-stop: the operator's say over the hand, from any source, applied in one place.

Requests come from the terminal (keys), signals (SIGUSR1 = e-stop), and the telemetry control channel;
each is queued from its own thread (or signal handler) and applied by the loop at the start of the next
iteration, so the loop's state changes only on its own thread. E-stop wins over everything and latches
until cleared on purpose; clearing it leaves the runtime disarmed (arming again is a separate act).
"""

from __future__ import annotations

import queue
import time
from dataclasses import dataclass, field

from runtime.telemetry import COMMANDS  # the control channel's commands are the ones applied here


@dataclass(frozen=True)
class Request:
    command: str
    origin: str  # "keyboard", "signal", "control:<client>", "cli"
    value: float | None = None
    reply: object | None = None  # the telemetry ControlRequest to acknowledge, if any
    at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class Outcome:
    request: Request
    ok: bool
    detail: str


class Controls:
    def __init__(self, *, armed: bool = False, allow_arming: bool = True, why_not: str = "") -> None:
        self.armed = armed and allow_arming
        self.estop = False
        self.estop_origin = ""
        self.allow_arming = allow_arming
        self.why_not = why_not
        self._queue: queue.SimpleQueue[Request] = queue.SimpleQueue()
        self.estop_requested = False  # set directly from a signal handler (no locks there)

    def submit(self, command: str, origin: str, value: float | None = None, reply: object | None = None) -> None:
        """Thread-safe; applied by `apply_pending` on the loop's thread."""
        self._queue.put(Request(command, origin, value, reply))

    def apply_pending(self, threshold_setter) -> list[Outcome]:
        outcomes = []
        if self.estop_requested:
            self.estop_requested = False
            outcomes.append(self._apply(Request("estop", "signal SIGUSR1"), threshold_setter))
        while True:
            try:
                request = self._queue.get_nowait()
            except queue.Empty:
                return outcomes
            outcomes.append(self._apply(request, threshold_setter))

    def _apply(self, request: Request, threshold_setter) -> Outcome:
        command = request.command
        if command == "estop":
            first = not self.estop
            self.estop, self.armed = True, False
            if first:
                self.estop_origin = request.origin
            return Outcome(request, True, f"e-stop latched (from {request.origin})" if first else "already latched")
        if command == "clear_estop":
            if not self.estop:
                return Outcome(request, True, "no e-stop was latched")
            self.estop = False
            return Outcome(request, True, "e-stop cleared; the runtime stays disarmed until armed again")
        if command == "arm":
            if self.estop:
                return Outcome(request, False, "cannot arm: e-stop is latched (clear it first)")
            if not self.allow_arming:
                return Outcome(request, False, f"cannot arm: {self.why_not}")
            self.armed = True
            return Outcome(request, True, "armed")
        if command == "disarm":
            self.armed = False
            return Outcome(request, True, "disarmed")
        if command == "set_threshold":
            value = request.value
            if value is None or not 0.0 <= float(value) <= 1.0:
                return Outcome(request, False, f"threshold must be a number in [0, 1], got {value!r}")
            threshold_setter(float(value))
            return Outcome(request, True, f"threshold set to {float(value):.2f}")
        return Outcome(request, False, f"unknown command {command!r}; known: {', '.join(COMMANDS)}")
