"""The host link: ports by path, pty and URL; clear errors; a device speaking another protocol version."""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
import threading
import time
import tty
from collections.abc import Callable
from pathlib import Path

import pytest
from cobs import cobs

from firmware_bridge.hand_sim import HandSimProcess
from firmware_bridge.link import HandLink, LinkError, PortNotFound, ProtocolVersionMismatch
from firmware_bridge.protocol import Configure, Fault, FrameDecoder, JointLimit, Telemetry, encode_body

REPO = Path(__file__).resolve().parents[2]


class PtyPeer:
    """A minimal device on a real pseudo-terminal: answers each frame with a telemetry of a given version.

    With `link`, a symlink at that path points at the pty (as the hand-sim does), so a test can "unplug"
    the peer and plug a new one in behind the same path.
    """

    def __init__(self, version: int = 1, link: Path | None = None) -> None:
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        self.slave = slave
        self.link = link
        if link is not None:
            link.unlink(missing_ok=True)
            link.symlink_to(self.path)
        self.version = version
        self.received: list = []
        self._stop = False
        self._write_lock = threading.Lock()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def port(self) -> str:
        return str(self.link) if self.link is not None else self.path

    def _serve(self) -> None:
        decoder = FrameDecoder()
        while not self._stop:
            # poll, so close() can stop this thread: a read blocked on the master fd would keep the pty alive
            if not select.select([self.master], [], [], 0.01)[0]:
                continue
            try:
                data = os.read(self.master, 1024)
            except OSError:
                return
            for frame in decoder.feed(data):
                self.received.append(frame)
                self.send(Telemetry(frame.seq, frame.type, 1, 0, (7,) * 6), echo_us=frame.timestamp_us)

    def send(self, message: object, echo_us: int = 0) -> None:
        body = encode_body(message.type, 0, echo_us, message.payload(), version=self.version)
        with self._write_lock:
            os.write(self.master, cobs.encode(body) + b"\x00")

    def close(self) -> None:
        """Unplug: the pty disappears under the host (its reads fail), and so does the symlink."""
        self._stop = True
        self.thread.join(timeout=2)
        if self.link is not None:
            self.link.unlink(missing_ok=True)
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


def test_missing_port_is_named() -> None:
    with pytest.raises(PortNotFound, match="no serial device at /dev/ttyNOPE"):
        HandLink.open("/dev/ttyNOPE")


def test_permission_denied_on_a_real_pty() -> None:
    """A pty the user may not open. Root may open anything, so as root the check runs in a child process
    without the DAC-override capabilities (util-linux `setpriv`): a real EACCES from the kernel."""
    peer = PtyPeer()
    os.chmod(peer.path, 0)
    probe = (
        "import sys\n"
        "from firmware_bridge.link import HandLink, PortPermissionDenied\n"
        "try:\n    HandLink.open(sys.argv[1])\n"
        "except PortPermissionDenied as error:\n    print('DENIED', error)\n"
    )
    command = [sys.executable, "-c", probe, peer.path]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            peer.close()
            pytest.skip("running as root without setpriv: cannot take away the right to open any file")
        drop = "-dac_override,-dac_read_search"
        command = ["setpriv", f"--bounding-set={drop}", f"--inh-caps={drop}", *command]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=30, cwd=REPO)
    finally:
        peer.close()
    assert result.stdout.startswith(f"DENIED permission denied opening {peer.path}"), result.stdout + result.stderr
    assert "dialout" in result.stdout


def test_unplugged_device_is_reopened_at_the_same_path_and_reconfigured(tmp_path: Path) -> None:
    peer = PtyPeer(link=tmp_path / "hand")
    with HandLink.open(peer.port) as link:
        assert link.state == "connected"
        limits = [JointLimit(0, 1000, 2000, 100)] * 6
        assert link.wait_ack(link.configure(120, limits), 1.0) is not None
        peer.close()
        assert _wait_until(lambda: link.state == "reconnecting"), "the link noticed the device is gone"
        assert _wait_until(lambda: link.reconnect_error is not None)
        assert link.reconnect_error.startswith(f"no serial device at {peer.port}")
        assert link.send_command([0.1] * 6, active=True, confidence=1.0) is None, "no silent sends into the void"
        assert link.stats.unsent >= 1
        peer = PtyPeer(link=tmp_path / "hand")  # plugged back in: a new pty behind the same path
        try:
            assert _wait_until(lambda: link.state == "connected")
            assert link.wait_ack(link.send_command([0.1] * 6, active=True, confidence=1.0), 1.0) is not None
            assert link.stats.disconnects == 1 and link.stats.reconnects == 1
            first = peer.received[0].message
            assert isinstance(first, Configure) and first.watchdog_ms == 120 and list(first.limits) == limits
            assert link.stats.last_reconnect_s is not None and link.reconnect_error is None
        finally:
            peer.close()
    assert link.state == "closed"


