"""The confidence gate, the hand mapping and the operator controls, stage by stage (no device needed)."""

from __future__ import annotations

import numpy as np
import pytest

from runtime.controls import Controls
from runtime.gate import ConfidenceGate, GateInput, GateSettings, GateState
from runtime.hand_config import DEFAULT_HAND_CONFIG, HandConfigError, load_hand_config
from runtime.model_contract import N_ANGLES
from runtime.ring_buffer import EmgRing

ANGLES = [f"A{i}" for i in range(N_ANGLES)]
REAL_ANGLES = [
    f"{finger}_{joint}"
    for finger, joints in (
        ("THUMB", ("CMC_FE", "CMC_AA", "MCP_FE", "IP_FE")),
        *((f, ("MCP_AA", "MCP_FE", "PIP_FE", "DIP_FE")) for f in ("INDEX", "MIDDLE", "RING", "PINKY")),
    )
    for joint in joints
]


def feed(gate: ConfidenceGate, t: float, conf: float, ok: bool = True, armed: bool = True, estop: bool = False):
    return gate.update(GateInput(t, ok, "" if ok else "channel 3: flat line", conf, armed, estop))


def test_gate_opens_only_after_the_dwell_and_closes_at_once_on_bad_signal() -> None:
    gate = ConfidenceGate(GateSettings(threshold=0.5, hysteresis=0.05, open_dwell_s=0.1, safe_after_hold_s=0.5))
    assert feed(gate, 0.00, 0.9).state is GateState.SAFE  # never opened: safe, waiting for the dwell
    assert not feed(gate, 0.05, 0.9).active
    assert feed(gate, 0.10, 0.9).active
    closed = feed(gate, 0.15, 0.9, ok=False)
    assert closed.state is GateState.HOLD and not closed.active and "channel 3" in closed.reason
    assert feed(gate, 0.40, 0.9, ok=False).state is GateState.HOLD
    assert feed(gate, 0.66, 0.9, ok=False).state is GateState.SAFE  # held 0.5 s, then safe


def test_gate_hysteresis_keeps_it_open_between_the_two_thresholds() -> None:
    gate = ConfidenceGate(GateSettings(threshold=0.5, hysteresis=0.1, open_dwell_s=0.0))
    assert feed(gate, 0.0, 0.55).active
    assert feed(gate, 0.05, 0.45).active  # above 0.5 − 0.1
    dropped = feed(gate, 0.10, 0.39)
    assert not dropped.active and "threshold − hysteresis" in dropped.reason
    assert not feed(gate, 0.15, 0.45).active  # must climb back over 0.5 to reopen


def test_gate_never_opens_when_disarmed_or_estopped_and_says_why() -> None:
    gate = ConfidenceGate(GateSettings(open_dwell_s=0.0))
    disarmed = feed(gate, 0.0, 0.99, armed=False)
    assert not disarmed.active and disarmed.reason == "disarmed"
    stopped = feed(gate, 0.05, 0.99, estop=True)
    assert stopped.state is GateState.ESTOP and stopped.target == "safe"
    assert not feed(gate, 0.1, float("nan")).active


def test_controls_estop_latches_until_cleared_and_clearing_leaves_it_disarmed() -> None:
    controls = Controls(armed=True)
    controls.submit("estop", "test")
    controls.submit("arm", "test")
    outcomes = controls.apply_pending(lambda t: None)
    assert controls.estop and not controls.armed
    assert outcomes[1].ok is False and "e-stop is latched" in outcomes[1].detail
    controls.estop_requested = True  # what the SIGUSR1 handler does
    assert controls.apply_pending(lambda t: None)[0].detail == "already latched"
    controls.submit("clear_estop", "test")
    controls.apply_pending(lambda t: None)
    assert not controls.estop and not controls.armed
    controls.submit("set_threshold", "test", 1.5)
    assert controls.apply_pending(lambda t: None)[0].ok is False


def test_controls_refuse_arming_a_plumbing_only_source() -> None:
    controls = Controls(armed=True, allow_arming=False, why_not="sdk-synthetic is not EMG")
    assert not controls.armed
    controls.submit("arm", "keyboard")
    (outcome,) = controls.apply_pending(lambda t: None)
    assert not outcome.ok and "not EMG" in outcome.detail


