"""The synthetic world against real MindRove recordings: issue 11's table, re-measured by one script.

Every figure is measured the same way on every file — a session file of the world (`mode2 simulate`, or
one `mode2 import` wrote) or a real MindRove CSV (the SDK's `DataFilter.write_file` layout or a recorder
CSV, read with `firmware_bridge.mindrove_import`: arrival times from the file, µV from `convert`) — and
summarised as the range over files (min–max of the per-file values), as issue 11's real column is.

Signal figures are taken on the raw µV with zero rows held over (`emg_checks.without_zero_rows`: a zero
row is a step of the whole DC offset, it would ring through every filter); the row figures (stale
repeats, zero rows, the rail) on the rows as they are. Arrival figures need the host's arrival times
(`import/arrival_times` in a session file, the timestamp column of a CSV).

A second table shows the model's input stage on the same data: the default input filter
(`InputFilter.design()`) on the rows as recorded (zero rows as they are, the filter alone), and
`firmware_bridge.emg_filter.filter_session` — as training applies it — on the rows with zero rows held over
(as the runtime's loop repairs them); plus the same with mains notches, so the filter can be chosen.

Run: `python benchmarks/world_vs_real.py` (a fresh 3 × 4 × 4-min world, seed 11, ≈ 1 min to simulate)
or `python benchmarks/world_vs_real.py --data 'recordings/*.csv' 'sessions/*.h5'` for files on disk;
`--markdown OUT.md` / `--json OUT.json` write the tables (headed by the command that reproduces them,
output options left out) / every per-file figure.
"""

from __future__ import annotations

import argparse
import glob
import itertools
import json
import math
import shlex
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.signal import detrend, welch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from firmware_bridge.emg_filter import InputFilter, StreamFilter, filter_session, segment_starts
from firmware_bridge.errors import UserError
from firmware_bridge.mindrove_import import convert, parse_file
from firmware_bridge.session import read_session
from training.data.emg_checks import _mains_shares, drift_swings_mv, high_passed, without_zero_rows

ADC_RAIL_MV = 2**23 * 0.045 / 1000.0  # ±8,388,608 counts × 0.045 µV ≈ ±377.5 mV
WINDOW_S = 2.0  # the model's window; drift, detrend and z are taken per 2-s window
BAND_HZ = (20.0, 250.0)
SAME_DC_TOLERANCE = 0.10  # "same on all channels": every channel within ±10 % of the channels' median offset
STALE_MIN_IDENTICAL = 4  # a stale run: at least 4 identical rows (the original and ≥ 3 repeats)
BACKLOG_WITHIN_S = 0.040  # the start-up backlog: seconds of data delivered within the first 40 ms
HARMONIC_MIN_SHARE = 0.01  # a harmonic "carries" mains when it holds > 1 % of the mains lines' power
MODEL_DRIFT_BELOW_HZ = 5.0
WIDEN = 0.15  # a world range matches when it lies within the real bounds widened by ±15 %
NOTCHES_HZ = (50.0, 60.0, 100.0, 120.0, 150.0, 180.0, 200.0, 240.0)


# -- reading files -----------------------------------------------------------------------------------------
@dataclass
class Recording:
    """What the measures need of one file."""

    name: str
    raw: np.ndarray  # (N, C) µV as recorded (zero rows and stale repeats included)
    times: np.ndarray  # (N,) s, one per sample (reconstructed from the arrival times)
    arrival: np.ndarray | None  # (N,) s, when each sample reached the host; None when the file has none
    rate: float


def read_session_file(path: Path) -> Recording:
    session = read_session(path)
    arrival = session.extras.get("import/arrival_times")
    return Recording(
        path.name,
        np.asarray(session.emg_raw, dtype=np.float64),
        np.asarray(session.emg_timestamps, dtype=np.float64),
        None if arrival is None else np.asarray(arrival, dtype=np.float64),
        session.emg_rate,
    )


