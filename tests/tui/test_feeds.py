"""The dashboard's feeds on real files: `ReplayFeed` on the committed run file (tests/fixtures/tui/run_small.h5,
a real `mode2 run --record`), paced by an injected clock so pacing is tested as logic, not as sleeps; and the
`mode2 dashboard` options' bad-input messages."""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from firmware_bridge.errors import UserError
from runtime.run_file import COUNTER_COLUMNS, TIMINGS_COLUMNS
from tui.feed import REPLAY_SPEEDS, FeedReadOnly
from tui.replay_feed import ReplayFeed, RunFileError

RUN_FILE = Path(__file__).resolve().parents[1] / "fixtures" / "tui" / "run_small.h5"
HOP_FIELDS = {
    "t", "hop", "wall", "emg_rms_uv", "quality_flags", "quality_ok", "quality_reason", "quality_advisory",
    "stream_gaps",
    "stream_duplicates", "stream_stalls", "joints", "confidence", "threshold", "state", "gate_reason", "active",
    "command", "targets", "seq", "armed", "estop", "sent", "acked", "link_state", "device_state", "device_faults",
    "rtt_ms", "infer_ms", "loop_ms", "duty", "latency_ms", "latency_ms_p50", "latency_ms_p99", "drops",
    "missed_hops",
}  # fmt: skip  # docs/TELEMETRY.md, the hop table


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="module")
def rows() -> dict[str, np.ndarray]:
    with h5py.File(RUN_FILE, "r") as f:
        data = {name: f["runtime"][name][()] for name in f["runtime"]}
        data["event_t"] = f["runtime/events_time"][:, 1]
    return data


def opened(clock: FakeClock, **options: object) -> ReplayFeed:
    """A replay of the fixture whose play clock has started (it starts with the first read)."""
    feed = ReplayFeed(RUN_FILE, clock=clock, **options)
    assert feed.read(0)["type"] == "status"
    return feed


def drain(feed: ReplayFeed) -> list[dict]:
    """Everything due now (the fake clock does not move while we read)."""
    out = []
    while (message := feed.read(0)) is not None:
        out.append(message)
    return out


def hops(messages: list[dict]) -> list[dict]:
    return [m for m in messages if m["type"] == "hop"]


def test_the_fixture_is_a_real_run_with_active_closed_and_estop_hops(rows) -> None:
    state = rows["state"]
    assert rows["active"].any() and (state == b"ACTIVE").any()
    assert (state == b"ESTOP").any() and rows["estop"].any()
    assert any(r.startswith(b"confidence") for r in rows["gate_reason"]), "closed for a reason: confidence"
    assert not rows["estop"][-1], "the e-stop was cleared again"


def test_replay_hands_out_every_row_in_order_with_the_telemetry_hop_fields(rows) -> None:
    clock = FakeClock()
    feed = opened(clock)
    clock.advance(10_000)  # everything is due
    messages = drain(feed)
    assert [m["type"] for m in messages[:2]] == ["hello", "position"]
    got = hops(messages)
    n = len(rows["t"])
    assert len(got) == n
    for i, hop in enumerate(got):
        assert set(hop) - {"v", "type", "pub_seq"} == HOP_FIELDS
        assert hop["pub_seq"] == i + 1 and hop["hop"] == int(rows["hop"][i]) and hop["t"] == float(rows["t"][i])
        assert hop["state"] == rows["state"][i].decode() and hop["active"] == bool(rows["active"][i])
        assert hop["estop"] == bool(rows["estop"][i]) and hop["armed"] == bool(rows["armed"][i])
        assert hop["seq"] == int(rows["seq"][i]) and hop["command"] == rows["command"][i].decode()
        assert hop["gate_reason"] == rows["gate_reason"][i].decode()
        assert hop["confidence"] == pytest.approx(float(rows["confidence"][i]), abs=6e-5)
        assert hop["threshold"] == pytest.approx(float(rows["threshold"][i]), abs=6e-5)
        assert np.allclose(hop["joints"], rows["joints"][i], atol=6e-6)
        targets = rows["targets"][i]
        assert [v is None for v in hop["targets"]] == list(targets == -999.0)
        assert np.allclose([v for v in hop["targets"] if v is not None], targets[targets != -999.0], atol=6e-5)
        assert hop["quality_flags"] == rows["quality_flags"][i].tolist()
        assert hop["quality_ok"] == (not rows["quality_flags"][i].any())
        for k, name in enumerate(COUNTER_COLUMNS):
            assert hop[name] == int(rows["counters"][i, k])
        for k, name in enumerate(TIMINGS_COLUMNS):
            assert hop[name] == pytest.approx(float(rows["timings_ms"][i, k]), abs=6e-4)
        assert hop["duty"] == pytest.approx((hop["infer_ms"] + hop["loop_ms"]) / 50.0, abs=1e-3)
        recent = rows["timings_ms"][max(0, i - 199) : i + 1, 2]
        assert hop["latency_ms_p99"] == pytest.approx(np.percentile(recent, 99), abs=1e-3)
        assert hop["wall"] is None and hop["rtt_ms"] is None and hop["sent"] is None  # not recorded
    assert [m["type"] for m in messages if m["type"] == "event"] == ["event"] * len(rows["event_t"])
    estop_event = next(m for m in messages if m["type"] == "event" and "e-stop latched" in m["detail"])
    first_estop_hop = next(m for m in messages if m["type"] == "hop" and m["estop"])
    assert messages.index(estop_event) < messages.index(first_estop_hop), "the event comes before its hop"
    assert messages[-2]["type"] == "status" and messages[-2]["ended"] and messages[-1]["paused"]


