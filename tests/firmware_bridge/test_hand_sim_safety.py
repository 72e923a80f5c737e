"""The emulated hand's safety guarantees: the watchdog range on every way in, no orphaned firmware, a
SIGTERM that eases to the safe pose, and a `--link` that never deletes what is not a stale link of ours."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.errors import UserError
from firmware_bridge.firmware_build import build, sanitizers_available
from firmware_bridge.hand_sim import HandSimError, HandSimProcess
from firmware_bridge.link import HandLink
from firmware_bridge.protocol import DeviceState

SAFE = (150, 200, 150, 150, 150, 150)
GRIP = [1.5] * 6
REPO = Path(__file__).resolve().parents[2]


# --- the watchdog range, on every way in -------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    st.one_of(
        st.integers(max_value=19),
        st.integers(min_value=2001),
        st.just(-1),
        st.just(100_000),
        st.just(65_535),
        st.floats(),
        st.booleans(),
        st.text(max_size=5),
    )
)
def test_hand_sim_process_refuses_a_watchdog_outside_20_to_2000_ms(watchdog: object) -> None:
    with pytest.raises(UserError, match="watchdog_ms"):
        HandSimProcess(watchdog_ms=watchdog)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["-1", "100000", "65536", "19", "2001", "0", "abc", "", "20x", " 150"])
def test_firmware_binary_refuses_an_out_of_range_watchdog(value: str) -> None:
    result = subprocess.run(
        [str(build("hand_sim")), "--watchdog-ms", value], capture_output=True, text=True, timeout=10, check=False
    )
    assert result.returncode == 2
    assert "PTY" not in result.stdout, "it must refuse before becoming a device"
    assert "--watchdog-ms" in result.stderr and "20 to 2000" in result.stderr


@pytest.mark.parametrize("watchdog_ms", [20, 2000])
def test_the_watchdog_bounds_themselves_are_accepted(watchdog_ms: int) -> None:
    with HandSimProcess(watchdog_ms=watchdog_ms) as hand:
        assert hand.latest() is not None and hand.latest().state == DeviceState.IDLE


def test_controller_entry_points_refuse_or_clamp_out_of_range_arguments() -> None:
    """Every public controller function, called with what no caller should pass (under ASan + UBSan when the
    compiler has them, so a read past an array aborts instead of returning garbage)."""
    binary = build("controller_probe", sanitize=sanitizers_available())
    result = subprocess.run([str(binary)], capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    seen = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert seen.pop("done") == "1", "the probe ran to the end"
    clamped, ok, bad_limits, refused = "result=1", "result=0", "result=2", "3"
    # ctrl_init clamps the watchdog into 20..2000 and says so
    assert seen["init_watchdog_0"] == f"20 {clamped}" and seen["init_watchdog_19"] == f"20 {clamped}"
    assert seen["init_watchdog_20"] == f"20 {ok}" and seen["init_watchdog_2000"] == f"2000 {ok}"
    assert seen["init_watchdog_2001"] == f"2000 {clamped}" and seen["init_watchdog_65535"] == f"2000 {clamped}"
    # impossible layouts fall back to the default six joints, IDLE at the safe pose
    for case in ("joints_0", "joints_17", "joints_255", "limits_null", "limits_min_above_max"):
        assert seen[f"init_{case}"] == f"6 {bad_limits} state=0 at_safe=1", case
    for case in ("limits_safe_outside", "limits_zero_slew"):
        assert seen[f"init_{case}"] == f"6 {bad_limits} state=0 at_safe=1", case
    assert seen["init_limits_three_valid"] == f"3 {ok} state=0 at_safe=1"
    # ctrl_set_watchdog refuses and changes nothing
    assert seen["set_watchdog_19"] == seen["set_watchdog_2001"] == seen["set_watchdog_65535"] == refused
    assert seen["watchdog_after_refusals"] == "150"
    assert seen["set_watchdog_2000"] == "0" and seen["watchdog_after_2000"] == "2000"
    assert seen["set_watchdog_null"] == refused and seen["init_null"] == refused
    # positions past the configured joints read as 0, never past the array
    assert seen["position_joint_5"] == "150"
    assert seen["position_joint_6"] == seen["position_joint_16"] == seen["position_joint_255"] == "0"
    assert seen["position_null"] == "0"
    # an unknown drop reason is still a fault (framing, bit 1), a known one keeps its own code
    assert seen["drop_unknown_reason_faults"] == seen["drop_reason_200_faults"] == "2"
    assert seen["drop_crc_faults"] == "1"
    assert seen["new_drops_version_faults"] == "4" and seen["new_drops_again_faults"] == "0"
    assert seen["at_safe_null"] == "0" and seen["feed_null"] == "0" and seen["encode_null"] == "0"
    # the shutdown path: ACTIVE at a grip → SAFE, eased to exactly the safe pose at the slew limit
    assert seen["state_after_command"] == str(int(DeviceState.ACTIVE))
    assert seen["index_after_grip"] == "1500"
    assert seen["state_after_go_safe"] == str(int(DeviceState.SAFE))
    assert seen["at_safe_pose"] == "1" and "not_at_safe_joint" not in seen
    assert 350 <= int(seen["ms_to_safe_pose"]) <= 600, "1.35 rad at 3.5 rad/s, not a jump"
    assert seen["highest_output_joint"] == "5", "no output driven past the configured joints"


# --- stopping: SIGTERM eases to safe, a dead parent takes the hand with it ---------------------------


def _grip(hand: HandSimProcess, link: HandLink) -> None:
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        link.send_command(GRIP, active=True, confidence=1.0)
        if hand.wait_for(lambda s: s.state == DeviceState.ACTIVE and s.positions_mrad[2] == 1500, 0.02):
            return
    pytest.fail("the hand never reached the grip")


def test_stop_eases_to_the_safe_pose_then_exits_and_removes_only_its_link(tmp_path: Path) -> None:
    hand = HandSimProcess(tmp_path / "hand", watchdog_ms=2000).start()
    try:
        with HandLink.open(hand.port) as link:
            _grip(hand, link)
            link.send_command(GRIP, active=True, confidence=1.0)  # the long watchdog cannot be what saves it
            stop_sent = time.monotonic()
            hand.stop()
            stopped = time.monotonic() - stop_sent
    finally:
        hand.stop()
    last = hand.history[-1]
    assert last.state == DeviceState.SAFE and last.positions_mrad == SAFE, "the last status is the safe pose"
    assert any(s.state == DeviceState.SAFE and s.positions_mrad[2] > 1000 for s in hand.history), "eased, no jump"
    assert hand.process.returncode == 0, hand.exit_message
    assert 0.3 < stopped < 3.0, f"eased at the slew limits, then exited ({stopped:.2f} s)"
    assert "safe pose" in hand.exit_message
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "link and lock file removed"


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")  # a zombie is dead, merely not yet reaped


def _start_hand_sim_command(link: Path, *extra: str) -> tuple[subprocess.Popen[str], int]:
    command = [sys.executable, "-m", "runtime.cli", "hand-sim", "--link", str(link), *extra]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    parent = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env)
    first = parent.stdout.readline()
    assert "emulated hand on /dev/" in first, first + parent.stderr.read()
    (firmware,) = _children(parent.pid)
    return parent, firmware


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds the child process through /proc")
def test_killing_hand_sim_with_sigkill_takes_the_emulated_hand_with_it(tmp_path: Path) -> None:
    link = tmp_path / "hand"
    parent, firmware = _start_hand_sim_command(link)
    assert link.is_symlink()
    parent.kill()
    killed_at = time.monotonic()
    parent.wait()
    while not _gone(firmware) and time.monotonic() - killed_at < 5.0:
        time.sleep(0.01)
    assert _gone(firmware), "the firmware process outlived its parent"
    assert time.monotonic() - killed_at < 2.0
    assert not link.exists() and not link.is_symlink(), "the orphan removed its link on the way out"
    # and the path is free for the next hand-sim at once
    with HandSimProcess(link) as hand:
        assert os.readlink(link) == hand.pty_path


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds the child process through /proc")
def test_sigterm_to_hand_sim_prints_the_safe_pose_last_and_exits_cleanly(tmp_path: Path) -> None:
    link = tmp_path / "hand"
    # a 2 s watchdog: a slow test machine cannot trip it, and the SAFE at the end can only be the SIGTERM's
    parent, firmware = _start_hand_sim_command(link, "--print-every", "0.05", "--watchdog-ms", "2000")
    try:
        with HandLink.open(str(link)) as host:
            deadline = time.monotonic() + 5.0
            line = ""
            while "index=+1.500" not in line and time.monotonic() < deadline:
                host.send_command(GRIP, active=True, confidence=1.0)
                line = parent.stdout.readline()
            assert line.startswith("ACTIVE") and "index=+1.500" in line, line
            parent.send_signal(signal.SIGTERM)
            out, err = parent.communicate(timeout=10)
    finally:
        parent.kill()
    assert parent.returncode == 0, err
    assert "Traceback" not in err
    status_lines = [line for line in out.splitlines() if "faults=0x" in line]
    assert status_lines[-1].startswith("SAFE"), out
    assert "index=+0.150" in status_lines[-1] and "thumb_rot=+0.200" in status_lines[-1]
    assert _gone(firmware) and not link.is_symlink()


# --- the link: live ones are refused and named, stale ones replaced, nothing else touched ------------


def test_a_second_hand_sim_on_a_live_link_is_refused_and_the_first_keeps_working(tmp_path: Path) -> None:
    path = tmp_path / "hand"
    with HandSimProcess(path) as first:
        with pytest.raises(HandSimError) as refused:
            HandSimProcess(path).start()
        message = str(refused.value)
        assert str(path) in message and f"pid {first.process.pid}" in message and "in use" in message
        assert os.readlink(path) == first.pty_path, "the live link was not taken over"
        with HandLink.open(first.port) as link:
            assert link.wait_ack(link.send_command([0.5] * 6, active=True, confidence=1.0), 1.0) is not None
    assert not path.is_symlink()


def test_a_stale_link_whose_hand_sim_is_gone_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "hand"
    path.symlink_to("/dev/pts/98765")  # what a crashed hand-sim leaves behind
    (tmp_path / "hand.lock").write_text("mode2 hand_sim pid 1, started by pid 1\n")  # nobody holds it
    with HandSimProcess(path) as hand:
        assert os.readlink(path) == hand.pty_path
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def _make(kind: str, path: Path) -> None:
    if kind == "regular file":
        path.write_bytes(b"precious user data\x00\xff")
    elif kind == "folder":
        path.mkdir()
        (path / "inside.txt").write_text("keep me")
    elif kind == "symlink to a file":
        (path.parent / "target.txt").write_text("target")
        path.symlink_to(path.parent / "target.txt")
    elif kind == "dangling symlink":
        path.symlink_to(path.parent / "nowhere")
    elif kind == "symlink to a folder":
        path.symlink_to(path.parent)
    elif kind == "named pipe":
        os.mkfifo(path)


def _snapshot(folder: Path) -> dict[str, tuple[str, bytes | str | None]]:
    snap: dict[str, tuple[str, bytes | str | None]] = {}
    for p in sorted(folder.rglob("*")):
        if p.is_symlink():
            snap[str(p)] = ("link", os.readlink(p))
        elif p.is_file():
            snap[str(p)] = ("file", p.read_bytes())
        else:
            snap[str(p)] = ("other", None)
    return snap


@pytest.mark.parametrize(
    "kind",
    ["regular file", "folder", "symlink to a file", "dangling symlink", "symlink to a folder", "named pipe"],
)
def test_link_refuses_anything_that_is_not_a_stale_hand_sim_link(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "hand"
    _make(kind, path)
    before = _snapshot(tmp_path)
    with pytest.raises(HandSimError) as refused:
        HandSimProcess(path).start()
    assert str(path) in str(refused.value) and "refusing" in str(refused.value)
    assert _snapshot(tmp_path) == before, "nothing changed, nothing left behind"


def test_link_in_a_missing_folder_names_the_folder(tmp_path: Path) -> None:
    with pytest.raises(HandSimError, match=f"the folder {tmp_path / 'missing'} does not exist"):
        HandSimProcess(tmp_path / "missing" / "hand").start()


def test_a_foreign_lock_file_beside_the_link_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "hand.lock").write_text("someone else's file")
    with pytest.raises(HandSimError, match="not a lock file of ours"):
        HandSimProcess(tmp_path / "hand").start()
    assert (tmp_path / "hand.lock").read_text() == "someone else's file"
    assert not (tmp_path / "hand").exists()