def read_mindrove_csv(path: Path) -> Recording:
    """A real (or playback) MindRove CSV, converted exactly as `mode2 import` converts it (backlog kept)."""
    parsed = parse_file(path)
    imported = convert(parsed)
    return Recording(
        path.name,
        np.asarray(imported.emg_uv, dtype=np.float64),
        np.asarray(imported.times, dtype=np.float64),
        np.asarray(parsed.arrival, dtype=np.float64),
        parsed.rate_hz,
    )


def read_any(path: Path) -> Recording:
    return read_session_file(path) if path.suffix.lower() in (".h5", ".hdf5") else read_mindrove_csv(path)


def expand(patterns: Sequence[str]) -> list[Path]:
    """Files matched by the globs, sorted, without the world's 16-ch `*_2k.h5` pretraining files."""
    paths: set[Path] = set()
    for pattern in patterns:
        matched = glob.glob(pattern, recursive=True) or ([pattern] if Path(pattern).is_file() else [])
        if not matched:
            raise UserError(f"--data {pattern!r}: matches no file")
        paths |= {Path(p) for p in matched if Path(p).is_file()}
    files = sorted(p for p in paths if not p.name.endswith("_2k.h5"))
    if not files:
        raise UserError(f"--data {' '.join(patterns)}: no session .h5 or MindRove CSV file among the matches")
    return files


# -- signal figures (zero rows held over) --------------------------------------------------------------
def dc_figures(held: np.ndarray) -> dict[str, float]:
    offsets = np.median(held, axis=0) / 1000.0
    centre = float(np.median(offsets))
    same = bool(np.all(np.abs(offsets - centre) <= SAME_DC_TOLERANCE * abs(centre))) and centre != 0
    return {
        "dc_min_mv": float(np.abs(offsets).min()),
        "dc_max_mv": float(np.abs(offsets).max()),
        "dc_same": float(same),
    }


def drift_figures(held: np.ndarray, rate: float) -> dict[str, float]:
    """The median channel's median 2-s swing below 5 Hz (over windows), and the largest swing of any channel
    in any window."""
    swings = drift_swings_mv(held, rate)
    return {
        "drift_median_mv": float(np.median(np.median(swings, axis=0))),
        "drift_max_mv": float(swings.max()),
    }


def rms_uv(passed: np.ndarray) -> float:
    """The median channel's RMS after the 20-Hz high-pass."""
    return float(np.median(np.sqrt(np.mean(passed**2, axis=0))))


def median_frequency_hz(passed: np.ndarray, rate: float) -> float:
    """The median channel's median frequency of the 20–250 Hz band (Welch, 2-s segments; mains included)."""
    freqs, power = welch(passed, fs=rate, nperseg=int(min(len(passed), WINDOW_S * rate)), axis=0)
    band = (freqs >= BAND_HZ[0]) & (freqs <= min(BAND_HZ[1], rate / 2))
    cumulative = np.cumsum(power[band], axis=0)
    half = np.argmax(cumulative >= cumulative[-1] / 2, axis=0)
    return float(np.median(freqs[band][half]))


def harmonic_shares(passed: np.ndarray, rate: float, mains_hz: float, channel: int) -> dict[int, float]:
    """{harmonic number: its share of the mains lines' power} on one channel (lines ±1 Hz, 0.5-Hz bins)."""
    freqs, power = welch(passed[:, channel], fs=rate, nperseg=int(min(len(passed), WINDOW_S * rate)))
    lines = {k: k * mains_hz for k in range(1, 5) if k * mains_hz <= min(BAND_HZ[1], rate / 2)}
    at = {k: float(power[np.abs(freqs - hz) <= 1.0].sum()) for k, hz in lines.items()}
    total = sum(at.values())
    return {k: (p / total if total > 0 else 0.0) for k, p in at.items()}


