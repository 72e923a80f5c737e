"""Fault tests in the loop: the host dies mid-stream, the cable is pulled and plugged back."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from firmware_bridge.hand_sim import HandSimProcess
from firmware_bridge.link import HandLink
from firmware_bridge.protocol import DeviceState, JointLimit

SAFE = (150, 200, 150, 150, 150, 150)
REPO = Path(__file__).resolve().parents[2]


def test_host_killed_mid_stream_leaves_the_hand_safe(tmp_path: Path) -> None:
    host_script = textwrap.dedent(
        """
        import sys, time
        from firmware_bridge.link import HandLink
        link = HandLink.open(sys.argv[1])
        print("streaming", flush=True)
        while True:  # a gripping hand, commanded at 50 Hz until this process is killed
            link.send_command([1.2, 1.0, 1.5, 1.5, 1.5, 1.5], active=True, confidence=0.95)
            time.sleep(0.02)
        """
    )
    with HandSimProcess(tmp_path / "hand", watchdog_ms=150) as hand:
        host = subprocess.Popen(
            [sys.executable, "-c", host_script, hand.port], stdout=subprocess.PIPE, text=True, cwd=REPO
        )
        assert host.stdout.readline().strip() == "streaming"
        gripping = hand.wait_for(lambda s: s.positions_mrad[2] == 1500, timeout=3.0)
        assert gripping is not None and gripping.state == DeviceState.ACTIVE
        host.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        host.wait()
        safe = hand.wait_for(lambda s: s.state == DeviceState.SAFE, timeout=2.0)
        assert safe is not None, "the watchdog did not fire after the host died"
        settled = hand.wait_for(lambda s: s.positions_mrad == SAFE, timeout=2.0)
        assert settled is not None, "the hand did not reach the safe pose"
        assert settled.received_at - killed_at < 2.0


def test_link_comes_back_after_the_device_is_unplugged(tmp_path: Path) -> None:
    """Cable pulled, plugged back: the link reopens the same path by itself, re-sends the configuration the
    rebooted device forgot (here: index finger limited to 0.8 rad), and commands flow again."""
    hand = HandSimProcess(tmp_path / "hand", watchdog_ms=150).start()
    limits = [JointLimit(0, 1600 if k != 2 else 800, 3500, s) for k, s in enumerate(SAFE)]
    try:
        link = HandLink.open(hand.port)
        assert link.wait_ack(link.configure(150, limits), 1.0) is not None
        assert link.wait_ack(link.send_command([0.5] * 6, active=True, confidence=1.0), 1.0) is not None
        hand.unplug()
        deadline = time.monotonic() + 2.0
        while link.is_connected and time.monotonic() < deadline:
            link.heartbeat()
            time.sleep(0.02)
        assert not link.is_connected, "the link noticed the device is gone"
        assert link.send_command([0.5] * 6, active=True, confidence=1.0) is None, "no silent sends into the void"
        restarted_at = len(hand.history)
        hand.start()  # plugged back: a new pty behind the same path
        deadline = time.monotonic() + 5.0
        ack = None
        while ack is None and time.monotonic() < deadline:
            seq = link.send_command([0.5] * 6, active=True, confidence=1.0)
            ack = link.wait_ack(seq, 0.1) if seq is not None else time.sleep(0.01)
        assert ack is not None, "commands flow again without restarting the host"
        assert link.stats.disconnects == 1 and link.stats.reconnects == 1
        assert link.stats.last_reconnect_s is not None
        # a full grip: the middle finger gets to 1.5 rad, the re-sent limit holds the index at 0.8 rad
        gripped = None
        deadline = time.monotonic() + 5.0
        while gripped is None and time.monotonic() < deadline:
            link.send_command([1.5] * 6, active=True, confidence=1.0)
            gripped = hand.wait_for(lambda s: s.state == DeviceState.ACTIVE and s.positions_mrad[3] == 1500, 0.02)
        assert gripped is not None, "the rebooted hand did not follow the grip"
        assert gripped.positions_mrad[2] == 800
        assert max(s.positions_mrad[2] for s in list(hand.history)[restarted_at:]) == 800
        link.close()
    finally:
        hand.stop()
