"""EMG sources through the real MindRove SDK (playback and synthetic boards) and real HDF5 files.

The playback file carries the world's fault mechanics (`inject_faults`): a stall removes samples (their
counter values are skipped), a duplicated packet overwrites the next packet with a copy of the previous
one (its counter values repeat). One playback run (~4 s of real time) is shared by the playback tests.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.emg_sources import EmgChunk, SourceError, StreamEvent, open_source
from firmware_bridge.emg_sources.checks import StreamChecker
from firmware_bridge.emg_sources.units import UV_PER_COUNT
from firmware_bridge.errors import UserError
from firmware_bridge.mindrove_import import decide_units
from training.synth.mindrove_csv import package_counter, write_mindrove_playback_csv
from training.synth.nuisance import FAULT_CODES, PACKET_SAMPLES

FS = 500.0
BACKLOG_WAIT_S = 0.3  # the reader starts this late: the SDK holds a backlog at the first read
DUP_START, DUP_PACKETS = 1250, 5  # duplicated packets, after the rate-measuring window
STALL_START, STALL_STOP = 1500, 1700  # 0.4 s removed: the stream stalls
READ_EVERY_S = 0.02  # the reader's hop: each read takes whatever arrived since the last


@dataclass
class Played:
    file_rows: np.ndarray  # (N,8) what the CSV holds
    labels: np.ndarray  # (N,) fault codes per row
    chunks: list[EmgChunk]
    started: float
    health: dict

    @property
    def delivered(self) -> np.ndarray:
        return np.concatenate([c.samples for c in self.chunks])

    def events(self, kind: str) -> list[tuple[int, StreamEvent]]:
        """(index in the delivered stream, event) of one kind."""
        out, offset = [], 0
        for chunk in self.chunks:
            out += [(offset + e.index, e) for e in chunk.events if e.kind == kind]
            offset += len(chunk)
        return out


def _faulty_stream(n: int = 2000, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Armband-like raw µV (DC offsets + noise) with the world's duplicate and stall faults."""
    rng = np.random.default_rng(seed)
    raw = rng.normal(0.0, 20.0, (n, 8)) + rng.uniform(-2e5, 2e5, 8)
    stamps = 1.75e9 + np.arange(n) / FS + rng.uniform(0.0, 1e-4, n)
    labels = np.zeros(n, dtype=np.uint8)
    for packet in range(DUP_START, DUP_START + 2 * PACKET_SAMPLES * DUP_PACKETS, 2 * PACKET_SAMPLES):
        raw[packet + PACKET_SAMPLES : packet + 2 * PACKET_SAMPLES] = raw[packet : packet + PACKET_SAMPLES]
        labels[packet + PACKET_SAMPLES : packet + 2 * PACKET_SAMPLES] = FAULT_CODES["duplicate"]
    keep = np.ones(n, dtype=bool)
    keep[STALL_START:STALL_STOP] = False
    raw, stamps, labels = raw[keep], stamps[keep], labels[keep]
    labels[STALL_START] = FAULT_CODES["stall"]
    return raw, stamps, labels


@pytest.fixture(scope="module")
def played(tmp_path_factory: pytest.TempPathFactory) -> Played:
    raw, stamps, labels = _faulty_stream()
    path = write_mindrove_playback_csv(
        tmp_path_factory.mktemp("playback") / "faulty.csv", raw, stamps, fault_labels=labels
    )
    source = open_source(f"playback:{path}")
    chunks: list[EmgChunk] = []
    try:
        source.start()
        started = time.monotonic()
        time.sleep(BACKLOG_WAIT_S)
        deadline = started + 15.0
        while not source.finished and time.monotonic() < deadline:
            chunk = source.read(timeout=0.1)
            if chunk is not None:
                chunks.append(chunk)
            time.sleep(READ_EVERY_S)
        assert source.finished, "the playback never reached the end of its file"
        assert source.read(timeout=1.0) is None
        health = source.health.as_dict()
    finally:
        source.close()
        source.close()  # idempotent
    return Played(raw.astype(np.float64), labels, chunks, started, health)


