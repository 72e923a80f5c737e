"""A live runtime's telemetry (`mode2 run --telemetry ADDR`) as a feed that survives the runtime restarting.

A background thread owns the `TelemetryClient`: it connects (retrying every `reconnect_interval`), moves
every message into this feed's queue, and when the runtime goes away (`bye`, or the connection lost)
posts `status` disconnected and reconnects by itself until `close()`. On every (re)connection the feed
posts `status` connected and the new `hello`.

The queue between that thread and the dashboard is bounded: if the dashboard falls behind, the oldest
*hop* snapshots are dropped (never hellos, acks, events or statuses) — the same policy the server applies
per client, so a slow screen always shows the newest state.
"""

from __future__ import annotations

import threading
from collections import deque

from runtime.telemetry import (
    TelemetryClient,
    TelemetryDisconnected,
    TelemetryProtocolError,
    TelemetryUnavailable,
    parse_address,
)
from tui.feed import Feed, Message

MAX_QUEUED = 512  # messages waiting for the dashboard; beyond that the oldest hop is dropped


class FeedDisconnected(ConnectionError):
    """A control request could not be sent: the runtime is not connected (the message says so)."""


class LiveFeed(Feed):
    live = True

    def __init__(self, address: str, *, reconnect_interval: float = 0.5) -> None:
        self.address = str(parse_address(address))  # a bad address fails here, as a UserError
        self.requested_address = address
        self.reconnect_interval = reconnect_interval
        self._cond = threading.Condition()
        self._queue: deque[Message] = deque()
        self._client: TelemetryClient | None = None
        self._closed = threading.Event()
        self.dropped = 0  # hops dropped because the dashboard fell behind
        self.connections = 0  # successful connections so far
        self.hello: Message | None = None
        self._thread = threading.Thread(target=self._run, name="live-feed", daemon=True)
        self._thread.start()

    # -- Feed -------------------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        with self._cond:
            client = self._client
        return client is not None and client.connected

    def read(self, timeout: float) -> Message | None:
        with self._cond:
            if not self._queue and not self._closed.is_set():
                self._cond.wait_for(lambda: self._queue or self._closed.is_set(), timeout)
            return self._queue.popleft() if self._queue else None

    def send(self, command: str, value: float | None = None) -> int:
        with self._cond:
            client = self._client
        if client is None or not client.connected:
            raise FeedDisconnected(f"not connected to the runtime at {self.address}: '{command}' was not sent")
        try:
            return client.send(command, value)
        except TelemetryDisconnected as error:
            raise FeedDisconnected(
                f"the runtime at {self.address} went away: '{command}' was not sent ({error})"
            ) from error

    def close(self) -> None:
        self._closed.set()
        with self._cond:
            client = self._client
            self._cond.notify_all()
        if client is not None:
            client.close()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0 + self.reconnect_interval)

    # -- background ------------------------------------------------------------------------------------

    def _post(self, message: Message) -> None:
        with self._cond:
            if len(self._queue) >= MAX_QUEUED:
                for i, queued in enumerate(self._queue):
                    if queued.get("type") == "hop":
                        del self._queue[i]
                        self.dropped += 1
                        break
            self._queue.append(message)
            self._cond.notify_all()

    def _status(self, connected: bool, detail: str) -> None:
        self._post({"type": "status", "connected": connected, "detail": detail})

    def _run(self) -> None:
        last_detail = ""
        lost_before = False
        while not self._closed.is_set():
            client = TelemetryClient(self.address)
            try:
                hello = client.connect(timeout=self.reconnect_interval)
            except (TelemetryUnavailable, TelemetryDisconnected, TelemetryProtocolError, OSError) as error:
                client.close()
                if isinstance(error, TelemetryProtocolError) or not lost_before:
                    # after a loss the "disconnected … reconnecting" status stands; otherwise say why, once
                    detail = f"waiting for the runtime at {self.address}: {error}"
                    if detail != last_detail:
                        self._status(False, detail)
                        last_detail = detail
                self._closed.wait(self.reconnect_interval)
                continue
            with self._cond:
                if self._closed.is_set():
                    client.close()
                    return
                self._client = client
                self.hello = hello
            self.connections += 1
            last_detail = ""
            self._status(True, f"connected to the runtime at {self.address}")
            self._post(hello)
            said_bye = self._pump(client)
            with self._cond:
                self._client = None
            client.close()
            if self._closed.is_set():
                return
            lost_before = True
            why = "runtime stopped" if said_bye else "runtime lost"
            last_detail = f"disconnected: {why} — reconnecting"
            self._status(False, last_detail)

    def _pump(self, client: TelemetryClient) -> bool:
        """Move messages to the queue until the connection ends; True when the server said bye."""
        said_bye = False
        while not self._closed.is_set():
            try:
                message = client.read(timeout=0.25)
            except (TelemetryDisconnected, TelemetryProtocolError, OSError):
                return said_bye
            if message is None:
                continue
            if message.get("type") == "bye":
                said_bye = True
            elif message.get("type") == "hello":
                with self._cond:
                    self.hello = message
            self._post(message)
        return said_bye
