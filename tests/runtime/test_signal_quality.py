"""Signal-quality detectors: each closes the gate on its fault within 100 ms and keeps quiet otherwise.

The faults come from the synthetic world (`simulate(..., faults=True)`, labelled per event), fed the way
the armband delivers them: every 4 ms of EMG time, the samples stamped since the last poll.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from firmware_bridge.session import read_session
from runtime.signal_quality import FAULT_FLAGS, QualityConfig, QualityFlag, SignalQuality
from training.synth import simulate
from training.synth.nuisance import ADC_RAIL_UV, FAULT_CODES
from training.synth.subjects import make_placement, make_subject

FS = 500.0
POLL_S = 0.004
KIND_FLAG = FAULT_FLAGS


@dataclass
class Event:
    kind: str
    index: int


@dataclass
class Run:
    times: np.ndarray
    flags: np.ndarray
    reasons: list[str]


def feed(raw: np.ndarray, stamps: np.ndarray, checker: SignalQuality | None = None) -> Run:
    """Poll every 4 ms of EMG time; hand over the samples stamped since the last poll (none during a stall)."""
    checker = checker or SignalQuality(FS, raw.shape[1])
    polls = np.arange(stamps[0], stamps[-1] + POLL_S, POLL_S)
    ends = np.searchsorted(stamps, polls, side="right")
    flags, reasons, start = np.zeros((len(polls), raw.shape[1]), dtype=np.int64), [], 0
    for i, (now, stop) in enumerate(zip(polls, ends, strict=True)):
        report = checker.update(raw[start:stop], stamps[start:stop], now=float(now))
        flags[i] = report.flags
        reasons.append(report.reason)
        assert report.ok == (not report.flags.any())
        assert (report.reason == "") == report.ok
        start = stop
    return Run(polls, flags, reasons)


def clean_stream(seconds: float, seed: int = 0, mains_hz: float = 60.0) -> tuple[np.ndarray, np.ndarray]:
    """8 channels of EMG-like noise (~30 µV RMS, 20–200 Hz) on 10–200 mV offsets, with a little mains."""
    rng = np.random.default_rng(seed)
    n = int(seconds * FS)
    t = np.arange(n) / FS
    white = rng.normal(0.0, 1.0, (n + 64, 8))
    kernel = np.diff(np.hanning(12))  # a crude band-pass
    emg = np.stack([np.convolve(white[:, c], kernel, mode="valid")[:n] for c in range(8)], axis=1)
    emg *= 30.0 / emg.std()
    offsets = rng.uniform(10e3, 200e3, 8) * rng.choice([-1, 1], 8)
    raw = offsets + emg + 4.0 * np.sin(2 * np.pi * mains_hz * t)[:, None] + rng.normal(0.0, 1.5, (n, 8))
    return raw, 1.75e9 + t


def flagged_share(run: Run, flag: QualityFlag, channels: list[int], after_s: float) -> float:
    keep = run.times >= run.times[0] + after_s
    return float((run.flags[keep][:, channels] & int(flag)).any(axis=1).mean())


# -- the synthetic world's labelled faults ---------------------------------------------------------------
@pytest.fixture(scope="module")
def world_runs(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[object, Run]]:
    out = tmp_path_factory.mktemp("quality_world")
    paths = simulate(out, sessions=2, subjects=2, minutes=0.5, seed=11, faults=True, write_2k=False, progress=False)
    runs = []
    for path in paths:
        session = read_session(Path(path))
        runs.append((session, feed(session.emg_raw.astype(np.float64), session.emg_timestamps)))
    return runs


def fault_windows(session) -> list[tuple[str, int, float, float]]:
    """(kind, channel, onset, end) on the session clock; a stall starts when the next sample was due."""
    stamps, labels = session.emg_timestamps, session.extras["truth/fault_labels"]
    windows = []
    for kind, channel, start, stop in json.loads(session.attrs["fault_events"]):
        if kind == "stall":
            after = int(np.flatnonzero(labels == 4)[0])
            windows.append((kind, -1, float(stamps[after - 1]) + 1 / FS, float(stamps[after])))
        else:
            windows.append((kind, int(channel), float(stamps[start]), float(stamps[min(stop, len(stamps)) - 1])))
    return windows


def test_every_world_fault_raises_its_own_flag_within_100_ms_and_names_its_channel(world_runs) -> None:
    seen = set()
    for session, run in world_runs:
        for kind, channel, onset, end in fault_windows(session):
            seen.add(kind)
            window = (run.times >= onset) & (run.times <= end)
            rows = run.flags[window] if channel < 0 else run.flags[window][:, [channel]]
            hits = np.flatnonzero((rows & int(KIND_FLAG[kind])).any(axis=1))
            assert len(hits), f"{session.key}: {kind} on channel {channel} never flagged"
            first = int(np.flatnonzero(window)[hits[0]])
            latency = run.times[first] - onset
            assert latency <= 0.1, f"{session.key}: {kind} flagged after {latency * 1000:.0f} ms"
            if channel >= 0:
                assert f"channel {channel}:" in run.reasons[first], run.reasons[first]
            else:
                assert run.reasons[first].startswith("stream:"), run.reasons[first]
    assert seen == set(KIND_FLAG), f"the world injected only {seen}"


def heavy_mains_channels(session) -> np.ndarray:
    """Channels whose mains pickup (the donning's profile: fundamental + harmonics below 250 Hz) is stronger
    than the session's typical EMG: the MAINS flag there is a true finding, not a false alarm."""
    profile = make_placement(make_subject(int(session.attrs["subject_id"][1:]), int(session.attrs["seed"])),
                             int(session.attrs["session_id"][1:])).recording  # fmt: skip
    mains_hz = float(session.attrs["mains_hz"])
    relative = [1.0, *[h for k, h in enumerate(profile.mains_harmonics, start=2) if k * mains_hz <= 250.0]]
    mains_rms = profile.mains_uv / np.sqrt(2.0) * float(np.sqrt(np.sum(np.square(relative))))
    return mains_rms > profile.emg_rms_uv


def near_rows(session, run: Run, codes: tuple[int, ...], after_s: float) -> np.ndarray:
    """Polls from just before a row labelled with one of `codes` until `after_s` after it."""
    stamps = session.emg_timestamps[np.isin(session.extras["truth/fault_labels"], codes)]
    if not len(stamps):
        return np.zeros(len(run.times), dtype=bool)
    first = np.searchsorted(stamps, run.times - after_s)  # the first labelled row not older than after_s
    return (first < len(stamps)) & (stamps[np.minimum(first, len(stamps) - 1)] <= run.times + POLL_S)


def test_fault_free_world_signal_is_almost_never_flagged(world_runs) -> None:
    """Away from the injected faults, the only flags are true findings: the stale repeats and all-zero rows
    every real session has (labelled `stale_repeat`/`zero_row`: DUPLICATE, and FLAT for zero rows, held 100 ms)
    and MAINS on the channels the profile gives more mains than EMG. Anything else is a false alarm."""
    flagged = total = heavy_seen = stale_seen = zero_seen = 0
    hardware = int(QualityFlag.FLAT | QualityFlag.SATURATED | QualityFlag.LIFT_OFF)
    for session, run in world_runs:
        keep = run.times >= run.times[0] + 1.0
        for _kind, _channel, onset, end in fault_windows(session):
            keep &= ~((run.times >= onset - POLL_S) & (run.times <= end + 1.0))
        heavy = heavy_mains_channels(session)
        heavy_seen += int(heavy.sum())
        flags = run.flags.copy()
        flags[:, heavy] &= ~int(QualityFlag.MAINS)
        stale = near_rows(session, run, (FAULT_CODES["stale_repeat"],), 0.12)
        zero = near_rows(session, run, (FAULT_CODES["zero_row"],), 0.12)
        stale_seen, zero_seen = stale_seen + int(stale.any()), zero_seen + int(zero.any())
        assert not (flags[keep & stale & ~zero] & ~int(QualityFlag.DUPLICATE)).any(), "stale rows: DUPLICATE only"
        assert not (flags[keep & zero] & ~int(QualityFlag.DUPLICATE | QualityFlag.FLAT)).any(), "zero rows"
        assert (flags[keep & stale] & int(QualityFlag.DUPLICATE)).any(axis=1).mean() > 0.5, "stale rows unseen"
        keep &= ~(stale | zero)
        flags = flags[keep]
        flagged += int((flags != 0).any(axis=1).sum())
        total += int(keep.sum())
        # the per-channel hardware faults never fire on sound signal
        assert not (run.flags[keep] & hardware).any(), session.key
    assert heavy_seen and stale_seen and zero_seen, "the world lacks a case this test separates: it proves less"
    assert total > 0.5 * 60 / POLL_S  # most of two minutes is fault-free
    assert flagged / total < 0.02, flagged / total


# -- issue 11's real-armband conditions ------------------------------------------------------------------
def test_tens_of_millivolts_of_slow_drift_is_not_lift_off() -> None:
    raw, stamps = clean_stream(8.0, seed=1)
    t = stamps - stamps[0]
    phase = np.linspace(0, np.pi, 8)
    drifting = raw + 20e3 * np.sin(2 * np.pi * 0.25 * t[:, None] + phase)  # 40 mV peak to peak within 2 s
    run = feed(drifting, stamps)
    assert flagged_share(run, QualityFlag(0xFF), list(range(8)), after_s=0.2) == 0.0


def test_lift_off_wander_is_flagged_and_held_through_its_turning_points() -> None:
    raw, stamps = clean_stream(8.0, seed=2)
    t = stamps - stamps[0]
    start, stop = int(3 * FS), int(6 * FS)
    raw[start:stop, 5] += 20e3 * np.sin(2 * np.pi * 0.5 * (t[start:stop] - t[start]))  # 0.5 Hz, the slowest
    run = feed(raw, stamps)
    on = (run.flags[:, 5] & QualityFlag.LIFT_OFF) != 0
    first = int(np.argmax(on))
    assert 0 <= run.times[first] - stamps[start] <= 0.1
    during = (run.times >= run.times[first]) & (run.times <= stamps[stop - 1])
    assert on[during].all(), "the gate reopened inside the lift-off"
    assert np.count_nonzero(np.diff(on.astype(int)) == -1) == 1  # one release, no chatter
    released = run.times[np.flatnonzero(np.diff(on.astype(int)) == -1)[0] + 1] - stamps[stop - 1]
    assert released < 1.0
    assert not (run.flags[:, [0, 1, 2, 3, 4, 6, 7]] & QualityFlag.LIFT_OFF).any()


@pytest.mark.parametrize("mains_hz", [50.0, 60.0])
def test_mains_dominated_channels_are_flagged_and_the_mains_frequency_is_detected(mains_hz: float) -> None:
    raw, stamps = clean_stream(6.0, seed=3, mains_hz=mains_hz)
    t = stamps - stamps[0]
    hum = sum(a * np.sin(2 * np.pi * k * mains_hz * t + k) for k, a in ((1, 90.0), (2, 45.0), (3, 30.0)))
    raw[:, [2, 7]] += hum[:, None]  # ≈ 75 µV RMS of mains + harmonics over 30 µV of EMG: ~85 % of the power
    checker = SignalQuality(FS, 8, mains_hz=None)
    run = feed(raw, stamps, checker)
    assert checker.mains_hz == mains_hz
    assert flagged_share(run, QualityFlag.MAINS, [2, 7], after_s=1.5) == 1.0
    assert flagged_share(run, QualityFlag.MAINS, [0, 1, 3, 4, 5, 6], after_s=0.0) == 0.0
    assert "mains dominates" in run.reasons[-1] and "channel 2:" in run.reasons[-1]


@pytest.mark.parametrize("advisory", [False, True])
def test_mains_the_models_filter_notches_is_advisory_and_every_other_flag_still_gates(advisory: bool) -> None:
    raw, stamps = clean_stream(6.0, seed=3, mains_hz=50.0)
    t = stamps - stamps[0]
    raw[:, [2, 7]] += sum(a * np.sin(2 * np.pi * k * 50.0 * t + k) for k, a in ((1, 90.0), (2, 45.0)))[:, None]
    raw[2500:2600, 4] = raw[2500, 4]  # 200 ms flat on channel 4 at 5 s
    config = QualityConfig(mains_advisory_hz=(50.0,) if advisory else ())
    checker = SignalQuality(FS, 8, mains_hz=50.0, config=config)
    reports = []
    for start in range(0, len(raw), 2):
        reports.append((start, checker.update(raw[start : start + 2], stamps[start : start + 2])))
    late = [r for i, r in reports if 1000 <= i < 2500]  # mains flagged, nothing else wrong
    assert all(r.flags[2] & QualityFlag.MAINS and r.flags[7] & QualityFlag.MAINS for r in late)
    if advisory:
        assert all(r.ok and r.reason == "" for r in late), "mains the model never sees must not stop the hand"
        assert all("channel 2: mains dominates" in r.advisory and "re-seat" in r.advisory for r in late)
    else:
        assert not any(r.ok for r in late) and all("mains dominates" in r.reason for r in late)
        assert all(r.advisory == "" for r in late)
    flat = [r for i, r in reports if 2520 <= i < 2600]
    assert flat and not any(r.ok for r in flat) and all("channel 4: flat line" in r.reason for r in flat)


def test_the_checker_mode2_run_builds_makes_mains_advisory_only_for_a_model_that_notches_it(
    exported_model: Path,
) -> None:
    from runtime.model_metadata import load_model
    from runtime.run_command import signal_quality_for

    meta = load_model(exported_model).meta
    assert signal_quality_for(meta).config.mains_advisory_hz == (50.0, 60.0)  # trained with the default notches
    without = dataclasses.replace(meta, input_filter=None)  # a version-1 model: raw µV, no filter
    assert signal_quality_for(without).config.mains_advisory_hz == ()


def test_a_step_to_the_rail_on_one_channel_does_not_flip_the_detected_mains_frequency() -> None:
    """A step's broadband power is millions of times the mains and falls a little more into the 50-Hz family's
    bins than the 60-Hz one's: summed as power it outvoted seven 60-Hz channels for half a minute."""
    raw, stamps = clean_stream(12.0, seed=8, mains_hz=60.0)
    t = stamps - stamps[0]
    raw[:, [1, 5]] += 60.0 * np.sin(2 * np.pi * 60.0 * t)[:, None]  # clear 60-Hz pickup on two channels
    raw[2000:, 3] = QualityConfig().rail_uv  # channel 3 jumps to the rail at 4 s and stays there
    checker = SignalQuality(FS, 8, mains_hz=None)
    detected = []
    polls = np.arange(0, len(raw), 2)
    for start, stop in itertools.pairwise([*polls.tolist(), len(raw)]):
        checker.update(raw[start:stop], stamps[start:stop])
        if start >= 2000 and start % 250 == 0:
            detected.append(checker.mains_hz)
    assert detected and set(detected) == {60.0}, f"detected {sorted(set(detected), key=str)} after the step"


def test_stale_repeated_rows_and_zero_rows_are_flagged_without_a_lift_off() -> None:
    raw, stamps = clean_stream(4.0, seed=4)
    raw[1000:1008] = raw[999]  # a stale sample repeated for 8 rows
    raw[1500:1503] = 0.0  # three all-zero rows
    run = feed(raw, stamps)

    def flagged_at(index: int, flag: QualityFlag) -> bool:
        row = int(np.searchsorted(run.times, stamps[index])) + 1
        return bool((run.flags[row : row + 10] & int(flag)).any())

    assert flagged_at(1000, QualityFlag.DUPLICATE)
    assert not flagged_at(1000, QualityFlag.FLAT), "a stale run is a stream fault, not 8 electrodes going flat"
    assert flagged_at(1500, QualityFlag.FLAT)
    assert not (run.flags & QualityFlag.LIFT_OFF).any()
    assert flagged_share(run, QualityFlag(0xFF), list(range(8)), after_s=3.5) == 0.0  # all clear afterwards


def test_a_level_step_across_a_gap_is_a_gap_not_a_lift_off() -> None:
    """Drift goes on while samples are missing: the level after a 0.6-s gap differs by millivolts, which says
    nothing about the electrode. The windowed detectors start again after the gap; a lift-off there (the
    wander of `test_lift_off_wander…`) is still caught once 100 ms of it arrived."""
    raw, stamps = clean_stream(6.0, seed=6)
    stamps[1500:] += 0.6  # 300 samples missing ...
    raw[1500:] += 6000.0  # ... across which the level moved 6 mV (a 10 mV/s drift)
    run = feed(raw, stamps)
    after = (run.times > stamps[1500]) & (run.times < stamps[1500] + 1.0)
    assert (run.flags[after] & int(QualityFlag.GAP)).any()
    assert not (run.flags & int(QualityFlag.LIFT_OFF)).any(), "the step across the gap read as a lift-off"
    raw[2500:] += 20_000.0 * np.sin(2 * np.pi * 1.5 * np.arange(len(raw) - 2500) / FS)[:, None]  # a lift-off
    run = feed(raw, stamps)
    onset = int(np.searchsorted(run.times, stamps[2500]))
    assert (run.flags[onset : onset + int(0.15 / POLL_S)] & int(QualityFlag.LIFT_OFF)).any()


def test_saturation_at_the_default_rail_and_at_the_worlds_rail_but_not_a_high_offset() -> None:
    raw, stamps = clean_stream(3.0, seed=5)
    raw[:, 0] = 372e3 + raw[:, 0] - raw[:, 0].mean()  # a noisy channel sitting just inside the real rail
    raw[750:1000, 3] = QualityConfig().rail_uv  # clipped at the MindRove rail
    raw[1100:1300, 6] = -ADC_RAIL_UV  # clipped at the synthetic world's rail
    run = feed(raw, stamps)
    assert not (run.flags[:, 0] & QualityFlag.SATURATED).any()
    for channel, index in ((3, 750), (6, 1100)):
        row = int(np.searchsorted(run.times, stamps[index]))
        assert (run.flags[row : row + 5, channel] & QualityFlag.SATURATED).any()
        assert "saturated" in run.reasons[row + 4] and f"channel {channel}:" in run.reasons[row + 4]


def test_flags_are_held_after_the_fault_clears_then_drop() -> None:
    raw, stamps = clean_stream(3.0, seed=6)
    raw[1000:1100, 4] = raw[1000, 4]  # 200 ms flat
    run = feed(raw, stamps)
    on = (run.flags[:, 4] & QualityFlag.FLAT) != 0
    last_on = run.times[np.flatnonzero(on)[-1]]
    assert 0.09 <= last_on - stamps[1099] <= 0.15  # held for hold_s (100 ms) after the last flat sample
    assert np.count_nonzero(np.diff(on.astype(int)) == 1) == 1  # switched on once


# -- the stream ------------------------------------------------------------------------------------------
def test_stall_is_flagged_while_no_samples_arrive_and_a_gap_when_they_resume() -> None:
    raw, stamps = clean_stream(3.0, seed=7)
    keep = np.ones(len(raw), dtype=bool)
    keep[600:750] = False  # 300 ms of samples never arrive
    run = feed(raw[keep], stamps[keep])
    due = stamps[599] + 1 / FS
    stalled = (run.flags[:, 0] & QualityFlag.STALL) != 0
    first = int(np.argmax(stalled & (run.times >= due)))
    assert run.times[first] - due <= 0.06
    assert run.reasons[first].startswith("stream: stall (no samples for")
    resumed = int(np.searchsorted(run.times, stamps[750]))
    assert (run.flags[resumed : resumed + 3, 0] & QualityFlag.GAP).any()
    assert flagged_share(run, QualityFlag(0xFF), list(range(8)), after_s=2.0) == 0.0


def test_source_events_hold_their_stream_flag_for_100_ms() -> None:
    raw, stamps = clean_stream(1.0, seed=8)
    checker = SignalQuality(FS, 8)
    reports = []
    for start in range(0, len(raw), 25):
        events = [Event("duplicate", 3)] if start == 250 else []
        reports.append(checker.update(raw[start : start + 25], stamps[start : start + 25], events))
    flagged = [bool(r.flags[0] & QualityFlag.DUPLICATE) for r in reports]
    # event on row 253 → held through row 302 (50 samples = 100 ms): reports after rows 275 and 300, not 325
    assert flagged[9:13] == [False, True, True, False]
    assert all(r.flags[5] & QualityFlag.DUPLICATE for r in reports[10:12])  # stream flags: every channel
    assert reports[10].reason == "stream: duplicated or stale samples (rows repeat earlier rows)"


def test_reset_rewarms_the_detectors_before_the_gate_may_open() -> None:
    raw, stamps = clean_stream(2.0, seed=9)
    checker = SignalQuality(FS, 8)
    first = checker.update(raw[:10], stamps[:10])
    assert not first.ok and first.reason.startswith("stream: warming up")
    assert all(flags == QualityFlag.WARMUP for flags in first.flags)
    for start in range(10, 500, 10):
        report = checker.update(raw[start : start + 10], stamps[start : start + 10])
    assert report.ok and report.rms_uv.min() > 10.0  # the band RMS is there for the dashboard
    checker.reset()
    warming = [checker.update(raw[s : s + 10], stamps[s : s + 10]) for s in range(500, 600, 10)]
    ready_after = QualityConfig().warmup_s * FS
    for i, report in enumerate(warming):
        assert report.ok == ((i + 1) * 10 >= ready_after), (i, report.reason)


def test_malformed_chunks_are_refused() -> None:
    checker = SignalQuality(FS, 8)
    with pytest.raises(ValueError, match=r"\(n, 8\)"):
        checker.update(np.zeros((4, 7)), np.zeros(4))
    with pytest.raises(ValueError, match="timestamps"):
        checker.update(np.zeros((4, 8)), np.zeros(3))
    with pytest.raises(ValueError, match="mains_hz"):
        SignalQuality(FS, 8, mains_hz=55.0)


def test_a_lift_off_named_while_it_is_held_quotes_what_raised_it() -> None:
    """The words are made when the verdict changes: a flat channel that ends while a lift-off is still held
    (its level has calmed, the flag waits for release) names the lift-off by the figures of its onset."""
    raw, stamps = clean_stream(8.0, seed=2)
    t = stamps - stamps[0]
    start, risen = int(3 * FS), int(3.5 * FS)
    raw[start:risen, 5] += 20e3 * np.sin(2 * np.pi * 0.5 * (t[start:risen] - t[start]))  # up 20 mV in 0.5 s...
    raw[risen:, 5] += 20e3  # ...and it stays there: the onset ends 0.1 s later, the release waits 0.5 s
    flat_end = risen + int(0.3 * FS)
    raw[risen + int(0.15 * FS) : flat_end, 2] = raw[risen, 2]  # channel 2 flat for 150 ms meanwhile
    run = feed(raw, stamps)
    after_flat = [r for i, r in enumerate(run.reasons) if run.times[i] > stamps[flat_end] and "lift-off" in r]
    assert after_flat, "the lift-off was released before the flat channel ended"
    assert "held until the level settles" in after_flat[0]
    moved_mv = float(after_flat[0].split("level moved ")[1].split(" mV")[0])
    assert moved_mv > 4.0, after_flat[0]  # the onset's span (> lift_on_uv), not the calm level of now