def _expected_after_backlog(played: Played) -> np.ndarray:
    """The file's rows minus the discarded backlog and the repeated samples, in order."""
    discarded = played.health["backlog_discarded_samples"]
    rows = np.arange(len(played.file_rows))
    keep = (rows >= discarded) & (played.labels != FAULT_CODES["duplicate"])
    return played.file_rows[keep]


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.allclose(a, b, rtol=0, atol=1e-5)  # the CSV keeps 6 decimals


# -- playback through the SDK ---------------------------------------------------------------------
def test_playback_delivers_the_files_samples_in_order_at_real_time_pace(played: Played) -> None:
    assert _close(played.delivered, _expected_after_backlog(played))
    window = [c for c in played.chunks if 0.5 <= c.received_at - played.started <= 2.4]  # before any fault
    samples = sum(len(c) for c in window[1:])
    rate = samples / (window[-1].received_at - window[0].received_at)
    assert 475.0 < rate < 525.0, f"{rate:.1f} samples/s, expected the armband's 500"
    assert all(np.all(np.diff(c.timestamps) > 0) for c in played.chunks)


def test_each_read_takes_every_sample_that_arrived_not_one_at_a_time(played: Played) -> None:
    sizes = [len(c) for c in played.chunks[1:]]
    assert np.median(sizes) >= 5, f"reads every {READ_EVERY_S * 1000:.0f} ms returned {np.median(sizes)} samples"
    assert all(c.counters is not None and len(c.counters) == len(c) for c in played.chunks)


def test_backlog_at_start_is_discarded_and_reported(played: Played) -> None:
    discarded = played.health["backlog_discarded_samples"]
    assert discarded >= BACKLOG_WAIT_S * FS - 0.1 * FS - 30, "most of the 0.3-s backlog should be dropped"
    first = played.chunks[0]
    assert first.events[0].kind == "backlog" and first.events[0].index == 0 and first.events[0].samples == discarded
    assert len(first) <= 0.1 * FS + 5, "at most ~0.1 s of the backlog is kept"
    assert _close(played.delivered[:1], played.file_rows[discarded : discarded + 1])


def test_stall_in_the_file_is_a_gap_and_a_stall_at_the_first_sample_after_it(played: Played) -> None:
    discarded = played.health["backlog_discarded_samples"]
    duplicates = int(np.sum(played.labels[:STALL_START] == FAULT_CODES["duplicate"]))
    at = STALL_START - discarded - duplicates  # delivered index of the file's stall-labelled row
    stalls = dict(played.events("stall"))  # (a loaded machine may add host-clock stalls of its own)
    assert at in stalls and abs(stalls[at].samples - (STALL_STOP - STALL_START)) <= 5  # host-stamped: jitter
    assert (at, STALL_STOP - STALL_START) in [(i, e.samples) for i, e in played.events("gap")]
    assert _close(played.delivered[at], played.file_rows[STALL_START])
    assert played.health["stalls"] >= 1
    assert 380.0 < played.health["longest_gap_ms"] < 500.0


def test_duplicated_packets_are_detected_counted_and_removed(played: Played) -> None:
    assert played.health["duplicate_packets"] == DUP_PACKETS
    assert played.health["duplicate_samples"] == DUP_PACKETS * PACKET_SAMPLES
    assert sum(e.samples for _, e in played.events("duplicate")) == DUP_PACKETS * PACKET_SAMPLES
    # each re-sent packet took the place of a new one: those samples are missing
    packet_gaps = [e.samples for _, e in played.events("gap") if e.samples == PACKET_SAMPLES]
    assert len(packet_gaps) == DUP_PACKETS
    assert played.health["missing_samples"] == DUP_PACKETS * PACKET_SAMPLES + (STALL_STOP - STALL_START)
    delivered = played.delivered
    assert len(np.unique(delivered, axis=0)) == len(delivered), "a repeated sample was delivered"


