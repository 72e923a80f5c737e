"""`mode2 import`: real-layout MindRove CSV files (generated here) → session files, through the real SDK
descriptor, h5py on disk, `read_session` and the `replay:` source."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from firmware_bridge import import_command
from firmware_bridge.emg_sources import open_source
from firmware_bridge.errors import UserError
from firmware_bridge.mindrove_import import (
    Recording,
    Timeline,
    build_timeline,
    convert,
    decide_units,
    parse_file,
    reconstruct_times,
    summary_lines,
)
from firmware_bridge.session import read_session
from training.synth.mindrove_csv import write_mindrove_playback_csv

RATE = 500.0
T0 = 1_700_000_000.0
UV_PER_COUNT = 0.045


def run_import(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    import_command.add_arguments(parser)
    return import_command.run(parser.parse_args([str(a) for a in argv]))


# -- the SDK layout ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sdk_csv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    n = 3000
    emg = rng.normal(0.0, 30.0, (n, 8)) + rng.uniform(-200_000, 200_000, 8)
    stamps = T0 + np.arange(n) / RATE
    stamps[1800:] += 0.136  # a 138-ms hole: 68 samples never arrived (the counter skips them)
    path = write_mindrove_playback_csv(tmp_path_factory.mktemp("sdk") / "s07_r02_mindrove.csv", emg, stamps)
    return path, emg, stamps


def test_sdk_file_imports_with_the_csvs_emg_and_strictly_increasing_times(sdk_csv, tmp_path: Path, capsys) -> None:
    path, emg, stamps = sdk_csv
    out = tmp_path / "s.h5"
    assert run_import(path, "--out", out) == 0
    session = read_session(out)
    np.testing.assert_allclose(session.emg_raw, emg.astype(np.float32), rtol=1e-6, atol=1e-5)
    assert np.all(np.diff(session.emg_timestamps) > 0)
    np.testing.assert_allclose(session.emg_timestamps, stamps, atol=2e-6)
    assert len(session.pose_timestamps) == 0  # no camera: valid, with no pose frames
    assert session.subject_id == "s07" and session.session_id == "s07_r02_mindrove"
    assert session.attrs["import_source_units"] == "uV"
    assert session.attrs["import_missing_samples"] == 68
    np.testing.assert_array_equal(session.extras["import/package_numbers"][:3], [0, 1, 2])
    printed = capsys.readouterr().out
    assert "gaps: 1, 68 samples lost, at 3.736 s (68 lost)" in printed
    assert "units: µV as in the file (auto" in printed


def test_sdk_re_sent_packets_keep_the_slots_their_rows_were_recorded_in(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    emg = rng.normal(0.0, 30.0, (1000, 8))
    stamps = T0 + np.arange(1000) / RATE
    duplicate = np.zeros(1000, dtype=bool)
    duplicate[300:304] = True  # the device re-sent the packet before (counters repeat, then skip 4)
    emg[300:304] = emg[296:300]
    path = write_mindrove_playback_csv(tmp_path / "dup.csv", emg, stamps, duplicate_mask=duplicate)
    imported = convert(parse_file(path))
    np.testing.assert_allclose(imported.times, stamps, atol=2e-6)
    assert imported.timeline.repeated_counters == 4
    assert imported.timeline.gaps == []


def test_sdk_hole_longer_than_a_counter_wrap_is_counted_whole(tmp_path: Path) -> None:
    stamps = T0 + np.arange(2000) / RATE
    stamps[1000:] += 0.598  # 299 samples lost: the 8-bit counter steps by 300 ≡ 44
    emg = np.random.default_rng(4).normal(0.0, 30.0, (2000, 8))
    imported = convert(parse_file(write_mindrove_playback_csv(tmp_path / "hole.csv", emg, stamps)))
    assert imported.timeline.gaps == [(1000, 299)]
    np.testing.assert_allclose(imported.times, stamps, atol=2e-6)


def test_sdk_chunked_arrivals_with_a_backlog_are_spread_back_to_their_sample_times(tmp_path: Path) -> None:
    from mindrove.board_shim import BoardIds, BoardShim
    from mindrove.data_filter import DataFilter

    board = BoardIds.MINDROVE_WIFI_BOARD.value
    n = 6000
    truth = T0 + np.arange(n) / RATE
    chunk_last = np.minimum(np.arange(n) | 1, n - 1)
    arrival = truth[chunk_last] + np.random.default_rng(5).uniform(0, 0.002, n)[chunk_last]
    arrival[:2500] = T0 + 4.96 + 0.04 * chunk_last[:2500] / 2500  # 5 s delivered within 40 ms
    data = np.zeros((BoardShim.get_num_rows(board), n))
    data[BoardShim.get_emg_channels(board)] = np.random.default_rng(6).normal(0, 30, (8, n))
    data[BoardShim.get_timestamp_channel(board)] = arrival
    data[BoardShim.get_package_num_channel(board)] = np.arange(n) % 256
    path = tmp_path / "chunked.csv"
    DataFilter.write_file(data, str(path), "w")
    imported = convert(parse_file(path))
    assert 2400 <= imported.timeline.backlog <= 2500 and imported.timeline.gaps == []
    assert np.abs(imported.times - truth).max() < 0.003
    dropped = convert(parse_file(path), drop_backlog=True)
    assert dropped.samples == n - imported.timeline.backlog


def test_sdk_file_forced_to_counts_is_scaled_and_says_so(sdk_csv, tmp_path: Path) -> None:
    path, emg, _ = sdk_csv
    imported = convert(parse_file(path, "sdk"), units="counts")
    np.testing.assert_allclose(imported.emg_uv, (emg * UV_PER_COUNT).astype(np.float32), rtol=1e-6, atol=1e-5)
    assert "forced by --units counts" in imported.units_rule


# -- the recorder layout, in counts, with the armband's arrival habits -------------------------------------
@dataclass
class Recorder:
    path: Path
    counts: np.ndarray  # (N,8) the file's values
    truth: np.ndarray  # (N,) true sample times
    gap_row: int
    zero_row: int
    stale: list[tuple[int, int]]


BACKLOG = 2500  # 5 s delivered within 40 ms at start
GAP_ROW = 6500  # 68 samples lost before this row (a 138-ms hole)
LOST = 68


@pytest.fixture(scope="module")
def recorder_csv(tmp_path_factory: pytest.TempPathFactory) -> Recorder:
    rng = np.random.default_rng(2)
    n = 15_000  # 30 s
    index = np.arange(n) + np.where(np.arange(n) >= GAP_ROW, LOST, 0)
    truth = T0 + index / RATE
    counts = np.rint(rng.normal(0, 600, (n, 8)) + rng.uniform(-300_000, 300_000, 8))  # a DC below full scale
    counts[4000:4003] = 0  # zero rows
    stale = [(5000, 4), (7000, 8)]
    for start, length in stale:
        counts[start : start + length] = counts[start]
    # arrival: chunks of 2 samples stamped with one time, late by 0–1.5 ms, now and then by 8 ms more
    chunk_last = np.minimum(np.arange(n) | 1, n - 1)
    delay = rng.uniform(0.0, 0.0015, n)[chunk_last] + np.where(rng.random(n) < 0.002, 0.008, 0.0)[chunk_last]
    delay[-1000:] = delay[-1000:].clip(max=0.0015)
    arrival = truth[chunk_last] + delay
    arrival[:BACKLOG] = T0 + 4.96 + 0.04 * (chunk_last[:BACKLOG] / BACKLOG)  # the start-up backlog
    gesture = np.where(np.arange(n) < n // 2, "rest", "fist")
    path = tmp_path_factory.mktemp("rec") / "anna_day2.csv"
    lines = ["Timestamp," + ",".join(f"CH{i}" for i in range(1, 9)) + ",Gesture,ACC_X,ACC X"]
    for i in range(n):
        values = ",".join(str(int(v)) for v in counts[i])
        lines.append(f"{arrival[i] * 1000:.3f},{values},{gesture[i]},{0.01 * (i % 7):.2f},{i % 7}")  # timestamps in ms
    path.write_text("\n".join(lines) + "\n")
    return Recorder(path, counts, truth, GAP_ROW, 4000, stale)


def test_recorder_counts_become_uv_and_times_are_reconstructed_within_a_few_ms(recorder_csv: Recorder) -> None:
    imported = convert(parse_file(recorder_csv.path))
    assert imported.recording.format == "recorder"
    assert "milliseconds" in imported.recording.time_rule
    assert imported.source_units == "counts" and "whole number" in imported.units_rule
    np.testing.assert_allclose(imported.emg_uv, (recorder_csv.counts * UV_PER_COUNT).astype(np.float32), rtol=1e-6)
    assert np.all(np.diff(imported.times) > 0)
    error_ms = np.abs(imported.times - recorder_csv.truth) * 1000
    assert error_ms.max() < 3.0, f"worst reconstruction error {error_ms.max():.2f} ms"
    assert abs(imported.timeline.rate_hz - RATE) < 0.5


def test_recorder_backlog_gap_zero_and_stale_rows_are_reported_at_their_times(recorder_csv: Recorder) -> None:
    imported = convert(parse_file(recorder_csv.path))
    timeline = imported.timeline
    assert 2400 <= timeline.backlog <= BACKLOG  # all but the last 0.1 s of the backlog arrived > 0.1 s late
    assert timeline.backlog_arrival_s <= 0.041
    assert timeline.gaps == [(recorder_csv.gap_row, LOST)]
    assert imported.at(recorder_csv.gap_row) == pytest.approx((GAP_ROW + LOST) / RATE, abs=0.003)
    pauses = [(i, s) for i, s in timeline.stalls if s > 0.1]  # the hole, plus chunking and delivery jitter
    assert len(pauses) == 1 and pauses[0][0] == GAP_ROW and 0.138 <= pauses[0][1] < 0.15
    assert imported.zero == [(recorder_csv.zero_row, 3)]
    assert imported.stale == recorder_csv.stale
    text = "\n".join(summary_lines(imported))
    assert "backlog: 24" in text and "kept, with reconstructed times" in text
    assert "gaps: 1, 68 samples lost, at 13.136 s" in text
    assert "zero rows: 3 (kept), at 8.000 s" in text
    assert "stale repeats: 2 runs, 12 rows" in text and "at 10.000 s, 14.136 s" in text


def test_recorder_session_keeps_labels_masks_and_replays(recorder_csv: Recorder, tmp_path: Path) -> None:
    out = tmp_path / "sessions"
    assert run_import(recorder_csv.path, "--out", out, "--subject", "anna") == 0
    path = out / "anna_day2.h5"
    session = read_session(path)
    assert session.subject_id == "anna" and session.session_id == "anna_day2"
    assert session.attrs["emg_units"] == "uV" and session.attrs["import_source_units"] == "counts"
    assert session.extras["import/zero_rows"].sum() == 3
    assert session.extras["import/stale_rows"].sum() == 12
    assert session.extras["import/columns/Gesture"][0] == b"rest"
    assert session.extras["import/columns/ACC_X"][3] == pytest.approx(0.03)
    assert session.extras["import/columns/ACC_X_column12"][3] == 3.0  # "ACC X" cleans to the same name
    assert [g[0] for g in session.gestures] == ["rest", "fist"]
    source = open_source("replay:" + str(path), speed=0)
    source.start()
    got = []
    try:
        while not source.finished and len(got) < 5000:
            chunk = source.read(timeout=1.0)
            if chunk is not None:
                got.append(chunk.samples)
    finally:
        source.close()
    replayed = np.concatenate(got)
    np.testing.assert_allclose(replayed[:4000], session.emg_raw[:4000], rtol=1e-6)


def test_drop_backlog_removes_it_and_renumbers_what_is_reported(recorder_csv: Recorder) -> None:
    imported = convert(parse_file(recorder_csv.path), drop_backlog=True)
    dropped = imported.timeline.backlog
    assert imported.samples == len(recorder_csv.counts) - dropped
    assert imported.backlog_dropped
    assert imported.zero == [(recorder_csv.zero_row - dropped, 3)]
    assert imported.timeline.gaps == [(recorder_csv.gap_row - dropped, LOST)]


# -- rules in isolation -------------------------------------------------------------------------------------
def test_units_rule_counts_beyond_full_scale_or_whole_numbers_else_uv() -> None:
    assert decide_units(np.full((10, 8), 5e6))[1] == "counts"  # cannot be µV from this armband
    assert decide_units(np.arange(80.0).reshape(10, 8) + 1000)[1] == "counts"  # whole numbers
    assert decide_units(np.arange(80.0).reshape(10, 8) * 0.045 + 1000.01)[1] == "uV"
    assert decide_units(np.full((10, 8), 5e6), "uv")[1] == "uV"


def test_samples_sharing_one_arrival_time_are_spread_at_the_period_and_never_after_arrival() -> None:
    arrival = np.repeat(np.arange(5) * 0.004 + 0.004, 2)  # 2 samples per 4-ms chunk, stamped at the chunk's end
    times = reconstruct_times(arrival, np.arange(10), 0.002)
    np.testing.assert_allclose(np.diff(times), 0.002)
    assert np.all(times <= arrival + 1e-12)


# -- bad input: one clear error naming the file and the line ------------------------------------------------
@pytest.mark.parametrize(
    ("content", "mentions"),
    [
        ("", ["empty file"]),
        ("Timestamp,CH1,CH2\n", ["empty file"]),
        ("Timestamp,CH1,CH2\n1.0,2,3\n1.002,2\n", ["line 3", "2 comma-separated columns", "header has 3"]),
        ("Timestamp,CH1,CH2\n1.0,2,3\n1.002,2,x7\n", ["line 3 column 3", "(CH2)", "'x7' is not a number"]),
        ("Timestamp,CH1,CH2\n1.0,2,3\nyesterday,2,3\n", ["line 3 column 1", "is not a time"]),
        ("Timestamp,Gesture\n1.0,rest\n", ["line 1", "no EMG columns found"]),
        ("CH1,CH2\n1,2\n", ["line 1", "no Timestamp column"]),
        ("Timestamp,CH1\n1.0,2\n\n1.002,nan\n", ["line 4", "EMG channel 1 is NaN"]),
        ("1\t2\t3\n", ["line 1 has 3 tab-separated columns", "has 39"]),
        ("hello world\n", ["line 1", "--format"]),
        ("\x89HDF\r\n\x1a\n\x00\x00", ["line 1", "neither the SDK's"]),  # a session file given by mistake
        ("Timestamp,CH1\n5,1\n5,2\n", ["timestamps never advance"]),
    ],
)
def test_bad_input_is_one_user_error_naming_file_and_line_and_leaves_no_output(
    tmp_path: Path, content: str, mentions: list[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    out = tmp_path / "out"
    with pytest.raises(UserError) as caught:
        run_import(bad, "--out", out)
    message = str(caught.value)
    assert str(bad) in message
    for mention in mentions:
        assert mention in message, message
    assert [p.name for p in tmp_path.iterdir()] == ["bad.csv"], "no output and no temporary file left behind"


def test_sdk_non_numeric_value_names_line_and_column(sdk_csv, tmp_path: Path) -> None:
    lines = sdk_csv[0].read_text().splitlines()
    fields = lines[41].split("\t")
    fields[5] = "oops"
    lines[41] = "\t".join(fields)
    bad = tmp_path / "bad_sdk.csv"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=r"bad_sdk.csv: line 42 column 6: 'oops' is not a number"):
        run_import(bad, "--out", tmp_path / "x.h5")
    assert not (tmp_path / "x.h5").exists()


def test_a_bad_second_input_writes_nothing_for_the_first(sdk_csv, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("Timestamp,CH1\n1.0,oops\n")
    out = tmp_path / "out"
    with pytest.raises(UserError, match="line 2"):
        run_import(sdk_csv[0], bad, "--out", out)
    assert not out.exists() or not list(out.iterdir())


def test_existing_output_is_replaced_whole(sdk_csv, tmp_path: Path) -> None:
    out = tmp_path / "s.h5"
    out.write_bytes(b"old")
    assert run_import(sdk_csv[0], "--out", out) == 0
    with h5py.File(out, "r") as f:
        assert f["emg/raw"].shape == (3000, 8)
    assert [p.name for p in tmp_path.iterdir()] == ["s.h5"]  # no temporary file left


@pytest.mark.parametrize("ppm", [-150.0, 0.0, 150.0])
def test_a_drifting_sample_clock_is_measured_and_jittered_arrivals_make_no_false_gaps(ppm: float) -> None:
    rng = np.random.default_rng(int(ppm) + 1000)
    n = 15_000
    truth = T0 + np.arange(n) / (RATE * (1 + ppm * 1e-6))
    chunk_last = np.minimum(np.arange(n) | 1, n - 1)
    arrival = truth[chunk_last] + rng.exponential(0.002, n)[chunk_last]
    recording = Recording(Path("x.csv"), "recorder", np.ones((n, 8)), arrival, None, RATE, ["CH1"])
    timeline = build_timeline(recording)
    assert timeline.rate_hz == pytest.approx(RATE * (1 + ppm * 1e-6), abs=0.005)
    assert timeline.gaps == [] and timeline.backlog == 0
    assert np.abs(timeline.times - truth).max() < 0.001
    assert np.all(timeline.times <= arrival)


# -- the package counter's wraps: decided from the arrival envelope on both sides of a step --------------------
AT = 10_000  # the row after the stall or pause


def _counter_case(
    lost: int = 0,
    *,
    pause_s: float = 0.0,
    pause_from: int = AT,
    straddle: bool = False,
    held_rows: int = 0,
    late_before_s: float = 0.0,
    hold_after_s: float = 0.0,
    more_losses: tuple[tuple[int, int], ...] = (),
    resend_at: int = 0,
    seed: int = 0,
) -> tuple[np.ndarray, Timeline]:
    """20,000 rows at 500 Hz, chunks of 2 sent with their last sample and arriving 4 ms + Exp(1 ms) later, a
    counter per sample; `lost` samples lost before row AT; (true sample times, what the importer made of it).

    pause_s: delivery stops at row `pause_from` for this long, nothing lost (the queue then arrives at once).
    straddle: rows AT - 1 and AT share a chunk (the earlier one arrives after the stall).
    held_rows: the last rows before the loss sat in the device's buffer and arrive with row AT.
    late_before_s: the chunk before the loss arrives this much late.
    hold_after_s: delivery resumes only this long after the last sample before the loss.
    resend_at: rows resend_at … + 3 carry the 4 counters before them again (a re-sent packet in their slots).
    """
    n = 20_000
    jumps = np.zeros(n, dtype=np.int64)
    jumps[AT] = lost
    for row, count in more_losses:
        jumps[row] += count
    index = np.arange(n) + np.cumsum(jumps)
    t = T0 + index / RATE
    new_run = np.r_[True, np.diff(index) > 1]
    position = np.arange(n) + 1 if straddle else np.arange(n) - np.flatnonzero(new_run)[np.cumsum(new_run) - 1]
    chunk = np.cumsum(np.r_[True, position[1:] % 2 == 0]) - 1
    last = np.flatnonzero(np.r_[chunk[1:] != chunk[:-1], True])
    arrive = (t[last] + 0.004 + np.random.default_rng(seed).exponential(0.001, len(last)))[chunk]
    for begin, length in ((t[pause_from], pause_s), (t[AT - 1], hold_after_s)):
        arrive[(arrive >= begin) & (arrive < begin + length)] = begin + length
    if held_rows:
        arrive[AT - held_rows : AT] = arrive[AT]
    arrive[AT - 2 : AT] += late_before_s
    counters = index % 256
    if resend_at:
        counters[resend_at : resend_at + 4] = counters[resend_at - 4 : resend_at]
    arrive = np.maximum.accumulate(arrive)
    recording = Recording(Path("wraps.csv"), "sdk", np.ones((n, 8)), arrive, counters, RATE, [])
    return t, build_timeline(recording)


def _timestamp_spread_ms(t: np.ndarray, timeline: Timeline) -> float:
    """How far the reconstructed times stray from the true ones beyond a constant delay (ms)."""
    return float(np.ptp(timeline.times - t) * 1000)


@pytest.mark.parametrize("lost", [239, 250, 254])
def test_a_loss_of_239_to_254_samples_is_reported_as_a_gap_not_as_a_resent_packet(lost: int) -> None:
    t, timeline = _counter_case(lost)  # the counter steps by 240–255: a back-step of 1–16 read modulo 256
    assert timeline.gaps == [(AT, lost)] and timeline.repeated_counters == 0
    assert _timestamp_spread_ms(t, timeline) < 2.0


@pytest.mark.parametrize("pause_s", [0.3, 0.6, 1.2, 3.0])
def test_a_long_delivery_pause_without_loss_keeps_the_timestamps(pause_s: float) -> None:
    t, timeline = _counter_case(pause_s=pause_s)  # ≥ 0.512 s: as long as a counter wrap
    assert timeline.gaps == [] and timeline.repeated_counters == 0
    assert _timestamp_spread_ms(t, timeline) < 2.0


@pytest.mark.parametrize(
    ("lost", "how"),
    [
        (256, {}),  # the counter steps by +1
        (600, {}),
        (300, {"straddle": True}),
        (600, {"held_rows": 100}),
        (300, {"late_before_s": 0.06}),
        (300, {"hold_after_s": 1.5}),
        (812, {"straddle": True, "late_before_s": 0.03}),
    ],
)
def test_a_loss_beyond_a_counter_wrap_is_counted_whole_however_the_rows_around_it_arrive(
    lost: int, how: dict[str, object]
) -> None:
    t, timeline = _counter_case(lost, **how)
    assert timeline.gaps == [(AT, lost)] and timeline.repeated_counters == 0
    assert _timestamp_spread_ms(t, timeline) < 2.0


def test_a_resent_packet_right_after_a_stall_stays_a_resend_and_the_stall_keeps_its_loss() -> None:
    t, timeline = _counter_case(300, resend_at=AT + 10)
    assert timeline.gaps == [(AT, 300)] and timeline.repeated_counters == 4
    assert _timestamp_spread_ms(t, timeline) < 2.0


def test_two_stalls_and_a_small_loss_close_together_each_keep_their_own_count() -> None:
    t, timeline = _counter_case(300, more_losses=((AT + 20, 3), (AT + 200, 300)))
    assert timeline.gaps == [(AT, 300), (AT + 20, 3), (AT + 200, 300)]
    assert _timestamp_spread_ms(t, timeline) < 2.0


def test_rows_held_by_a_delivery_pause_just_before_a_stall_do_not_hide_its_wraps() -> None:
    t, timeline = _counter_case(600, pause_s=0.7, pause_from=AT - 300)  # 0.6 s of rows before it arrive late
    assert timeline.gaps == [(AT, 600)]
    assert _timestamp_spread_ms(t, timeline) < 2.0


def test_in_a_burst_released_after_a_stall_the_wraps_go_to_the_jump_after_the_pause() -> None:
    # the device kept its newest samples: the rows after the loss arrive in one burst, with a small loss in it
    t, timeline = _counter_case(300, hold_after_s=1.0, more_losses=((AT + 20, 3),))
    assert timeline.gaps == [(AT, 300), (AT + 20, 3)]
    assert _timestamp_spread_ms(t, timeline) < 2.0


@settings(max_examples=60, deadline=None)
@given(
    lost=st.integers(1, 1500),
    shape=st.sampled_from(["plain", "straddle", "held", "late", "delivery held"]),
    seed=st.integers(0, 2**16),
)
def test_any_single_stall_is_counted_exactly_whatever_the_rows_around_it_do(lost: int, shape: str, seed: int) -> None:
    assume(lost % 256 or shape in ("plain", "late"))  # a loss of 256·m (counter +1) after held rows: a guess
    how = {
        "plain": {},
        "straddle": {"straddle": True},
        "held": {"held_rows": 1 + seed % 200},
        "late": {"late_before_s": (seed % 100) / 1000},
        "delivery held": {"hold_after_s": lost / RATE + (seed % 150) / 100},
    }[shape]
    t, timeline = _counter_case(lost, seed=seed, **how)
    assert timeline.gaps == [(AT, lost)] and timeline.repeated_counters == 0
    assert _timestamp_spread_ms(t, timeline) < 2.0
