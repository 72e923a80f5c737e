"""The C firmware's safety behaviour, in the loop over a real pseudo-terminal (pyserial on the host side)."""

from __future__ import annotations

import itertools
import shutil
import struct
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import serial
from cobs import cobs

from firmware_bridge.firmware_build import (
    FIRMWARE_DIR,
    PROGRAMS,
    STRICT_FLAGS,
    build,
    build_sketch,
    compiler,
    cxx_compiler,
)
from firmware_bridge.hand_sim import HandSimProcess
from firmware_bridge.link import HandLink
from firmware_bridge.protocol import (
    ClearEStop,
    DeviceState,
    EStop,
    Fault,
    FaultCode,
    FrameDecoder,
    JointCommand,
    JointLimit,
    Message,
    MsgType,
    Telemetry,
    encode,
    encode_body,
)

SAFE = (150, 200, 150, 150, 150, 150)
HEAP_FUNCTIONS = {"malloc", "calloc", "realloc", "free", "aligned_alloc", "posix_memalign"}


@pytest.fixture
def hand(tmp_path: Path):
    with HandSimProcess(tmp_path / "hand", watchdog_ms=150) as sim:
        yield sim


@pytest.fixture
def link(hand: HandSimProcess):
    with HandLink.open(hand.port) as host:
        yield host


def _wait_fault(link: HandLink, code: FaultCode, timeout: float = 1.0) -> Fault | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = next((f for f in list(link.faults) if f.code == code), None)
        if found is not None:
            return found
        time.sleep(0.005)
    return None