def test_replay_hello_describes_the_recorded_run() -> None:
    feed = ReplayFeed(RUN_FILE, clock=FakeClock())
    _, hello = feed.read(0), feed.read(0)
    assert hello["type"] == "hello" and hello["v"] == 1 and hello["commands"] == []
    assert len(hello["channels"]) == 8 and len(hello["joint_names"]) == 21 and hello["hop_ms"] == 50.0
    assert hello["command_joints"][:2] == ["thumb_flex", "thumb_rot"] and hello["hand"]["joints"][0]["max_rad"] > 0
    assert hello["quality_bits"]["saturated"] == 2 and hello["port"] == "sim"
    assert hello["model"]["metadata"]["rate_hz"] == 500.0 and len(hello["model"]["sha256"]) == 64
    with pytest.raises(FeedReadOnly):
        feed.send("estop")


def test_pacing_follows_the_recorded_time_and_the_speed(rows) -> None:
    clock = FakeClock()
    feed = opened(clock)
    t = rows["t"] - rows["t"][0]
    assert len(hops(drain(feed))) == 1, "the first hop is due at once"
    clock.advance(1.0)
    assert len(hops(drain(feed))) == int(np.sum(t <= 1.0)) - 1
    feed.set_speed(4.0)
    clock.advance(1.0)
    drain(feed)
    assert feed.index == int(np.sum(t <= 5.0)) - 1, "4 s of recording in 1 s at 4×"
    feed.speed_up()
    assert feed.speed == 8.0
    clock.advance(0.5)
    assert len(hops(drain(feed))) == int(np.sum(t <= 9.0)) - int(np.sum(t <= 5.0))


def test_quality_reason_names_the_most_fundamental_flag_as_the_signal_checker_does() -> None:
    from runtime.signal_quality import QualityFlag as Q
    from tui.replay_feed import _quality_reason

    def flags(**on: int) -> np.ndarray:
        out = np.zeros(8, np.int64)
        for channel, bits in on.items():
            out[int(channel[2:])] = bits
        return out

    assert _quality_reason(flags(), "confidence 0.31 < 0.50") == ""
    assert _quality_reason(flags(ch2=Q.FLAT), "confidence 0.31 < 0.50") == "channel 2: flat"
    assert _quality_reason(flags(ch2=Q.FLAT, ch5=Q.SATURATED | Q.MAINS), "") == "channel 5: saturated"
    assert _quality_reason(flags(ch0=Q.GAP | Q.FLAT, ch3=Q.WARMUP), "") == "stream: warmup"
    assert _quality_reason(flags(ch1=Q.LIFT_OFF), "") == "channel 1: lift-off"
    assert _quality_reason(flags(ch1=Q.MAINS), "signal: channel 1: mains hum") == "channel 1: mains hum"


def test_the_play_clock_starts_with_the_first_read_not_when_the_file_opens() -> None:
    clock = FakeClock()
    feed = ReplayFeed(RUN_FILE, clock=clock)
    clock.advance(60.0)  # the dashboard took its time to start
    assert len(hops(drain(feed))) == 1


def test_pause_stops_hops_and_resume_continues_where_it_stopped() -> None:
    clock = FakeClock()
    feed = opened(clock)
    clock.advance(1.0)
    drain(feed)
    before = feed.index
    feed.pause()
    clock.advance(100.0)
    after_pause = drain(feed)
    assert hops(after_pause) == [] and after_pause[-1] == {**after_pause[-1], "paused": True, "index": before}
    feed.resume()
    clock.advance(0.06)
    assert [h["pub_seq"] - 1 for h in hops(drain(feed))] == [before + 1]
    feed.toggle_pause()
    assert feed.paused


