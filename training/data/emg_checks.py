"""Bad-data checks on a session's raw EMG: each check is a small function returning `Finding`s.

`mode2 inspect` prints them; the thresholds below are named after where they come from: the real MindRove
WiFi recordings measured in issue 11 (8 ch, 500 Hz, 12 recordings), not the synthetic world, so a clean
real file stays quiet and the defects seen on real files are named.

Times in findings are seconds from the first EMG sample. All checks assume the rows are in sample order at
the nominal rate (the spectrum and filters ignore timestamp jitter; the arrival checks read the stamps).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.signal import butter, sosfiltfilt, welch

from firmware_bridge.emg_rows import hold_over_zero_rows
from firmware_bridge.errors import UserError

HIGH_PASS_HZ = 20.0  # EMG band starts here; what is below is drift and movement artefact
MAINS_BAND_HZ = (20.0, 250.0)  # the EMG band the mains share is taken of (250 Hz: Nyquist at 500 Hz)
MAINS_FREQUENCIES_HZ = (50.0, 60.0)
MAINS_HARMONICS = 4  # 50 Hz → 50, 100, 150, 200 Hz: the real files show all four
MAINS_HALF_WIDTH_HZ = 1.0  # ± around each line: a 0.5-Hz-resolution spectrum's Hann main lobe
# Real files: worst channel 2.5–97 %; a clean channel scores ~4 % (its broadband power in the mains bins).
# Above 30 % mains is a sizeable part of what the model would see as "EMG".
MAINS_SHARE_WARN = 0.30
DRIFT_LOW_PASS_HZ = 5.0
DRIFT_WINDOW_S = 2.0  # the model's window
# Real files: median 2-s swing below 5 Hz 0.4–38 mV (max 104 mV); real EMG RMS is 12–43 µV, so 5 mV is
# more than 100× the signal: it names the drifting half of the real files, not the still ones.
DRIFT_MEDIAN_WARN_MV = 5.0
STALE_RUN_ROWS = 4  # real files repeat a stale sample in runs of 4, 8, 12 … identical rows
# The ADC (±2²³ counts × 0.045 µV) reports at most ≈ ±377 mV: a larger DC is not µV (raw counts?).
ADC_LIMIT_MV = 377.0
DC_WARN_MV = 400.0
FLAT_RMS_UV = 1.0  # real EMG after a 20-Hz high-pass: 12–43 µV (older files up to 1,070); < 1 µV is no signal
GAP_WARN_S = 0.020  # real arrival: p99 gap 5–15 ms; gaps up to 138 ms are the defect
BACKLOG_SEARCH_S = 1.0  # a backlog arrives at once at the start (real: ~5 s delivered within 40 ms)
BACKLOG_WARN_S = 0.1  # ahead of the nominal rate by more than chunk jitter (real: ~2 samples per 4 ms)
CONTRAST_WARN = 1.5  # movement RMS / rest RMS on the best channel; real files and the world show more
REST_LABELS = frozenset({"rest", "relax", "relaxed", "idle", "neutral", "none", "0"})
MAX_TIMES = 5  # how many first occurrences a finding lists


@dataclass(frozen=True)
class Finding:
    """One piece of bad data: which check, a one-line message, the channel (None: all or none) and when."""

    check: str
    message: str
    channel: int | None = None
    times_s: tuple[float, ...] = ()
    value: float = float("nan")
    details: dict[str, float | int | str] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def _times(stamps: np.ndarray, rows: np.ndarray) -> tuple[float, ...]:
    return tuple(round(float(stamps[i] - stamps[0]), 3) for i in rows[:MAX_TIMES])


def _at(times: Sequence[float]) -> str:
    return ", ".join(f"{t:.2f}" for t in times) + " s"


def high_passed(raw: np.ndarray, rate: float) -> np.ndarray:
    """The channels without DC and drift (20-Hz high-pass; below 50 Hz sampling only the mean is removed)."""
    values = raw.astype(np.float64)
    centred = values - values.mean(axis=0)
    if len(raw) <= 30 or rate <= 2.5 * HIGH_PASS_HZ:
        return centred
    sos = butter(4, HIGH_PASS_HZ, btype="high", fs=rate, output="sos")
    return sosfiltfilt(sos, centred, axis=0)


# -- signal --------------------------------------------------------------------------------------------
def mains_shares(raw: np.ndarray, rate: float) -> tuple[float, np.ndarray]:
    """(mains frequency, per-channel share of 20–250 Hz power at it and its harmonics)."""
    return _mains_shares(high_passed(raw, rate), rate)


def _mains_shares(signal: np.ndarray, rate: float) -> tuple[float, np.ndarray]:
    """`mains_shares` of an already high-passed signal."""
    nper = int(min(len(signal), 2 * rate))  # 0.5-Hz bins
    freqs, power = welch(signal, fs=rate, nperseg=nper, axis=0)
    top = min(MAINS_BAND_HZ[1], rate / 2)
    band = (freqs >= MAINS_BAND_HZ[0]) & (freqs <= top)
    total = power[band].sum(axis=0)
    best: tuple[float, np.ndarray] = (MAINS_FREQUENCIES_HZ[0], np.zeros(signal.shape[1]))
    for mains in MAINS_FREQUENCIES_HZ:
        lines = [k * mains for k in range(1, MAINS_HARMONICS + 1) if k * mains <= top]
        near = np.zeros_like(band)
        for line in lines:
            near |= np.abs(freqs - line) <= MAINS_HALF_WIDTH_HZ
        share = power[band & near].sum(axis=0) / np.where(total > 0, total, 1.0)
        if share.max() > best[1].max():
            best = (mains, share)
    return best


def check_mains(signal: np.ndarray, stamps: np.ndarray, rate: float) -> list[Finding]:
    """`signal`: the high-passed EMG (`high_passed`)."""
    if len(signal) < 64 or rate <= 2 * MAINS_BAND_HZ[0] * 1.25:
        return []
    mains, shares = _mains_shares(signal, rate)
    worst = int(np.argmax(shares))
    if shares[worst] <= MAINS_SHARE_WARN:
        return []
    over = [f"ch{c}" for c in np.flatnonzero(shares > MAINS_SHARE_WARN)]
    lines = ", ".join(f"{k * mains:g}" for k in range(1, MAINS_HARMONICS + 1) if k * mains <= rate / 2)
    span = float(stamps[-1] - stamps[0])
    return [
        Finding(
            "mains",
            f"mains: {100 * shares[worst]:.0f} % of ch{worst}'s 20–250 Hz power is {mains:g} Hz mains "
            f"({lines} Hz), 0.00–{span:.2f} s; channels above {100 * MAINS_SHARE_WARN:.0f} %: {', '.join(over)}",
            worst,
            (0.0,),
            float(shares[worst]),
            {"mains_hz": mains, "channels_over": ",".join(over)},
        )
    ]


def drift_swings_mv(raw: np.ndarray, rate: float) -> np.ndarray:
    """(windows, channels) peak-to-peak of the below-5-Hz signal in consecutive 2-s windows, in mV."""
    values = raw.astype(np.float64)
    if len(values) > 30 and rate > 2.5 * DRIFT_LOW_PASS_HZ:
        sos = butter(2, DRIFT_LOW_PASS_HZ, btype="low", fs=rate, output="sos")
        values = sosfiltfilt(sos, values - values.mean(axis=0), axis=0)
    step = max(1, int(DRIFT_WINDOW_S * rate))
    starts = range(0, max(1, len(values) - step + 1), step)
    return np.array([np.ptp(values[s : s + step], axis=0) for s in starts]) / 1000.0


def check_drift(raw: np.ndarray, stamps: np.ndarray, rate: float) -> list[Finding]:
    swings = drift_swings_mv(raw, rate)
    median = np.median(swings, axis=0)
    worst = int(np.argmax(median))
    if median[worst] <= DRIFT_MEDIAN_WARN_MV:
        return []
    window = int(np.argmax(swings[:, worst]))
    at = _times(stamps, np.array([min(len(stamps) - 1, window * int(DRIFT_WINDOW_S * rate))]))
    over = [f"ch{c}" for c in np.flatnonzero(median > DRIFT_MEDIAN_WARN_MV)]
    return [
        Finding(
            "drift",
            f"drift: ch{worst} swings {median[worst]:.1f} mV (median) up to {swings[window, worst]:.1f} mV "
            f"(window at {_at(at)}) below {DRIFT_LOW_PASS_HZ:g} Hz within {DRIFT_WINDOW_S:g}-s windows "
            f"(> {DRIFT_MEDIAN_WARN_MV:g} mV); channels: {', '.join(over)}",
            worst,
            at,
            float(median[worst]),
            {"max_mv": float(swings[window, worst])},
        )
    ]


def check_levels(raw: np.ndarray, signal: np.ndarray, stamps: np.ndarray, rate: float) -> list[Finding]:
    """Implausible DC (not µV) in `raw` and flat channels (no signal) in `signal`, its high-passed form."""
    findings = []
    dc_mv = np.median(raw.astype(np.float64), axis=0) / 1000.0
    beyond = np.flatnonzero(np.abs(dc_mv) > DC_WARN_MV)
    if len(beyond):
        worst = int(beyond[np.argmax(np.abs(dc_mv[beyond]))])
        findings.append(
            Finding(
                "units",
                f"units: DC offset {dc_mv[worst]:.0f} mV on ch{worst} (channels "
                f"{', '.join(f'ch{c}' for c in beyond)}) is beyond the ADC's ±{ADC_LIMIT_MV:.0f} mV: "
                "raw counts not converted to µV? (µV = counts × 0.045)",
                worst,
                (0.0,),
                float(dc_mv[worst]),
            )
        )
    rms = np.sqrt(np.mean(signal**2, axis=0))
    flat = np.flatnonzero(rms < FLAT_RMS_UV)
    if len(flat) == raw.shape[1]:
        findings.append(
            Finding(
                "empty",
                f"empty EMG: every channel is flat (RMS < {FLAT_RMS_UV:g} µV after a {HIGH_PASS_HZ:g}-Hz "
                "high-pass): no EMG in this file",
                None,
                (0.0,),
                float(rms.max()),
            )
        )
    for c in flat if len(flat) < raw.shape[1] else []:
        findings.append(
            Finding(
                "flat",
                f"flat: ch{c} RMS {rms[c]:.2f} µV after a {HIGH_PASS_HZ:g}-Hz high-pass (< {FLAT_RMS_UV:g} µV): "
                "flat or unconnected electrode",
                int(c),
                (0.0,),
                float(rms[c]),
            )
        )
    return findings


# -- rows --------------------------------------------------------------------------------------------------
def _runs(same_as_previous: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first row, length in rows) of each run of rows equal to their predecessor, counting that predecessor."""
    flags = np.concatenate([[False], same_as_previous, [False]]).astype(np.int8)
    edges = np.diff(flags)
    starts = np.flatnonzero(edges == 1)  # index into same_as_previous → row starts+1 repeats row starts
    ends = np.flatnonzero(edges == -1)
    return starts, ends - starts + 1


