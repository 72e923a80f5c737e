"""benchmarks/world_vs_real.py measures the same figures on the world's session files, its playback CSVs and
real-layout recorder CSVs, and gets known properties right."""

from __future__ import annotations

import json
import math
import shlex
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from benchmark_scripts import load_benchmark

from training.synth import simulate

wvr = load_benchmark("world_vs_real")

FS = 500.0
ROWS = 9  # one per row of issue 11's table


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("world")
    return simulate(out, sessions=2, subjects=1, minutes=0.5, seed=5, write_2k=False, playback_csv=True, progress=False)


@pytest.fixture(scope="module")
def measured(world: list[Path]) -> dict[str, dict]:
    return {p.name: wvr.measure(wvr.read_any(p)) for p in world}


def numeric(figures: dict) -> dict[str, float]:
    return {k: v for k, v in figures.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def test_every_figure_is_finite_on_world_sessions_and_on_their_playback_csvs(measured: dict[str, dict]) -> None:
    assert len(measured) == 4 and sum(name.endswith(".csv") for name in measured) == 2
    for name, figures in measured.items():
        bad = {k: v for k, v in numeric(figures).items() if not math.isfinite(v)}
        assert not bad, f"{name}: {bad}"
    rows = wvr.compare(list(measured.values()))
    assert len(rows) == ROWS
    for row in rows:
        assert row.world and "n/a" not in row.world and "nan" not in row.world, row
        assert row.verdict == "yes" or row.verdict.startswith("no: "), row


def test_a_playback_csv_measures_as_its_session_file(measured: dict[str, dict]) -> None:
    """The CSV path (parse_file + convert, arrival from the timestamp column) and the session path agree."""
    for name in (n for n in measured if n.endswith(".h5")):
        h5, csv = numeric(measured[name]), numeric(measured[name.replace(".h5", "_mindrove.csv")])
        for key, value in h5.items():
            assert csv[key] == pytest.approx(value, rel=1e-3, abs=1e-3), key


def test_world_sessions_stay_inside_the_adc_rail_and_arrive_in_chunks(measured: dict[str, dict]) -> None:
    for figures in measured.values():
        assert figures["max_abs_mv"] <= wvr.ADC_RAIL_MV
        assert figures["samples_per_arrival"] == 2
        assert figures["step_p99_ms"] > 4.0  # chunked and jittered, not one sample per 2 ms
    row = wvr.saturation_row(list(measured.values()))
    assert row.verdict == "yes"


def write_recorder_csv(path: Path, emg_uv: np.ndarray, stamps: np.ndarray) -> Path:
    lines = ["Timestamp," + ",".join(f"CH{c + 1}" for c in range(emg_uv.shape[1]))]
    lines += [f"{t:.6f}," + ",".join(f"{v:.3f}" for v in row) for t, row in zip(stamps, emg_uv, strict=True)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_recorder_csv_with_known_dc_mains_and_arrival_measures_them(tmp_path: Path) -> None:
    """100 mV on every channel, 50 Hz mains with its 3rd harmonic on ch0, 2 samples per 4-ms arrival and a
    2.5-s backlog delivered within 20 ms."""
    rng = np.random.default_rng(0)
    n = int(40 * FS)
    t = np.arange(n) / FS
    emg = 100e3 + rng.normal(0.0, 20.0, (n, 8))
    emg[:, 0] += 200.0 * np.sin(2 * np.pi * 50 * t) + 60.0 * np.sin(2 * np.pi * 150 * t)
    backlog = int(2.5 * FS)
    arrival = np.empty(n)
    arrival[:backlog] = 1.7e9 + 2.5 + np.linspace(0.0, 0.02, backlog)
    arrival[backlog:] = arrival[backlog - 1] + 0.004 * ((np.arange(n - backlog) // 2) + 1)
    figures = wvr.measure(wvr.read_any(write_recorder_csv(tmp_path / "known.csv", emg, arrival)))
    assert figures["dc_min_mv"] == pytest.approx(100.0, abs=0.5)
    assert figures["dc_max_mv"] == pytest.approx(100.0, abs=0.5)
    assert figures["dc_same"] == 1.0
    assert figures["mains_hz"] == 50.0 and figures["mains_harmonics"] == [3]
    assert figures["mains_worst_pct"] > 80.0
    assert figures["input_mains_notched_pct_held"] < 10.0 < figures["input_mains_pct_held"]
    assert figures["samples_per_arrival"] == 2 and figures["step_p99_ms"] == pytest.approx(4.0, abs=0.01)
    assert figures["backlog_s"] == pytest.approx(2.5, abs=0.05)
    assert figures["rms_uv"] == pytest.approx(20.0 * math.sqrt(1 - 20 / 250), rel=0.1)  # white noise above 20 Hz
    assert figures["zero_rows"] == 0 and figures["stale_pct"] == 0.0


def test_different_offsets_per_channel_are_not_called_the_same(tmp_path: Path) -> None:
    n = int(10 * FS)
    emg = np.linspace(20e3, 180e3, 8)[None, :] + np.random.default_rng(1).normal(0.0, 20.0, (n, 8))
    figures = wvr.measure(wvr.read_any(write_recorder_csv(tmp_path / "spread.csv", emg, 1.7e9 + np.arange(n) / FS)))
    assert figures["dc_same"] == 0.0
    assert figures["dc_min_mv"] == pytest.approx(20.0, abs=0.5) and figures["dc_max_mv"] == pytest.approx(
        180.0, abs=0.5
    )


def test_zero_rows_raise_the_largest_z_only_when_not_held_over(world: list[Path], tmp_path: Path) -> None:
    source = next(p for p in world if p.suffix == ".h5")
    clean, broken = tmp_path / "clean.h5", tmp_path / "broken.h5"
    for copy in (clean, broken):
        shutil.copy(source, copy)
    with h5py.File(clean, "r+") as f:
        f["emg/raw"][...] = wvr.without_zero_rows(f["emg/raw"][...])  # the world's own zero rows held over
    shutil.copy(clean, broken)
    with h5py.File(broken, "r+") as f:
        raw = f["emg/raw"][...]
        raw[5000:5003] = 0.0  # three zero rows in one window, as issue 11 measured
        f["emg/raw"][...] = raw
    before, after = wvr.measure(wvr.read_any(clean)), wvr.measure(wvr.read_any(broken))
    assert before["zero_rows"] == 0 and after["zero_rows"] == 3
    assert after["z_max_as_is"] > 10 * before["z_max_as_is"]
    assert after["z_max_held"] == pytest.approx(before["z_max_held"], rel=0.05)


def test_stale_runs_are_counted_in_repeated_rows(world: list[Path], tmp_path: Path) -> None:
    copy = tmp_path / "stale.h5"
    shutil.copy(next(p for p in world if p.suffix == ".h5"), copy)
    with h5py.File(copy, "r+") as f:
        raw = wvr.without_zero_rows(f["emg/raw"][...])
        raw += 0.25 * (np.arange(len(raw)) % 2)[:, None]  # no two neighbours alike: the world's stale runs undone
        raw[6001:6009] = raw[6000]  # one stale sample repeated for two packets
        f["emg/raw"][...] = raw
    figures = wvr.measure(wvr.read_any(copy))
    assert figures["stale_repeats"] == [8]
    assert figures["stale_pct"] == pytest.approx(100 * 8 / len(raw))


def test_a_share_widens_toward_100_percent_by_what_is_left_not_beyond_it() -> None:
    below_20 = wvr.Bounds(73, 96, share=True)
    assert not below_20.holds(90, 99)
    assert below_20.holds(63, 96.5)
    assert wvr.Bounds(12, 43).holds(10.5, 49) and not wvr.Bounds(12, 43).holds(10.5, 50)
    assert wvr.verdict([("RMS", wvr.Bounds(12, 43), 17.0, 53.0)]).startswith("no: RMS outside")


def test_a_world_beyond_the_adc_rail_or_stuck_at_it_does_not_match_real_saturation() -> None:
    inside = {"max_abs_mv": 300.0, "rail_rows": 0}
    assert wvr.saturation_row([inside]).verdict == "yes"
    assert wvr.saturation_row([inside, {"max_abs_mv": 380.0, "rail_rows": 0}]).verdict.startswith("no: max raw")
    assert "12 rows at the rail" in wvr.saturation_row([{"max_abs_mv": 377.5, "rail_rows": 12}]).verdict


def test_the_command_line_writes_markdown_with_the_command_and_json(world: list[Path], tmp_path: Path) -> None:
    pattern = str(world[0].parent / "*.h5")
    md, js = tmp_path / "t.md", tmp_path / "t.json"
    assert wvr.main(["--data", pattern, "--markdown", str(md), "--json", str(js)]) == 0
    text = md.read_text(encoding="utf-8")
    assert text.splitlines()[0].startswith(
        f"Measured with `python benchmarks/world_vs_real.py --data {shlex.quote(pattern)}"
    )
    assert text.count("\n| ") == 1 + ROWS + 1 + 5  # header + rows, header + model-input rows
    assert "--markdown" not in text.splitlines()[0]  # the command that reproduces the figures
    assert "(2 files" in text
    assert set(json.loads(js.read_text(encoding="utf-8"))) == {"command", "rows", "files"}
    assert wvr.main(["--data", str(tmp_path / "nothing-*.csv")]) == 2
