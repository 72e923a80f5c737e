"""The host end of the serial link to the hand: pyserial, a background reader, acks, reconnection.

`HandLink.open(port)` accepts a device path (/dev/ttyACM0), a pseudo-terminal or its symlink, or any
pyserial URL (`loop://`, `socket://host:port`, `rfc2217://…`). A background thread decodes telemetry and
faults, matches acknowledgements to the commands that asked for them (the device echoes the command's
timestamp, so round-trip time needs no shared clock), and — when the device disappears (cable pulled,
pty closed) — keeps reopening the same port until it is back, without the caller restarting anything.
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


class LinkError(RuntimeError):
    """The link cannot be used; the message says why and what to check."""


class PortNotFound(LinkError):
    pass


class PortPermissionDenied(LinkError):
    pass


class ProtocolVersionMismatch(LinkError):
    pass


@dataclass
class LinkStats:
    sent: int = 0
    unsent: int = 0  # commands given while the device was away
    acked: int = 0
    telemetry: int = 0
    disconnects: int = 0
    reconnects: int = 0
    rtt_ms: deque = field(default_factory=lambda: deque(maxlen=5000))
    last_reconnect_s: float | None = None  # time from losing the device to talking to it again


def _now_us() -> int:
    return (time.monotonic_ns() // 1000) & 0xFFFFFFFF


def _open_serial(port: str, baudrate: int) -> serial.SerialBase:
    try:
        return serial.serial_for_url(port, baudrate=baudrate, timeout=0.02, write_timeout=0.2)
    except serial.SerialException as error:
        cause = error.__cause__ if isinstance(error.__cause__, OSError) else None
        code = getattr(cause, "errno", None) or getattr(error, "errno", None)
        text = str(error)
        if code == errno.ENOENT or "No such file" in text or ("could not open port" in text and "2]" in text):
            raise PortNotFound(
                f"no serial device at {port}: is the hand plugged in and powered? "
                "(list ports: python -m serial.tools.list_ports)"
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
        self._write_lock = threading.Lock()
        self._closing = False
        self._lost_at: float | None = None
        self._thread: threading.Thread | None = None

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
        with self._write_lock:
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
                self._lose_device()
                return None
            self.stats.sent += 1
            return seq

    def send_command(self, targets_rad: Sequence[float], *, active: bool, confidence: float) -> int | None:
        """Joint targets in radians (actuator order of the firmware); returns the frame's seq or None."""
        return self._send(JointCommand(radians_to_mrad(list(targets_rad)), active, confidence_to_u8(confidence)))

    def heartbeat(self) -> int | None:
        return self._send(Heartbeat())

    def estop(self, reason: int = 0) -> int | None:
        return self._send(EStop(reason))

    def clear_estop(self) -> int | None:
        return self._send(ClearEStop())

    def configure(self, watchdog_ms: int, limits: Sequence[JointLimit]) -> int | None:
        return self._send(Configure(watchdog_ms, tuple(limits)))

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
        backoff = 0.02
        while not self._closing:
            port = self._serial
            if port is None:
                if not self.reconnect:
                    time.sleep(0.05)
                    continue
                try:
                    self._serial = _open_serial(self.port, self.baudrate)
                except LinkError:
                    time.sleep(backoff)
                    backoff = min(0.25, backoff * 1.5)
                    continue
                backoff = 0.02
                self.decoder = FrameDecoder()
                self.stats.reconnects += 1
                self.connected.set()
                continue
            try:
                data = port.read(max(1, port.in_waiting))
            except (serial.SerialException, OSError, TypeError):
                self._lose_device()
                continue
            if data:
                for frame in self.decoder.feed(data):
                    self._on_frame(frame.message, frame.timestamp_us)

    def _on_frame(self, message: Message, echoed_us: int) -> None:
        if isinstance(message, Telemetry):
            self.stats.telemetry += 1
            self.latest = message
            self.latest_at = time.monotonic()
            if self._lost_at is not None:
                self.stats.last_reconnect_s = self.latest_at - self._lost_at
                self._lost_at = None
            with self._cond:
                if self._pending.pop(message.acked_seq, None) is not None:
                    self.stats.acked += 1
                    self.stats.rtt_ms.append(((_now_us() - echoed_us) & 0xFFFFFFFF) / 1000.0)
                    self._acks[message.acked_seq] = message
                    if len(self._acks) > 1000:
                        for old in list(self._acks)[:500]:
                            del self._acks[old]
                    self._cond.notify_all()
        elif isinstance(message, Fault):
            self.faults.append(message)

    def _lose_device(self) -> None:
        port, self._serial = self._serial, None
        if port is not None:
            self.stats.disconnects += 1
            self._lost_at = time.monotonic()
            self.connected.clear()
            with contextlib.suppress(serial.SerialException, OSError):
                port.close()

    @property
    def is_connected(self) -> bool:
        return self._serial is not None

    def close(self) -> None:
        self._closing = True
        if self._thread is not None:
            self._thread.join(timeout=1)
        port, self._serial = self._serial, None
        if port is not None:
            port.close()

    def __enter__(self) -> HandLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