def check_rows(raw: np.ndarray, stamps: np.ndarray, rate: float) -> list[Finding]:
    """Stale samples repeated in runs of ≥ 4 identical rows, and all-zero rows."""
    findings = []
    n = len(raw)
    zero = np.all(raw == 0, axis=1)
    if zero.any():
        rows = np.flatnonzero(zero)
        firsts = rows[np.r_[True, np.diff(rows) > 1]]  # each run once: consecutive zero rows share a time
        findings.append(
            Finding(
                "zero_rows",
                f"zero rows: {len(rows)} rows with every channel exactly 0 ({100 * len(rows) / n:.2g} %) in "
                f"{len(firsts)} runs, first at {_at(_times(stamps, firsts))}",
                None,
                _times(stamps, firsts),
                float(len(rows)),
                {"share": len(rows) / n},
            )
        )
    same = np.all(raw[1:] == raw[:-1], axis=1) & ~zero[1:]
    starts, lengths = _runs(same)
    long = lengths >= STALE_RUN_ROWS
    if long.any():
        repeated = int((lengths[long] - 1).sum())
        first = starts[long]
        findings.append(
            Finding(
                "stale",
                f"stale rows: {repeated} rows repeat the row before them ({100 * repeated / n:.2g} % of the file) "
                f"in {int(long.sum())} runs of ≥ {STALE_RUN_ROWS} identical rows (longest {int(lengths.max())}), "
                f"first at {_at(_times(stamps, first))}",
                None,
                _times(stamps, first),
                float(repeated),
                {"share": repeated / n, "runs": int(long.sum())},
            )
        )
    return findings


