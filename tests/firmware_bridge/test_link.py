"""The host link: ports by path, pty and URL; clear errors; a device speaking another protocol version."""

from __future__ import annotations

import os
import threading
import tty
from pathlib import Path

import pytest
import serial

from firmware_bridge.link import HandLink, LinkError, PortNotFound, PortPermissionDenied, ProtocolVersionMismatch
from firmware_bridge.protocol import FrameDecoder, Telemetry, encode_body


class PtyPeer:
    """A minimal device on a real pseudo-terminal: answers each frame with a telemetry of a given version."""

    def __init__(self, version: int = 1) -> None:
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        self.slave = slave
        self.version = version
        self.received: list = []
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        from cobs import cobs

        decoder = FrameDecoder()
        while not self._stop:
            try:
                data = os.read(self.master, 1024)
            except OSError:
                return
            for frame in decoder.feed(data):
                self.received.append(frame)
                reply = Telemetry(frame.seq, frame.type, 0, 0, (0,) * 6).payload()
                body = encode_body(0x81, 0, frame.timestamp_us, reply, version=self.version)
                os.write(self.master, cobs.encode(body) + b"\x00")

    def close(self) -> None:
        self._stop = True
        os.close(self.master)
        os.close(self.slave)


def test_pty_peer_round_trip_and_rtt() -> None:
    peer = PtyPeer()
    try:
        with HandLink.open(peer.path) as link:
            seq = link.send_command([0.1] * 6, active=True, confidence=0.5)
            ack = link.wait_ack(seq, 1.0)
            assert ack is not None and ack.acked_seq == seq
            assert link.stats.acked == 2 and len(link.stats.rtt_ms) == 2  # the opening heartbeat + this command
            assert 0 < max(link.stats.rtt_ms) < 1000
    finally:
        peer.close()
    assert peer.received[1].message.targets_mrad == (100,) * 6
    assert peer.received[1].message.confidence == 128


def test_other_protocol_version_is_named() -> None:
    peer = PtyPeer(version=2)
    try:
        with pytest.raises(ProtocolVersionMismatch, match="speaks protocol version 2"):
            HandLink.open(peer.path, timeout=0.5)
    finally:
        peer.close()


def test_missing_port_and_permission_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(PortNotFound, match="no serial device at /dev/ttyNOPE"):
        HandLink.open("/dev/ttyNOPE")
    locked = tmp_path / "locked"
    locked.write_text("")
    locked.chmod(0)
    if os.geteuid() == 0:
        # root opens any file, so a denied port cannot exist in this sandbox: raise what pyserial raises for one
        def denied(port: str, **kwargs: object) -> None:
            raise serial.SerialException(13, f"could not open port {port}: [Errno 13] Permission denied: '{port}'")

        monkeypatch.setattr(serial, "serial_for_url", denied)
    with pytest.raises(PortPermissionDenied, match=r"permission denied opening .*dialout"):
        HandLink.open(str(locked))


def test_silent_device_gets_a_clear_error() -> None:
    with pytest.raises(LinkError, match="no answer from loop://"):
        HandLink.open("loop://", timeout=0.3)  # a pyserial URL: echoes our own frames, never answers