# -- replay ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.synth import simulate

    out = tmp_path_factory.mktemp("world")
    paths = simulate(out, sessions=1, subjects=1, minutes=0.5, seed=3, write_2k=False, faults=True, progress=False)
    return paths[0]


def _drain(spec: str, **options: object) -> tuple[list[EmgChunk], dict]:
    source = open_source(spec, **options)  # type: ignore[arg-type]
    chunks = []
    with source:
        source.start()
        while not source.finished:
            chunk = source.read(timeout=0.5)
            if chunk is not None:
                chunks.append(chunk)
        assert source.read(timeout=5.0) is None  # finished: returns at once, nothing more
        return chunks, source.health.as_dict()


def test_unpaced_replay_is_deterministic_complete_and_reports_the_recorded_stall(session: Path) -> None:
    first, health = _drain(f"replay:{session}", speed=0)
    second, _ = _drain(f"replay:{session}", speed=0)
    with h5py.File(session) as f:
        raw, stamps, labels = f["emg/raw"][()], f["emg/timestamps"][()], f["truth/fault_labels"][()]
    assert len(first) == len(second) and all(len(c) == 2 for c in first[:-1])
    for a, b in zip(first, second, strict=True):
        assert np.array_equal(a.samples, b.samples) and np.array_equal(a.timestamps, b.timestamps)
        assert a.events == b.events and a.counters is None
    assert np.array_equal(np.concatenate([c.samples for c in first]), raw.astype(np.float64))
    assert np.array_equal(np.concatenate([c.timestamps for c in first]), stamps)
    stall_row = int(np.flatnonzero(labels == FAULT_CODES["stall"])[0])
    offsets = np.cumsum([0] + [len(c) for c in first])
    found = {(int(offsets[i] + e.index), e.kind) for i, c in enumerate(first) for e in c.events}
    assert found == {(stall_row, "gap"), (stall_row, "stall")}
    assert health["samples"] == len(raw) and health["stalls"] == 1 and health["duplicate_samples"] == 0


def test_paced_replay_follows_emg_time_times_speed(session: Path) -> None:
    source = open_source(f"replay:{session}", speed=2.0)
    with source:
        source.start()
        begun = time.monotonic()
        got = 0
        while time.monotonic() - begun < 0.5:
            chunk = source.read(timeout=0.05)
            if chunk is not None:
                assert len(chunk) % 2 == 0
                got += len(chunk)
        elapsed = time.monotonic() - begun
    assert abs(got - 2.0 * FS * elapsed) <= 0.05 * FS * 2.0 * elapsed + 4


def test_replay_converts_a_file_marked_as_raw_counts(tmp_path: Path) -> None:
    path = tmp_path / "counts.h5"
    with h5py.File(path, "w") as f:
        f["emg/raw"] = np.full((10, 8), 1000.0)
        f["emg/raw"].attrs["units"] = "counts"
        f["emg/timestamps"] = np.arange(10) / FS
    chunks, _ = _drain(f"replay:{path}", speed=0)
    assert np.allclose(np.concatenate([c.samples for c in chunks]), 1000.0 * UV_PER_COUNT)


@pytest.mark.parametrize(
    ("values", "converted"),
    [
        (np.full((10, 8), 6e6), True),  # beyond the ADC's full scale in µV: cannot be µV
        (np.arange(80.0).reshape(10, 8) + 2000.0, True),  # whole numbers, DC far below full scale: counts too
        (np.vstack([np.zeros((6, 8)), np.arange(32.0).reshape(4, 8) + 2000.0]), True),  # zero rows prove nothing
        (np.arange(80.0).reshape(10, 8) * UV_PER_COUNT + 2000.01, False),  # µV from the SDK: not whole
        (np.zeros((10, 8)), False),
    ],
)
def test_replay_without_a_units_attribute_decides_by_the_same_rule_as_import(
    tmp_path: Path, values: np.ndarray, converted: bool
) -> None:
    path = tmp_path / "unmarked.h5"
    with h5py.File(path, "w") as f:
        f["emg/raw"] = values
        f["emg/timestamps"] = np.arange(len(values)) / FS
    chunks, _ = _drain(f"replay:{path}", speed=0)
    samples = np.concatenate([c.samples for c in chunks])
    np.testing.assert_allclose(samples, values * (UV_PER_COUNT if converted else 1.0), rtol=1e-6)
    assert decide_units(values)[1] == ("counts" if converted else "uV")  # `mode2 import --units auto` agrees