# -- arrival -----------------------------------------------------------------------------------------------
def check_arrival(raw: np.ndarray, stamps: np.ndarray, rate: float) -> list[Finding]:
    """Timestamp gaps beyond the real jitter, and a start-up backlog (samples stamped faster than the rate)."""
    findings = []
    if len(stamps) < 2:
        return findings
    steps = np.diff(stamps)
    gaps = np.flatnonzero(steps > GAP_WARN_S)
    if len(gaps):
        worst = int(gaps[np.argmax(steps[gaps])])
        findings.append(
            Finding(
                "gap",
                f"arrival gaps: {len(gaps)} timestamp gap{'s' if len(gaps) != 1 else ''} > {1000 * GAP_WARN_S:.0f} ms, "
                "the longest "
                f"{1000 * steps[worst]:.0f} ms at {_at(_times(stamps, np.array([worst])))}; "
                f"first at {_at(_times(stamps, gaps))}",
                None,
                _times(stamps, gaps),
                float(steps[worst]),
                {"count": len(gaps), "longest_at_s": float(stamps[worst] - stamps[0])},
            )
        )
    elapsed = stamps - stamps[0]
    early = np.flatnonzero(elapsed <= BACKLOG_SEARCH_S)
    lead = np.arange(len(early)) / rate - elapsed[early]  # how far the data runs ahead of its arrival
    # the backlog ends where the lead first reaches its plateau (later samples keep it within rounding)
    ahead = int(np.argmax(lead >= lead.max() - 0.5 / rate))
    if lead[ahead] > BACKLOG_WARN_S:
        findings.append(
            Finding(
                "backlog",
                f"start-up backlog: {ahead + 1} samples ({(ahead + 1) / rate:.2f} s of data) are stamped within "
                f"the first {1000 * elapsed[ahead]:.0f} ms, faster than {rate:g} Hz: a buffered backlog at "
                "0.00 s (its timestamps are arrival times, not sample times)",
                None,
                (0.0,),
                float(lead[ahead]),
                {"samples": ahead + 1},
            )
        )
    return findings