def test_seek_shows_the_hop_there_at_once_even_when_paused(rows) -> None:
    clock = FakeClock()
    feed = opened(clock, start_paused=True)
    drain(feed)
    feed.seek(5.0)
    got = drain(feed)
    assert len(hops(got)) == 1 and hops(got)[0]["t"] == pytest.approx(rows["t"][0] + 5.0, abs=0.051)
    assert got[-1]["type"] == "position" and got[-1]["t"] == pytest.approx(5.0, abs=0.051)
    feed.seek(-2.0)
    assert hops(drain(feed))[0]["t"] == pytest.approx(rows["t"][0] + 3.0, abs=0.051)
    feed.seek_to(-1)
    assert hops(drain(feed))[0]["pub_seq"] == len(rows["t"])
    feed.seek(-1000)
    assert hops(drain(feed))[0]["pub_seq"] == 1
    clock.advance(100)
    assert hops(drain(feed)) == [], "still paused"


def test_the_end_pauses_and_resume_plays_from_the_start() -> None:
    clock = FakeClock()
    feed = opened(clock, speed=8)
    clock.advance(1000)
    end = drain(feed)
    assert end[-1]["paused"] and end[-1]["index"] == feed.total - 1 and feed.paused
    clock.advance(1000)
    assert drain(feed) == []
    feed.resume()
    assert hops(drain(feed))[0]["pub_seq"] == 1


def test_speed_is_clamped_to_the_replay_speeds() -> None:
    feed = ReplayFeed(RUN_FILE, speed=100, clock=FakeClock())
    assert feed.speed == REPLAY_SPEEDS[-1]
    feed.set_speed(0.01)
    assert feed.speed == REPLAY_SPEEDS[0]
    feed.speed_down()
    assert feed.speed == REPLAY_SPEEDS[0]
    feed.speed_up()
    assert feed.speed == REPLAY_SPEEDS[1]


def test_a_waiting_read_returns_at_once_after_a_control_call() -> None:
    """read() blocks on a Condition, not a sleep: a paused feed's reader wakes as soon as the UI seeks."""
    feed = ReplayFeed(RUN_FILE, start_paused=True)
    drain(feed)
    woke = threading.Event()
    took: list[float] = []

    def reader() -> None:
        started = time.monotonic()
        message = feed.read(10.0)
        took.append(time.monotonic() - started)
        if message is not None:
            woke.set()

    thread = threading.Thread(target=reader)
    thread.start()
    time.sleep(0.05)  # let the reader block (the assertion below does not depend on it)
    feed.seek_to(10)
    assert woke.wait(2.0) and took[0] < 2.0
    thread.join(1.0)
    feed.close()
    assert feed.read(5.0) is None  # closed: returns at once


# ---- bad run files: a UserError naming the file and what is wrong ----


def test_replay_refuses_what_is_not_a_run_file(tmp_path: Path) -> None:
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    empty = tmp_path / "empty.h5"
    empty.touch()
    session = tmp_path / "session.h5"
    with h5py.File(session, "w") as f:
        f.create_dataset("emg/raw", data=np.zeros((10, 8), np.float32))
    no_hops = tmp_path / "no_hops.h5"
    with h5py.File(RUN_FILE, "r") as src, h5py.File(no_hops, "w") as dst:
        for name, ds in src["runtime"].items():
            dst.create_dataset(f"runtime/{name}", data=ds[:0])
    cases = {
        tmp_path / "missing.h5": "no such file",
        text: "not an HDF5 file",
        empty: "is empty",
        session: "no 'runtime/' group",
        no_hops: "no hops",
        tmp_path: "is a folder",
    }
    for path, problem in cases.items():
        with pytest.raises(RunFileError, match=problem) as caught:
            ReplayFeed(path)
        assert str(path) in str(caught.value)


def _dashboard_args(*argv: str) -> argparse.Namespace:
    from tui.dashboard_command import add_arguments

    parser = argparse.ArgumentParser(prog="mode2 dashboard")
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_dashboard_options_name_themselves_in_errors(tmp_path: Path) -> None:
    from tui.dashboard_command import open_feed

    with pytest.raises(UserError, match=r"--replay: run file .*missing\.h5: no such file"):
        open_feed(_dashboard_args("--replay", str(tmp_path / "missing.h5")))
    with pytest.raises(UserError, match=r"--attach: .*nonsense:port.*numeric port"):
        open_feed(_dashboard_args("--attach", "nonsense:port"))
    with pytest.raises(SystemExit):  # argparse: one of the three modes, not two
        _dashboard_args("--replay", str(RUN_FILE), "--demo")
    feed = open_feed(_dashboard_args("--replay", str(RUN_FILE), "--speed", "5"))
    assert isinstance(feed, ReplayFeed) and feed.speed == 4.0  # rounded to a replay speed
    feed.close()