# -- the synthetic board and the armband ----------------------------------------------------------------
def test_sdk_synthetic_is_adapted_to_8_channels_at_500_hz_and_marked_plumbing_only() -> None:
    source = open_source("sdk-synthetic")
    assert source.plumbing_only and source.channels == 8 and source.sampling_rate_hz == 500.0
    chunks = []
    with source:
        source.start()
        begun = time.monotonic()
        while time.monotonic() - begun < 1.0:
            chunk = source.read(timeout=0.1)
            if chunk is not None:
                chunks.append(chunk)
            time.sleep(READ_EVERY_S)
        samples = sum(len(c) for c in chunks[1:])
        rate = samples / (chunks[-1].received_at - chunks[0].received_at)
        health = source.health.as_dict()
    assert 450.0 < rate < 550.0
    assert all(c.samples.shape == (len(c), 8) for c in chunks)
    stamps = np.concatenate([c.timestamps for c in chunks])
    assert np.all(np.diff(stamps) > 0)
    assert health["gaps"] == 0 and health["duplicate_samples"] == 0


def test_unreachable_armband_is_a_clear_error_within_bounded_time() -> None:
    # In a child process: the SDK's WiFi board can be initialised only once per process.
    code = (
        "import time\n"
        "from firmware_bridge.emg_sources import open_source, SourceError\n"
        "t = time.monotonic()\n"
        "s = open_source('mindrove:192.0.2.1', connect_timeout_s=0.5)\n"
        "try:\n"
        "    s.start()\n"
        "except SourceError as e:\n"
        "    print(f'{time.monotonic() - t:.2f}|{e}')\n"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, cwd=root)
    elapsed, _, message = result.stdout.strip().rpartition("\n")[-1].partition("|")
    assert "cannot reach the MindRove armband at 192.0.2.1" in message and "WiFi" in message, result
    assert float(elapsed) < 0.5 + 4.0  # the wait, plus the SDK's slow release of a WiFi session


# -- bad input ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad")
    narrow = root / "narrow.csv"
    narrow.write_text("1\t2\t3\n4\t5\t6\n")
    empty = root / "empty.csv"
    empty.write_text("")
    text = root / "text.h5"
    text.write_text("not hdf5")
    no_emg = root / "no_emg.h5"
    with h5py.File(no_emg, "w") as f:
        f["pose/timestamps"] = np.arange(3.0)
    unsorted = root / "unsorted.h5"
    with h5py.File(unsorted, "w") as f:
        f["emg/raw"] = np.zeros((3, 8))
        f["emg/timestamps"] = np.array([0.0, 0.002, 0.001])
    return {"narrow": narrow, "empty": empty, "text": text, "no_emg": no_emg, "unsorted": unsorted}