def _commanding(link: HandLink, hand: HandSimProcess, targets: list[float], until: Callable, timeout: float = 3.0):
    """Command `targets` at 100 Hz (feeding the watchdog) until a status satisfies `until`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        link.send_command(targets, active=True, confidence=1.0)
        found = hand.wait_for(until, 0.01)
        if found is not None:
            return found
    return None


def test_firmware_builds_with_warnings_as_errors_and_its_core_uses_no_heap(tmp_path: Path) -> None:
    assert {"-Werror", "-Wall", "-Wextra", "-pedantic", "-std=c99"} <= set(STRICT_FLAGS)
    for program in PROGRAMS:
        assert build(program).exists()
    if shutil.which("nm") is None:
        pytest.skip("nm (binutils) is needed to list the symbols the core objects use")
    core = ("controller.c", "protocol.c", "cobs.c", "crc16.c")
    objects = []
    for source in core:
        obj = tmp_path / (source + ".o")
        subprocess.run([compiler(), *STRICT_FLAGS, "-c", str(FIRMWARE_DIR / source), "-o", str(obj)], check=True)
        objects.append(str(obj))
    undefined = subprocess.run(["nm", "-u", *objects], capture_output=True, text=True, check=True).stdout
    used = {line.split()[-1].lstrip("_") for line in undefined.splitlines() if line.strip() and ":" not in line}
    assert not used & HEAP_FUNCTIONS, f"the firmware core calls the heap: {used & HEAP_FUNCTIONS}"


@pytest.mark.skipif(cxx_compiler() is None, reason="the sketch is C++: needs g++ or clang++")
def test_arduino_sketch_builds_drives_its_servos_reports_noise_and_refuses_extra_joints() -> None:
    """hand_firmware.ino on a stub Arduino core (host/arduino_stub): fake clock, serial and servos."""
    result = subprocess.run([str(build_sketch())], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    seen = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert seen["done"] == "1" and seen["servos"] == "6"
    # 1000-2000 µs across each joint's range: the safe pose at boot, the clamped grip at the top
    assert seen["pulses_after_setup"] == "1115 1133 1093 1093 1093 1093"
    assert seen["pulses_gripping"] == "2000 2000 2000 2000 2000 2000"
    assert int(seen["faults_after_noise"]) & (1 << (FaultCode.FRAMING_ERROR - 1)), "line noise is reported"
    fault, detail = seen["configure_7_fault"].split(" detail ")
    assert (int(fault), int(detail)) == (FaultCode.BAD_CONFIG, 7), "7 joints on a 6-servo board is refused"
    assert seen["configure_6_acked_type"] == f"{MsgType.CONFIGURE.value} fault -1", "6 joints are accepted"
    assert seen["pulses_after_configure"] == "1100 1100 1100 1100 1100 1100", "the new safe pose, 0.1 of 1 rad"


def test_follows_commands_within_limits_and_slew(hand: HandSimProcess, link: HandLink) -> None:
    assert hand.latest().state == DeviceState.IDLE and hand.latest().positions_mrad == SAFE
    targets = [1.0, 1.0, 5.0, -1.0, 1.0, 1.0]
    seq = link.send_command(targets, active=True, confidence=0.9)
    ack = link.wait_ack(seq, 1.0)
    assert ack is not None and ack.state == DeviceState.ACTIVE
    assert ack.faults & (1 << (FaultCode.LIMIT_CLAMPED - 1)), "out-of-range targets are reported as clamped"
    start = hand.latest()
    end = _commanding(link, hand, targets, lambda s: s.positions_mrad[2] == 1600 and s.positions_mrad[3] == 0)
    assert end is not None, "index clamped to its 1.6 rad maximum, middle to its 0 rad minimum"
    assert end.state == DeviceState.ACTIVE
    # slew: index may move at most 3.5 rad/s; check every pair of status lines on the way
    path = [s for s in hand.history if start.time_ms <= s.time_ms <= end.time_ms]
    assert len(path) > 10
    for a, b in itertools.pairwise(path):
        dt = max(1, b.time_ms - a.time_ms)
        assert abs(b.positions_mrad[2] - a.positions_mrad[2]) <= 3.5 * dt + 2


def test_watchdog_eases_to_the_safe_pose(hand: HandSimProcess, link: HandLink) -> None:
    assert _commanding(link, hand, [1.2] * 6, lambda s: s.positions_mrad[2] == 1200) is not None
    last_command = time.monotonic()
    safe = hand.wait_for(lambda s: s.state == DeviceState.SAFE, timeout=2.0)
    assert safe is not None, "the watchdog never fired"
    assert safe.received_at - last_command >= 0.1, "not before the watchdog period"
    settled = hand.wait_for(lambda s: s.positions_mrad == SAFE, timeout=2.0)
    assert settled is not None and settled.state == DeviceState.SAFE
    assert _wait_fault(link, FaultCode.WATCHDOG_EXPIRED) is not None


def test_heartbeats_keep_the_hand_holding(hand: HandSimProcess, link: HandLink) -> None:
    link.wait_ack(link.send_command([0.8] * 6, active=True, confidence=1.0), 1.0)
    ack = link.wait_ack(link.send_command([0.8] * 6, active=False, confidence=0.1), 1.0)
    assert ack.state == DeviceState.HOLD, "a closed gate holds the last active targets"
    since_ms = hand.latest().time_ms
    until_ms = since_ms + 450  # three watchdog periods of heartbeats only, one per 10 ms of device time
    deadline = time.monotonic() + 5.0
    while (now_ms := hand.latest().time_ms) < until_ms and time.monotonic() < deadline:
        link.heartbeat()
        hand.wait_for(lambda s, after=now_ms + 10: s.time_ms >= after, 0.05)
    assert hand.latest().time_ms >= until_ms, "the device clock did not advance 450 ms within 5 s"
    window = [s for s in list(hand.history) if s.time_ms > since_ms]
    assert len(window) > 10 and all(s.state == DeviceState.HOLD for s in window), "never dropped to SAFE"


def test_a_go_safe_command_eases_to_the_safe_pose_without_waiting_for_the_watchdog(
    hand: HandSimProcess, link: HandLink
) -> None:
    assert _commanding(link, hand, [1.2] * 6, lambda s: s.positions_mrad[2] == 1200) is not None
    ack = link.wait_ack(link.send_command([1.2] * 6, active=False, confidence=0.0, safe=True), 1.0)
    assert ack is not None and ack.state == DeviceState.SAFE, "SAFE at once, in the acknowledgement"
    assert ack.positions_mrad[2] > 1000, "easing, not jumping"
    assert hand.wait_for(lambda s: s.positions_mrad == SAFE, 2.0) is not None
    assert not any(f.code == FaultCode.WATCHDOG_EXPIRED for f in list(link.faults)), "not the watchdog's doing"
    ack = link.wait_ack(link.send_command([0.5] * 6, active=True, confidence=1.0), 1.0)
    assert ack.state == DeviceState.ACTIVE, "a later active command resumes"


class RawHost:
    """A host without HandLink: pyserial on the pty and the Python codec, for frames HandLink never sends."""

    def __init__(self, port: str) -> None:
        self.port = serial.Serial(port, 115200, timeout=0.01)
        self.decoder = FrameDecoder()
        self.seq = 0

    def send(self, message: Message) -> int:
        self.seq += 1
        self.port.write(encode(message, self.seq, self.seq * 1000))
        return self.seq

    def send_raw(self, msg_type: int, payload: bytes) -> int:
        """A frame the Python codec refuses to build (e.g. more joints than the protocol carries)."""
        self.seq += 1
        self.port.write(cobs.encode(encode_body(msg_type, self.seq, self.seq * 1000, payload)) + b"\x00")
        return self.seq

    def until(self, predicate: Callable[[Message], bool], timeout: float = 1.0) -> Message | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for frame in self.decoder.feed(self.port.read(512)):
                if predicate(frame.message):
                    return frame.message
        return None

    def ack(self, seq: int, timeout: float = 1.0) -> Telemetry | None:
        return self.until(lambda m: isinstance(m, Telemetry) and m.acked_seq == seq, timeout)


def test_estop_latches_and_only_the_right_magic_clears_it(hand: HandSimProcess) -> None:
    host = RawHost(hand.pty_path)
    try:
        assert host.ack(host.send(JointCommand((1000,) * 6, True, 255))).state == DeviceState.ACTIVE
        assert host.ack(host.send(EStop(1))).state == DeviceState.ESTOP
        ack = host.ack(host.send(JointCommand((1000,) * 6, True, 255)))
        assert ack.state == DeviceState.ESTOP, "commands are ignored while latched"
        assert ack.faults & (1 << (FaultCode.ESTOP_LATCHED - 1))
        bad = host.send(ClearEStop(0x1234))
        fault = host.until(lambda m: isinstance(m, Fault) or (isinstance(m, Telemetry) and m.acked_seq == bad))
        assert isinstance(fault, Fault) and fault.code == FaultCode.BAD_CLEAR_MAGIC and fault.detail == bad
        assert hand.wait_for(lambda s: s.positions_mrad == SAFE, 2.0) is not None, "e-stop eases to the safe pose"
        assert hand.latest().state == DeviceState.ESTOP, "a wrong magic does not clear the latch"
        assert host.ack(host.send(ClearEStop())).state == DeviceState.IDLE
        # a frame with both ACTIVE and go-safe set (a corrupted one, say) is read the safe way
        assert host.ack(host.send(JointCommand((1000,) * 6, True, 255, True))).state == DeviceState.SAFE
    finally:
        host.port.close()


def test_wrong_joint_count_is_rejected(hand: HandSimProcess, link: HandLink) -> None:
    link.send_command([1.0] * 4, active=True, confidence=1.0)
    fault = _wait_fault(link, FaultCode.JOINT_COUNT_MISMATCH)
    assert fault is not None and fault.detail == 4
    assert link.stats.acked == 1, "only the opening heartbeat was acknowledged"
    assert hand.latest().state == DeviceState.IDLE


def test_configure_changes_limits_and_the_new_limits_clamp(hand: HandSimProcess, link: HandLink) -> None:
    limits = [JointLimit(0, 1000, 2000, 100)] * 3
    assert link.wait_ack(link.configure(200, limits), 1.0) is not None
    ack = link.wait_ack(link.send_command([2.0, 0.5, -1.0], active=True, confidence=1.0), 1.0)
    assert ack is not None and len(ack.positions_mrad) == 3
    assert ack.faults & (1 << (FaultCode.LIMIT_CLAMPED - 1))
    reached = _commanding(link, hand, [2.0, 0.5, -1.0], lambda s: s.positions_mrad == (1000, 500, 0))
    assert reached is not None, "2 rad held at the new 1 rad maximum, -1 rad at the 0 minimum"


@pytest.mark.parametrize(
    ("watchdog_ms", "limits"),
    [
        (200, [JointLimit(500, 100, 2000, 300)]),  # min > max
        (200, [JointLimit(0, 1000, 0, 100)]),  # no slew: the joint could never move
        (200, [JointLimit(0, 1000, 2000, 1500)]),  # safe pose outside the limits
        (19, [JointLimit(0, 1000, 2000, 100)]),  # watchdog below 20 ms
        (2001, [JointLimit(0, 1000, 2000, 100)]),  # watchdog above 2000 ms
        (200, [JointLimit(0, 1000, 2000, 100)] * 17),  # more joints than the protocol carries
    ],
)
def test_configure_refuses_an_impossible_configuration(
    hand: HandSimProcess, watchdog_ms: int, limits: list[JointLimit]
) -> None:
    host = RawHost(hand.pty_path)
    try:
        payload = struct.pack("<HB", watchdog_ms, len(limits)) + b"".join(
            struct.pack("<hhHh", lim.min_mrad, lim.max_mrad, lim.max_slew_mrad_s, lim.safe_mrad) for lim in limits
        )
        seq = host.send_raw(MsgType.CONFIGURE, payload)
        answer = host.until(lambda m: isinstance(m, Fault) or (isinstance(m, Telemetry) and m.acked_seq == seq))
        assert isinstance(answer, Fault) and answer.code == FaultCode.BAD_CONFIG
        assert host.ack(host.send(JointCommand((1000,) * 6, True, 255))) is not None, "still 6 joints"
    finally:
        host.port.close()
