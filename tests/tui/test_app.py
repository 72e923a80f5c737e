"""The dashboard driven by Textual's pilot at 80×24: widgets show what the telemetry carries, and every key
does what the help screen says. Scripted feeds stand in for the runtime's socket (the end-to-end e-stop
through a real runtime is tests/tui's feed tests); the replay tests play a real run file."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
from dashboard_script import WALL0, ScriptedFeed, connected, event, hello, hop, pilot_test, settle
from textual.widgets import Static

from tui.app import DashboardApp
from tui.screens import KEYS, ConfirmScreen, HelpScreen
from tui.widgets.gate_banner import DISCONNECTED, NO_DATA

SIZE = (80, 24)


def text_of(widget) -> str:
    """What a widget shows, as plain text."""
    rendered = widget.render()
    return getattr(rendered, "plain", None) or str(rendered)


def banner_text(app: DashboardApp) -> str:
    return " | ".join(str(s.render()) for s in app.banner.query(Static))


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> None:
    """Wall clocks are shown in local time: pin it so the expected strings hold anywhere."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    # scripted feeds stop after their messages: no "NO DATA" banner while a slow machine settles the screen
    monkeypatch.setattr("tui.app.SILENT_S", math.inf)


@pilot_test
async def test_banner_shows_gate_state_reason_armed_and_confidence_from_the_hop() -> None:
    reason = "signal: channel 2: flat (0.4 µV RMS for 500 ms)"
    hops = [hop(i) for i in range(5)]
    hops.append(hop(5, state="HOLD", gate_reason=reason, armed=True, confidence=0.81, threshold=0.55))
    feed = ScriptedFeed([connected(), hello(), *hops])
    app = DashboardApp(feed)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app, feed, 6)
        text = banner_text(app)
        assert "HOLD" in text
        assert reason in text
        assert "ARMED" in text
        assert "confidence 0.81" in text and "threshold 0.55" in text
        assert "-hold" in app.banner.classes


@pilot_test
async def test_an_advisory_that_does_not_gate_is_shown_beside_an_open_gate_and_goes_when_cleared() -> None:
    advisory = "channel 7: mains dominates — the model's input filter removes it; re-seat the electrode (1 channel(s)"
    flags = [0] * 7 + [8]  # ch 7 mains, advisory: the gate stays open
    told = hop(1, quality_flags=flags, quality_advisory=advisory)
    feed = ScriptedFeed([connected(), hello(), hop(0), told])
    app = DashboardApp(feed)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app, feed, 2)
        text = banner_text(app)
        assert "ACTIVE" in text and f"advisory: {advisory}" in text
        assert "mains" in text_of(app.emg).splitlines()[7]
        feed.push(hop(2))  # cleared
        await settle(pilot, app, feed, 3)
        assert "advisory" not in banner_text(app)


@pilot_test
async def test_each_channel_names_its_quality_flags_from_the_hello_bits() -> None:
    flags = [0, 0, 1, 0, 0, 4 | 8, 0, 0]  # ch 2 flat, ch 5 lift-off and mains
    feed = ScriptedFeed([connected(), hello(), hop(0, quality_flags=flags, quality_ok=False)])
    app = DashboardApp(feed)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app, feed, 1)
        rows = text_of(app.emg).splitlines()
        assert len(rows) == 8
        assert rows[2].rstrip().endswith("flat")
        assert "lift_off" in rows[5] and "mains" not in rows[0]
        assert rows[0].rstrip().endswith("ok")
        assert f"{hop(0)['emg_rms_uv'][3]:.0f}" in rows[3]


