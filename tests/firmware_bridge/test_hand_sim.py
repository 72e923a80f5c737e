"""The C firmware's safety behaviour, in the loop over a real pseudo-terminal (pyserial on the host side)."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from pathlib import Path

import pytest

from firmware_bridge.firmware_build import STRICT_FLAGS, build
from firmware_bridge.hand_sim import HandSimProcess
from firmware_bridge.link import HandLink
from firmware_bridge.protocol import ClearEStop, DeviceState, FaultCode, JointLimit

SAFE = (150, 200, 150, 150, 150, 150)


@pytest.fixture
def hand(tmp_path: Path):
    with HandSimProcess(tmp_path / "hand", watchdog_ms=150) as sim:
        yield sim


@pytest.fixture
def link(hand: HandSimProcess):
    with HandLink.open(hand.port) as host:
        yield host


def test_firmware_builds_with_warnings_as_errors() -> None:
    assert {"-Werror", "-Wall", "-Wextra", "-pedantic", "-std=c99"} <= set(STRICT_FLAGS)
    assert build("hand_sim").exists() and build("codec").exists()
    sketch = Path(build.__code__.co_filename).parent / "firmware" / "hand_firmware.ino"
    assert "ctrl_tick" in sketch.read_text()
    source = (sketch.parent / "controller.c").read_text() + (sketch.parent / "protocol.c").read_text()
    assert "malloc" not in source, "the firmware core uses no heap"


def test_follows_commands_within_limits_and_slew(hand: HandSimProcess, link: HandLink) -> None:
    assert hand.latest().state == DeviceState.IDLE and hand.latest().positions_mrad == SAFE
    seq = link.send_command([1.0, 1.0, 5.0, -1.0, 1.0, 1.0], active=True, confidence=0.9)
    ack = link.wait_ack(seq, 1.0)
    assert ack is not None and ack.state == DeviceState.ACTIVE
    assert ack.faults & (1 << (FaultCode.LIMIT_CLAMPED - 1)), "out-of-range targets are reported as clamped"
    start = hand.latest()
    for _ in range(60):  # keep the watchdog fed for ~0.6 s
        link.send_command([1.0, 1.0, 5.0, -1.0, 1.0, 1.0], active=True, confidence=0.9)
        time.sleep(0.01)
    end = hand.latest()
    assert end.positions_mrad[2] == 1600, "index clamped to its 1.6 rad maximum"
    assert end.positions_mrad[3] == 0, "middle clamped to its 0 rad minimum"
    # slew: index may move at most 3.5 rad/s; check every pair of status lines on the way
    path = [s for s in hand.history if s.time_ms >= start.time_ms and s.time_ms <= end.time_ms]
    for a, b in itertools.pairwise(path):
        dt = max(1, b.time_ms - a.time_ms)
        assert abs(b.positions_mrad[2] - a.positions_mrad[2]) <= 3.5 * dt + 2


def test_watchdog_eases_to_the_safe_pose(hand: HandSimProcess, link: HandLink) -> None:
    for _ in range(40):
        link.send_command([1.2] * 6, active=True, confidence=1.0)
        time.sleep(0.01)
    last_command = time.monotonic()
    safe = hand.wait_for(lambda s: s.state == DeviceState.SAFE, timeout=2.0)
    assert safe is not None, "the watchdog never fired"
    assert safe.received_at - last_command >= 0.1, "not before the watchdog period"
    settled = hand.wait_for(lambda s: s.positions_mrad == SAFE, timeout=2.0)
    assert settled is not None and settled.state == DeviceState.SAFE
    assert any(f.code == FaultCode.WATCHDOG_EXPIRED for f in link.faults)


def test_heartbeats_keep_the_hand_holding(hand: HandSimProcess, link: HandLink) -> None:
    link.wait_ack(link.send_command([0.8] * 6, active=True, confidence=1.0), 1.0)
    ack = link.wait_ack(link.send_command([0.8] * 6, active=False, confidence=0.1), 1.0)
    assert ack.state == DeviceState.HOLD, "a closed gate holds the last active targets"
    for _ in range(40):
        link.heartbeat()
        time.sleep(0.01)
    assert hand.latest().state == DeviceState.HOLD


def test_estop_latches_and_only_the_right_magic_clears_it(hand: HandSimProcess, link: HandLink) -> None:
    link.wait_ack(link.send_command([1.0] * 6, active=True, confidence=1.0), 1.0)
    assert link.wait_ack(link.estop(1), 1.0).state == DeviceState.ESTOP
    ack = link.wait_ack(link.send_command([1.0] * 6, active=True, confidence=1.0), 1.0)
    assert ack.state == DeviceState.ESTOP, "commands are ignored while latched"
    assert ack.faults & (1 << (FaultCode.ESTOP_LATCHED - 1))
    bad = link._send(ClearEStop(0x1234))
    time.sleep(0.1)
    assert link.wait_ack(bad, 0.2) is None
    assert any(f.code == FaultCode.BAD_CLEAR_MAGIC for f in link.faults)
    assert hand.latest().state == DeviceState.ESTOP
    assert hand.wait_for(lambda s: s.positions_mrad == SAFE, 2.0) is not None, "e-stop eases to the safe pose"
    assert link.wait_ack(link.clear_estop(), 1.0).state == DeviceState.IDLE


def test_wrong_joint_count_is_rejected(hand: HandSimProcess, link: HandLink) -> None:
    seq = link.send_command([1.0] * 4, active=True, confidence=1.0)
    assert link.wait_ack(seq, 0.3) is None
    assert any(f.code == FaultCode.JOINT_COUNT_MISMATCH and f.detail == 4 for f in link.faults)
    assert hand.latest().state == DeviceState.IDLE


def test_configure_changes_limits(hand: HandSimProcess, link: HandLink) -> None:
    limits = [JointLimit(0, 1000, 2000, 100)] * 3
    assert link.wait_ack(link.configure(200, limits), 1.0) is not None
    ack = link.wait_ack(link.send_command([2.0, 2.0, 2.0], active=True, confidence=1.0), 1.0)
    assert ack is not None and len(ack.positions_mrad) == 3
    bad = [JointLimit(500, 100, 2000, 0)]  # min > max
    link.configure(200, bad)
    time.sleep(0.2)
    assert any(f.code == FaultCode.BAD_CONFIG for f in link.faults)


def test_hand_sim_command_runs(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "runtime.cli",
            "hand-sim",
            "--link",
            str(tmp_path / "h"),
            "--duration",
            "0.6",
            "--print-every",
            "0.2",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "emulated hand on /dev/pts/" in result.stdout and "IDLE" in result.stdout
