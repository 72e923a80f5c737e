"""The incremental engines (runtime/streaming.py) as the runtime uses them: warm-up and its note, what they
refuse, the continuous engine's lanes, bounded memory, and `mode2 run --engine exact|continuous` driving the
emulated hand."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from probe.cli_probe import assert_user_error, run_mode2  # tests/ is on sys.path (rootdir conftest)
from test_run_e2e import SOUND_SESSION, _with_policy, read_runtime, run_on

from firmware_bridge.emg_filter import InputFilter, StreamFilter, filter_session
from firmware_bridge.emg_sources import open_source
from firmware_bridge.errors import UserError
from firmware_bridge.session import read_session
from firmware_bridge.session.writer import SessionWriter
from runtime.controls import Controls
from runtime.gate import ConfidenceGate, GateDecision, GateSettings, GateState
from runtime.hand_config import DEFAULT_HAND_CONFIG, load_hand_config
from runtime.inference import Prediction, WindowedEngine, initial_state, make_engine
from runtime.input_stage import InputStage
from runtime.loop import RuntimeLoop
from runtime.model_metadata import LoadedModel, ModelMetadataError, load_model, load_stream_graphs
from runtime.run_file import RunFileWriter
from runtime.signal_quality import SignalQuality
from runtime.streaming import ENCODER_RECEPTIVE_SAMPLES, StreamingEngine

WINDOW = 1000


@pytest.fixture(scope="module")
def model(exported_model: Path) -> LoadedModel:
    return load_model(exported_model)


@pytest.fixture(scope="module")
def graphs(model: LoadedModel):
    return load_stream_graphs(model)


@pytest.fixture(scope="module")
def raw(small_world: Path) -> np.ndarray:
    """The held-out session's first 24 s of raw µV (its long gap comes later)."""
    return np.asarray(read_session(small_world / "s01_r03.h5").emg_raw[:12000], np.float64)


def feed_in_blocks(engine, samples: np.ndarray, block: int = 23) -> None:
    for a in range(0, len(samples), block):
        engine.feed(samples[a : a + block])


def hops(engine, samples: np.ndarray):
    """Feed a fresh engine `samples` in uneven blocks of 1–29, yielding (end, prediction) at every hop (the
    first at 1000) the moment its samples are in, with `idle()` after each, as the loop does."""
    rng = np.random.default_rng(len(samples))
    fed, next_end = 0, WINDOW
    while fed < len(samples):
        block = samples[fed : fed + int(rng.integers(1, 30))]
        engine.feed(block)
        fed += len(block)
        while next_end <= fed:
            yield next_end, engine.infer(next_end)
            engine.idle()
            next_end += engine.hop


# -- warm-up and its note ------------------------------------------------------------------------------
def test_after_a_restart_the_exact_engine_is_not_ready_says_why_with_zero_confidence_until_a_window_passed(
    model, graphs, raw
) -> None:
    engine = StreamingEngine("exact", model, graphs, 20)
    feed_in_blocks(engine, raw[:3000])
    assert engine.infer(3000).ready
    engine.restart(0)
    feed_in_blocks(engine, raw[3000:3600])
    waiting = engine.infer(3600)
    assert not waiting.ready and waiting.confidence == 0.0
    assert "engine exact: warming up" in waiting.note and "1.20 s" in waiting.note, waiting.note
    assert np.isfinite(waiting.theta).all() and np.isfinite(waiting.joints).all()
    feed_in_blocks(engine, raw[3600:3980])
    assert not engine.infer(3980).ready, "ready before a whole window of signal after the restart"
    feed_in_blocks(engine, raw[3980:4000])
    ready = engine.infer(4000)
    assert ready.ready and ready.note == "" and np.abs(ready.theta - waiting.theta).max() > 1e-3