@pilot_test
async def test_link_and_health_panels_show_the_counters_and_count_sequence_gaps() -> None:
    seqs = [10, -1, 11, 14, -1, 15]  # 12 and 13 never arrived: two gaps; -1 = no command that hop
    hops = [hop(i, seq=s) for i, s in enumerate(seqs)]
    hops[-1] = hop(
        5,
        seq=15,
        sent=321,
        acked=318,
        rtt_ms=1.25,
        device_state=2,
        device_faults=(1 << 6),
        link_state="reconnecting",
        infer_ms=7.5,
        duty=0.31,
        latency_ms_p50=4.2,
        latency_ms_p99=9.9,
        drops=3,
        missed_hops=2,
        stream_gaps=4,
        stream_duplicates=5,
        stream_stalls=6,
    )
    feed = ScriptedFeed([connected(), hello(), *hops])
    app = DashboardApp(feed)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app, feed, 6)
        link = text_of(app.link)
        assert "reconnecting" in link
        assert "HOLD" in link  # device state 2
        assert "318/321" in link
        assert "gaps   2" in link
        assert "limit_clamped" in link  # fault code 7 = bit 6
        assert "1.25 ms" in link
        health = text_of(app.health)
        for shown in ("7.5 ms", "31%", "4.2/9.9", "drops 3", "missed 2", "gaps 4", "dups 5", "stalls 6"):
            assert shown in health, shown


@pilot_test
async def test_joint_bars_scale_targets_to_the_hand_limits_and_mark_unsent_joints() -> None:
    feed = ScriptedFeed([connected(), hello(), hop(0, targets=[1.3, 0.0, 0.8, None, 1.6, 0.4])])
    app = DashboardApp(feed)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app, feed, 1)
        rows = text_of(app.joint_bars).splitlines()
        assert len(rows) == 6
        assert "1.30" in rows[0] and "░" not in rows[0]  # thumb_flex at its max 1.3: a full bar
        assert "█" not in rows[1]  # thumb_rot at its min: an empty bar
        assert rows[3].rstrip().endswith("—")  # nothing sent for middle
        assert rows[2].count("█") == rows[2].count("░") or abs(rows[2].count("█") - rows[2].count("░")) <= 1


@pilot_test
async def test_hand_is_drawn_in_braille_from_the_joints() -> None:
    feed = ScriptedFeed([connected(), hello(), hop(0)])
    app = DashboardApp(feed)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app, feed, 1)
        drawn = text_of(app.hand)
        assert sum(1 for ch in drawn if 0x2800 < ord(ch) <= 0x28FF) > 10


@pilot_test
async def test_estop_key_sends_estop_at_once_and_the_banner_shows_when_it_latched() -> None:
    feed = ScriptedFeed([connected(), hello(), hop(0)])
    app = DashboardApp(feed)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app, feed, 1)
        await pilot.press("e")
        assert feed.sent == [("estop", None)]
        assert not isinstance(app.screen, ConfirmScreen)
        feed.push(event("estop_latched", "control channel (client-1)", WALL0 + 61.0), hop(1, state="ESTOP", estop=True))
        await settle(pilot, app, feed, 2)
        text = banner_text(app)
        assert "E-STOP" in text and "latched 17:01:01" in text
        log = "\n".join(line.text for line in app.event_log.lines)
        assert "sent estop" in log and "ack #1 estop: ok" in log and "estop_latched" in log


@pilot_test
async def test_estop_key_works_on_the_help_screen_and_overrides_a_confirmation() -> None:
    feed = ScriptedFeed([connected(), hello(), hop(0, armed=False)])
    app = DashboardApp(feed)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app, feed, 1)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        assert "E-STOP: press e" in text_of(app.screen.query_one("EstopBar"))
        await pilot.press("e")
        assert feed.sent == [("estop", None)]
        await pilot.press("escape")
        await pilot.press("a")
        assert isinstance(app.screen, ConfirmScreen)
        assert "E-STOP: press e" in text_of(app.screen.query_one("EstopBar"))
        await pilot.press("e")
        await pilot.pause()
        assert feed.sent == [("estop", None), ("estop", None)]  # the arm was not sent
        assert not isinstance(app.screen, ConfirmScreen)