# -- labels ------------------------------------------------------------------------------------------------
def _mask(stamps: np.ndarray, spans: Sequence[tuple[float, float]]) -> np.ndarray:
    mask = np.zeros(len(stamps), dtype=bool)
    for start, end in spans:
        mask |= (stamps >= start) & (stamps <= end)
    return mask


def check_contrast(
    signal: np.ndarray, stamps: np.ndarray, rate: float, gestures: Sequence[tuple[str, float, float]]
) -> list[Finding]:
    """Movement vs rest RMS of the high-passed `signal` when the file has gesture labels: rest is a
    rest-like label (`rest`, `idle` …) or, without one, the time outside every labelled gesture."""
    if not gestures:
        return []
    rest_spans = [(s, e) for label, s, e in gestures if label.strip().lower() in REST_LABELS]
    move_spans = [(s, e) for label, s, e in gestures if label.strip().lower() not in REST_LABELS]
    if not move_spans:
        return []
    moving = _mask(stamps, move_spans)
    resting = _mask(stamps, rest_spans) & ~moving if rest_spans else ~moving
    if moving.sum() < rate or resting.sum() < rate:  # under a second of either says nothing
        return []
    move_rms = np.sqrt(np.mean(signal[moving] ** 2, axis=0))
    rest_rms = np.sqrt(np.mean(signal[resting] ** 2, axis=0))
    ratio = move_rms / np.maximum(rest_rms, 1e-9)
    best = int(np.argmax(ratio))
    if ratio[best] >= CONTRAST_WARN:
        return []
    first_move = _times(stamps, np.flatnonzero(moving)[:1])
    return [
        Finding(
            "contrast",
            f"weak rest/movement contrast: even the best channel ch{best} has movement RMS "
            f"{move_rms[best]:.1f} µV vs rest {rest_rms[best]:.1f} µV ({ratio[best]:.2f}×, < {CONTRAST_WARN:g}×); "
            f"first movement label at {_at(first_move)}: mislabelled phases or no muscle signal?",
            best,
            first_move,
            float(ratio[best]),
        )
    ]


def check_emg(
    raw: np.ndarray,
    stamps: np.ndarray,
    rate: float,
    gestures: Sequence[tuple[str, float, float]] = (),
    *,
    source: str = "EMG",
) -> list[Finding]:
    """Every check on one recording, in reading order. UserError naming `source` when it has no samples."""
    raw = np.asarray(raw)
    stamps = np.asarray(stamps, dtype=np.float64)
    if raw.ndim != 2 or len(raw) == 0 or raw.shape[1] == 0:
        raise UserError(f"{source}: emg/raw holds no samples (shape {raw.shape}): an empty recording")
    held = without_zero_rows(raw)  # a zero row is a step of the whole DC: it would ring through every filter
    signal = high_passed(held, rate)  # filtered once for the level, mains and contrast checks
    findings = check_levels(held, signal, stamps, rate)
    if not any(f.check == "empty" for f in findings):
        findings += check_mains(signal, stamps, rate) + check_drift(held, stamps, rate)
    findings += check_rows(raw, stamps, rate) + check_arrival(raw, stamps, rate)
    if not any(f.check == "empty" for f in findings):
        findings += check_contrast(signal, stamps, rate, gestures)
    return findings


def without_zero_rows(raw: np.ndarray) -> np.ndarray:
    """`raw` with each all-zero row replaced by the last row before it that is not (the first good row for
    leading ones: the whole recording is known and nothing here is the model's input); unchanged when every
    row is zero. The hold is the model input stage's (firmware_bridge/emg_rows.py), which keeps leading zero
    rows zero instead, as a live stream must."""
    raw = np.asarray(raw)
    good = np.flatnonzero(raw.any(axis=1))
    if len(good) in (0, len(raw)):
        return raw
    return hold_over_zero_rows(raw, raw[good[0]])[0]