def _loop_with(model: LoadedModel, engine, session: Path, record: Path, hop: int) -> RuntimeLoop:
    meta = model.meta
    hand = load_hand_config(DEFAULT_HAND_CONFIG, meta.angle_names)
    source = open_source(f"replay:{session}", speed=0, chunk_samples=10)  # unpaced, 20-ms blocks
    recorder = RunFileWriter(record, channels=meta.channels, rate_hz=meta.sampling_rate_hz, attrs={})
    return RuntimeLoop(
        source=source,
        quality=SignalQuality(sampling_rate_hz=meta.sampling_rate_hz, channels=meta.channels),
        engine=engine,
        gate=ConfidenceGate(GateSettings(0.0, hand.hysteresis, hand.open_dwell_s, hand.safe_after_hold_s)),
        hand=hand,
        link=None,
        controls=Controls(armed=True, allow_arming=True, why_not=""),
        hop_samples=hop,
        recorder=recorder,
        catch_up=True,
        stop=threading.Event(),
    )


class StopAfter:
    """The engine under test, unchanged, with the loop's stop event set after `hops` inferences (a replay at
    speed 0 would otherwise run the whole 30-s session)."""

    def __init__(self, engine, hops: int, stop: threading.Event) -> None:
        self.engine, self.left, self.stop = engine, hops, stop
        self.name, self.window_samples = engine.name, engine.window_samples
        self.feed, self.restart, self.idle = engine.feed, engine.restart, engine.idle

    def infer(self, end: int):
        self.left -= 1
        if self.left <= 0:
            self.stop.set()
        return self.engine.infer(end)


def test_the_loop_closes_the_gate_with_the_engines_note_while_it_is_not_ready(model, graphs, small_world, tmp_path):
    """One continuous lane restarted every 70 steps is not ready for ~1.1 s after each restart: the real loop
    (replay source, quality, gate, run file) closes the gate for exactly those hops, with the engine's note,
    and opens it again in between."""
    hop = 20
    engine = StreamingEngine("continuous", model, graphs, hop, lanes=1, lane_steps=70)
    record = tmp_path / "run.h5"
    # on a session the world makes sound for the gate (r01 drifts ~30 mV per 2 s, fast enough to read as
    # lift-off on every channel for most of these hops: the gate would never open between the warm-ups)
    loop = _loop_with(model, engine, small_world / f"{SOUND_SESSION}.h5", record, hop)
    loop.engine = StopAfter(engine, 220, loop.stop)
    try:
        stats = loop.run()
    finally:
        loop.source.close()
        loop.recorder.close()
    run = read_runtime(record)
    reasons = np.array([r.decode() for r in run["gate_reason"]])
    warming = np.char.find(reasons, "signal: engine continuous: warming up") >= 0
    assert len(reasons) == 220
    assert warming.any() and not (run["state"][warming] == b"ACTIVE").any()
    assert (run["confidence"][warming] == 0).all() and not run["active"][warming].any()
    # one stretch per lane restart (every 35 frames = 1.4 s), the gate open between
    starts = np.flatnonzero(np.diff(warming.astype(int)) == 1)
    assert len(starts) >= 4 and np.all(np.diff(starts) == 35), starts
    # a lane restarted at frame f has taken 2k − 1 steps before frame f + k emits: as many as a window's
    # rollout (55 with the emitting frame's two) from k = 27 on, so 26 hops at a 20-sample hop are not ready
    lengths = [int(np.argmin(warming[a + 1 :])) for a in starts if not warming[a + 1 :].all()]
    assert lengths and set(lengths) == {26}, lengths
    reopened = [(run["state"][a - 12 : a + 1] == b"ACTIVE").any() for a in starts[1:]]
    assert sum(reopened) >= 2, "the gate did not open again between the engine's warm-ups"
    assert any(key.startswith("signal: engine continuous: warming up") for key in stats.reasons), stats.reasons