def test_shipped_hand_config_maps_clamps_and_becomes_the_firmware_configuration() -> None:
    hand = load_hand_config(DEFAULT_HAND_CONFIG, REAL_ANGLES)
    assert [j.name for j in hand.joints] == ["thumb_flex", "thumb_rot", "index", "middle", "ring", "little"]
    angles = np.zeros(N_ANGLES)
    angles[REAL_ANGLES.index("INDEX_MCP_FE")] = 0.9
    angles[REAL_ANGLES.index("INDEX_PIP_FE")] = 0.9
    angles[REAL_ANGLES.index("INDEX_DIP_FE")] = 9.0  # far beyond the joint's range
    targets = hand.map_angles(angles)
    assert targets[2] == pytest.approx(1.6)  # mean 3.6 rad, clamped to max_rad
    assert targets[3] == 0.0
    limits = hand.firmware_limits()
    assert limits[2].max_mrad == 1600 and limits[2].safe_mrad == 150 and limits[2].max_slew_mrad_s == 3500
    step = hand.slew_limit(hand.safe_pose, targets, 0.05)
    assert step[2] - hand.safe_pose[2] == pytest.approx(3.5 * 0.05)


@pytest.mark.parametrize(
    ("line", "broken", "named"),
    [
        ("watchdog_ms = 150", "watchdog_ms = 100000", "watchdog_ms"),
        (
            'inputs = ["INDEX_MCP_FE", "INDEX_PIP_FE", "INDEX_DIP_FE"]',
            'inputs = ["INDEX_FE"]',
            "not outputs of this model",
        ),
        ("safe_rad = 0.2", "safe_rad = 9.0", "min_rad ≤ safe_rad ≤ max_rad"),
        ("max_slew_rad_s = 2.5", "max_slew_rad_s = -1", "max_slew_rad_s"),
    ],
)
def test_bad_hand_config_is_refused_naming_the_key(tmp_path, line: str, broken: str, named: str) -> None:
    text = DEFAULT_HAND_CONFIG.read_text()
    assert line in text
    path = tmp_path / "hand.toml"
    path.write_text(text.replace(line, broken, 1))
    with pytest.raises(HandConfigError, match=named):
        load_hand_config(path, REAL_ANGLES)
    with pytest.raises(HandConfigError, match="no such file"):
        load_hand_config(tmp_path / "missing.toml", REAL_ANGLES)


def test_ring_returns_the_window_ending_at_any_recent_sample() -> None:
    ring = EmgRing(capacity=10, channels=2)
    for start in range(0, 25, 3):
        block = np.arange(start, start + 3, dtype=float)
        ring.append(np.stack([block, -block], axis=1), block / 500)
    assert ring.total == 27
    window, _stamps = ring.latest(4)
    assert window[:, 0].tolist() == [23, 24, 25, 26]
    window, _ = ring.latest(4, upto=25)
    assert window[:, 1].tolist() == [-21, -22, -23, -24]
    with pytest.raises(ValueError):
        ring.latest(8, upto=20)  # sample 13 has left the ring


def test_all_zero_rows_reach_the_model_as_the_previous_sample() -> None:
    from runtime.loop import LoopStats, RuntimeLoop

    loop = RuntimeLoop.__new__(RuntimeLoop)  # only the repair step, without a source or a device
    loop.ring, loop.stats = EmgRing(16, 2), LoopStats()
    loop.ring.append(np.array([[5.0, -5.0]]), np.array([0.0]))
    chunk = np.array([[0.0, 0.0], [1.0, 2.0], [0.0, 0.0], [0.0, 0.0]])
    repaired = loop._repair_zero_rows(chunk)
    assert repaired.tolist() == [[5.0, -5.0], [1.0, 2.0], [1.0, 2.0], [1.0, 2.0]]
    assert chunk[0].tolist() == [0.0, 0.0], "the caller's (recorded) rows are not modified"
    assert loop.stats.zero_rows_repaired == 3


def test_every_device_fault_is_logged_even_past_the_links_bounded_history() -> None:
    from collections import deque
    from types import SimpleNamespace

    from firmware_bridge.protocol import Fault
    from runtime.loop import RuntimeLoop

    link = SimpleNamespace(faults=deque(maxlen=3), stats=SimpleNamespace(faults=0))
    loop = RuntimeLoop.__new__(RuntimeLoop)
    loop.link, loop._seen_faults, logged = link, 0, []
    loop._event = lambda kind, detail: logged.append(detail)
    for batch in (2, 5, 1):  # the second batch overflows the link's history of 3
        for _ in range(batch):
            link.stats.faults += 1
            link.faults.append(Fault(7, link.stats.faults))
        loop._check_device_faults()
    details = [d for d in logged if d.startswith("code")]
    assert details == [
        "code 7 detail 1",
        "code 7 detail 2",
        "code 7 detail 5",
        "code 7 detail 6",
        "code 7 detail 7",
        "code 7 detail 8",
    ]
    assert "2 earlier fault reports not kept by the link" in logged