@pytest.mark.parametrize(
    ("spec", "options", "mentions"),
    [
        ("", {}, "unknown source"),
        ("webcam", {}, "mindrove[:IP] | playback:FILE.csv | sdk-synthetic | replay:FILE.h5"),
        ("playback:", {}, "name the file"),
        ("playback:/nowhere/x.csv", {}, "no such file"),
        ("playback:{narrow}", {}, "3 tab-separated columns"),
        ("playback:{empty}", {}, "no samples"),
        ("replay:/nowhere/x.h5", {}, "no such file"),
        ("replay:{text}", {}, "not a readable HDF5"),
        ("replay:{no_emg}", {}, "emg/raw: missing"),
        ("replay:{unsorted}", {}, "not strictly increasing at index 2"),
        ("replay:{no_emg}", {"speed": -1.0}, "must be a number ≥ 0"),
        ("sdk-synthetic", {"speed": 2.0}, "applies to replay: only"),
        ("sdk-synthetic:extra", {}, "takes no argument"),
        ("mindrove:armband.local", {}, "is not an IP address"),
        ("mindrove:", {}, "give the armband's IP"),
    ],
)
def test_every_bad_spec_is_a_source_error_that_names_the_problem(
    spec: str, options: dict, mentions: str, bad_files: dict[str, Path]
) -> None:
    spec = spec.format(**bad_files)
    with pytest.raises(SourceError) as caught:
        open_source(spec, **options)
    assert isinstance(caught.value, UserError)
    assert mentions in str(caught.value)


def test_sdk_sources_without_the_mindrove_package_say_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for module in ("mindrove", "mindrove.board_shim", "mindrove.exit_codes"):
        monkeypatch.setitem(sys.modules, module, None)  # what `import` meets when the package is absent
    csv = tmp_path / "x.csv"
    csv.write_text("0\n")
    for spec in ("sdk-synthetic", "mindrove", f"playback:{csv}"):
        with pytest.raises(SourceError, match="needs the `mindrove` package"):
            open_source(spec)


# -- the checks on their own --------------------------------------------------------------------------
def _checker(**options: object) -> StreamChecker:
    defaults: dict = {"rate_hz": FS, "channels": 2, "counter_modulus": 256, "backlog_keep_s": None}
    return StreamChecker(**(defaults | options))


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(50, 600),
    resent=st.lists(st.integers(4, 599), max_size=4),
    holes=st.lists(st.tuples(st.integers(1, 599), st.integers(1, 120)), max_size=3),
    cuts=st.lists(st.integers(1, 700), max_size=30),
)
def test_checker_recovers_the_original_stream_from_resent_packets_and_holes(
    n: int, resent: list[int], holes: list[tuple[int, int]], cuts: list[int]
) -> None:
    values = np.arange(n, dtype=np.float64)[:, None] * np.array([1.0, -1.0])
    present = np.ones(n, dtype=bool)
    for start, length in holes:
        present[start : start + length] = False
    present[0] = True
    arrival: list[int] = []  # original sample indices in arrival order (re-sent packets repeat 4)
    for i in np.flatnonzero(present):
        arrival.append(int(i))
        if int(i) in resent and i >= 4 and present[i - 3 : i + 1].all():
            arrival += list(range(i - 3, i + 1))
    order = np.asarray(arrival)
    counters = order % 256
    stamps = np.maximum.accumulate(100.0 + order / FS) + np.arange(len(order)) * 1e-7  # arrival times
    checker = _checker()
    delivered = []
    bounds = sorted({c for c in cuts if c < len(order)} | {0, len(order)})
    for a, b in itertools.pairwise(bounds):
        samples, _, _, _ = checker.process(values[order[a:b]], stamps[a:b], counters[a:b], now=0.0)
        delivered.append(samples)
    expected = values[present]
    assert np.array_equal(np.concatenate(delivered), expected)
    assert checker.health.missing_samples == int(np.sum(~present[: np.flatnonzero(present)[-1]]))
    assert checker.health.duplicate_samples == len(order) - int(present.sum())


def test_counter_wrap_is_not_a_gap_and_a_long_stall_is_not_mistaken_for_a_resend() -> None:
    checker = _checker()
    order = np.concatenate([np.arange(0, 300), np.arange(500, 600)])  # 200 samples (400 ms) lost
    values = np.stack([order, order], axis=1).astype(float)
    _, _, _, events = checker.process(values, 10.0 + order / FS, order % 256, now=0.0)
    assert checker.health.gaps == 1 and checker.health.missing_samples == 200
    assert [(e.kind, e.index) for e in events] == [("gap", 300), ("stall", 300)]
    assert "package counter skipped 200" in events[0].detail  # unwrapped with the timestamps, not a restart
    assert checker.health.duplicate_samples == 0 and checker.health.stalls == 1