# -- what the engines refuse -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def export_copy(exported_model: Path, tmp_path_factory: pytest.TempPathFactory):
    """A fresh copy of the export (model + streaming siblings) per call, in its own folder."""
    root = tmp_path_factory.mktemp("copies")
    counter = iter(range(1000))

    def make() -> Path:
        folder = root / f"c{next(counter)}"
        folder.mkdir()
        for path in exported_model.parent.glob(f"{exported_model.stem}.*"):
            if not path.name.endswith(".int8.onnx"):
                shutil.copy(path, folder / path.name)
        return folder / exported_model.name

    return make


@pytest.fixture(scope="module")
def refusals(
    exported_model: Path, export_copy, small_world: Path
) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    """`mode2 run --engine exact` on two bad set-ups, side by side (each a fresh interpreter): case → (result,
    model)."""
    replay = f"replay:{small_world / 's01_r03.h5'}"
    feedback = export_copy()
    _with_policy(feedback, "feedback", feedback)
    cases = {"feedback": (feedback, "40"), "hop": (exported_model, "22")}  # 22 ms = 11 samples

    def run(model: Path, hop_ms: str) -> subprocess.CompletedProcess[str]:
        return run_mode2(
            "run",
            "--model",
            model,
            "--source",
            replay,
            "--port",
            "sim",
            "--engine",
            "exact",
            "--hop-ms",
            hop_ms,
            timeout=60,
        )

    with ThreadPoolExecutor(len(cases)) as pool:
        futures = {case: pool.submit(run, *args) for case, args in cases.items()}
        return {case: (futures[case].result(), cases[case][0]) for case in cases}


def test_run_engine_exact_refuses_a_feedback_policy_model(refusals) -> None:
    result, model = refusals["feedback"]
    assert_user_error(result, "--engine exact", model.name, "feedback", "--engine windowed")


def test_run_engine_exact_refuses_a_hop_that_is_not_a_multiple_of_5_samples(refusals) -> None:
    result, _model = refusals["hop"]
    assert_user_error(result, "--engine exact", "11 samples", "multiple of 5 samples", "--engine windowed")


@pytest.mark.parametrize("part", ["head", "lstm_step"])
def test_a_streaming_file_that_does_not_belong_to_the_model_is_refused_by_name(export_copy, part: str) -> None:
    path = export_copy()
    target = path.with_name(f"{path.stem}.{part}.onnx")
    shutil.copy(path.with_name(f"{path.stem}.encoder_step.onnx"), target)  # valid ONNX, not the one named
    with pytest.raises(ModelMetadataError) as error:
        make_engine("exact", load_model(path), 20)
    assert isinstance(error.value, UserError)  # `mode2 run` prints it as one line, exit 2
    assert str(error.value).startswith(str(target)) and "sha256" in str(error.value), error.value


def test_a_missing_streaming_file_is_refused_by_name(export_copy) -> None:
    path = export_copy()
    missing = path.with_name(f"{path.stem}.encoder_step.onnx")
    missing.unlink()
    with pytest.raises(ModelMetadataError) as error:
        make_engine("continuous", load_model(path), 20)
    assert str(missing) in str(error.value) and "no such" in str(error.value), error.value


def test_the_same_copies_run_when_nothing_is_changed(export_copy) -> None:
    """The refusals above come from the change each made, not from copying the export."""
    copy = load_model(export_copy())
    assert load_stream_graphs(copy).info.frame_samples == 20


