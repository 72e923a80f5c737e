"""benchmarks/measure_signal_quality.py replays a world session the way the live armband path meets it and
scores the checker against what the world did (its labels, its arrival times)."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from benchmark_scripts import load_benchmark

from firmware_bridge.session import read_session
from runtime.signal_quality import QualityConfig, QualityFlag
from training.synth import simulate
from training.synth.nuisance import FAULT_CODES

msq = load_benchmark("measure_signal_quality")


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory):
    """One 30-s world session with its five injected faults, replayed once."""
    out = tmp_path_factory.mktemp("sq_world")
    path = simulate(out, sessions=1, subjects=1, minutes=0.5, seed=7, faults=True, write_2k=False, progress=False)[0]
    session = read_session(path)
    arrival = session.extras["import/arrival_times"] - session.extras["import/arrival_times"][0]
    counters = session.extras["import/package_numbers"].astype(np.int64)
    run = msq.replay(session.emg_raw.astype(np.float64), arrival, counters, session.emg_rate)
    faults = msq.session_faults(session, arrival, run.discarded, QualityConfig())
    return session, arrival, run, faults


def test_replay_discards_the_start_up_backlog_as_the_live_source_does(replayed) -> None:
    session, arrival, run, _ = replayed
    backlog_rows = int(np.searchsorted(arrival, arrival[0] + 0.05, side="right"))  # it arrives within ~40 ms
    assert backlog_rows > 3 * session.emg_rate  # the world's backlog is 3.5–6 s
    dropped = np.flatnonzero(run.discarded)
    assert len(dropped) and dropped[-1] < backlog_rows  # only rows of the backlog, each read's oldest
    kept_of_backlog = backlog_rows - len(dropped)
    assert 0 < kept_of_backlog <= 0.3 * session.emg_rate  # the source keeps ~0.1 s (+ 0.1 s slack) of it


def test_bad_row_runs_come_from_the_labels_and_skip_rows_never_delivered(replayed) -> None:
    session, arrival, run, faults = replayed
    labels = session.extras["truth/fault_labels"]
    for kind in ("stale_repeat", "zero_row"):
        expected = [
            (float(arrival[a]), float(arrival[b]))
            for a, b in msq._runs(labels == FAULT_CODES[kind])
            if not run.discarded[a]
        ]
        found = [(f.onset, f.end) for f in faults if f.kind == kind]
        assert found == expected
    assert {f.kind for f in faults} >= set(msq.INJECTED) | {"stale_repeat"}
    assert all(f.every_channel == (f.kind == "zero_row") for f in faults)


def test_each_injected_fault_raises_its_own_flag_within_100_ms(replayed) -> None:
    _, _, run, faults = replayed
    for fault in faults:
        if fault.kind in msq.INJECTED:
            latency = msq.first_flag_latency(run, fault, int(msq.KIND_FLAG[fault.kind]))
            assert latency <= msq.WITHIN_S, (fault.kind, latency)


def test_a_flag_up_on_one_channel_does_not_count_for_a_fault_that_needs_every_channel() -> None:
    times = np.arange(5) * msq.POLL_S
    flags = np.zeros((5, 3), dtype=np.int64)
    flags[1, 0] = int(QualityFlag.FLAT)
    flags[3, :] = int(QualityFlag.FLAT)
    run = msq.Replay(times, flags, np.zeros(5), np.zeros(0, dtype=bool))
    fault = msq.Fault("zero_row", -1, 0.0, 0.0, msq.ROW_RECOVERY_S, every_channel=True)
    assert msq.first_flag_latency(run, fault, int(QualityFlag.FLAT)) == pytest.approx(3 * msq.POLL_S)
    anywhere = msq.Fault("zero_row", -1, 0.0, 0.0, msq.ROW_RECOVERY_S)
    assert msq.first_flag_latency(run, anywhere, int(QualityFlag.FLAT)) == pytest.approx(msq.POLL_S)


def test_set_overrides_a_threshold_and_refuses_unknown_keys() -> None:
    parser = argparse.ArgumentParser()
    config = msq.parse_overrides(parser, ["lift_on_uv=6000", "flat_repeat_samples=16"])
    assert config.lift_on_uv == 6000.0 and config.flat_repeat_samples == 16
    assert config.mains_on == QualityConfig().mains_on
    for bad in ("lift_on=6000", "lift_on_uv=", "band_hz=3", "flat_repeat_samples=1.5"):
        with pytest.raises(SystemExit):
            msq.parse_overrides(parser, [bad])