def mains_figures(passed: np.ndarray, rate: float) -> dict[str, object]:
    mains_hz, shares = _mains_shares(passed, rate)  # = emg_checks.mains_shares(held), high-passed once
    worst = int(np.argmax(shares))
    carried = harmonic_shares(passed, rate, mains_hz, worst)
    return {
        "mains_hz": float(mains_hz),
        "mains_worst_pct": 100.0 * float(shares[worst]),
        "mains_harmonics": [k for k, share in carried.items() if k > 1 and share > HARMONIC_MIN_SHARE],
    }


def below_20hz_after_detrend_pct(held: np.ndarray, rate: float) -> float:
    """The old preprocessing: each 2-s window linearly detrended; the median channel's share of its power
    (pooled over windows) below 20 Hz."""
    step = int(WINDOW_S * rate)
    count = len(held) // step
    if count == 0:
        return math.nan
    windows = detrend(held[: count * step].reshape(count, step, -1), axis=1, type="linear")
    power = np.abs(np.fft.rfft(windows, axis=1)) ** 2
    freqs = np.fft.rfftfreq(step, 1.0 / rate)
    low = power[:, (freqs > 0) & (freqs < BAND_HZ[0])].sum(axis=(0, 1))
    total = power[:, freqs > 0].sum(axis=(0, 1))
    return 100.0 * float(np.median(low / np.where(total > 0, total, 1.0)))


# -- row figures (rows as they are) --------------------------------------------------------------------------
def run_lengths(flags: np.ndarray) -> np.ndarray:
    """Lengths of the runs of True in `flags`."""
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    return np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)


def bad_row_figures(raw: np.ndarray) -> dict[str, object]:
    """Stale runs (≥ 4 identical non-zero rows: the share of rows that repeat the one before, and how many
    rows each run repeats) and all-zero rows."""
    zero = np.all(raw == 0, axis=1)
    repeats = np.all(raw[1:] == raw[:-1], axis=1) & ~zero[1:]
    lengths = run_lengths(repeats)
    stale = lengths[lengths >= STALE_MIN_IDENTICAL - 1]
    return {
        "stale_pct": 100.0 * float(stale.sum()) / len(raw),
        "stale_repeats": sorted({int(n) for n in stale}),
        "zero_rows": int(zero.sum()),
    }


def saturation_figures(raw: np.ndarray) -> dict[str, float]:
    peak = np.abs(raw).max() / 1000.0
    return {"max_abs_mv": float(peak), "rail_rows": int(np.any(np.abs(raw) / 1000.0 >= ADC_RAIL_MV - 1e-3, 1).sum())}


def arrival_figures(arrival: np.ndarray | None, rate: float) -> dict[str, float]:
    """Chunking, steps between distinct arrival times, and the start-up backlog — NaN without arrival times."""
    if arrival is None or len(arrival) < 2:
        return dict.fromkeys(("samples_per_arrival", "step_p99_ms", "step_max_ms", "backlog_s"), math.nan)
    distinct, counts = np.unique(arrival, return_counts=True)
    steps = np.diff(distinct) * 1000.0 if len(distinct) > 1 else np.zeros(1)
    return {
        "samples_per_arrival": float(np.median(counts)),
        "step_p99_ms": float(np.percentile(steps, 99)),
        "step_max_ms": float(steps.max()),
        "backlog_s": float(np.sum(arrival - arrival[0] <= BACKLOG_WITHIN_S)) / rate,
    }


# -- the model's input stage ---------------------------------------------------------------------------------
def share_below_pct(signal: np.ndarray, rate: float, below_hz: float) -> float:
    """The worst channel's share of its power below `below_hz` (Welch, 2-s segments, no detrend)."""
    nper = int(min(len(signal), WINDOW_S * rate))
    freqs, power = welch(signal, fs=rate, nperseg=nper, detrend=False, axis=0)
    total = power.sum(axis=0)
    return 100.0 * float(np.max(power[freqs < below_hz].sum(axis=0) / np.where(total > 0, total, 1.0)))


