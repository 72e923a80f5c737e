"""The host end of the serial link to the hand: pyserial, a background reader, acks, reconnection.

`HandLink.open(port)` accepts a device path (/dev/ttyACM0), a pseudo-terminal or its symlink, or any
pyserial URL (`loop://`, `socket://host:port`, `rfc2217://…`). A background thread decodes telemetry and
faults, matches acknowledgements to the commands that asked for them (the device echoes the command's
timestamp, so round-trip time needs no shared clock), and — when the device disappears (cable pulled,
pty closed) — keeps reopening the same port with backoff until it is back, without the caller restarting
anything; `state` says "connected" or "reconnecting". After a reconnect the last CONFIGURE the device
acknowledged is sent again, since a device that rebooted came back with its default limits.

The link never sends anything by itself (no background heartbeat): if the caller's loop hangs, the device
must hear nothing, so its watchdog eases the hand to the safe pose. Heartbeats are the caller's job.

Threads and the serial handle — one rule. `_lock` guards the handle `_serial` (which port, if any, is
installed) and every write to it: a sender, the reconnect (install + resend the configuration) and
`close()` (detach) each hold it. Reads need no lock (a serial port reads and writes at once; the reader
only snapshots which port is installed, so a sender blocked in a write never stops it draining), but a port
is closed only by the reader thread, or by `close()` after the reader has stopped: a sender whose write
fails only detaches the port, and the reader closes the port it was reading once it sees it detached.
So no thread ever reads or writes a closed handle. `_cond` is separate: it guards the ack bookkeeping
(`_pending`, `_acks`, `_config*`); `_cond` may be taken while holding `_lock`, never the other way round.
"""

from __future__ import annotations

import contextlib
import errno
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import serial

from firmware_bridge.errors import UserError
from firmware_bridge.protocol import (
    PROTOCOL_VERSION,
    ClearEStop,
    Configure,
    EStop,
    Fault,
    FrameDecoder,
    Heartbeat,
    JointCommand,
    JointLimit,
    Message,
    Telemetry,
    confidence_to_u8,
    encode,
    radians_to_mrad,
)


class LinkError(UserError, RuntimeError):
    """The link cannot be used; the message names the port, says why and what to check."""


class PortNotFound(LinkError):
    """No device at that path (unplugged, wrong name, or the pty/symlink is gone)."""


class PortBusy(LinkError):
    """Another program holds the port (pyserial's exclusive lock)."""


class PortPermissionDenied(LinkError):
    """The port exists but this user may not open it."""


class ProtocolVersionMismatch(LinkError):
    """The device answers in frames with a valid CRC but another protocol version."""


@dataclass
class LinkStats:
    sent: int = 0
    unsent: int = 0  # commands given while the device was away
    acked: int = 0
    telemetry: int = 0
    faults: int = 0  # fault reports received (the `faults` deque keeps only the newest 200)
    disconnects: int = 0
    reconnects: int = 0
    rtt_ms: deque = field(default_factory=lambda: deque(maxlen=5000))
    last_reconnect_s: float | None = None  # time from losing the device to talking to it again


def _close_quietly(port: serial.SerialBase) -> None:
    with contextlib.suppress(serial.SerialException, OSError):
        port.close()


