"""All-zero rows (a real armband's dropped packets) are repaired by one function, the same way in training's
`filter_session` and in the runtime loop before its engines' input stage (firmware_bridge/emg_rows.py)."""

from __future__ import annotations

import itertools
from dataclasses import fields
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from firmware_bridge.emg_filter import InputFilter, StreamFilter, filter_session
from firmware_bridge.emg_rows import hold_over_zero_rows, repair_recording, signal_onset
from runtime.input_stage import InputStage
from runtime.loop import LoopStats, RuntimeLoop
from runtime.model_contract import ModelMetadata
from runtime.model_metadata import LoadedModel
from runtime.ring_buffer import EmgRing
from training.data.emg_checks import without_zero_rows

RATE = 500.0
CHANNELS = 8
SPEC = InputFilter.design(RATE, notch_hz=(50.0,))


def reference_hold(x: np.ndarray, last_good: np.ndarray | None) -> np.ndarray:
    """The rule written the obvious way: a row loop."""
    out = x.copy()
    previous = last_good
    for i, row in enumerate(x):
        if not row.any():
            if previous is not None:
                out[i] = previous
        else:
            previous = row
    return out


def hold_in_chunks(x: np.ndarray, cuts: list[int]) -> np.ndarray:
    """Chunk by chunk as the loop does: each chunk's `last_good` is the previous chunk's last repaired row."""
    parts, last = [], None
    for a, b in itertools.pairwise([0, *cuts, len(x)]):
        repaired, _ = hold_over_zero_rows(x[a:b], last)
        parts.append(repaired)
        if b > a:
            last = repaired[-1]
    return np.concatenate(parts)


def armband_stream(n: int, seed: int) -> np.ndarray:
    """(n, 8) µV as a MindRove reports it: 150–250 mV DC (shared sign), slow drift, 30 µV of EMG-like noise
    and a little 50 Hz."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / RATE
    dc = rng.uniform(150_000.0, 250_000.0, CHANNELS)
    drift = 2000.0 * np.sin(2 * np.pi * 0.3 * t[:, None] + rng.uniform(0, 6, CHANNELS))
    mains = 10.0 * np.sin(2 * np.pi * 50.0 * t)[:, None]
    return dc + drift + mains + rng.normal(0.0, 30.0, (n, CHANNELS))


def with_zero_rows(raw: np.ndarray, rows: list[int]) -> np.ndarray:
    out = raw.copy()
    out[rows] = 0.0
    return out


# -- the function -----------------------------------------------------------------------------------------
def test_zero_runs_at_start_middle_and_end_repeat_the_last_good_row_and_leading_ones_stay_zero() -> None:
    x = armband_stream(400, seed=1)
    zero_rows = [0, 1, 2, 50, 120, 121, 122, 123, 397, 398, 399]
    raw = with_zero_rows(x, zero_rows)
    repaired, zero = hold_over_zero_rows(raw)
    np.testing.assert_array_equal(repaired, reference_hold(raw, None))
    assert np.flatnonzero(zero).tolist() == zero_rows
    assert not repaired[:3].any(), "no good row before the stream's first rows: they stay zero"
    np.testing.assert_array_equal(repaired[120:124], np.repeat(raw[119:120], 4, axis=0))
    np.testing.assert_array_equal(repaired[397:], np.repeat(raw[396:397], 3, axis=0))
    assert not raw[50].any(), "the caller's rows are not modified"


def test_leading_zero_rows_of_a_chunk_take_the_row_before_the_chunk() -> None:
    raw = with_zero_rows(armband_stream(10, seed=2), [0, 1, 5])
    last = np.full(CHANNELS, 7.0)
    repaired, _ = hold_over_zero_rows(raw, last)
    np.testing.assert_array_equal(repaired[:2], [last, last])
    np.testing.assert_array_equal(repaired[5], raw[4])


def test_a_chunk_without_zero_rows_is_returned_as_is() -> None:
    raw = armband_stream(20, seed=3)
    repaired, zero = hold_over_zero_rows(raw, np.ones(CHANNELS))
    assert repaired is raw and not zero.any()


def test_applied_chunk_by_chunk_with_last_good_it_equals_the_whole_array_at_every_split() -> None:
    raw = with_zero_rows(armband_stream(120, seed=4), [0, 1, 9, 10, 11, 12, 40, 59, 60, 61, 119])
    whole, _ = hold_over_zero_rows(raw)
    for cuts in ([10], [1, 2], [9, 10, 11, 12, 13], [59, 61], [60, 119], list(range(1, 120, 7))):
        np.testing.assert_array_equal(hold_in_chunks(raw, cuts), whole, err_msg=f"cuts {cuts}")


@st.composite
def zero_row_streams(draw: st.DrawFn) -> tuple[np.ndarray, list[int]]:
    n = draw(st.integers(0, 40))
    values = draw(hnp.arrays(np.float64, (n, 3), elements=st.sampled_from([0.0, -1.5, 2.0, 3.25])))
    zero = draw(hnp.arrays(bool, n))
    values[zero] = 0.0
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=6)))
    return values, cuts


@settings(max_examples=300, deadline=None)
@given(zero_row_streams(), st.sampled_from([None, "zero", "good"]))
def test_property_chunked_repair_equals_the_row_loop_reference(stream, before: str | None) -> None:
    x, cuts = stream
    last = {None: None, "zero": np.zeros(3), "good": np.array([9.0, -9.0, 1.0])}[before]
    expected = reference_hold(x, last)
    repaired, zero = hold_over_zero_rows(x, last)
    np.testing.assert_array_equal(repaired, expected)
    np.testing.assert_array_equal(zero, ~x.any(axis=1))
    if last is None:
        np.testing.assert_array_equal(hold_in_chunks(x, cuts), expected)


def test_signal_onset_is_the_first_non_zero_row_after_zero_rows_only() -> None:
    zero = np.array([True, True, False, True, False])
    assert signal_onset(zero, None) == 2
    assert signal_onset(zero, np.zeros(3)) == 2
    assert signal_onset(zero, np.ones(3)) is None, "the signal started before this chunk"
    assert signal_onset(np.array([False, True]), None) is None, "the stream starts with signal"
    assert signal_onset(np.array([False, True]), np.zeros(3)) == 0, "earlier chunks were all zero rows"
    assert signal_onset(np.array([True, True]), None) is None


def test_training_checks_fill_leading_zero_rows_with_the_first_good_row_and_hold_the_rest() -> None:
    raw = with_zero_rows(armband_stream(50, seed=5), [0, 1, 20, 21, 49])
    held = without_zero_rows(raw)
    np.testing.assert_array_equal(held[:2], raw[[2, 2]])
    np.testing.assert_array_equal(held[2:], hold_over_zero_rows(raw)[0][2:])
    assert without_zero_rows(np.zeros((4, 8))).shape == (4, 8)


# -- training's model input ---------------------------------------------------------------------------------
def test_filter_session_repairs_zero_rows_so_they_do_not_ring_through_the_filter() -> None:
    clean = armband_stream(3000, seed=6)
    stamps = np.arange(len(clean)) / RATE
    raw = with_zero_rows(clean, [800, 1500, 1501, 1502, 2200])
    out = filter_session(raw, stamps, SPEC)
    np.testing.assert_array_equal(out, filter_session(hold_over_zero_rows(raw)[0], stamps, SPEC))
    clean_peak = float(np.abs(filter_session(clean, stamps, SPEC)[200:]).max())
    assert float(np.abs(out[200:]).max()) < 2.0 * clean_peak, (np.abs(out[200:]).max(), clean_peak)
    unrepaired = StreamFilter(SPEC, CHANNELS).process(raw)
    assert float(np.abs(unrepaired).max()) > 100_000.0, "a zero row against a 200-mV offset rings to > 100 mV"


def test_a_session_that_starts_with_zero_rows_restarts_its_filter_at_the_first_good_row() -> None:
    clean = armband_stream(2000, seed=7)
    stamps = np.arange(len(clean)) / RATE
    raw = with_zero_rows(clean, list(range(6)))
    assert repair_recording(raw)[1] == 6
    out = filter_session(raw, stamps, SPEC)
    assert not out[:6].any(), "the leading zero rows filter to exactly 0"
    np.testing.assert_allclose(out[6:], StreamFilter(SPEC, CHANNELS).process(clean[6:]), atol=1e-3)
    assert float(np.abs(out).max()) < 2.0 * float(np.abs(out[500:]).max())
    no_restart = StreamFilter(SPEC, CHANNELS).process(raw)
    assert float(np.abs(no_restart).max()) > 100_000.0, "without the restart the step from 0 to the DC rings"


# -- the runtime's input stage, fed as the loop feeds it ----------------------------------------------------
def input_stage(capacity: int) -> InputStage:
    """The engines' real input stage for a model whose metadata asks for `SPEC` (it reads only these three
    fields; the rest of a model's metadata is not needed to filter)."""
    values = {"channels": CHANNELS, "sampling_rate_hz": RATE, "input_filter": SPEC.to_dict()}
    meta = ModelMetadata(**{f.name: values.get(f.name) for f in fields(ModelMetadata)})
    return InputStage(LoadedModel(session=None, meta=meta, sha256="", path=Path("zero-rows.onnx")), capacity)