def window_z(filtered: np.ndarray, scale: np.ndarray, rate: float) -> tuple[float, float]:
    """(largest |z|, median over 2-s windows of each window's largest |z|), z = filtered / `scale` (per
    channel)."""
    z = np.abs(filtered / np.maximum(scale, 1e-9))
    step = int(WINDOW_S * rate)
    count = max(1, len(z) // step)
    per_window = np.array([z[i * step : (i + 1) * step].max() for i in range(count)])
    return float(per_window.max()), float(np.median(per_window))


def filter_alone(raw: np.ndarray, times: np.ndarray, spec: InputFilter) -> np.ndarray:
    """The input filter on the rows as recorded, restarted where `filter_session` restarts it after long gaps,
    but without any zero-row repair: what zero rows do to the model's input when nothing repairs them."""
    out = np.empty(raw.shape, np.float64)
    bounds = [*segment_starts(times, spec.sampling_rate_hz, spec.reset_gap_samples).tolist(), len(raw)]
    for begin, end in itertools.pairwise(bounds):
        out[begin:end] = StreamFilter(spec, raw.shape[1]).process(raw[begin:end])
    return out


def model_input_figures(
    filtered: Callable[[InputFilter], np.ndarray], scale: np.ndarray, rate: float, tag: str
) -> dict[str, float]:
    """Drift, mains (default filter and notched) and |z| (against `scale`) of the model's input;
    `filtered(spec)` applies the filter `spec` to the file."""
    plain = filtered(InputFilter.design(rate))
    notched = filtered(InputFilter.design(rate, notch_hz=_notches(rate)))
    z_max, z_window = window_z(plain, scale, rate)
    return {
        f"input_below5_pct_{tag}": share_below_pct(plain, rate, MODEL_DRIFT_BELOW_HZ),
        f"input_mains_pct_{tag}": 100.0 * float(_mains_shares(plain, rate)[1].max()),
        f"input_mains_notched_pct_{tag}": 100.0 * float(_mains_shares(notched, rate)[1].max()),
        f"z_max_{tag}": z_max,
        f"z_window_median_{tag}": z_window,
    }


def input_stage_figures(rec: Recording, held: np.ndarray) -> dict[str, float]:
    """The model's input stage twice: the filter alone on the rows as recorded, and `filter_session` (as
    training applies it) on the rows with zero rows held over. Both are normalised by the per-channel std of
    the repaired model input (a stand-in for the training statistics, which zero rows do not inflate)."""

    def repaired(spec: InputFilter) -> np.ndarray:
        return filter_session(held, rec.times, spec).astype(np.float64)

    def as_recorded(spec: InputFilter) -> np.ndarray:
        return filter_alone(rec.raw, rec.times, spec)

    scale = repaired(InputFilter.design(rec.rate)).std(axis=0)
    return model_input_figures(as_recorded, scale, rec.rate, "as_is") | model_input_figures(
        repaired, scale, rec.rate, "held"
    )


def _notches(rate: float) -> tuple[float, ...]:
    return tuple(hz for hz in NOTCHES_HZ if hz < rate / 2)


# -- one file -------------------------------------------------------------------------------------------------
def measure(rec: Recording) -> dict[str, object]:
    """Every per-file figure of both tables."""
    held = without_zero_rows(rec.raw)
    passed = high_passed(held, rec.rate)
    figures: dict[str, object] = {"file": rec.name, "samples": len(rec.raw), "minutes": len(rec.raw) / rec.rate / 60}
    figures |= dc_figures(held) | drift_figures(held, rec.rate)
    figures |= {"rms_uv": rms_uv(passed), "median_freq_hz": median_frequency_hz(passed, rec.rate)}
    figures |= mains_figures(passed, rec.rate)
    figures |= arrival_figures(rec.arrival, rec.rate) | bad_row_figures(rec.raw) | saturation_figures(rec.raw)
    figures["below20_pct"] = below_20hz_after_detrend_pct(held, rec.rate)
    figures |= input_stage_figures(rec, held)
    return figures


def measure_files(paths: Sequence[Path], progress: bool = True) -> list[dict[str, object]]:
    from tqdm import tqdm

    return [measure(read_any(p)) for p in tqdm(paths, desc="measure", unit="file", disable=not progress)]


# -- the comparison --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Bounds:
    """A real figure's range; None: no bound on that side. `share`: a percentage, whose upper bound widens
    by the same ±15 % of what is left to 100 % (96 % → 96.6 %, not 110 %: that would accept anything)."""

    low: float | None
    high: float | None
    share: bool = False
    widen: bool = True  # False: a hard limit (the ADC rail), taken as it is

    def widened(self) -> Bounds:
        if not self.widen:
            return self
        low = None if self.low is None else self.low * (1 - WIDEN)
        if self.high is None:
            high = None
        elif self.share:
            high = 100.0 - (100.0 - self.high) * (1 - WIDEN)
        else:
            high = self.high * (1 + WIDEN)
        return Bounds(low, high, self.share, self.widen)

    def holds(self, low: float, high: float) -> bool:
        wide = self.widened()
        return (wide.low is None or low >= wide.low) and (wide.high is None or high <= wide.high)


@dataclass
class Row:
    figure: str
    real: str
    world: str
    verdict: str


@dataclass(frozen=True)
class RealFigure:
    """One row of issue 11's real column: its figure, the text, and numeric bounds per checked quantity."""

    figure: str
    text: str
    bounds: dict[str, Bounds]

    def row(self, world: str, problems: Sequence[str] = (), **measured: tuple[float, float]) -> Row:
        """The row with its verdict: every measured (low, high) within its widened bounds, and no `problems`."""
        checks = [(name.replace("_", " "), self.bounds[name], low, high) for name, (low, high) in measured.items()]
        result = verdict(checks)
        if problems:
            result = ("no: " if result == "yes" else result + "; ") + "; ".join(problems)
        return Row(self.figure, self.text, world, result)


# Issue 11's real column (12 MindRove WiFi recordings, 8 ch, 500 Hz); a bound of None is open.
REAL: dict[str, RealFigure] = {
    "dc": RealFigure(
        "DC offset (|median| per channel)", "9–212 mV; often the same on all channels", {"offsets": Bounds(9, 212)}
    ),
    "drift": RealFigure(
        "drift below 5 Hz within a 2-s window, median (max)",
        "0.4–38 mV (104 mV)",
        {"median": Bounds(0.4, 38), "max": Bounds(None, 104)},
    ),
    "rms": RealFigure(
        "RMS after a 20 Hz high-pass (median channel)",
        "12–43 µV (some older files 60–1,070 µV)",
        {"RMS": Bounds(12, 43)},
    ),
    "median_frequency": RealFigure(
        "median frequency (median channel)", "29–77 Hz", {"median_frequency": Bounds(29, 77)}
    ),
    "mains": RealFigure(
        "mains share of 20–250 Hz power, worst channel",
        "2.5–97 %; harmonics at 100, 150, 200 Hz",
        {"worst_channel": Bounds(2.5, 97, share=True)},
    ),
    "arrival": RealFigure(
        "arrival",
        "~2 samples per 4 ms, p99 gap 5–15 ms, gaps up to 138 ms; a ~5-s backlog delivered within 40 ms at start",
        {
            "samples_per_arrival": Bounds(2, 2),
            "p99_step": Bounds(5, 15),
            "max_step": Bounds(None, 138),
            "backlog": Bounds(4, 6),  # "~5 s", read as 4–6 s
        },
    ),
    "bad_rows": RealFigure(
        "bad samples",
        "stale sample repeated for runs of 4, 8, 12 … rows (70 % of one file); all-zero rows",
        {"stale_share": Bounds(0, 70, share=True)},
    ),
    "saturation": RealFigure(
        "saturation",
        "none seen; the ±2²³-count ADC at 0.045 µV/count reports at most ≈ ±377 mV",
        {"max_raw": Bounds(None, ADC_RAIL_MV, widen=False)},
    ),
    "below_20": RealFigure(
        "share of power below 20 Hz after the per-window linear detrend (2-s windows, median channel)",
        "73–96 %",
        {"share": Bounds(73, 96, share=True)},
    ),
}


def values(files: Sequence[dict], key: str) -> np.ndarray:
    found = np.array([float(f[key]) for f in files], dtype=np.float64)
    return found[np.isfinite(found)]


def span(files: Sequence[dict], key: str, fmt: str = "{:.3g}") -> tuple[str, float, float]:
    """('a–b', a, b) over the files' finite values of `key`."""
    found = values(files, key)
    if not len(found):
        return "n/a", math.nan, math.nan
    low, high = float(found.min()), float(found.max())
    text = fmt.format(low) if fmt.format(low) == fmt.format(high) else f"{fmt.format(low)}–{fmt.format(high)}"
    return text, low, high


def verdict(checks: Sequence[tuple[str, Bounds, float, float]]) -> str:
    """'yes', or 'no: …' naming each failed check with its widened bounds."""
    failed = []
    for name, bounds, low, high in checks:
        if not (math.isfinite(low) and math.isfinite(high)):
            failed.append(f"{name} not measured")
        elif not bounds.holds(low, high):
            wide = bounds.widened()
            lo = "" if wide.low is None else f"{wide.low:.3g}"
            hi = "" if wide.high is None else f"{wide.high:.3g}"
            failed.append(f"{name} outside {lo}–{hi}" if lo else f"{name} above {hi}")
    return "yes" if not failed else "no: " + "; ".join(failed)


def dc_row(files: Sequence[dict]) -> Row:
    _, low, _ = span(files, "dc_min_mv", "{:.0f}")
    _, _, top = span(files, "dc_max_mv", "{:.0f}")
    same = int(values(files, "dc_same").sum())
    world = f"{low:.0f}–{top:.0f} mV; same on all channels in {same}/{len(files)} files"
    return REAL["dc"].row(world, offsets=(low, top))


def drift_row(files: Sequence[dict]) -> Row:
    text, low, high = span(files, "drift_median_mv")
    _, _, top = span(files, "drift_max_mv")
    return REAL["drift"].row(f"{text} mV ({top:.3g} mV)", median=(low, high), max=(top, top))


def rms_row(files: Sequence[dict]) -> Row:
    text, low, high = span(files, "rms_uv")
    return REAL["rms"].row(f"{text} µV", RMS=(low, high))


def median_frequency_row(files: Sequence[dict]) -> Row:
    text, low, high = span(files, "median_freq_hz", "{:.0f}")
    return REAL["median_frequency"].row(f"{text} Hz", median_frequency=(low, high))


def mains_row(files: Sequence[dict]) -> Row:
    text, low, high = span(files, "mains_worst_pct", "{:.1f}")
    counts = {k: sum(k in f["mains_harmonics"] for f in files) for k in (2, 3, 4)}
    carried = ", ".join(f"{k}× in {n}/{len(files)}" for k, n in counts.items())
    frequencies = sorted({f"{f['mains_hz']:g}" for f in files})
    world = f"{text} %; harmonics > 1 % of the mains power: {carried} ({'/'.join(frequencies)} Hz mains)"
    missing = [f"harmonic {k}× never seen" for k, n in counts.items() if n == 0]
    return REAL["mains"].row(world, missing, worst_channel=(low, high))


def arrival_row(files: Sequence[dict]) -> Row:
    chunk, c_low, c_high = span(files, "samples_per_arrival", "{:.2g}")
    p99, p_low, p_high = span(files, "step_p99_ms", "{:.1f}")
    _, _, gap = span(files, "step_max_ms")
    backlog, b_low, b_high = span(files, "backlog_s", "{:.2f}")
    world = (
        f"{chunk} samples per arrival, p99 step {p99} ms, steps up to {gap:.0f} ms; "
        f"{backlog} s of data within the first 40 ms"
    )
    return REAL["arrival"].row(
        world, samples_per_arrival=(c_low, c_high), p99_step=(p_low, p_high), max_step=(gap, gap),
        backlog=(b_low, b_high),
    )  # fmt: skip


def bad_rows_row(files: Sequence[dict]) -> Row:
    text, low, high = span(files, "stale_pct", "{:.2g}")
    lengths = sorted({n for f in files for n in f["stale_repeats"]})
    shown = ", ".join(str(n) for n in lengths[:6]) + (" …" if len(lengths) > 6 else "") or "none"
    with_zero = sum(int(f["zero_rows"]) > 0 for f in files)
    zero_text, _, _ = span(files, "zero_rows", "{:.0f}")
    world = (
        f"stale repeats {text} % of rows, runs repeating {shown} rows; "
        f"zero rows in {with_zero}/{len(files)} files ({zero_text} per file)"
    )
    problems = ["stale runs not whole packets of 4"] if any(n % 4 for n in lengths) else []
    problems += ["no stale runs"] * (not lengths) + ["no zero rows"] * (not with_zero)
    return REAL["bad_rows"].row(world, problems, stale_share=(low, high))


def saturation_row(files: Sequence[dict]) -> Row:
    _, _, peak = span(files, "max_abs_mv")
    railed = int(values(files, "rail_rows").sum())
    world = f"max |raw| {peak:.0f} mV (rail ±{ADC_RAIL_MV:.1f} mV); {railed} rows at the rail"
    return REAL["saturation"].row(world, [f"{railed} rows at the rail"] * bool(railed), max_raw=(peak, peak))


def below_20_row(files: Sequence[dict]) -> Row:
    text, low, high = span(files, "below20_pct", "{:.0f}")
    return REAL["below_20"].row(f"{text} %", share=(low, high))


ROWS: tuple[Callable[[Sequence[dict]], Row], ...] = (
    dc_row,
    drift_row,
    rms_row,
    median_frequency_row,
    mains_row,
    arrival_row,
    bad_rows_row,
    saturation_row,
    below_20_row,
)


def compare(files: Sequence[dict]) -> list[Row]:
    return [row(files) for row in ROWS]


def input_stage_rows(files: Sequence[dict]) -> list[tuple[str, str, str]]:
    """(figure, zero rows as they are, zero rows held over) — ranges over files."""

    def both(key: str, fmt: str) -> tuple[str, str]:
        return span(files, f"{key}_as_is", fmt)[0], span(files, f"{key}_held", fmt)[0]

    notch_text = ", ".join(f"{hz:g}" for hz in NOTCHES_HZ)
    return [
        ("power below 5 Hz (drift), worst channel, %", *both("input_below5_pct", "{:.2g}")),
        ("mains share of 20–250 Hz power, worst channel, high-pass only, %", *both("input_mains_pct", "{:.2g}")),
        (
            f"… with notches at {notch_text} Hz (the default input filter since issue 11), %",
            *both("input_mains_notched_pct", "{:.2g}"),
        ),
        ("largest |z| in any 2-s window", *both("z_max", "{:,.0f}")),
        ("median over 2-s windows of the window's largest |z|", *both("z_window_median", "{:.1f}")),
    ]


# -- output -----------------------------------------------------------------------------------------------------
def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown(files: Sequence[dict], command: str, source: str) -> str:
    lines = [
        f"Measured with `{command}` on {source} ({len(files)} files, "
        f"{sum(float(f['minutes']) for f in files):.0f} min).",
        "",
        "| figure | real recordings (issue 11) | measured (range over files) | in range? |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {_cell(r.figure)} | {_cell(r.real)} | {_cell(r.world)} | {_cell(r.verdict)} |" for r in compare(files)
    ]
    lines += [
        "",
        f"In range: the measured range lies within the real bounds widened by ±{100 * WIDEN:.0f} % "
        "(12–43 µV → 10.2–49.5 µV; for a percentage the upper bound widens by 15 % of what is left to 100 %: "
        '73–96 % → 62–96.6 %; the ADC rail is not widened; the real backlog, "~5 s", is read as 4–6 s). '
        "Signal figures on the raw µV with zero rows held over; stale/zero rows and the "
        "rail on the rows as recorded; arrival from the host arrival times (samples per distinct arrival time, "
        "steps between distinct arrival times, seconds of data that arrived within 40 ms of the first).",
        "",
        "The model's input stage on this data: the input filter "
        f"({InputFilter.design().description}, and the same with mains notches) on the rows as recorded, and "
        "`filter_session` (as training "
        "applies it) after holding zero rows over (as the runtime's loop does); z = filtered / the per-channel "
        "std of the repaired model input of the same file, in both columns (a stand-in for the training "
        "normalisation, which divides by the training set's std).",
        "",
        "| model input | filter alone, zero rows as they are | zero rows held over, then `filter_session` |",
        "|---|---|---|",
    ]
    lines += [f"| {_cell(a)} | {b} | {c} |" for a, b, c in input_stage_rows(files)]
    return "\n".join(lines) + "\n"


def simulate_world(out: Path, args: argparse.Namespace) -> list[Path]:
    from training.synth import simulate

    written = simulate(
        out,
        sessions=args.sessions,
        subjects=args.subjects,
        minutes=args.minutes,
        seed=args.seed,
        write_2k=False,
        faults=args.faults,
        progress=True,
    )
    return [p for p in written if p.suffix == ".h5"]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", nargs="+", metavar="GLOB", help="session .h5 files and/or MindRove CSVs")
    parser.add_argument("--subjects", type=int, default=3)
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--faults", action="store_true", help="simulate with the labelled faults")
    parser.add_argument("--markdown", type=Path, metavar="OUT.md")
    parser.add_argument("--json", type=Path, metavar="OUT.json")
    return parser.parse_args(argv)


def run(args: argparse.Namespace, command: str) -> str:
    started = time.perf_counter()
    if args.data:
        files = measure_files(expand(args.data))
        source = "the given files"
    else:
        with tempfile.TemporaryDirectory(prefix="world_vs_real_") as tmp:
            paths = simulate_world(Path(tmp), args)
            simulated = time.perf_counter()
            files = measure_files(paths)
        source = (
            f"a fresh synthetic world ({args.subjects} subjects × {args.sessions} sessions × {args.minutes:g} min, "
            f"seed {args.seed}{', with faults' if args.faults else ''})"
        )
        print(f"simulated in {simulated - started:.1f} s", file=sys.stderr)
    print(f"measured {len(files)} files in {time.perf_counter() - started:.1f} s in all", file=sys.stderr)
    table = markdown(files, command, source)
    if args.markdown:
        args.markdown.write_text(table, encoding="utf-8")
    if args.json:
        rows = [asdict(r) for r in compare(files)]
        args.json.write_text(json.dumps({"command": command, "rows": rows, "files": files}, indent=1), "utf-8")
    return table


def reproducing_command(argv: Sequence[str]) -> str:
    """The command line that reproduces the figures: `argv` without the output options."""
    kept: list[str] = []
    skip = False
    for token in argv:
        if skip:
            skip = False
        elif token in ("--markdown", "--json"):
            skip = True
        elif not token.startswith(("--markdown=", "--json=")):
            kept.append(token)
    return shlex.join(["python", "benchmarks/world_vs_real.py", *kept])


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    command = reproducing_command(sys.argv[1:] if argv is None else argv)
    try:
        print(run(args, command))
    except UserError as error:
        print(f"world_vs_real: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