def _now_us() -> int:
    return (time.monotonic_ns() // 1000) & 0xFFFFFFFF


def _open_serial(port: str, baudrate: int) -> serial.SerialBase:
    try:
        # exclusive: a second program (another `mode2 run`) must never drive the same hand at the same time
        return serial.serial_for_url(port, baudrate=baudrate, timeout=0.02, write_timeout=0.2, exclusive=True)
    except serial.SerialException as error:
        cause = error.__cause__ if isinstance(error.__cause__, OSError) else None
        code = getattr(cause, "errno", None) or getattr(error, "errno", None)
        text = str(error)
        if code == errno.ENOENT or "No such file" in text or ("could not open port" in text and "2]" in text):
            raise PortNotFound(
                f"no serial device at {port}: is the hand plugged in and powered? "
                "(list ports: python -m serial.tools.list_ports)"
            ) from error
        if code in (errno.EAGAIN, errno.EWOULDBLOCK) or "exclusively lock" in text:
            raise PortBusy(
                f"{port} is in use by another program (is another `mode2 run` driving this hand?); "
                "stop it first — two hosts must never command one hand"
            ) from error
        if code == errno.EACCES or "Permission denied" in text:
            raise PortPermissionDenied(
                f"permission denied opening {port}: add your user to the port's group (often 'dialout') "
                "and log in again"
            ) from error
        raise LinkError(f"cannot open {port}: {error}") from error


class HandLink:
    def __init__(self, port: str, *, baudrate: int = 115200, reconnect: bool = True) -> None:
        self.port = port
        self.baudrate = baudrate
        self.reconnect = reconnect
        self.stats = LinkStats()
        self.decoder = FrameDecoder()
        self.faults: deque[Fault] = deque(maxlen=200)
        self.latest: Telemetry | None = None
        self.latest_at: float | None = None
        self.connected = threading.Event()
        self._serial: serial.SerialBase | None = None
        self._seq = 0
        self._pending: dict[int, float] = {}
        self._acks: dict[int, Telemetry] = {}
        self._cond = threading.Condition()
        self._lock = threading.Lock()  # the serial handle: see the module docstring
        self._closed = threading.Event()
        self._lost_at: float | None = None
        self._thread: threading.Thread | None = None
        self._config: Configure | None = None  # the last CONFIGURE the device acknowledged
        self._config_seq: int | None = None
        self._config_sent: Configure | None = None
        self.version_error: str | None = None  # set while the device answers in another protocol version
        self.reconnect_error: str | None = None  # why the last reopen failed, while "reconnecting"

    # -- opening ---------------------------------------------------------------------------------
    @classmethod
    def open(cls, port: str, *, baudrate: int = 115200, reconnect: bool = True, timeout: float = 2.0) -> HandLink:
        """Open `port`, check that a hand speaking our protocol answers, and start the reader."""
        link = cls(port, baudrate=baudrate, reconnect=reconnect)
        link._serial = _open_serial(port, baudrate)
        link.connected.set()
        link._thread = threading.Thread(target=link._run, name=f"hand-link {port}", daemon=True)
        link._thread.start()
        seq = link.heartbeat()
        if link.wait_ack(seq, timeout) is None:
            version = link.decoder.last_bad_version
            link.close()
            if version is not None:
                raise ProtocolVersionMismatch(
                    f"the device on {port} speaks protocol version {version}; this host speaks version "
                    f"{PROTOCOL_VERSION} — update the firmware or the host software so they match"
                )
            raise LinkError(
                f"no answer from {port} within {timeout:.1f} s: wrong port, wrong baud rate ({baudrate}), "
                "or not a mode2 hand firmware"
            )
        return link

    # -- sending ---------------------------------------------------------------------------------
    def _send(self, message: Message) -> int | None:
        with self._lock:
            return self._send_locked(message)

    def _send_locked(self, message: Message) -> int | None:
        """Frame and write `message`; the caller holds `self._lock`."""
        seq = self._seq
        self._seq = (self._seq + 1) & 0xFFFF
        stamp = _now_us()
        port = self._serial
        if port is None:
            self.stats.unsent += 1
            return None
        with self._cond:
            self._pending[seq] = time.monotonic()
            if len(self._pending) > 1000:
                for old in list(self._pending)[:500]:
                    del self._pending[old]
        try:
            port.write(encode(message, seq, stamp))
        except (serial.SerialException, OSError):
            self.stats.unsent += 1
            self._detach_locked(port)  # the reader thread closes it
            return None
        self.stats.sent += 1
        return seq

    def send_command(
        self, targets_rad: Sequence[float], *, active: bool, confidence: float, safe: bool = False
    ) -> int | None:
        """Joint targets in radians (actuator order of the firmware), `active` = the gate is open,
        `confidence` in [0, 1], `safe` (gate closed only) = ease to the safe pose now; returns the frame's
        seq (for `wait_ack`), or None if the device is away."""
        if active and safe:
            raise ValueError("a joint command cannot be both active and a go-safe request")
        return self._send(JointCommand(radians_to_mrad(list(targets_rad)), active, confidence_to_u8(confidence), safe))

    def send_command_mrad(self, targets_mrad: Sequence[int], *, active: bool, confidence: float) -> int | None:
        """As `send_command`, with targets already in int16 milliradians."""
        return self._send(JointCommand(tuple(int(t) for t in targets_mrad), active, confidence_to_u8(confidence)))

    def heartbeat(self) -> int | None:
        return self._send(Heartbeat())

    def estop(self, reason: int = 0) -> int | None:
        return self._send(EStop(reason))

    def clear_estop(self) -> int | None:
        return self._send(ClearEStop())

    def configure(self, watchdog_ms: int, limits: Sequence[JointLimit]) -> int | None:
        """Replace the device's watchdog and per-joint limits (it refuses while ACTIVE: a FAULT, no ack).
        Once acknowledged, the same configuration is re-sent after every reconnect."""
        with self._lock:
            return self._send_config_locked(Configure(watchdog_ms, tuple(limits)))

    def _send_config_locked(self, message: Configure) -> int | None:
        with self._cond:  # registered before it is written: the ack can come back before write() returns
            self._config_seq, self._config_sent = self._seq, message
        return self._send_locked(message)

    def wait_ack(self, seq: int | None, timeout: float = 1.0) -> Telemetry | None:
        """The telemetry that acknowledged frame `seq`, or None if none came within `timeout`."""
        if seq is None:
            return None
        deadline = time.monotonic() + timeout
        with self._cond:
            while seq not in self._acks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            return self._acks.pop(seq)

    # -- receiving -------------------------------------------------------------------------------
    def _run(self) -> None:
        """The reader thread: decode what arrives, close ports that died, reopen (if `reconnect`)."""
        port: serial.SerialBase | None = None  # the port this thread reads; only it closes it while open
        backoff = 0.02
        while not self._closed.is_set():
            installed = self._serial  # a snapshot; no lock, so a sender blocked in write() never stalls reading
            if installed is not port:  # a sender detached ours (its write failed): close it here
                if port is not None:
                    _close_quietly(port)
                port = installed
            if port is None:
                if not self.reconnect:
                    self._closed.wait(0.05)
                    continue
                port = self._reopen()
                if port is None:
                    self._closed.wait(backoff)
                    backoff = min(0.25, backoff * 1.5)
                else:
                    backoff = 0.02
                continue
            try:
                data = port.read(max(1, port.in_waiting))
            except (serial.SerialException, OSError):
                with self._lock:
                    self._detach_locked(port)
                _close_quietly(port)
                port = None
                continue
            if data:
                self._on_bytes(data)
        with self._lock:
            if port is not None and port is not self._serial:  # detached but not yet closed
                _close_quietly(port)

    def _reopen(self) -> serial.SerialBase | None:
        """Open the port again and install it, re-sending the acknowledged configuration before anything
        else can be written; None if the device is still away (or the link is closing)."""
        try:
            port = _open_serial(self.port, self.baudrate)
        except LinkError as error:
            self.reconnect_error = str(error)
            return None
        with self._lock:
            if self._closed.is_set():
                _close_quietly(port)
                return None
            self.reconnect_error = None
            self.decoder = FrameDecoder()
            self._serial = port
            if self._config is not None:  # it may have rebooted with its default limits
                self._send_config_locked(self._config)
            self.stats.reconnects += 1
            self.connected.set()
        return port

    def _on_bytes(self, data: bytes) -> None:
        for frame in self.decoder.feed(data):
            self._on_frame(frame.message, frame.timestamp_us)
        if self.decoder.last_bad_version is not None and self.version_error is None:
            self.version_error = (
                f"the device on {self.port} speaks protocol version {self.decoder.last_bad_version}; "
                f"this host speaks version {PROTOCOL_VERSION}"
            )

    def _on_frame(self, message: Message, echoed_us: int) -> None:
        if isinstance(message, Telemetry):
            self.stats.telemetry += 1
            self.latest = message
            self.latest_at = time.monotonic()
            if self.version_error is not None:  # it speaks our version now
                self.version_error = None
                self.decoder.last_bad_version = None
            if self._lost_at is not None:
                self.stats.last_reconnect_s = self.latest_at - self._lost_at
                self._lost_at = None
            with self._cond:
                if self._pending.pop(message.acked_seq, None) is not None:
                    self.stats.acked += 1
                    self.stats.rtt_ms.append(((_now_us() - echoed_us) & 0xFFFFFFFF) / 1000.0)
                    self._acks[message.acked_seq] = message
                    if message.acked_seq == self._config_seq and self._config_sent is not None:
                        self._config = self._config_sent
                    if len(self._acks) > 1000:
                        for old in list(self._acks)[:500]:
                            del self._acks[old]
                    self._cond.notify_all()
        elif isinstance(message, Fault):
            self.faults.append(message)
            self.stats.faults += 1

    def _detach_locked(self, port: serial.SerialBase | None) -> None:
        """`port` stopped working: uninstall it (if still installed) without closing it. Caller holds `_lock`."""
        if port is None or self._serial is not port:
            return  # another thread noticed first
        self._serial = None
        self.stats.disconnects += 1
        self._lost_at = time.monotonic()
        self.connected.clear()

    @property
    def is_connected(self) -> bool:
        return self._serial is not None

    @property
    def state(self) -> str:
        """ "connected", "reconnecting" (device gone, reopening with backoff), "disconnected" (gone and
        `reconnect=False`) or "closed"."""
        if self._closed.is_set():
            return "closed"
        if self._serial is not None:
            return "connected"
        return "reconnecting" if self.reconnect else "disconnected"

    def close(self) -> None:
        """Stop the reader, then close the port. Safe from any thread, at any time, more than once: a
        send in flight finishes first (it holds `_lock`); later sends find no port and count as unsent."""
        self._closed.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)
        with self._lock:
            port, self._serial = self._serial, None
            self.connected.clear()
        if port is not None:
            _close_quietly(port)

    def __enter__(self) -> HandLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
