"""What the dashboard reads from: a live runtime's telemetry, a recorded run file, or the demo chain.

Every feed hands out plain dicts in the telemetry schema of docs/TELEMETRY.md (`hello`, `hop`, `event`,
`ack`, `bye`), so the widgets never know where the data came from. Feeds add two message types of their own:

- ``{"type": "status", "connected": bool, "detail": str}``: the link to the data changed (a live runtime
  went away / came back; a replay opened its file). ``detail`` is shown to the user as is.
- ``{"type": "position", "index": int, "total": int, "t": float, "speed": float, "paused": bool}``:
  where a replay is (hop index of the last hop handed out, of ``total``), sent after every seek,
  pause/resume or speed change and with every hop.

`read()` is called from one worker thread; `send()` and the replay controls from the UI thread.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

Message = dict[str, Any]

REPLAY_SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


class FeedReadOnly(Exception):
    """Raised by `send()` on a feed that has no runtime behind it (a replayed run file)."""


class Feed(ABC):
    #: True when control requests reach a runtime (attach, demo); False for a replay
    live: bool = False

    @abstractmethod
    def read(self, timeout: float) -> Message | None:
        """The next message, or None when nothing arrived within `timeout` seconds. Never raises for a
        lost runtime: a live feed reports it as a `status` message and reconnects by itself."""

    def send(self, command: str, value: float | None = None) -> int:
        """Send a control request (docs/TELEMETRY.md); returns its id. The `ack` arrives through `read()`."""
        raise FeedReadOnly(f"{type(self).__name__} has no runtime to send '{command}' to")

    @abstractmethod
    def close(self) -> None:
        """Stop reading and release everything (sockets, files, child processes)."""
