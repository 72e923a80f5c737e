"""The model's causal input filter (firmware_bridge/emg_filter.py): chunking does not change it, it starts
without a transient on a large DC offset, it has the response it claims, it restarts where the runtime
restarts it, and it refuses a section it could not apply."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.signal import sosfilt, sosfilt_zi

from firmware_bridge.emg_filter import (
    RESET_GAP_SAMPLES,
    FilterSpecError,
    InputFilter,
    StreamFilter,
    filter_session,
)

RATE = 500.0
SPEC = InputFilter.design()


def emg_like(n: int, channels: int = 8, seed: int = 0, dc_uv: float = 0.0) -> np.ndarray:
    """Broadband noise of tens of µV (EMG-sized) on a per-channel DC offset."""
    rng = np.random.default_rng(seed)
    offsets = dc_uv * (1.0 + 0.1 * np.arange(channels))
    return rng.normal(0.0, 30.0, (n, channels)) + offsets


def amplitude_gain(spec: InputFilter, hz: float, seconds: float = 6.0) -> float:
    """Steady-state output/input amplitude of a sine at `hz` through the streaming filter (last 2 s)."""
    t = np.arange(int(seconds * RATE)) / RATE
    x = 1000.0 * np.sin(2 * np.pi * hz * t)[:, None]
    y = StreamFilter(spec, 1).process(x)[:, 0].astype(np.float64)
    tail = slice(-int(2 * RATE), None)
    return float(np.sqrt(np.mean(y[tail] ** 2)) / np.sqrt(np.mean(x[tail, 0] ** 2)))


@settings(max_examples=40, deadline=None)
@given(
    cuts=st.lists(st.integers(0, 600), min_size=0, max_size=12),
    seed=st.integers(0, 2**16),
)
def test_chunked_stream_filter_equals_filtering_the_whole_stream_at_once(cuts: list[int], seed: int) -> None:
    raw = emg_like(600, seed=seed, dc_uv=300_000.0)
    bounds = [0, *sorted(cuts), len(raw)]
    streaming = StreamFilter(SPEC, 8)
    chunked = np.concatenate([streaming.process(raw[a:b]) for a, b in itertools.pairwise(bounds)])
    # the reference: scipy on the whole stream, started in the steady state of the first sample
    zi = sosfilt_zi(SPEC.sos_array)[:, :, None] * raw[0][None, None, :]
    whole, _ = sosfilt(SPEC.sos_array, raw, axis=0, zi=zi)
    assert chunked.shape == raw.shape and chunked.dtype == np.float32
    np.testing.assert_allclose(chunked, whole, atol=1e-3)  # µV, on a 300-mV offset


def test_a_400_mv_dc_offset_gives_no_start_up_transient_and_is_removed() -> None:
    raw = emg_like(2000, dc_uv=400_000.0, seed=1)  # 400 mV (and up to 680 mV on the last channel)
    filtered = StreamFilter(SPEC, 8).process(raw)
    assert np.abs(filtered).max() < 250.0, "a start-up transient (or the offset) reached the output"
    assert abs(float(filtered[500:].mean())) < 3.0, "the DC offset is not removed"
    # the same samples through the same sections started from rest: the transient the steady-state start avoids
    from_rest = sosfilt(SPEC.sos_array, raw, axis=0)
    assert np.abs(from_rest[:50]).max() > 100_000.0


def test_a_restart_starts_from_the_steady_state_of_the_new_first_sample() -> None:
    raw = np.concatenate([emg_like(500, dc_uv=100_000.0, seed=2), emg_like(500, dc_uv=-350_000.0, seed=3)])
    stream = StreamFilter(SPEC, 8)
    before = stream.process(raw[:500])
    stream.reset()
    after = stream.process(raw[500:])
    np.testing.assert_array_equal(after, StreamFilter(SPEC, 8).process(raw[500:]))
    assert np.abs(np.concatenate([before, after])).max() < 250.0
    # without the reset the 450-mV step would ring through the output
    continuous = StreamFilter(SPEC, 8).process(raw)
    assert np.abs(continuous[500:]).max() > 10_000.0


@pytest.mark.parametrize("hz", [0.2, 1.0, 2.0, 5.0])
def test_drift_below_5_hz_is_attenuated_by_at_least_48_db(hz: float) -> None:
    """Order-4 Butterworth at 20 Hz: (1 + (20/5)⁸)^-½ ≈ −48 dB at 5 Hz, more below."""
    gain = amplitude_gain(SPEC, hz, seconds=max(6.0, 4.0 / hz + 2.0))
    assert 20 * np.log10(gain) < -48.0


@pytest.mark.parametrize("hz", [20.0, 30.0, 60.0, 120.0, 200.0, 240.0])
def test_the_emg_band_20_to_250_hz_passes(hz: float) -> None:
    gain_db = 20 * np.log10(amplitude_gain(SPEC, hz))
    if hz == 20.0:
        assert -3.2 < gain_db < -2.8  # the corner
    else:
        assert abs(gain_db) < 0.25


def _stamps_with_gap(n: int, at: int, missing: int) -> np.ndarray:
    t = np.arange(n, dtype=np.float64) / RATE + 1.75e9
    t[at:] += missing / RATE
    return t


@pytest.mark.parametrize("missing", [RESET_GAP_SAMPLES + 1, 50, 390])
def test_filter_session_restarts_exactly_after_a_gap_of_more_than_10_missing_samples(missing: int) -> None:
    raw = np.concatenate([emg_like(700, dc_uv=200_000.0, seed=4), emg_like(800, dc_uv=-300_000.0, seed=5)])
    out = filter_session(raw, _stamps_with_gap(len(raw), 700, missing), SPEC)
    np.testing.assert_array_equal(out[:700], StreamFilter(SPEC, 8).process(raw[:700]))
    np.testing.assert_array_equal(out[700:], StreamFilter(SPEC, 8).process(raw[700:]))
    assert np.abs(out).max() < 250.0


@pytest.mark.parametrize("missing", [1, 5, RESET_GAP_SAMPLES])
def test_filter_session_keeps_filtering_through_a_small_gap(missing: int) -> None:
    raw = emg_like(1500, dc_uv=200_000.0, seed=6)
    out = filter_session(raw, _stamps_with_gap(len(raw), 700, missing), SPEC)
    np.testing.assert_array_equal(out, StreamFilter(SPEC, 8).process(raw))
    # and it is not the restarted version (which would differ after the cut)
    restarted = StreamFilter(SPEC, 8).process(raw[700:])
    assert np.abs(out[700:710] - restarted[:10]).max() > 1e-3


def test_filter_session_restarts_at_every_long_gap_of_a_session_with_several() -> None:
    raw = emg_like(3000, dc_uv=250_000.0, seed=7)
    stamps = np.arange(3000, dtype=np.float64) / RATE
    stamps[1000:] += 20 / RATE
    stamps[1003:] += 3 / RATE  # small: no restart
    stamps[2200:] += 500 / RATE
    out = filter_session(raw, stamps, SPEC)
    for a, b in ((0, 1000), (1000, 2200), (2200, 3000)):
        np.testing.assert_array_equal(out[a:b], StreamFilter(SPEC, 8).process(raw[a:b]))


def test_notch_variant_removes_a_50_hz_tone_and_keeps_the_emg_band() -> None:
    notched = InputFilter.design(notch_hz=(50.0,))
    assert 20 * np.log10(amplitude_gain(notched, 50.0)) < -40.0
    assert 20 * np.log10(amplitude_gain(SPEC, 50.0)) > -0.5, "the plain high-pass lets 50 Hz through"
    for hz in (30.0, 100.0, 150.0):
        assert abs(20 * np.log10(amplitude_gain(notched, hz))) < 0.5
    assert "notches at 50 Hz" in notched.description
    # it survives the trip through metadata
    again = InputFilter.from_dict(notched.to_dict())
    np.testing.assert_array_equal(again.sos_array, notched.sos_array)


def _good() -> dict:
    return SPEC.to_dict()


def _with(**changes: object) -> dict:
    data = _good()
    data.update(changes)
    return data


@pytest.mark.parametrize(
    ("data", "field", "why"),
    [
        (_with(kind="ba"), "input_filter.kind", "sos"),
        ({k: v for k, v in _good().items() if k != "sos"}, "input_filter", "sos"),
        ({k: v for k, v in _good().items() if k != "sampling_rate_hz"}, "input_filter", "sampling_rate_hz"),
        (_with(sos=[[1.0, 0.0, 0.0, 1.0, 0.0]]), "input_filter.sos", "(n, 6)"),
        (_with(sos=[]), "input_filter.sos", "(n, 6)"),
        (_with(sos=[[1.0, 0.0, 0.0, 1.0, float("nan"), 0.0]]), "input_filter.sos", "finite"),
        (_with(sos=[[1.0, 0.0, 0.0, 2.0, 0.0, 0.0]]), "input_filter.sos", "a0"),
        (_with(sos=[[1.0, 0.0, 0.0, 1.0, 0.0, -1.5]]), "input_filter.sos", "unstable"),  # poles ±1.22
        (_with(sos=[[1.0, 0.0, 0.0, 1.0, -2.0, 1.0]]), "input_filter.sos", "unstable"),  # double pole at 1
        (_with(sos="high-pass"), "input_filter", "malformed"),
        (["sos"], "input_filter", "table"),
    ],
)
def test_from_dict_refuses_an_unusable_section_naming_the_field(data: object, field: str, why: str) -> None:
    with pytest.raises(FilterSpecError) as error:
        InputFilter.from_dict(data, "input_filter")  # type: ignore[arg-type]
    message = str(error.value)
    assert message.startswith(field) and why in message, message


def test_from_dict_accepts_what_to_dict_wrote() -> None:
    again = InputFilter.from_dict(SPEC.to_dict())
    assert again == SPEC
    raw = emg_like(300, dc_uv=1000.0)
    np.testing.assert_array_equal(StreamFilter(again, 8).process(raw), StreamFilter(SPEC, 8).process(raw))


@pytest.mark.parametrize("kwargs", [{"highpass_hz": 0.0}, {"highpass_hz": 250.0}, {"notch_hz": (300.0,)}])
def test_design_refuses_a_corner_outside_the_band(kwargs: dict) -> None:
    with pytest.raises(FilterSpecError, match="must be between 0 and 250 Hz"):
        InputFilter.design(**kwargs)


def test_notched_mains_families_are_those_whose_every_line_the_filter_removes() -> None:
    from firmware_bridge.emg_filter import notched_mains_families

    both = (50.0, 60.0, 100.0, 120.0, 150.0, 180.0, 200.0, 240.0)
    assert notched_mains_families(InputFilter.design(notch_hz=both)) == (50.0, 60.0)
    assert notched_mains_families(InputFilter.design(notch_hz=(50.0, 100.0, 150.0, 200.0))) == (50.0,)
    assert notched_mains_families(InputFilter.design(notch_hz=(50.0, 100.0, 150.0))) == (), "200 Hz passes"
    assert notched_mains_families(InputFilter.design()) == ()
    assert notched_mains_families(InputFilter.design(notch_hz=(60.0, 120.0, 180.0, 240.0), notch_q=3000.0)) == (), (
        "a notch narrower than the grid's ±0.1 % frequency tolerance does not count"
    )
