"""The synthetic world at real scale (issue 11): chunked arrival with backlog and pauses, timestamps
reconstructed by the importer, stale and zero rows, the ADC rail, DC, drift, EMG level and mains per
`RecordingProfile` — checked on the generator's functions directly and on one small simulated world
(2 subjects × 2 sessions × 1 min, faults on, playback CSV), made once for the module.

Expected values come from the profile each session was drawn with (`make_placement(...).recording`,
deterministic under the seed), never from the files themselves.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
from scipy.signal import filtfilt, iirnotch, welch
from scipy.stats import spearmanr

from firmware_bridge.mindrove_import import Imported, Recording, build_timeline, convert, parse_file
from firmware_bridge.session import read_session
from firmware_bridge.session.schema import Session
from training.data.emg_checks import (
    check_arrival,
    check_emg,
    drift_swings_mv,
    high_passed,
    mains_shares,
    without_zero_rows,
)
from training.synth import simulate
from training.synth.arrival import arrival_times, chunk_ids
from training.synth.mindrove_csv import package_counter
from training.synth.nuisance import (
    ADC_RAIL_UV,
    FAULT_CODES,
    PACKET_SAMPLES,
    add_bad_rows,
    add_recording_nuisances,
    drift,
    shape_emg,
)
from training.synth.subjects import (
    ArrivalProfile,
    RecordingProfile,
    Subject,
    make_placement,
    make_recording_profile,
    make_subject,
)
from training.synth.world import simulate_session

SEED = 20  # 2 subjects × 2 sessions: shared and per-channel DC, 50 and 60 Hz, 3 backlogs, zero rows, strong mains
FS = 500.0
NAMES = ("s01_r01", "s01_r02", "s02_r01", "s02_r02")
FAULTS = [FAULT_CODES[k] for k in ("lift_off", "saturation", "flat_line", "stall", "duplicate")]
STALE, ZERO = FAULT_CODES["stale_repeat"], FAULT_CODES["zero_row"]
RAIL_STORED = float(np.float32(ADC_RAIL_UV))  # emg/raw is float32: the rail as stored (377,487.375 µV)


@dataclass
class WorldSession:
    """One simulated session with the profile it was drawn with and its importer view of the playback CSV."""

    name: str
    subject: Subject
    profile: RecordingProfile
    session: Session
    csv: Path
    imported: Imported

    @property
    def labels(self) -> np.ndarray:
        return self.session.extras["truth/fault_labels"]

    @property
    def truth(self) -> np.ndarray:
        return self.session.extras["truth/sample_times"]

    @property
    def arrival(self) -> np.ndarray:
        return self.session.extras["import/arrival_times"]

    @functools.cached_property
    def held(self) -> np.ndarray:
        """The raw µV with zero rows held over (as every consumer of the stream sees it), computed once."""
        return without_zero_rows(self.session.emg_raw.astype(np.float64))

    def clean_rows(self, fault_margin: int = 500, bad_row_margin: int = 10) -> np.ndarray:
        """Rows at least 1 s from an injected fault and 10 rows from a stale or zero row."""
        labels = self.labels
        near_fault = _dilate(np.isin(labels, FAULTS), fault_margin)
        return ~(near_fault | _dilate(np.isin(labels, [STALE, ZERO]), bad_row_margin))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, WorldSession]:
    out = tmp_path_factory.mktemp("realism")
    simulate(
        out,
        sessions=2,
        subjects=2,
        minutes=1.0,
        seed=SEED,
        write_2k=False,
        playback_csv=True,
        faults=True,
        progress=False,
    )
    sessions = {}
    for name in NAMES:
        subject = make_subject(int(name[1:3]), SEED)
        csv = out / f"{name}_mindrove.csv"
        sessions[name] = WorldSession(
            name,
            subject,
            make_placement(subject, int(name[-2:])).recording,
            read_session(out / f"{name}.h5"),
            csv,
            convert(parse_file(csv)),
        )
    return sessions


def _dilate(mask: np.ndarray, margin: int) -> np.ndarray:
    return np.convolve(mask.astype(np.float64), np.ones(2 * margin + 1), mode="same") > 0.5


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts, stops) of the runs of True."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def _shared_dc(profile: RecordingProfile) -> bool:
    """Drawn as one offset on every channel (±3 %), not one per channel."""
    dc = profile.dc_offset_uv
    return bool(np.all(np.sign(dc) == np.sign(dc[0])) and np.abs(dc).max() / np.abs(dc).min() <= 1.03 / 0.97)


def _quiet_arrival(**changes: object) -> ArrivalProfile:
    base = ArrivalProfile(
        chunk_samples=2,
        base_delay_s=0.004,
        jitter_s=0.0,
        pauses_per_minute=0.0,
        pause_s=(0.02, 0.02),
        backlog_s=0.0,
        backlog_delivery_s=0.03,
    )
    return dataclasses.replace(base, **changes)


def _line_amplitudes(signal: np.ndarray, times: np.ndarray, freqs: list[float], rows: np.ndarray) -> np.ndarray:
    """(len(freqs), channels) least-squares amplitude of a sinusoid at each frequency, fitted on `rows`."""
    design = np.concatenate(
        [np.stack([np.sin(2 * np.pi * f * times), np.cos(2 * np.pi * f * times)], 1) for f in freqs], 1
    )
    coef, *_ = np.linalg.lstsq(design[rows], signal[rows], rcond=None)
    return np.hypot(coef[0::2], coef[1::2])


# -- the world this module tests covers the cases ------------------------------------------------------
def test_the_module_world_holds_every_case_the_checks_below_need(world: dict[str, WorldSession]) -> None:
    profiles = [w.profile for w in world.values()]
    assert any(_shared_dc(p) for p in profiles) and not all(_shared_dc(p) for p in profiles)
    assert all(3.5 <= p.arrival.backlog_s <= 6.0 for p in profiles), "every real file starts with a ~5-s backlog"
    assert {w.subject.mains_hz for w in world.values()} == {50.0, 60.0}
    assert any((w.labels == ZERO).any() for w in world.values())
    assert all((w.labels == STALE).sum() >= 8 for w in world.values())
    assert all((w.labels == FAULT_CODES["stall"]).sum() == 1 for w in world.values())


# -- arrival: the generator's function on its own --------------------------------------------------------
def _times_with_a_gap(n: int = 20_000, lost: tuple[int, int] = (9_000, 9_150)) -> np.ndarray:
    index = np.arange(n)
    return index[(index < lost[0]) | (index >= lost[1])] / FS


@pytest.mark.parametrize("draw", range(6))
def test_arrival_never_precedes_the_sample_and_never_goes_back(draw: int) -> None:
    profile = make_recording_profile(np.random.default_rng([SEED, 100, draw])).arrival
    t = _times_with_a_gap()
    arrive = arrival_times(t, profile, np.random.default_rng(draw))
    assert arrive.shape == t.shape
    assert np.all(np.diff(arrive) >= 0)
    assert np.all(arrive >= t + profile.base_delay_s - 1e-12)


@pytest.mark.parametrize("chunk", [2, 3, 5])
def test_samples_of_one_chunk_share_one_arrival_time(chunk: int) -> None:
    profile = dataclasses.replace(
        make_recording_profile(np.random.default_rng([SEED, 101])).arrival, chunk_samples=chunk
    )
    t = np.arange(10_001) / FS  # a last chunk that is not full
    arrive = arrival_times(t, profile, np.random.default_rng(1))
    group = np.arange(len(t)) // chunk
    for first in range(chunk):
        same_chunk = group[first:] == group[: len(t) - first]
        assert np.all(arrive[first:][same_chunk] == arrive[: len(t) - first][same_chunk])
    assert len(np.unique(arrive)) > 0.5 * len(t) / chunk, "chunks arrive at their own times"


def test_without_jitter_pauses_or_backlog_a_chunk_arrives_base_delay_after_its_last_sample() -> None:
    profile = _quiet_arrival(chunk_samples=3, base_delay_s=0.005)
    t = np.arange(10) / FS  # the last chunk holds one sample
    arrive = arrival_times(t, profile, np.random.default_rng(0))
    last_of_chunk = np.array([2, 2, 2, 5, 5, 5, 8, 8, 8, 9])
    assert np.array_equal(arrive, t[last_of_chunk] + 0.005)


def test_a_backlog_is_delivered_within_its_delivery_time_of_its_release() -> None:
    profile = _quiet_arrival(backlog_s=5.0, backlog_delivery_s=0.03, base_delay_s=0.004)
    t = np.arange(30_000) / FS
    arrive = arrival_times(t, profile, np.random.default_rng(0))
    sent = t[np.minimum((np.arange(len(t)) // 2 + 1) * 2, len(t)) - 1]
    backlog = sent < 5.0
    assert backlog.sum() == 2500, "5 s of samples were buffered"
    since_release = arrive[backlog] - 5.0
    assert since_release.min() == pytest.approx(0.004) and since_release.max() == pytest.approx(0.034)
    after = arrive[~backlog] - sent[~backlog]
    assert np.all(after >= 0.004 - 1e-12) and np.allclose(after[200:], 0.004, rtol=0, atol=1e-9), "then live again"


def test_a_jittered_backlog_still_arrives_within_delivery_time_plus_jitter() -> None:
    profile = make_recording_profile(np.random.default_rng([SEED, 102])).arrival
    profile = dataclasses.replace(profile, backlog_s=4.0, pauses_per_minute=0.0)
    t = np.arange(20_000) / FS
    arrive = arrival_times(t, profile, np.random.default_rng(3))
    late = arrive[t < 3.9] - 4.0 - profile.base_delay_s
    assert late.min() >= -1e-9 and late.max() <= profile.backlog_delivery_s + 10 * profile.jitter_s


def test_pauses_hold_delivery_and_release_the_queue_at_once() -> None:
    profile = _quiet_arrival(pauses_per_minute=6.0, pause_s=(0.1, 0.1))
    t = np.arange(60_000) / FS  # 2 min: about 12 pauses of 100 ms
    steps = np.diff(arrival_times(t, profile, np.random.default_rng(4)))
    long = steps[steps > 0.05]
    assert 5 <= len(long) <= 25
    chunk_period = 2 / FS
    assert np.all(long >= 0.1) and np.all(long <= 0.1 + chunk_period + 1e-9), "a step of one pause, no more"
    assert np.all(steps[steps <= 0.05] <= chunk_period + 1e-9)


def test_a_chunk_never_holds_samples_from_both_sides_of_a_gap() -> None:
    t = np.concatenate([np.arange(0, 101), np.arange(401, 600)]) / FS  # 300 samples lost after row 100
    arrive = arrival_times(t, _quiet_arrival(), np.random.default_rng(0))
    assert arrive[100] - t[100] <= 2 / FS + 0.004 + 1e-9, "sample 100 went out before the gap"


# -- arrival and timestamps in the simulated world --------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_world_arrival_is_chunked_ordered_and_after_sampling(world: dict[str, WorldSession], name: str) -> None:
    w = world[name]
    arrive, truth = w.arrival, w.truth
    assert np.all(np.diff(arrive) >= 0) and np.all(arrive >= truth)
    chunk = chunk_ids(truth, w.profile.arrival.chunk_samples)
    same_chunk = chunk[1:] == chunk[:-1]
    assert np.all(arrive[1:][same_chunk] == arrive[:-1][same_chunk]), "one time per chunk"
    assert np.bincount(chunk).max() == w.profile.arrival.chunk_samples
    steps = np.diff(np.unique(arrive))
    assert 3.0e-3 < np.median(steps) < 5.0e-3, "about 2 samples per 4 ms, as on the real armband"
    assert 5e-3 < np.percentile(steps, 99) < 15e-3, "the real files' p99 arrival gap"


@pytest.mark.parametrize("name", NAMES)
def test_world_backlog_arrives_at_once_and_the_importer_measures_it(world: dict[str, WorldSession], name: str) -> None:
    w = world[name]
    profile = w.profile.arrival
    timeline = w.imported.timeline
    release = w.truth[0] + profile.backlog_s
    held = w.truth < release - 0.01  # (a chunk leaves with its last sample: keep clear of the edge)
    since_release = w.arrival[held] - release - profile.base_delay_s
    assert since_release.min() >= -1e-6
    assert since_release.max() <= profile.backlog_delivery_s + 10 * profile.jitter_s
    assert abs(timeline.backlog / FS - profile.backlog_s) < 0.15, "leading samples > 0.1 s late"
    assert timeline.backlog_arrival_s <= profile.backlog_delivery_s + 10 * profile.jitter_s


@pytest.mark.parametrize("name", NAMES)
def test_session_timestamps_rise_and_track_the_true_sample_times(world: dict[str, WorldSession], name: str) -> None:
    w = world[name]
    stamps = w.session.emg_timestamps
    assert np.all(np.diff(stamps) > 0)
    offset = stamps - w.truth  # the constant part is the link's base delay (the importer cannot see it)
    assert np.percentile(offset, 99) - np.percentile(offset, 1) < 2e-3, "the backlog included"
    assert np.median(offset) == pytest.approx(w.profile.arrival.base_delay_s, abs=1e-3)
    in_backlog = w.truth < w.truth[0] + w.profile.arrival.backlog_s
    if in_backlog.any():
        assert np.ptp(offset[in_backlog]) < 2e-3, "the backlog spread back over the seconds it was recorded in"


def test_every_timestamp_stays_within_2_ms_of_its_sample_and_the_stall_gap_is_kept(
    world: dict[str, WorldSession],
) -> None:
    problems = []
    for name, w in world.items():
        stamps = w.session.emg_timestamps
        offset = stamps - w.truth
        worst = int(np.argmax(np.abs(offset - np.median(offset))))
        if abs(offset[worst] - np.median(offset)) > 2e-3:
            problems.append(f"{name}: row {worst} is {1e3 * (offset[worst] - np.median(offset)):.0f} ms off")
        after = int(np.flatnonzero(w.labels == FAULT_CODES["stall"])[0])
        kept, true = stamps[after] - stamps[after - 1], w.truth[after] - w.truth[after - 1]
        if abs(kept - true) > 2e-3:
            problems.append(f"{name}: the stall's gap is {kept:.3f} s, truly {true:.3f} s")
        gaps = [f for f in check_arrival(w.session.emg_raw, stamps, FS) if f.check == "gap"]
        if len(gaps) != 1 or gaps[0].details["count"] != 1:
            problems.append(f"{name}: inspect reports {[f.message for f in gaps]}, expected the stall alone")
    assert not problems, problems


def test_the_importer_reports_each_stalls_lost_samples(world: dict[str, WorldSession]) -> None:
    reported = {}
    for name, w in world.items():
        after = int(np.flatnonzero(w.labels == FAULT_CODES["stall"])[0])
        lost = round((w.truth[after] - w.truth[after - 1]) * FS) - 1
        reported[name] = (w.imported.timeline.gaps, [(after, lost)])
    assert all(got == want for got, want in reported.values()), reported


def test_inspect_sees_the_backlog_in_arrival_times_but_not_in_the_session_stamps(
    world: dict[str, WorldSession],
) -> None:
    for w in world.values():
        raw = w.session.emg_raw
        assert not [f for f in check_arrival(raw, w.session.emg_timestamps, FS) if f.check == "backlog"]
        backlog = [f for f in check_arrival(raw, w.arrival, FS) if f.check == "backlog"]
        assert bool(backlog) == (w.profile.arrival.backlog_s > 0), w.name
        if backlog:
            assert abs(backlog[0].details["samples"] / FS - w.profile.arrival.backlog_s) < 0.2


@pytest.mark.parametrize("name", NAMES)
def test_importing_the_playback_csv_reproduces_the_session_file(world: dict[str, WorldSession], name: str) -> None:
    w = world[name]
    imported, session = w.imported, w.session
    assert imported.source_units == "uV"
    ulp = np.spacing(np.abs(session.emg_raw)).astype(np.float64) + 1e-6  # float32 of the CSV's 6 decimals
    assert np.all(np.abs(imported.emg_uv.astype(np.float64) - session.emg_raw) <= ulp)
    assert np.abs(imported.times - session.emg_timestamps).max() < 1e-5
    assert np.array_equal(imported.extras["import/package_numbers"], session.extras["import/package_numbers"])
    assert np.array_equal(imported.extras["import/zero_rows"].astype(bool), w.labels == ZERO)
    stale = w.labels == STALE
    originals = np.zeros_like(stale)
    originals[_runs(stale)[0] - 1] = True
    assert np.array_equal(imported.extras["import/stale_rows"].astype(bool), stale | originals)


def test_mode2_import_of_the_playback_csv_writes_the_sessions_emg_and_times(
    world: dict[str, WorldSession], tmp_path: Path
) -> None:
    from runtime.cli import main

    w = world["s01_r02"]  # a 5.9-s backlog, zero rows, per-channel DC
    out = tmp_path / "imported.h5"
    assert main(["import", str(w.csv), "--out", str(out)]) == 0
    imported = read_session(out, validate=False)
    assert np.abs(imported.emg_raw.astype(np.float64) - w.session.emg_raw).max() <= 0.02
    assert np.abs(imported.emg_timestamps - w.session.emg_timestamps).max() < 1e-5
    assert imported.attrs["import_backlog_samples"] == w.imported.timeline.backlog > 0
    assert imported.attrs["import_zero_rows"] == int((w.labels == ZERO).sum()) > 0


# -- bad rows ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_stale_runs_are_whole_packets_repeating_the_row_before_them(world: dict[str, WorldSession], name: str) -> None:
    w = world[name]
    raw, labels = w.session.emg_raw, w.labels
    starts, stops = _runs(labels == STALE)
    assert len(starts) >= 2
    assert np.all(starts % PACKET_SAMPLES == 0), "runs start on a packet boundary"
    assert set(stops - starts) <= {4, 8, 12}, "runs of 1–3 whole packets"
    for a, b in zip(starts, stops, strict=True):
        assert labels[a - 1] == 0, "the repeated row is a good one"
        assert np.all(raw[a:b] == raw[a - 1])
    share = (labels == STALE).mean()
    if len(starts) >= 10:
        assert 0.4 < share / w.profile.stale_share < 1.6


@pytest.mark.parametrize("name", NAMES)
def test_zero_rows_are_exactly_zero_everywhere_and_only_where_labelled(
    world: dict[str, WorldSession], name: str
) -> None:
    w = world[name]
    all_zero = np.all(w.session.emg_raw == 0, axis=1)
    assert np.array_equal(all_zero, w.labels == ZERO)
    starts, stops = _runs(all_zero)
    assert set(stops - starts) <= {1, 2, 3}


@pytest.mark.parametrize("name", NAMES)
def test_bad_rows_leave_the_injected_faults_intact(world: dict[str, WorldSession], name: str) -> None:
    w = world[name]
    raw, labels = w.session.emg_raw, w.labels
    events = json.loads(w.session.attrs["fault_events"])
    for kind, channel, start, stop in events:
        if kind == "stall":
            continue
        assert not np.isin(labels[start:stop], [STALE, ZERO]).any(), kind
        if kind == "flat_line":
            assert np.ptp(raw[start:stop, channel]) == 0.0
        elif kind == "saturation":
            assert np.all(np.abs(raw[start:stop, channel]) == RAIL_STORED)
        elif kind == "duplicate":
            copies = np.flatnonzero(labels[start:stop] == FAULT_CODES["duplicate"]) + start
            assert len(copies) and np.array_equal(raw[copies], raw[copies - PACKET_SAMPLES])


def test_zero_rows_never_replace_the_row_a_stale_run_repeats() -> None:
    profile = make_recording_profile(np.random.default_rng([SEED, 103]))
    profile = dataclasses.replace(profile, stale_share=0.3, zero_rows_per_minute=2000.0)  # collisions guaranteed
    raw = np.random.default_rng(0).normal(1000.0, 10.0, (30_000, 8))
    bad, labels = add_bad_rows(raw, np.zeros(len(raw), np.uint8), FS, profile, np.random.default_rng(1))
    starts, stops = _runs(labels == STALE)
    assert not np.all(bad[starts - 1] == 0, axis=1).any()
    assert all(np.all(bad[a:b] == bad[a - 1]) for a, b in zip(starts, stops, strict=True))


@pytest.mark.parametrize("name", NAMES)
def test_inspect_names_stale_and_zero_rows_with_their_counts(world: dict[str, WorldSession], name: str) -> None:
    w = world[name]
    findings = {f.check: f for f in check_emg(w.session.emg_raw, w.session.emg_timestamps, FS, w.session.gestures)}
    assert findings["stale"].value == (w.labels == STALE).sum()
    assert findings["stale"].details["runs"] == len(_runs(w.labels == STALE)[0])
    zeros = int((w.labels == ZERO).sum())
    assert ("zero_rows" in findings) == (zeros > 0)
    if zeros:
        assert findings["zero_rows"].value == zeros


# -- levels: the ADC rail, DC, EMG, drift, mains ------------------------------------------------------------
def test_raw_never_leaves_the_adc_range_and_saturation_sits_at_the_rail(world: dict[str, WorldSession]) -> None:
    for w in world.values():
        raw = w.session.emg_raw.astype(np.float64)
        assert np.abs(raw).max() <= RAIL_STORED
        saturated = w.labels == FAULT_CODES["saturation"]
        channel = next(c for kind, c, *_ in json.loads(w.session.attrs["fault_events"]) if kind == "saturation")
        assert saturated.sum() > 100 and np.all(np.abs(raw[saturated, channel]) == RAIL_STORED)
    assert pytest.approx(2**23 * 0.045, abs=0.05) == RAIL_STORED, "±2²³ counts × 0.045 µV, not 600 mV"


def test_a_dc_near_the_rail_is_clipped_at_the_adc_range() -> None:
    profile = make_recording_profile(np.random.default_rng([SEED, 104]))
    profile = dataclasses.replace(profile, dc_offset_uv=np.full(8, 370e3), drift_mv=30.0, drift_corner_hz=0.8)
    rng = np.random.default_rng(5)
    n = 10_000
    raw = add_recording_nuisances(
        rng.normal(0, 20, (n, 8)),
        FS,
        rng,
        profile=profile,
        tissue_lowpass_hz=50.0,
        mains_hz=50.0,
        noise_uv=1.5,
        movement_speed=np.zeros(n),
    )
    assert raw.max() == ADC_RAIL_UV and (raw == ADC_RAIL_UV).mean() > 0.01
    assert raw.min() > 370e3 - 100e3, "a 30-mV drift wanders well under 100 mV"


@pytest.mark.parametrize("name", NAMES)
def test_dc_offsets_follow_the_recording_profile(world: dict[str, WorldSession], name: str) -> None:
    w = world[name]
    rows = ~_dilate(np.isin(w.labels, FAULTS), 500) & (w.labels == 0)
    median = np.median(w.session.emg_raw[rows].astype(np.float64), axis=0)
    # µV: the drift's wander over a minute — about 0.2 / corner_hz times its median 2-s swing (measured on
    # drift()), 3 of those
    tolerance = 500.0 + 3e3 * w.profile.drift_mv * max(0.5, 0.2 / w.profile.drift_corner_hz)
    assert np.all(np.abs(median - w.profile.dc_offset_uv) < tolerance)
    if _shared_dc(w.profile):
        assert np.all(np.sign(median) == np.sign(median[0]))
        assert np.ptp(median) < 0.06 * np.abs(median).mean() + 2 * tolerance, "one offset on every channel"


@pytest.mark.parametrize("name", NAMES)
def test_emg_rms_after_a_20_hz_high_pass_is_the_profiles_on_the_typical_channel(
    world: dict[str, WorldSession], name: str
) -> None:
    w = world[name]
    signal = high_passed(w.held, FS)
    for k in range(1, 5):  # take the mains lines out (their strength breathes: a fit would leave sidebands)
        if k * w.subject.mains_hz < FS / 2:
            signal = filtfilt(*iirnotch(k * w.subject.mains_hz, 30.0, fs=FS), signal, axis=0)
    rms = np.sqrt(np.mean(signal[w.clean_rows()] ** 2, axis=0))
    assert np.median(rms) == pytest.approx(w.profile.emg_rms_uv, rel=0.2)


@pytest.mark.parametrize("name", NAMES)
def test_drift_swings_as_the_profile_says(world: dict[str, WorldSession], name: str) -> None:
    w = world[name]
    swings = drift_swings_mv(w.held, FS)
    window = int(2 * FS)
    near_fault = _dilate(np.isin(w.labels, FAULTS), 500)
    clean = np.array([not near_fault[i * window : (i + 1) * window].any() for i in range(len(swings))])
    assert clean.sum() >= 15
    typical = float(np.median(np.median(swings[clean], axis=0)))
    assert typical == pytest.approx(w.profile.drift_mv, rel=0.2)
    assert swings[clean].max() > 1.5 * typical, "some windows swing well above the median"


@pytest.mark.parametrize("name", NAMES)
def test_mains_lines_sit_at_the_subjects_mains_and_harmonics_with_the_profiles_amplitudes(
    world: dict[str, WorldSession], name: str
) -> None:
    w = world[name]
    signal = high_passed(w.held, FS)
    times = w.truth - w.truth[0]  # the true sample times keep the phase across the stall
    rows = w.clean_rows()
    mains = w.subject.mains_hz
    lines = [k * mains for k in range(1, 5) if k * mains < FS / 2]
    assert len(lines) == 4, "50 and 60 Hz: all of the 2nd–4th harmonics lie below 250 Hz"
    amplitude = _line_amplitudes(signal, times, lines, rows)
    floor = _line_amplitudes(signal, times, [f + 3.7 for f in lines], rows).max(axis=0)
    other = 60.0 if mains == 50.0 else 50.0
    assert np.all(_line_amplitudes(signal, times, [other], rows)[0] < 4 * floor + 0.5), "no line at the other mains"
    expected = np.outer(np.concatenate([[1.0], w.profile.mains_harmonics]), w.profile.mains_uv)
    strong = expected > 10 * floor
    assert strong[0].any() and strong[1:].any(), "the test sees the fundamental and a harmonic"
    ratio = amplitude / expected  # the same slow breathing scales every line of the session
    assert np.all((ratio[strong] > 0.75) & (ratio[strong] < 1.25))
    assert np.all(np.abs(ratio[strong] / np.median(ratio[strong]) - 1.0) < 0.15), "the profile's relative amplitudes"
    assert spearmanr(amplitude[0], w.profile.mains_uv)[0] > 0.7, "more pickup, a larger line"


def test_the_channel_with_the_most_pickup_has_one_of_the_largest_mains_shares(world: dict[str, WorldSession]) -> None:
    checked = 0
    for w in world.values():
        pickup = w.profile.mains_uv
        if pickup.max() < 2 * np.median(pickup):
            continue  # no poorly contacting channel in this session
        raw = w.held
        mains, shares = mains_shares(raw[: int(np.flatnonzero(np.isin(w.labels, FAULTS))[0])], FS)
        assert mains == w.subject.mains_hz
        assert shares[np.argmax(pickup)] > np.median(shares), w.name
        checked += 1
    assert checked >= 2


# -- the shaping functions, exact by construction -----------------------------------------------------------
def test_shape_emg_sets_the_typical_channels_high_passed_rms_and_low_passes_the_spectrum() -> None:
    rng = np.random.default_rng([SEED, 105])
    clean = rng.normal(0, 1, (20_000, 8)) * np.array([0.2, 0.5, 1, 2, 3, 5, 8, 13])
    for lowpass in (20.0, 100.0):
        shaped = shape_emg(clean, FS, lowpass, 27.0)
        rms = np.sqrt(np.mean(high_passed(shaped, FS) ** 2, axis=0))
        assert np.median(rms) == pytest.approx(27.0, rel=1e-9)
        assert np.allclose(rms / rms[0], [1, 2.5, 5, 10, 15, 25, 40, 65], rtol=0.1), "one gain for all channels"
    freqs, power = welch(high_passed(shape_emg(clean, FS, 30.0, 27.0), FS), fs=FS, axis=0, nperseg=1000)
    cumulative = np.cumsum(power.sum(axis=1)) / power.sum()
    assert 29 <= freqs[np.searchsorted(cumulative, 0.5)] <= 77, "the real files' median frequency"


@pytest.mark.parametrize("swing_mv", [0.4, 5.0, 38.0])
def test_drift_gives_the_requested_median_swing_and_stays_below_the_emg_band(swing_mv: float) -> None:
    wander = drift(30_000, 8, FS, swing_mv, np.random.default_rng([SEED, 106]))
    swings = drift_swings_mv(wander, FS)
    assert float(np.median(np.median(swings, axis=0))) == pytest.approx(swing_mv, rel=1e-9)
    assert 1.5 < swings.max() / swing_mv < 10, "a few windows swing several times the median"
    correlation = np.corrcoef(wander.T)[np.triu_indices(8, 1)]
    assert 0.1 < np.median(correlation) < 0.9, "shared in part by every channel"
    assert np.sqrt(np.mean(high_passed(wander, FS) ** 2)) < 0.01 * swing_mv * 1000 / 38, "nothing in 20–250 Hz"


# -- determinism of what the world change added --------------------------------------------------------------
def _datasets(path: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def test_same_seed_gives_identical_arrival_counters_truth_and_playback_csv(tmp_path: Path) -> None:
    subject = make_subject(1, SEED + 1)
    runs = {
        key: simulate_session(tmp_path / key, subject, 1, 0.2, seed, write_2k=False, playback_csv=True, faults=True)
        for key, seed in (("a", SEED + 1), ("b", SEED + 1), ("c", SEED + 2))
    }
    a, b, c = (_datasets(runs[k][0]) for k in "abc")
    for name in ("import/arrival_times", "import/package_numbers", "truth/sample_times", "truth/fault_labels"):
        assert name in a
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    digest = {k: hashlib.sha256(runs[k][1].read_bytes()).hexdigest() for k in "abc"}
    assert digest["a"] == digest["b"] != digest["c"]
    shorter = min(len(a["import/arrival_times"]), len(c["import/arrival_times"]))
    steps_a, steps_c = (np.diff(x["import/arrival_times"][:shorter]) for x in (a, c))
    assert not np.array_equal(steps_a, steps_c), "another seed, another arrival pattern"


# -- variation across donnings ----------------------------------------------------------------------------------
def test_recording_profiles_vary_across_the_real_ranges() -> None:
    profiles = [make_recording_profile(np.random.default_rng([SEED, 200, i])) for i in range(12)]
    dc = np.abs(np.stack([p.dc_offset_uv for p in profiles]))
    assert dc.min() >= 9e3 * 0.97 and dc.max() <= 212e3 * 1.03
    drift_mv = np.array([p.drift_mv for p in profiles])
    rms = np.array([p.emg_rms_uv for p in profiles])
    assert np.all((drift_mv >= 0.4) & (drift_mv <= 38.0)) and np.all((rms >= 12.0) & (rms <= 43.0))
    shared = sum(_shared_dc(p) for p in profiles)
    backlog = np.array([p.arrival.backlog_s for p in profiles])
    assert np.all((backlog >= 3.5) & (backlog <= 6.0)), "every real file starts with a ~5-s backlog"
    delivery = np.array([p.arrival.backlog_delivery_s for p in profiles])
    assert np.all(delivery <= 0.04)
    pickup = np.stack([p.mains_uv / p.emg_rms_uv for p in profiles])
    harmonics = np.stack([p.mains_harmonics for p in profiles])
    assert np.all((harmonics > 0) & (harmonics < 1))
    stale = np.array([p.stale_share for p in profiles])
    zero = np.array([p.zero_rows_per_minute for p in profiles])
    assert np.all(stale > 0) and np.all(zero > 0)
    # and they vary: both kinds of DC, small and large offsets, still and drifting, quiet and mains-dominated
    assert 3 <= shared <= 11
    assert np.median(dc, axis=1).min() < 30e3 and np.median(dc, axis=1).max() > 100e3
    assert drift_mv.min() < 2.0 and drift_mv.max() > 10.0
    assert rms.min() < 20.0 and rms.max() > 30.0
    assert pickup.max(axis=1).min() < 0.5 and pickup.max(axis=1).max() > 3.0
    assert np.ptp(backlog) > 1.0
    assert stale.max() / stale.min() > 5 and zero.max() / zero.min() > 3


# -- the importer on cases the world does not draw (more in tests/firmware_bridge/test_import.py) ---------------
def test_a_long_delivery_pause_without_loss_keeps_the_timestamps() -> None:
    t = np.arange(20_000) / FS
    arrive = arrival_times(t, _quiet_arrival(), np.random.default_rng(0))
    arrive[5000:5400] = arrive[5399]  # 0.8 s without delivery, then the queue at once: nothing was lost
    recording = Recording(Path("pause.csv"), "sdk", np.ones((len(t), 8)), arrive, package_counter(t, FS), FS, [])
    timeline = build_timeline(recording)
    assert timeline.gaps == []
    assert np.ptp(timeline.times - t) < 2e-3


def test_a_loss_of_250_samples_is_reported_as_a_gap_not_as_a_resent_packet() -> None:
    index = np.arange(20_000)
    t = index[(index < 10_000) | (index >= 10_250)] / FS
    arrive = arrival_times(t, _quiet_arrival(), np.random.default_rng(0))
    recording = Recording(Path("loss.csv"), "sdk", np.ones((len(t), 8)), arrive, package_counter(t, FS), FS, [])
    timeline = build_timeline(recording)
    assert np.ptp(timeline.times - t) < 2e-3, "(this part holds today)"
    assert timeline.gaps == [(10_000, 250)] and timeline.repeated_counters == 0