def loop_feeding(stage: InputStage, window: int) -> RuntimeLoop:
    """Only the loop's acquire step (repair, ring, engine feed), without a source or a device."""
    loop = RuntimeLoop.__new__(RuntimeLoop)
    loop.ring, loop.stats, loop.engine = EmgRing(4096, CHANNELS), LoopStats(), stage
    loop._clean_after, loop.window = 0, window
    return loop


def test_runtime_input_stage_equals_training_filter_session_on_a_session_with_zero_rows() -> None:
    n, gap_at = 6000, 4000
    clean = armband_stream(n, seed=8)
    stamps = np.arange(n) / RATE
    stamps[gap_at:] += 40 / RATE  # 40 samples missing: a long gap, where the loop restarts its engine
    zero_rows = [0, 1, 2, 3, 4, 700, 1500, 1501, 1502, 2999, 3000, gap_at, gap_at + 1, n - 2, n - 1]
    raw = with_zero_rows(clean, zero_rows)
    expected = filter_session(raw, stamps, SPEC)

    stage = input_stage(n)
    loop = loop_feeding(stage, window=1000)
    rng = np.random.default_rng(8)
    cuts = np.cumsum(rng.integers(1, 30, n))
    starts = [0, *cuts[cuts < n].tolist(), 3000]  # a chunk boundary inside the zero run at 2999–3000 too
    for a, b in itertools.pairwise([*sorted(set(starts)), n]):
        if a <= gap_at < b:  # the source's gap event for this chunk, as RuntimeLoop._ingest handles it
            loop.engine.restart(gap_at - a)
        repaired = loop._repair_zero_rows(raw[a:b])
        loop.ring.append(repaired, stamps[a:b])
        loop.engine.feed(repaired)

    got = stage.window(n, n)
    np.testing.assert_allclose(got, expected, atol=1e-3)
    assert loop.stats.zero_rows_repaired == len(zero_rows)
    assert loop._clean_after == 5 + 1000, "no window is clean until it has left the stream's leading zero rows"
    assert float(np.abs(got[10:]).max()) < 2.0 * float(np.abs(filter_session(clean, stamps, SPEC)[10:]).max())