def test_delivered_timestamps_increase_even_when_the_device_repeats_them() -> None:
    checker = _checker()
    counters = np.arange(6)
    stamps = np.array([1.0, 1.0, 1.004, 1.004, 1.008, 1.008])  # one arrival time per 2-sample packet
    _, delivered, _, events = checker.process(np.zeros((6, 2)), stamps, counters, now=0.0)
    _, more, _, _ = checker.process(np.zeros((1, 2)), np.array([1.008]), np.array([6]), now=0.0)
    assert np.all(np.diff(np.concatenate([delivered, more])) > 0) and not events
    assert np.abs(delivered - stamps).max() <= 1e-5


def test_a_counter_that_goes_back_with_new_data_is_kept_not_dropped() -> None:
    checker = _checker()
    counters = np.array([10, 11, 12, 0, 1, 2])  # the device restarted its count
    values = np.arange(12, dtype=float).reshape(6, 2)
    samples, _, _, events = checker.process(values, 5.0 + np.arange(6) / FS, counters, now=0.0)
    assert len(samples) == 6 and checker.health.duplicate_samples == 0
    assert [e.kind for e in events] == ["gap"] and events[0].index == 3


def test_backlog_is_trimmed_to_the_kept_horizon_over_several_fast_reads() -> None:
    checker = _checker(backlog_keep_s=0.1)
    kept = 0
    for read, now in enumerate((0.0, 0.01, 0.02)):  # a 5-s backlog arriving within 20 ms
        counters = np.arange(read * 1250, (read + 1) * 1250)
        values = np.stack([counters, counters], axis=1).astype(float)
        samples, _, _, events = checker.process(values, 1.0 + counters / FS, counters % 256, now=now)
        kept += len(samples)
        assert [e.kind for e in events] == ["backlog"]
    assert kept <= 0.1 * FS + 0.02 * FS + 1
    assert checker.health.backlog_discarded_samples == 3 * 1250 - kept
    assert checker.health.gaps == 0


def test_clock_drift_is_estimated_from_jittery_arrival_times() -> None:
    rng = np.random.default_rng(0)
    device_rate = FS * (1 + 200e-6)  # the armband's clock runs 200 ppm fast
    n = int(60 * FS)
    true_time = np.arange(n) / device_rate
    arrival = 1e9 + true_time + rng.exponential(0.004, n)  # delays only, bursts of a few ms
    arrival = np.maximum.accumulate(arrival)
    checker = _checker(counter_modulus=256)
    for start in range(0, n, 50):
        stop = min(n, start + 50)
        values = rng.normal(size=(stop - start, 2))
        checker.process(values, arrival[start:stop], np.arange(start, stop) % 256, now=0.0)
    assert checker.health.clock_drift_window_s >= 40.0
    assert abs(checker.health.clock_drift_ppm - 200.0) < 40.0


# -- the playback writer -------------------------------------------------------------------------------
def test_playback_counter_skips_over_a_stall_and_repeats_for_a_resent_packet() -> None:
    _, stamps, labels = _faulty_stream()
    counter = package_counter(stamps, FS, labels == FAULT_CODES["duplicate"])
    step = np.diff(counter) % 256
    stall = int(np.flatnonzero(labels == FAULT_CODES["stall"])[0])
    assert step[stall - 1] == STALL_STOP - STALL_START + 1
    dup = np.flatnonzero(labels == FAULT_CODES["duplicate"])
    assert np.array_equal(counter[dup], counter[dup - PACKET_SAMPLES])
    others = np.ones(len(step), dtype=bool)
    others[stall - 1] = False
    others[np.clip(np.concatenate([dup - 1, dup]), 0, len(step) - 1)] = False
    assert np.all(step[others] == 1)