@pytest.mark.parametrize(
    ("key", "armed", "estop", "expected"),
    [
        ("a", False, False, ("arm", None)),
        ("a", True, False, ("disarm", None)),
        ("c", False, True, ("clear_estop", None)),
        ("plus", True, False, ("set_threshold", 0.55)),
        ("minus", True, False, ("set_threshold", 0.45)),
    ],
)
@pilot_test
async def test_control_keys_ask_first_then_send_or_send_nothing(key, armed, estop, expected) -> None:
    feed = ScriptedFeed([connected(), hello(), hop(0, armed=armed, estop=estop, threshold=0.5)])
    app = DashboardApp(feed)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app, feed, 1)
        await pilot.press(key)
        assert isinstance(app.screen, ConfirmScreen)
        if expected[0] == "set_threshold":
            assert f"0.50 → {expected[1]:.2f}" in app.screen.detail
        await pilot.press("n")
        assert not isinstance(app.screen, ConfirmScreen)
        assert feed.sent == []  # cancelled: nothing went to the runtime
        await pilot.press(key)
        await pilot.press("y")
        await pilot.pause()
        assert feed.sent == [expected]
        await settle(pilot, app, feed, 1)
        log = "\n".join(line.text for line in app.event_log.lines)
        assert "cancelled, nothing sent" in log and f"ack #1 {expected[0]}: ok" in log


@pilot_test
async def test_control_keys_on_a_replay_say_there_is_no_runtime() -> None:
    feed = ScriptedFeed([connected(), hello(), hop(0)], live=False)
    app = DashboardApp(feed)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app, feed, 1)
        for key in ("a", "c", "plus", "e"):
            await pilot.press(key)
            assert not isinstance(app.screen, ConfirmScreen)
        log = "\n".join(line.text for line in app.event_log.lines)
        assert log.count("replay: no runtime to send to") == 4


@pilot_test
async def test_disconnect_shows_disconnected_with_the_detail_and_reconnect_restores_the_state() -> None:
    lost = "disconnected: runtime lost — reconnecting"
    feed = ScriptedFeed([connected(), hello(), hop(0), {"type": "status", "connected": False, "detail": lost}])
    app = DashboardApp(feed)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app, feed, 1)
        assert app.banner.state == DISCONNECTED
        assert lost in banner_text(app)
        feed.push(connected(), hello(), hop(1, state="SAFE", gate_reason="disarmed", armed=False))
        await settle(pilot, app, feed, 2)
        assert app.banner.state == "SAFE"
        assert "disarmed" in banner_text(app)


@pilot_test
async def test_a_connected_runtime_that_stops_sending_hops_is_shown_as_no_data_until_hops_return() -> None:
    feed = ScriptedFeed([connected(), hello(), hop(0)])
    app = DashboardApp(feed, silent_after_s=0.3)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app, feed, 1)
        deadline = time.monotonic() + 10
        while app.banner.state != NO_DATA and time.monotonic() < deadline:
            await pilot.pause(0.05)
        assert app.banner.state == NO_DATA, "the last gate state must not be shown as if it still held"
        assert "no hop from the runtime" in banner_text(app)
        feed.push(hop(1, state="HOLD", gate_reason="waiting"))
        await settle(pilot, app, feed, 2)
        assert app.banner.state == "HOLD"


@pilot_test
async def test_help_screen_lists_every_key_the_app_binds() -> None:
    feed = ScriptedFeed([connected(), hello()])
    app = DashboardApp(feed)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        shown = {k for key, _, _ in KEYS for k in key.replace("/", " ").split()}
        names = {"plus": "+", "minus": "-", "equals_sign": "+", "question_mark": "?", "left": "←", "right": "→"}
        names |= {"left_square_bracket": "[", "right_square_bracket": "]"}
        for binding in DashboardApp.BINDINGS:
            for key in binding.key.split(","):
                assert names.get(key, key) in shown, key
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


@pilot_test
async def test_every_hop_is_counted_though_the_screen_redraws_at_most_render_hz() -> None:
    hops = [hop(i, seq=i if i != 150 else 152) for i in range(400)]
    feed = ScriptedFeed([connected(), hello()])
    app = DashboardApp(feed, render_hz=10)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, app, feed, 0)
        frames_before, started_at = app.frames, time.monotonic()
        feed.push(*hops)
        deadline = time.monotonic() + 10
        while app.history.hops < 400 and time.monotonic() < deadline:
            await pilot.pause(0.02)
        elapsed = time.monotonic() - started_at
        assert app.history.hops == 400
        assert app.history.seq_gaps == 2
        assert len(app.history.confidence) == 200  # the plot keeps the last 10 s
        assert app.frames - frames_before <= elapsed * 10 + 2