# -- the continuous engine ----------------------------------------------------------------------------
def _poses(engine, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ends, theta, ready = [], [], []
    for end, prediction in hops(engine, raw):
        ends.append(end)
        theta.append(prediction.theta)
        ready.append(prediction.ready)
    return np.array(ends), np.array(theta), np.array(ready)


def test_continuous_lanes_restart_on_schedule_and_one_lane_never_restarts(model, graphs, raw) -> None:
    """Two lanes of 110 steps equal one never-restarting lane until lane 0's first restart (the pose then
    comes from lane 1, started half a period later), and differ from the next hop on."""
    hop = 20
    samples = raw[:6000]
    one = StreamingEngine("continuous", model, graphs, hop, lanes=1, lane_steps=None)
    two = StreamingEngine("continuous", model, graphs, hop, lanes=2, lane_steps=110)
    ends, theta_one, ready_one = _poses(one, samples)
    _, theta_two, ready_two = _poses(two, samples)
    assert ready_one.all() and ready_two.all(), "continuous is ready from the first hop after a start"
    # lane 0 starts at the first frame end ≥ 450 on the grid (…15 mod 20) and restarts 55 frames later
    first_frame = ENCODER_RECEPTIVE_SAMPLES + (15 - ENCODER_RECEPTIVE_SAMPLES) % 20
    restart_frame = first_frame + 55 * 20
    last_same = restart_frame + 5  # the window whose pose lane 0 gave just before it restarted
    same = ends <= last_same
    assert np.abs(theta_one[same] - theta_two[same]).max() < 1e-6
    diff = np.abs(theta_one - theta_two).max(axis=1)
    assert diff[ends == last_same + hop][0] > 1e-4, "the pose did not switch lanes at lane 0's restart"
    assert (diff[~same] > 1e-5).mean() > 0.95


def test_one_continuous_lane_drifts_from_the_exact_pose_and_two_lanes_stay_closer(model, graphs, raw) -> None:
    """Continuous is not exact: over 13 s its poses differ from exact's; re-anchored lanes track exact better
    than one lane that never restarts."""
    samples = raw[:6500]
    _, exact, _ = _poses(StreamingEngine("exact", model, graphs, 20), samples)
    _, one, _ = _poses(StreamingEngine("continuous", model, graphs, 20, lanes=1, lane_steps=None), samples)
    _, two, _ = _poses(StreamingEngine("continuous", model, graphs, 20), samples)
    late = slice(len(exact) // 2, None)
    err_one = np.abs(one[late] - exact[late]).mean()
    err_two = np.abs(two[late] - exact[late]).mean()
    assert err_two > 1e-4, "continuous happens to equal exact: the schedule test above proves nothing"
    assert err_one > err_two, (err_one, err_two)


@pytest.mark.parametrize(("name", "hop"), [("exact", 40), ("exact", 10), ("continuous", 20)])
def test_engine_memory_stays_bounded_over_a_long_feed(model, graphs, raw, name: str, hop: int) -> None:
    engine = StreamingEngine(name, model, graphs, hop)
    sizes = []
    for _end, prediction in hops(engine, raw[:10000] if hop >= 20 else raw[:5000]):
        assert prediction.ready
        frames = sum(len(p.frames) for p in engine._phases)
        rollouts = sum(len(p.rollouts) for p in engine._phases)
        sizes.append((frames, rollouts, len(engine._results), len(engine._pending)))
    sizes = np.array(sizes)
    half = len(sizes) // 2
    assert (sizes[half:].max(axis=0) <= sizes[:half].max(axis=0)).all(), "something grows with time"
    frames, rollouts, results, pending = sizes.max(axis=0)
    assert frames <= engine.phases * 28
    if name == "exact":  # one rollout per window in flight: ~1.1 s of hops
        assert rollouts <= 28 * 20 // hop + engine.phases
    else:
        assert rollouts <= engine.lanes * engine.phases
    per_block = 30 // hop + 1  # hops inferred after one block of up to 29 samples
    assert results <= per_block + engine.phases and pending <= per_block + engine.phases


# -- the input stage restarts its filter ---------------------------------------------------------------
def test_a_restart_in_the_middle_of_a_feed_restarts_the_models_filter_there(model, raw) -> None:
    step = raw[:3000].copy()
    step[1700:] += 300_000.0  # a 300-mV jump where the stream is discontinuous
    stage = InputStage(model, 4000)
    stage.feed(step[:1650])
    stage.restart(50)  # before the 50th sample of the next feed: sample 1700
    stage.feed(step[1650:2500])
    stage.feed(step[2500:])
    spec = InputFilter.from_dict(model.meta.input_filter)
    stamps = np.arange(3000) / 500.0
    stamps[1700:] += 40 / 500.0
    expected = filter_session(step, stamps, spec)
    np.testing.assert_allclose(stage.window(3000, 3000), expected, atol=1e-3)
    filtered = stage.window(3000, 3000)
    # the restart starts the filter at the steady state of its first sample: the 300-mV jump leaves no trace
    # (what a restart on the stream without the jump gives; that has its own start-up, the mains notches
    # settling on this session's heavy-mains channel, which the jump must not add to)
    plain = StreamFilter(spec, 8)
    plain.process(raw[:1700])
    plain.reset()
    np.testing.assert_allclose(filtered[1700:], plain.process(raw[1700:3000]), atol=0.05)
    assert np.abs(StreamFilter(spec, 8).process(step)[1700:1750]).max() > 10_000.0, "no restart: the jump rings"


def test_a_20_ms_hop_with_sub_millisecond_jitter_sends_every_command(model, graphs, small_world, tmp_path):
    """The loop's actuation step at hops 20 ms apart on average (±0.3 ms, as a data-paced loop sees them),
    gate open: every hop's pose goes to the hand (the host rate limit, hand6.toml's 50 Hz, holds on average,
    not per pair of hops; a third of the commands were dropped before)."""
    engine = StreamingEngine("continuous", model, graphs, 10)
    loop = _loop_with(model, engine, small_world / "s01_r01.h5", tmp_path / "run.h5", 10)
    try:
        angles = initial_state(model).astype(np.float64)
        pose = Prediction(np.zeros(45), np.zeros((21, 3)), angles, 1.0, 0.0)
        active = GateDecision(GateState.ACTIVE, True, "")
        jitter = np.tile([0.0003, -0.0003], 25)
        start = time.monotonic() + 0.1  # the loop's clock
        kinds = [loop._actuate(active, pose, start + 0.020 * k + jitter[k])[2] for k in range(50)]
        # and it is still a limit: hops 10 ms apart send about every other command
        faster = [loop._actuate(active, pose, start + 1.0 + 0.010 * k)[2] for k in range(40)]
    finally:
        loop.source.close()
        loop.recorder.close()
    assert kinds.count("pose") == 50, kinds
    assert 18 <= faster.count("pose") <= 24, faster


# -- bursts and restarts inside a block (regressions: both failed before the fixes in runtime/streaming.py) --
@pytest.mark.parametrize("name", ["exact", "continuous"])
def test_a_block_of_several_seconds_at_once_gives_the_poses_small_blocks_give(model, graphs, raw, name: str):
    """The SDK hands over everything it buffered during a host pause: 8 s at once must not outrun the
    engine's filtered ring (it raised ValueError before), and changes no pose."""
    burst, steady = (StreamingEngine(name, model, graphs, 20) for _ in range(2))
    burst.feed(raw[:1000])
    burst.feed(raw[1000:5000])  # 8 s at once
    feed_in_blocks(steady, raw[:5000])
    expected, got = steady.infer(5000), burst.infer(5000)
    assert got.ready and expected.ready
    np.testing.assert_allclose(got.theta, expected.theta, atol=1e-5)
    if name == "exact":
        windowed = WindowedEngine(model, 20)
        feed_in_blocks(windowed, raw[:5000])
        np.testing.assert_allclose(got.theta, windowed.infer(5000).theta, atol=1e-4)


def test_a_window_that_ended_before_a_restart_in_the_same_block_is_still_answered(model, graphs, raw):
    """A restart clears only what comes after it: the hop that ended just before it, inferred after the block
    that carried both, is answered like the windowed engine answers it (it was 'not ready' before)."""
    windowed, exact = WindowedEngine(model, 20), StreamingEngine("exact", model, graphs, 20)
    for engine in (windowed, exact):
        feed_in_blocks(engine, raw[:2990])
        engine.restart(15)  # the stream breaks at sample 3005
        engine.feed(raw[2990:3030])  # the block that carries the hop at 3000 and the restart
    expected, got = windowed.infer(3000), exact.infer(3000)
    assert got.ready and np.abs(got.theta - expected.theta).max() < 1e-4


# -- end to end: mode2 run drives the emulated hand ------------------------------------------------------
# The end-to-end runs drive the hand from a session whose signal the world makes sound for the gate: the held-out
# r03 has four channels with more mains than EMG (its profile), on which signal quality keeps the gate closed
# (MAINS) for most hops, so a run on it says nothing about whether the hand follows the engine.
E2E_SESSION = SOUND_SESSION
E2E_RUNS = {  # engine → (source, hop ms, extra options)
    "exact": (f"playback:{{world}}/{E2E_SESSION}_mindrove.csv", "40", ()),
    "continuous": (f"replay:{{world}}/{E2E_SESSION}.h5", "20", ("--speed", "1")),
}


def test_the_end_to_end_session_has_no_channel_the_gate_must_refuse(small_world: Path) -> None:
    from test_signal_quality import heavy_mains_channels

    assert not heavy_mains_channels(read_session(small_world / f"{E2E_SESSION}.h5")).any()
    assert heavy_mains_channels(read_session(small_world / "s01_r03.h5")).any(), "r03 no longer needs avoiding"


@pytest.fixture(scope="module")
def engine_runs(exported_model, small_world, tmp_path_factory) -> dict[str, tuple[dict, dict, str]]:
    """`mode2 run --engine exact --hop-ms 40` from the SDK playback board and `--engine continuous --hop-ms 20`
    from a 1× replay, each to its own emulated hand over a pty, for 5 s (3 s of hops after the first 2-s
    window), armed, threshold 0: engine → (summary, run file, stdout)."""
    folder = tmp_path_factory.mktemp("e2e")
    results = {}
    for name, (source, hop_ms, extra) in E2E_RUNS.items():  # one after the other: each is paced in real time
        process = run_on(
            exported_model,
            source.format(world=small_world),
            "--engine",
            name,
            "--hop-ms",
            hop_ms,
            *extra,
            "--armed",
            "--threshold",
            "0",
            "--duration",
            "5",
            "--record",
            folder / f"{name}.h5",
            "--summary-json",
            folder / f"{name}.json",
            "--quiet",
        )
        try:
            out, err = process.communicate(timeout=90)
        finally:
            process.kill()
        assert process.returncode == 0, err[-3000:]
        summary = json.loads((folder / f"{name}.json").read_text())
        results[name] = (summary, read_runtime(folder / f"{name}.h5"), out)
    return results


def _after_warm_up(run: dict[str, np.ndarray], hop_ms: str) -> slice:
    return slice(int(500 / float(hop_ms)), None)  # the first 0.5 s of hops: the gate's dwell, the link settling


@pytest.mark.parametrize("name", list(E2E_RUNS))
def test_mode2_run_streaming_engine_gives_a_pose_every_hop_and_the_hand_follows(engine_runs, name: str) -> None:
    summary, run, out = engine_runs[name]
    hop_ms = E2E_RUNS[name][1]
    assert f"({name}, hop {hop_ms} ms)" in out and run["attrs"]["engine"] == name
    hop = round(float(hop_ms) / 2)
    assert summary["hops"] == len(run["t"]) > 0, summary
    # a hop at every hop boundary of the samples that arrived (first at the 1000th), none missed
    assert summary["hops"] + summary["missed_hops"] == (len(run["emg_raw"]) - WINDOW) // hop + 1, summary
    # a live loop skips to the newest hop when it falls behind (none on a quiet host; allow a loaded one some)
    assert summary["missed_hops"] <= summary["hops"] // 5, summary
    assert np.all(np.diff(run["t"]) > 0)
    assert not any(b"warming up" in r for r in run["gate_reason"]), "the engine was not ready at some hop"
    warm = _after_warm_up(run, hop_ms)
    # the gate follows the engine wherever signal quality and the stream let it: the world's faults, stale
    # rows and zero rows close it (tests/runtime/test_signal_quality.py), and the SDK board may report a
    # start-up stall on a loaded host (the loop then closes the gate for a window, whatever the engine)
    sound = np.array([not r.startswith(b"signal:") for r in run["gate_reason"]])[warm]
    assert sound.sum() >= 10 and (run["state"][warm][sound] == b"ACTIVE").mean() > 0.75
    assert summary["commands_acked"] >= 0.97 * summary["commands_sent"] > 0
    sent = run["seq"] >= 0
    seconds = run["t"][-1] - run["t"][0]
    assert sent.sum() / seconds >= 0.9 * 25.0, "the hand is not driven at (about) 25 Hz or faster"


@pytest.mark.parametrize("name", list(E2E_RUNS))
def test_mode2_run_sends_a_command_every_hop_after_warm_up(engine_runs, name: str) -> None:
    _summary, run, _out = engine_runs[name]
    assert (run["seq"][_after_warm_up(run, E2E_RUNS[name][1])] >= 0).mean() >= 0.95


@pytest.fixture(scope="module")
def short_session(small_world: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """5 s of the end-to-end session around its long gap (376 missing samples, no stale or zero rows in these
    5 s): (file, row after the gap)."""
    source = read_session(small_world / f"{E2E_SESSION}.h5")
    gap = int(np.flatnonzero(np.diff(source.emg_timestamps) * 500 - 1 > 10)[0]) + 1
    rows = slice(gap - 700, gap + 1800)
    path = tmp_path_factory.mktemp("short") / "s01_short.h5"
    with SessionWriter(path, subject_id="s01", session_id="short") as writer:
        writer.append_emg(source.emg_raw[rows], source.emg_timestamps[rows])
    return path, 700


def test_mode2_run_exact_records_the_windowed_runs_joints_at_the_same_hops(exported_model, short_session, tmp_path):
    """A replay with a long gap, unpaced (every hop processed, in order), 40-ms hop: the exact run file's joints
    equal the windowed run file's at every hop whose window holds no gap; after the gap the exact engine is
    ready again at the first hop a whole window later (the hop the loop reopens at), not later."""
    session, after_gap = short_session
    processes = {
        engine: run_on(
            exported_model,
            f"replay:{session}",
            "--engine",
            engine,
            "--hop-ms",
            "40",
            "--speed",
            "0",
            "--armed",
            "--threshold",
            "0",
            "--record",
            tmp_path / f"{engine}.h5",
            "--quiet",
        )
        for engine in ("windowed", "exact")
    }
    for process in processes.values():
        try:
            _out, err = process.communicate(timeout=120)
        finally:
            process.kill()
        assert process.returncode == 0, err[-3000:]
    windowed, exact = (read_runtime(tmp_path / f"{e}.h5") for e in ("windowed", "exact"))
    ends = np.arange(WINDOW, 2500 + 1, 20)
    assert len(exact["t"]) == len(windowed["t"]) == len(ends)
    np.testing.assert_array_equal(exact["t"], windowed["t"])
    assert exact["attrs"]["engine"] == "exact" and windowed["attrs"]["engine"] == "windowed"
    spans_gap = ends < after_gap + WINDOW
    gap_reason = np.array([b"gap or stall" in r for r in exact["gate_reason"]])
    np.testing.assert_array_equal(gap_reason, spans_gap)  # the loop closes the gate for exactly these
    assert (exact["confidence"][spans_gap] == 0).all(), "exact was ready on a window holding the gap"
    delta_mm = np.abs(exact["joints"][~spans_gap] - windowed["joints"][~spans_gap]).max() * 1000
    assert delta_mm <= 0.01, delta_mm
    np.testing.assert_allclose(exact["confidence"][~spans_gap], windowed["confidence"][~spans_gap], atol=1e-5)
    assert (exact["state"][~spans_gap][5:] == b"ACTIVE").all(), "exact not ready at a hop after the gap"
    assert np.ptp(exact["joints"][~spans_gap], axis=0).max() > 1e-3, "the hand moves: the equality is not trivial"