def test_without_reconnect_the_link_stays_down(tmp_path: Path) -> None:
    peer = PtyPeer(link=tmp_path / "hand")
    with HandLink.open(peer.port, reconnect=False) as link:
        peer.close()
        assert _wait_until(lambda: link.state == "disconnected")
        peer = PtyPeer(link=tmp_path / "hand")
        try:
            assert not _wait_until(lambda: link.state == "connected", timeout=0.5)
        finally:
            peer.close()


def test_telemetry_and_faults_from_the_device_are_kept() -> None:
    peer = PtyPeer()
    try:
        with HandLink.open(peer.path) as link:
            peer.send(Fault(6, 5))
            peer.send(Telemetry(0, 0, 3, 1 << 7, (150, 200, 150, 150, 150, 150)))
            assert _wait_until(lambda: len(link.faults) == 1 and link.latest.state == 3)
            assert link.faults[0] == Fault(6, 5)
            assert link.latest.positions_mrad == (150, 200, 150, 150, 150, 150)
            assert link.stats.acked == 1, "unsolicited telemetry is not an ack"
    finally:
        peer.close()


def test_a_device_that_switches_version_is_reported(tmp_path: Path) -> None:
    peer = PtyPeer()
    try:
        with HandLink.open(peer.path) as link:
            assert link.version_error is None
            peer.version = 3
            seq = link.heartbeat()
            assert link.wait_ack(seq, 0.3) is None
            assert _wait_until(lambda: link.version_error is not None)
            assert f"{peer.path} speaks protocol version 3" in link.version_error
            peer.version = 1
            assert link.wait_ack(link.heartbeat(), 1.0) is not None
            assert link.version_error is None
    finally:
        peer.close()


def _wait_until(condition: Callable[[], bool], timeout: float = 3.0) -> bool:
    """Poll `condition` until it holds (True) or `timeout` passes (False). Bounds a wait, asserts no time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return condition()


def test_silent_device_gets_a_clear_error() -> None:
    with pytest.raises(LinkError, match="no answer from loop://"):
        HandLink.open("loop://", timeout=0.3)  # a pyserial URL: echoes our own frames, never answers


@pytest.mark.parametrize("close_while", ["connected", "reconnecting"])
def test_send_close_and_reconnect_from_many_threads_never_raise_or_deadlock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, close_while: str
) -> None:
    """Four threads send (commands, heartbeats, configurations) while the emulated hand (the C firmware on a
    real pty) is unplugged and plugged back in twice, then `close()` runs from another thread mid-send (with
    the hand there, or unplugged again while the link reopens it). Every thread must finish within its
    bound (no deadlock) and none may raise, the reader included."""
    crashes: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: crashes.append(args.exc_value))
    errors: list[BaseException] = []
    stop = threading.Event()
    path = tmp_path / "hand"
    hand = HandSimProcess(path, watchdog_ms=150).start()
    link = HandLink.open(hand.port)
    limits = [JointLimit(0, 1600, 3500, 150)] * 6

    def sender(kind: int) -> None:
        try:
            while not stop.is_set():
                if kind == 0:
                    link.send_command([0.5] * 6, active=True, confidence=1.0)
                elif kind == 1:
                    link.heartbeat()
                elif kind == 2:
                    link.configure(150, limits)
                else:
                    link.wait_ack(link.send_command_mrad([300] * 6, active=False, confidence=0.2), 0.05)
        except BaseException as error:  # any exception at all is the failure under test
            errors.append(error)

    senders = [threading.Thread(target=sender, args=(k,), daemon=True) for k in range(4)]
    try:
        for thread in senders:
            thread.start()
        for _ in range(2):
            assert _wait_until(lambda: link.stats.sent > 20 + link.stats.unsent, timeout=5.0)
            hand.unplug()
            assert _wait_until(lambda: link.state == "reconnecting", timeout=5.0)
            hand = HandSimProcess(path, watchdog_ms=150).start()
            assert _wait_until(lambda: link.state == "connected", timeout=5.0), link.reconnect_error
        if close_while == "reconnecting":
            hand.unplug()
            assert _wait_until(lambda: link.reconnect_error is not None, timeout=5.0)
        closer = threading.Thread(target=link.close, daemon=True)
        closer.start()
        closer.join(timeout=5.0)
        assert not closer.is_alive(), "close() deadlocked against the senders"
        assert link.state == "closed" and link.send_command([0.1] * 6, active=True, confidence=1.0) is None
    finally:
        stop.set()
        for thread in senders:
            thread.join(timeout=5.0)
        link.close()
        hand.stop()
    assert not any(thread.is_alive() for thread in senders), "a sender deadlocked"
    assert not [t for t in threading.enumerate() if t.name == f"hand-link {path}"], "the reader thread stopped"
    assert errors == [] and crashes == []
    assert link.stats.reconnects == 2 and link.stats.disconnects == (2 if close_while == "connected" else 3)