# -- a real run file through ReplayFeed -----------------------------------------------------------------


def write_run_file(path: Path, hops: int = 120) -> Path:
    """A small run file written by the runtime's own RunFileWriter (the layout `mode2 run --record` writes)."""
    from runtime.run_file import HopRow, RunFileWriter

    hand_toml = (Path(__file__).resolve().parents[2] / "runtime" / "configs" / "hand6.toml").read_text()
    writer = RunFileWriter(path, channels=8, rate_hz=500.0, attrs={"hand_config": hand_toml, "hop_samples": 25})
    joints = np.array(hello_joints(), np.float32)
    for i in range(hops):
        closed = i >= 60
        writer.append_hop(
            HopRow(
                t=1000.0 + i * 0.05,
                hop=i,
                active=not closed,
                state="SAFE" if closed else "ACTIVE",
                gate_reason="confidence 0.31 < threshold 0.50" if closed else "",
                armed=True,
                estop=False,
                confidence=0.31 if closed else 0.77,
                threshold=0.5,
                joints=joints,
                theta=np.zeros(45),
                angles=np.zeros(20),
                targets=np.full(6, np.nan) if closed else np.full(6, 0.5),
                command="none" if closed else "pose",
                seq=-1 if closed else i,
                quality_flags=np.array([0, 0, 0, 1, 0, 0, 0, 0]) if closed else np.zeros(8),
                emg_rms_uv=np.full(8, 40.0),
                infer_ms=3.5,
                loop_ms=0.2,
                latency_ms=4.0,
                device_state=1,
                device_faults=0,
                acked=i,
                stream_gaps=0,
                stream_duplicates=0,
                missed_hops=0,
            )
        )
    writer.close()
    return path


def hello_joints() -> list[list[float]]:
    return hop(0)["joints"]


@pilot_test
async def test_replay_of_a_run_file_shows_its_hops_and_the_replay_keys_drive_it(tmp_path: Path) -> None:
    from tui.replay_feed import ReplayFeed

    feed = ReplayFeed(write_run_file(tmp_path / "run.h5"), start_paused=True)
    app = DashboardApp(feed)
    try:
        async with app.run_test(size=SIZE) as pilot:
            assert app.replay_bar.display
            await pilot.press("right")  # seek 5 s = 100 hops forward: lands on a closed-gate hop
            deadline = time.monotonic() + 5
            while app.replay_bar.index < 90 and time.monotonic() < deadline:
                await pilot.pause(0.02)
            app.render_latest(force=True)
            await pilot.pause()
            assert app.replay_bar.paused and app.replay_bar.total == 120
            assert app.banner.state == "SAFE"
            assert "confidence 0.31 < threshold 0.50" in banner_text(app)
            assert text_of(app.emg).splitlines()[3].rstrip().endswith("flat")
            assert f"hop {app.replay_bar.index}/120" in text_of(app.replay_bar)
            await pilot.press("right_square_bracket")
            await pilot.press("left")
            await pilot.press("space")
            deadline = time.monotonic() + 5
            while (app.replay_bar.speed != 2.0 or app.replay_bar.paused) and time.monotonic() < deadline:
                await pilot.pause(0.02)
            assert feed.speed == 2.0 and not feed.paused
            assert app.replay_bar.speed == 2.0 and not app.replay_bar.paused
            await pilot.press("a")
            log = "\n".join(line.text for line in app.event_log.lines)
            assert "replay: no runtime to send to" in log
    finally:
        feed.close()


def test_a_curled_hand_draws_shorter_than_an_open_one_in_the_back_view() -> None:
    from tui.hand_projection import PARENTS, draw_hand

    def top_row(joints) -> int:
        rows = draw_hand(joints, 14, 8).plain.splitlines()
        return next(i for i, row in enumerate(rows) if row.strip())

    open_hand = hop(0)["joints"]
    fist = [[x * 0.5, y - 0.06 * (x > 0.06), z] for x, y, z in open_hand]  # fingers folded towards the palm
    assert len(open_hand) == len(PARENTS) == 21
    assert top_row(fist) > top_row(open_hand)
