"""Real MindRove CSV recordings → what a session file needs: µV, one timestamp per sample, bad rows named.

Two layouts (`detect_format` picks one from the first line):

- ``sdk``: the SDK's `DataFilter.write_file` file — tab-separated, no header, one row per sample, the
  MindRove WiFi board's rows as columns (found with the SDK's BoardShim descriptor, parsed by the
  `playback:` source's parser). Carries a package counter (wraps at 256) and host arrival times (s).
- ``recorder``: a CSV with a header `Timestamp, CH1..CH8, …` (comma-, semicolon- or tab-separated).
  Other columns (accelerometer, labels, gesture, …) are kept as extras.

Units (`decide_units`, `--units auto`): the rule the `playback:` and `replay:` sources use
(`emg_sources/units.counts_evidence`): a file is taken as counts (× 0.045 µV) when the median magnitude of
its non-zero values exceeds the ADC's full scale in µV (377,487), or when every value is a whole number
(µV from the SDK are counts × 0.045 and almost never whole); otherwise as µV.

Timestamps (`reconstruct_times`): the armband delivers ~2 samples per chunk with one arrival time per
chunk, late by a varying delay, and at start-up a ~5-s backlog within ~40 ms. Each sample k (its index on
the sample clock; the package counter's jumps add the samples lost in a gap) gets
``t_k = k·T + min_{j ≥ k}(a_j − j·T)``: samples are spread at the period T and anchored on the earliest
arrival of any later sample, the lower envelope of the arrival clock. A sample is never dated after it
arrived, times rise by at least T per sample (strictly increasing), a run of samples that share one
arrival time is spread back from it, and a backlog is spread back over the seconds it was recorded in.
T is measured as the slope of the per-second minima of the arrival offsets (the clock drift), within
1 % of the nominal 500 Hz; otherwise the nominal period is kept.

Package counter (`sample_index`, sdk layout): k comes from the counter's steps, known only modulo 256: a
step of d may be d + 256·m samples, and one of 240–255 may be a re-sent packet going back (up to
`RESENT_MAX`) or a loss of 239–254. Each step is first read the smallest way (240–255 back, no wraps); a
wrong reading can then only make the offsets o = a − k·T of the rows after it too high, by 512 ms per
missed wrap. Steps other than +1, and a +1 after an arrival pause over `EXAMINE_PAUSE_S`, are examined in
order, earlier decisions applied. A step's wraps come from the arrival envelope on both sides — from when
the samples were *sampled*, not when they arrived: B = min o over the rows before it (back
`ENVELOPE_SAMPLES_S` of samples or `ENVELOPE_ARRIVAL_S` of arrivals, whichever reaches further, and at
least to an on-time row), F = min o over its rows up to the next examined step (as far forward), and
m = round((F − B) / 512 ms). F is trusted when those rows include on-time ones (the next `ON_TIME_ROWS`
arrived over at least `BURST_RATIO` of the time they took to sample: not a burst) and F − B lies within
`WRAP_FIT` of whole wraps: a queue released after a lossless delivery pause does not move F (the rows after
the burst arrived on time), a late packet before a loss does not move B. Rows that arrived less than
512 ms − `DELAY_TOLERANCE_S` after B cannot follow a lost wrap: m = 0. Otherwise (rows held back: a chunk
straddling a loss, a buffer flushed after a stall), and always for a +1 with a counter jump within reach
after it, the step and the next form one event, decided by the first trusted rows after it; its wraps go
to a step the counter says lost samples (not +1, not part of a re-sent packet): a large jump, else the
first after an arrival pause, else the last (`_wrap_order`) — never so that rows in between would have
arrived more than `DELAY_TOLERANCE_S` before they were sampled.
A step of 240–255 that takes m ≥ 1 wraps is a loss of d − 1 + 256·(m − 1), with none a re-send. A row
whose counter then does not pass the highest so far is a re-sent packet and takes the next free slot
(`repeated_counters`). Limits: a step with no on-time rows after it (in a start-up backlog, at the file's
end) keeps its smallest reading; a delivery latency that rises by ≥ 256 ms and stays high reads as a lost
wrap; a loss of exactly 256·m samples (counter +1) right after rows held back is placed where the arrival
paused; when two stalls overlap in one held-back burst, how their wraps split is a guess (the arrival
times allow either).

Reported: the start-up backlog (leading samples that arrived more than `BACKLOG_LATE_S` after they were
sampled), gaps (samples lost: a package-counter jump, or without counter a jump of the reconstructed times
of more than 1.5 periods), arrival pauses longer than `STALL_S`, zero rows (every channel exactly 0) and
stale runs (≥ 2 consecutive identical rows). All rows are kept in `emg/raw` (raw data is raw); masks go to
the extras `import/zero_rows` and `import/stale_rows`.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from firmware_bridge.emg_sources.base import ARMBAND_RATE_HZ
from firmware_bridge.emg_sources.playback import is_number
from firmware_bridge.emg_sources.units import UV_PER_COUNT, counts_evidence
from firmware_bridge.errors import UserError

FORMATS = ("sdk", "recorder")
UNITS = ("auto", "counts", "uv")
BACKLOG_LATE_S = 0.1  # a sample that arrived later than this after it was sampled, at the start, is backlog
GAP_PERIODS = 1.5  # without a counter: a step of the reconstructed times beyond this many periods is a gap
STALL_S = 0.05  # an arrival pause longer than this is reported
COUNTER_MODULUS = 256
RESENT_MAX = 16  # a package counter that steps back by at most this much may be a re-sent packet
ENVELOPE_SAMPLES_S = 0.5  # the arrival envelope either side of a counter step: this many seconds of samples,
ENVELOPE_ARRIVAL_S = 0.3  # or of arrivals if that holds more rows (a burst after a delivery pause)
EXAMINE_PAUSE_S = 0.1  # a counter step of +1 after a longer arrival pause is examined for hidden wraps too
BURST_RATIO = 0.5  # rows that arrived in less than this share of the time they took to sample: a burst
ON_TIME_ROWS = 8  # a row is on time if the next this many arrived at no burst (see `on_time_rows`)
MAX_EVENT_STEPS = 64  # an event joins at most this many examined steps
WRAP_FIT = 0.1  # rows on time after a step sit within this share of a wrap (51 ms) of a whole number of wraps
DELAY_TOLERANCE_S = 0.1  # wraps are placed only where no row would then have arrived more than this early
TAIL_HOLD_S = 0.1  # the arrival envelope is held over the file's last 0.1 s (a gap there is not seen)
MAX_DRIFT = 0.01  # a measured period further than this from nominal is not trusted
MIN_RATE_SPAN_S = 10.0  # fewer seconds after the backlog: keep the nominal period
LABEL_NAMES = {"label", "labels", "gesture", "gestures", "class", "movement", "pose"}
_CHANNEL = re.compile(r"(?:ch|channel|emg)[ _-]?(\d+)(?:\s*[(\[].*)?", re.IGNORECASE)
_TIME = re.compile(r"(?:timestamps?|time)(?:[ _]?\(?(?:s|sec|seconds|ms|us|µs)\)?)?", re.IGNORECASE)


class ImportFormatError(UserError, ValueError):
    """An input file cannot be imported: the message names the file, the line and what is wrong."""


@dataclass
class Recording:
    """A parsed file, values as they are in it."""

    path: Path
    format: str
    values: np.ndarray  # (N, C) EMG as in the file
    arrival: np.ndarray  # (N,) s, the file's clock
    counters: np.ndarray | None  # (N,) package numbers (sdk layout)
    rate_hz: float  # nominal
    channel_names: list[str]
    columns: dict[str, np.ndarray] = field(default_factory=dict)  # extras, one row per sample
    label_column: str | None = None  # the column whose runs become gestures
    time_rule: str = "seconds"


# -- format detection and parsing ----------------------------------------------------------------------
def _first_line(path: Path) -> str:
    if not path.is_file():
        raise ImportFormatError(f"{path}: no such file")
    try:
        with path.open("r", encoding="utf-8-sig", errors="replace") as handle:
            for line in handle:
                if line.strip():
                    return line.rstrip("\r\n")
    except OSError as error:
        raise ImportFormatError(f"{path}: cannot read the file ({error.strerror or error})") from error
    raise ImportFormatError(f"{path}: empty file, no samples")


def detect_format(path: Path) -> str:
    """'sdk' (tab-separated numbers, no header) or 'recorder' (a header naming Timestamp and CH columns)."""
    line = _first_line(path)
    fields = line.split("\t")
    if len(fields) > 1 and all(is_number(x) for x in fields):
        return "sdk"
    names = [x.strip().strip('"') for x in re.split(r"[,;\t]", line)]
    if any(_CHANNEL.fullmatch(n) or _TIME.fullmatch(n) for n in names):
        return "recorder"
    raise ImportFormatError(
        f"{path}: line 1: neither the SDK's tab-separated DataFilter.write_file layout nor a recorder CSV with a "
        "header naming Timestamp and CH1..CH8 columns (force one with --format sdk|recorder)"
    )


def _check_finite(path: Path, values: np.ndarray, what: str, line_numbers: list[int] | None = None) -> None:
    """`line_numbers[i]` is the file line of row i (default: row i is line i + 1)."""
    bad = ~np.isfinite(values)
    if np.any(bad):
        row, column = (int(x) for x in np.argwhere(bad.reshape(len(values), -1))[0])
        line = line_numbers[row] if line_numbers is not None else row + 1
        raise ImportFormatError(f"{path}: line {line}: {what} {column + 1} is NaN or infinite")


def parse_sdk(path: Path) -> Recording:
    """The SDK's layout, located with the MindRove WiFi board's descriptor; parsed by the playback source's parser."""
    from firmware_bridge.emg_sources.playback import read_playback_rows
    from firmware_bridge.emg_sources.sdk import Layout, load_sdk

    spec = str(path)
    try:
        sdk = load_sdk(spec)
    except UserError as error:
        raise ImportFormatError(f"{path}: reading the SDK layout needs the MindRove SDK: {error}") from error
    wifi = int(sdk.BoardIds.MINDROVE_WIFI_BOARD.value)
    layout = Layout.of(sdk, wifi)
    rows = int(sdk.BoardShim.get_num_rows(wifi))
    data = None
    try:  # the fast C parser first; on any trouble the line-by-line parser names the line and column
        data = np.loadtxt(path, delimiter="\t", ndmin=2, dtype=np.float64, encoding="ascii")
    except (ValueError, UnicodeDecodeError):
        data = None
    if data is None or data.shape[0] == 0 or data.shape[1] != rows:
        data = read_playback_rows(path, spec, rows)
    emg = data[:, layout.emg_rows]
    _check_finite(path, emg, "EMG column")
    _check_finite(path, data[:, [layout.timestamp_row, layout.counter_row]], "timestamp/package column")
    accel = list(sdk.BoardShim.get_accel_channels(wifi))
    gyro = list(sdk.BoardShim.get_gyro_channels(wifi))
    columns = {
        "import/accel": data[:, accel].astype(np.float32),
        "import/gyro": data[:, gyro].astype(np.float32),
    }
    return Recording(
        path=path,
        format="sdk",
        values=emg,
        arrival=data[:, layout.timestamp_row].copy(),
        counters=np.rint(data[:, layout.counter_row]).astype(np.int64),
        rate_hz=layout.rate_hz,
        channel_names=[f"CH{i + 1}" for i in range(len(layout.emg_rows))],
        columns=columns,
        time_rule="seconds (SDK host clock)",
    )


def _header(path: Path, line: str) -> tuple[str, list[str], int, list[int]]:
    """(delimiter, names, timestamp column, EMG columns in channel order)."""
    delimiter = max((",", ";", "\t"), key=line.count)
    names = [n.strip() for n in next(csv.reader([line], delimiter=delimiter))]
    times = [i for i, n in enumerate(names) if _TIME.fullmatch(n)]
    channels = {}
    for i, name in enumerate(names):
        match = _CHANNEL.fullmatch(name)
        if match:
            number = int(match.group(1))
            if number in channels:
                raise ImportFormatError(f"{path}: line 1: channel {number} appears twice ({name!r})")
            channels[number] = i
    if not channels:
        raise ImportFormatError(f"{path}: line 1: no EMG columns found (expected a header with CH1..CH8)")
    if not times:
        raise ImportFormatError(f"{path}: line 1: no Timestamp column in the header")
    return delimiter, names, times[0], [channels[k] for k in sorted(channels)]


def _timestamp(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return datetime.fromisoformat(text.strip()).timestamp()  # ValueError if neither


def time_scale(raw: np.ndarray, rate_hz: float) -> tuple[float, str]:
    """Seconds per timestamp unit: s, ms or µs, whichever makes the mean step per sample nearest 1/rate."""
    span = float(raw.max() - raw.min())
    if len(raw) < 2 or span <= 0:
        return 1.0, "seconds"
    per_sample = span / (len(raw) - 1)
    choices = ((1.0, "seconds"), (1e-3, "milliseconds"), (1e-6, "microseconds"))
    return min(choices, key=lambda c: abs(np.log(per_sample * c[0] * rate_hz)))


def parse_recorder(path: Path, rate_hz: float = ARMBAND_RATE_HZ) -> Recording:
    line = _first_line(path)
    delimiter, names, time_col, emg_cols = _header(path, line)
    kind = {",": "comma", ";": "semicolon", "\t": "tab"}[delimiter]
    others = [i for i in range(len(names)) if i != time_col and i not in emg_cols]
    emg_rows: list[list[float]] = []
    stamps: list[float] = []
    other_rows: list[list[str]] = []
    line_numbers: list[int] = []
    with path.open("r", encoding="utf-8-sig", errors="replace", newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        header_seen = False
        for number, row in enumerate(reader, start=1):
            if not any(x.strip() for x in row):
                continue
            if not header_seen:
                header_seen = True
                continue
            if len(row) != len(names):
                raise ImportFormatError(
                    f"{path}: line {number} has {len(row)} {kind}-separated columns, the header has {len(names)}"
                )
            try:
                emg_rows.append([float(row[i]) for i in emg_cols])
            except ValueError:
                column = next(i for i in emg_cols if not is_number(row[i]))
                raise ImportFormatError(
                    f"{path}: line {number} column {column + 1} ({names[column]}): {row[column]!r} is not a number"
                ) from None
            try:
                stamps.append(_timestamp(row[time_col]))
            except ValueError:
                raise ImportFormatError(
                    f"{path}: line {number} column {time_col + 1} ({names[time_col]}): {row[time_col]!r} is not a "
                    "time (a number, or a date like 2024-05-01 12:00:00.123)"
                ) from None
            other_rows.append([row[i].strip() for i in others])
            line_numbers.append(number)
    if not emg_rows:
        raise ImportFormatError(f"{path}: empty file, no samples below the header")
    values = np.asarray(emg_rows, dtype=np.float64)
    raw_times = np.asarray(stamps, dtype=np.float64)
    _check_finite(path, values, "EMG channel", line_numbers)
    _check_finite(path, raw_times, "timestamp", line_numbers)
    scale, unit = time_scale(raw_times, rate_hz)
    columns: dict[str, np.ndarray] = {}
    label_column = None
    for j, i in enumerate(others):
        texts = [r[j] for r in other_rows]
        name = "import/columns/" + (re.sub(r"[^A-Za-z0-9_.-]+", "_", names[i]) or f"column{i + 1}")
        if name in columns:  # two headers that read the same once cleaned ("ACC X", "ACC_X")
            name = f"{name}_column{i + 1}"
        if all(is_number(t) for t in texts):
            columns[name] = np.asarray([float(t) for t in texts], dtype=np.float64)
        else:
            columns[name] = np.asarray([t.encode("utf-8") for t in texts], dtype=np.bytes_)
        if label_column is None and names[i].strip().lower() in LABEL_NAMES:
            label_column = name
    return Recording(
        path=path,
        format="recorder",
        values=values,
        arrival=raw_times * scale,
        counters=None,
        rate_hz=rate_hz,
        channel_names=[names[i] for i in emg_cols],
        columns=columns,
        label_column=label_column,
        time_rule=f"{unit} (from the Timestamp column's mean step per sample)",
    )


def parse_file(path: str | Path, fmt: str | None = None) -> Recording:
    path = Path(path)
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise ImportFormatError(f"{path}: unknown format {fmt!r} (expected sdk or recorder)")
    return parse_sdk(path) if fmt == "sdk" else parse_recorder(path)


# -- units ----------------------------------------------------------------------------------------------
def decide_units(values: np.ndarray, units: str = "auto") -> tuple[float, str, str]:
    """(µV per file unit, 'counts'|'uV', the rule in words) — see the module docstring."""
    if units == "counts":
        return UV_PER_COUNT, "counts", f"counts × {UV_PER_COUNT} µV (forced by --units counts)"
    if units == "uv":
        return 1.0, "uV", "µV as in the file (forced by --units uv)"
    if units != "auto":
        raise UserError(f"--units: {units!r} is not one of {', '.join(UNITS)}")
    reason = counts_evidence(values)
    if reason is not None:
        return UV_PER_COUNT, "counts", f"counts × {UV_PER_COUNT} µV (auto: {reason})"
    nonzero = values[values != 0]
    median = float(np.median(np.abs(nonzero))) if nonzero.size else 0.0
    return 1.0, "uV", f"µV as in the file (auto: median |value| {median:,.0f}, not all whole numbers)"


# -- bad rows -------------------------------------------------------------------------------------------
def zero_rows(values: np.ndarray) -> np.ndarray:
    return np.all(values == 0, axis=1)


def stale_rows(values: np.ndarray, zero: np.ndarray) -> np.ndarray:
    """Rows in a run of ≥ 2 consecutive identical (non-zero) rows, the first of the run included."""
    same = np.all(values[1:] == values[:-1], axis=1) & ~zero[1:]
    mask = np.zeros(len(values), dtype=bool)
    mask[1:] |= same
    mask[:-1] |= same
    return mask


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, length) of each run of True."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(int(a), int(b - a)) for a, b in zip(starts, stops, strict=True)]


# -- timestamps -----------------------------------------------------------------------------------------
def provisional_steps(counters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(raw steps mod 256, the smallest reading of each): a step of 240–255 back, 0 none, otherwise forward.

    Every other reading of a step adds whole wraps (256 samples) to it, so the offsets `a − u·T` this reading
    gives are never too low: a wrong reading only raises them, by 512 ms per wrap, from the step on.
    """
    raw = np.diff(counters.astype(np.int64)) % COUNTER_MODULUS
    return raw, np.where(raw >= COUNTER_MODULUS - RESENT_MAX, raw - COUNTER_MODULUS, raw)


def resend_steps(raw: np.ndarray) -> np.ndarray:
    """(N-1,) bool: the two steps of each re-sent packet — a step back of L - 1 (0 for L = 1) where L rows
    repeat the L before them, and the forward step of L + 1 right after them, where the counter resumes."""
    length = np.where(raw == 0, 1, COUNTER_MODULUS - raw + 1)
    back = np.flatnonzero((raw == 0) | (raw >= COUNTER_MODULUS - RESENT_MAX))
    resume = back + length[back]
    pair = resume < len(raw)
    back, resume = back[pair], resume[pair]
    pair = raw[resume] == length[back] + 1
    mask = np.zeros(len(raw), dtype=bool)
    mask[back[pair]] = mask[resume[pair]] = True
    return mask


def _wrap_order(raw: np.ndarray, resend: np.ndarray, pause: np.ndarray) -> np.ndarray:
    """The steps of one event in the order they take its wraps: a step the counter says lost samples (not +1)
    before a +1, one that is not part of a re-sent packet before one that is; then a large jump
    (RESENT_MAX + 2 … 239: a packet lost in the air is small); then the first after an arrival pause (the
    device kept its newest samples: the loss came before them); then the last (the device kept its oldest:
    rows from before the loss, held back in its buffer, arrive after the stall, then the loss)."""
    jump = raw != 1
    large = (raw > RESENT_MAX + 1) & (raw < COUNTER_MODULUS - RESENT_MAX)
    paused = pause > EXAMINE_PAUSE_S
    since_pause = np.zeros(len(raw), dtype=bool)  # a pause since the previous jump (at this step or a +1 before)
    waiting = False
    for s in range(len(raw)):
        waiting |= bool(paused[s])
        since_pause[s] = waiting
        if jump[s]:
            waiting = False
    return np.lexsort((-np.arange(len(raw)), ~since_pause, ~large, resend, ~jump))


def _place_wraps(wraps: int, order: np.ndarray, limits: np.ndarray) -> np.ndarray:
    """How many wraps each step of one event takes: `wraps` in all, to the steps in `order`, keeping the
    running total after step s within `limits[s]` (the rows between step s and s + 1 cannot have arrived
    before they were sampled); wraps no step can take go to the last step."""
    taken = np.zeros(len(order), dtype=np.int64)
    for _ in range(wraps):
        running = np.cumsum(taken)
        for s in order:
            if np.all(running[s:-1] + 1 <= limits[s:]):
                taken[s] += 1
                break
        else:
            taken[-1] += 1
    return taken


def on_time_rows(arrival: np.ndarray, examined: np.ndarray, rate_hz: float) -> np.ndarray:
    """(N,) bool: rows whose next `ON_TIME_ROWS` samples (no examined step among them) arrived over at least
    `BURST_RATIO` of the time they took to sample — not part of a burst (a backlog, a queue released after
    a delivery pause, a buffer flushed after a stall), so their offset reads the arrival clock."""
    m, n = ON_TIME_ROWS, len(arrival)
    ok = np.zeros(n, dtype=bool)
    if n > m:
        is_examined = np.zeros(n, dtype=np.int64)
        is_examined[examined] = 1
        count = np.cumsum(is_examined)
        ok[:-m] = (arrival[m:] - arrival[:-m] >= BURST_RATIO * m / rate_hz) & (count[m:] == count[:-m])
    return ok


def _events(
    examined: np.ndarray, raw: np.ndarray, arrival: np.ndarray, offsets: np.ndarray, rate_hz: float
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(rows, wraps) of each event that adds wraps; `offsets` are corrected in place as events are decided.

    An examined step's segment is its rows up to the next examined step, within its look-ahead. If it holds
    on-time rows and its lowest offset sits at the offset before the event + a whole number of wraps (±
    `WRAP_FIT`), that number decides. Otherwise it only bounds them (its rows cannot have arrived before
    they were sampled): if it allows a wrap, the step joins the next one's event.
    """
    n = len(offsets)
    wrap_s = COUNTER_MODULUS / rate_hz
    running = np.maximum.accumulate(arrival)
    reach = round(ENVELOPE_SAMPLES_S * rate_hz)
    lo = np.minimum(examined - reach, np.searchsorted(running, running[examined - 1] - ENVELOPE_ARRIVAL_S))
    hi = np.maximum(examined + reach, np.searchsorted(running, running[examined] + ENVELOPE_ARRIVAL_S, "right"))
    end = np.minimum(np.r_[examined[1:], n], hi.clip(max=n))
    on_time = on_time_rows(arrival, examined, rate_hz)
    last_on_time = np.maximum.accumulate(np.where(on_time, np.arange(n), -1))[examined - 1]
    lo = np.where(last_on_time >= 0, np.minimum(lo, last_on_time), lo).clip(0)  # reach back to an on-time row
    pause = arrival[examined] - arrival[examined - 1]
    resend = resend_steps(raw)[examined - 1]
    first, before, floors = 0, 0.0, []
    for j, row in enumerate(examined.tolist()):
        if j == first:
            before = offsets[lo[j] : row].min()  # ≈ the clock offset, from rows sampled before the event
            floors = []
        floors.append(offsets[row : end[j]].min())  # the same + 512 ms per wrap so far, if the rows were on time
        wraps_so_far = (floors[-1] - before) / wrap_s
        can_join = j + 1 < len(examined) and j + 1 - first < MAX_EVENT_STEPS
        if floors[-1] - before + DELAY_TOLERANCE_S < wrap_s:
            wraps = 0  # rows that arrived this early cannot follow a lost wrap
        elif can_join and raw[row - 1] == 1 and end[j] == examined[j + 1]:
            continue  # a +1 after a pause, a counter jump close behind: rows held back before a loss, most likely
        elif on_time[row : end[j]].any() and abs(wraps_so_far - np.rint(wraps_so_far)) < WRAP_FIT:
            wraps = max(0, int(np.rint(wraps_so_far)))
        elif can_join:
            continue  # late rows, or a wrap: the next step's rows decide
        else:
            wraps = 0  # nothing on time to tell (the end of the file): the smallest reading
        if wraps > 0:
            limits = np.floor((np.array(floors[:-1]) - before + DELAY_TOLERANCE_S) / wrap_s).astype(np.int64)
            steps = slice(first, j + 1)
            order = _wrap_order(raw[examined[steps] - 1], resend[steps], pause[steps])
            taken = _place_wraps(wraps, order, limits)
            rows = examined[steps]
            for at, count in zip(rows.tolist(), taken.tolist(), strict=True):
                if count:
                    offsets[at:] -= count * wrap_s
            yield rows, taken
        first = j + 1


def sample_index(counters: np.ndarray, arrival: np.ndarray, rate_hz: float) -> tuple[np.ndarray, int]:
    """(k, repeated): each row's place on the sample clock from the package counter, and how many rows went back.

    The rule is in the module docstring ("Package counter"). Vectorised except for a loop over the events
    (counter steps other than +1, or after a long arrival pause), of which a file has few.
    """
    n = len(counters)
    if n < 2:
        return np.zeros(n, dtype=np.int64), 0
    period = 1.0 / rate_hz
    raw, step = provisional_steps(counters)
    step = step.copy()
    u = np.concatenate([[0], np.cumsum(step)])
    offsets = (arrival - arrival[0]) - u * period  # arrival minus the row's place on the (provisional) sample clock
    examined = np.flatnonzero((raw != 1) | (np.diff(arrival) > EXAMINE_PAUSE_S)) + 1  # rows a step leads into
    if examined.size:
        for rows, wraps in _events(examined, raw, arrival, offsets, rate_hz):
            step[rows - 1] += COUNTER_MODULUS * wraps
    u = np.concatenate([[0], np.cumsum(step)])
    # a row whose counter does not pass the highest so far is a re-sent packet: it takes the next free slot
    new = np.r_[True, u[1:] > np.maximum.accumulate(u)[:-1]]
    new_rows = np.flatnonzero(new)
    k_new = np.concatenate([[0], np.cumsum(np.maximum(np.diff(new_rows), np.diff(u[new_rows])))])
    owner = np.cumsum(new) - 1
    k = k_new[owner] + (np.arange(n) - new_rows[owner])
    return k.astype(np.int64), int(n - len(new_rows))


def reconstruct_times(arrival: np.ndarray, k: np.ndarray, period: float, hold_last: int = 0) -> np.ndarray:
    """t_k = k·T + the lower envelope of later arrivals (see the module docstring); strictly increasing.

    The envelope of the last `hold_last` rows is held at its value before them: with few later arrivals
    left, it would otherwise climb with the last chunks' delivery delays (a false gap at the very end).
    """
    origin = float(arrival[0])
    offsets = (arrival - origin) - k * period
    floor = np.minimum.accumulate(offsets[::-1])[::-1]
    if 0 < hold_last < len(floor):
        floor[-hold_last:] = floor[-hold_last - 1]
    return origin + (k * period + floor)


def measure_period(arrival: np.ndarray, k: np.ndarray, nominal: float, start: int) -> float:
    """The sample period on the arrival clock: Theil–Sen slope of the per-second minima of the offsets."""
    rel = arrival[start:] - arrival[start]
    kk = k[start:] - k[start]
    if len(kk) < 2 or kk[-1] * nominal < MIN_RATE_SPAN_S:
        return nominal
    offsets = rel - kk * nominal
    block = np.floor(kk * nominal).astype(np.int64)
    starts = np.flatnonzero(np.diff(np.concatenate([[-1], block])))
    minima = np.minimum.reduceat(offsets, starts)
    centres = block[starts].astype(np.float64)
    if len(centres) > 400:
        pick = np.linspace(0, len(centres) - 1, 400).astype(np.int64)
        centres, minima = centres[pick], minima[pick]
    i, j = np.triu_indices(len(centres), 1)
    slope = float(np.median((minima[j] - minima[i]) / (centres[j] - centres[i])))
    if abs(slope) > MAX_DRIFT:
        return nominal
    return nominal * (1.0 + slope)


@dataclass
class Timeline:
    times: np.ndarray  # (N,) s, strictly increasing
    rate_hz: float  # measured: samples per second of the arrival clock
    gaps: list[tuple[int, int]]  # (row after the hole, samples lost)
    stalls: list[tuple[int, float]]  # (row after the pause, pause s)
    clock_back: list[tuple[int, float]]  # (row, s): the arrival time went back (host clock set back?)
    backlog: int  # leading rows that arrived more than BACKLOG_LATE_S late
    backlog_arrival_s: float  # how long the backlog took to arrive
    repeated_counters: int


def build_timeline(recording: Recording) -> Timeline:
    arrival, rate = recording.arrival, recording.rate_hz
    nominal = 1.0 / rate
    repeated = 0
    if recording.counters is not None:
        k, repeated = sample_index(recording.counters, arrival, rate)
    else:
        k = np.arange(len(arrival), dtype=np.int64)
    first = reconstruct_times(arrival, k, nominal)
    late = arrival - first
    backlog = int(np.argmax(late <= BACKLOG_LATE_S)) if np.any(late <= BACKLOG_LATE_S) else len(late)
    period = measure_period(arrival, k, nominal, backlog)
    times = reconstruct_times(arrival, k, period, hold_last=int(TAIL_HOLD_S * rate))
    steps = np.diff(times)
    if recording.counters is not None:
        jumps = np.diff(k) - 1
        holes = np.flatnonzero(jumps > 0)
        gaps = [(int(i) + 1, int(jumps[i])) for i in holes]
    else:
        holes = np.flatnonzero(steps > GAP_PERIODS * period)
        gaps = [(int(i) + 1, round(steps[i] / period) - 1) for i in holes]
    pauses = np.diff(arrival)
    stalls = [(int(i) + 1, float(pauses[i])) for i in np.flatnonzero(pauses > STALL_S)]
    clock_back = [(int(i) + 1, float(-pauses[i])) for i in np.flatnonzero(pauses < 0)]
    backlog_arrival = float(arrival[backlog - 1] - arrival[0]) if backlog else 0.0
    return Timeline(times, 1.0 / period, gaps, stalls, clock_back, backlog, backlog_arrival, repeated)


# -- the whole conversion -------------------------------------------------------------------------------
@dataclass
class Imported:
    """A recording converted to what the session file holds, and what the importer found."""

    recording: Recording
    emg_uv: np.ndarray  # (N, C) float32
    times: np.ndarray  # (N,) s
    extras: dict[str, np.ndarray]
    gestures: list[tuple[str, float, float]]
    source_units: str
    units_rule: str
    timeline: Timeline
    backlog_dropped: bool
    zero: list[tuple[int, int]]  # runs, in the kept rows
    stale: list[tuple[int, int]]

    @property
    def samples(self) -> int:
        return len(self.times)

    @property
    def duration_s(self) -> float:
        return float(self.times[-1] - self.times[0]) if len(self.times) > 1 else 0.0

    def at(self, row: int) -> float:
        """Seconds from the first kept sample to `row` (in the kept rows)."""
        return float(self.times[row] - self.times[0])


def _gestures(times: np.ndarray, labels: np.ndarray) -> list[tuple[str, float, float]]:
    texts = [v.decode("utf-8") if isinstance(v, bytes) else f"{v:g}" for v in labels.tolist()]
    out = []
    start = 0
    for i in range(1, len(texts) + 1):
        if i == len(texts) or texts[i] != texts[start]:
            if texts[start] and texts[start].lower() != "nan":
                out.append((texts[start], float(times[start]), float(times[i - 1])))
            start = i
    return out


def convert(recording: Recording, *, units: str = "auto", drop_backlog: bool = False) -> Imported:
    scale, source_units, rule = decide_units(recording.values, units)
    if len(recording.arrival) > 1 and not np.ptp(recording.arrival) > 0:
        raise ImportFormatError(
            f"{recording.path}: the timestamps never advance ({len(recording.arrival)} rows all at one time)"
        )
    timeline = build_timeline(recording)
    keep = slice(timeline.backlog if drop_backlog else 0, None)
    values = recording.values[keep]
    if len(values) < 2:
        raise ImportFormatError(f"{recording.path}: {len(values)} samples left to import; a session needs at least 2")
    times = timeline.times[keep]
    zero = zero_rows(values)
    stale = stale_rows(values, zero)
    extras = {name: column[keep] for name, column in recording.columns.items()}
    extras["import/arrival_times"] = recording.arrival[keep]
    if recording.counters is not None:
        extras["import/package_numbers"] = recording.counters[keep].astype(np.int32)
    extras["import/zero_rows"] = zero.astype(np.uint8)
    extras["import/stale_rows"] = stale.astype(np.uint8)
    gestures = _gestures(times, extras[recording.label_column]) if recording.label_column else []
    if drop_backlog and timeline.backlog:  # rows are renumbered from the first kept one
        shift = timeline.backlog
        timeline.gaps = [(i - shift, n) for i, n in timeline.gaps if i > shift]
        timeline.stalls = [(i - shift, s) for i, s in timeline.stalls if i > shift]
        timeline.clock_back = [(i - shift, s) for i, s in timeline.clock_back if i > shift]
    return Imported(
        recording=recording,
        emg_uv=(values * scale).astype(np.float32),
        times=times,
        extras=extras,
        gestures=gestures,
        source_units=source_units,
        units_rule=rule,
        timeline=timeline,
        backlog_dropped=drop_backlog and timeline.backlog > 0,
        zero=runs(zero),
        stale=runs(stale),
    )


def _times(imported: Imported, rows: list[int], limit: int = 5) -> str:
    shown = ", ".join(f"{imported.at(r):.3f} s" for r in rows[:limit])
    return shown + (f", … ({len(rows) - limit} more)" if len(rows) > limit else "")


def summary_lines(imported: Imported) -> list[str]:
    """What the importer found, in words (printed, and stored as the attribute `import_summary`)."""
    rec, tl = imported.recording, imported.timeline
    lines = [
        f"format: {rec.format} ({len(rec.channel_names)} EMG channels: {', '.join(rec.channel_names)}); "
        f"timestamps in {rec.time_rule}",
        f"samples: {imported.samples}, duration {imported.duration_s:.2f} s, rate measured {tl.rate_hz:.2f} Hz "
        f"(nominal {rec.rate_hz:g})",
        f"units: {imported.units_rule}",
    ]
    if tl.backlog:
        fate = "dropped (--drop-backlog)" if imported.backlog_dropped else "kept, with reconstructed times"
        lines.append(
            f"backlog: {tl.backlog} samples ({tl.backlog / rec.rate_hz:.2f} s of signal) arrived within "
            f"{tl.backlog_arrival_s * 1000:.0f} ms at the start — {fate}"
        )
    else:
        lines.append("backlog: none")
    if tl.gaps:
        lost = sum(n for _, n in tl.gaps)
        where = ", ".join(f"{imported.at(i):.3f} s ({n} lost)" for i, n in tl.gaps[:5])
        more = f", … ({len(tl.gaps) - 5} more)" if len(tl.gaps) > 5 else ""
        lines.append(f"gaps: {len(tl.gaps)}, {lost} samples lost, at {where}{more}")
    else:
        lines.append("gaps: none")
    if tl.stalls:
        longest = max(s for _, s in tl.stalls)
        lines.append(
            f"arrival pauses > {STALL_S * 1000:.0f} ms: {len(tl.stalls)} (longest {longest * 1000:.0f} ms), at "
            + _times(imported, [i for i, _ in tl.stalls])
        )
    if tl.clock_back:
        largest = max(s for _, s in tl.clock_back)
        lines.append(
            f"arrival clock went back: {len(tl.clock_back)} times (largest {largest * 1000:.0f} ms), at "
            + _times(imported, [i for i, _ in tl.clock_back])
        )
    if tl.repeated_counters:
        lines.append(f"repeated package numbers (re-sent packets?): {tl.repeated_counters} rows, kept")
    zero_total = sum(n for _, n in imported.zero)
    if zero_total:
        lines.append(f"zero rows: {zero_total} (kept), at " + _times(imported, [i for i, _ in imported.zero]))
    else:
        lines.append("zero rows: none")
    stale_total = sum(n for _, n in imported.stale)
    if stale_total:
        lengths = np.unique([n for _, n in imported.stale], return_counts=True)
        sizes = ", ".join(f"{n}×{c}" for n, c in zip(*lengths, strict=True))
        lines.append(
            f"stale repeats: {len(imported.stale)} runs, {stale_total} rows "
            f"({100 * stale_total / imported.samples:.1f} %, run length×count {sizes}) (kept), at "
            + _times(imported, [i for i, _ in imported.stale])
        )
    else:
        lines.append("stale repeats: none")
    if imported.gestures:
        lines.append(f"gestures: {len(imported.gestures)} segments from column {rec.label_column}")
    return lines


def session_attrs(imported: Imported) -> dict[str, object]:
    """Root attributes recording how the file was imported."""
    tl = imported.timeline
    return {
        "emg_units": "uV",  # stored values are µV whatever the file held (replay must not convert again)
        "import_source_file": imported.recording.path.name,
        "import_format": imported.recording.format,
        "import_source_units": imported.source_units,
        "import_units_rule": imported.units_rule,
        "import_rate_measured_hz": float(tl.rate_hz),
        "import_backlog_samples": int(tl.backlog),
        "import_backlog_dropped": bool(imported.backlog_dropped),
        "import_gaps": len(tl.gaps),
        "import_missing_samples": int(sum(n for _, n in tl.gaps)),
        "import_zero_rows": int(sum(n for _, n in imported.zero)),
        "import_stale_rows": int(sum(n for _, n in imported.stale)),
        "import_summary": "\n".join(summary_lines(imported)),
    }


def write_session(imported: Imported, out: Path, *, subject_id: str, session_id: str) -> Path:
    """Write the session atomically: `out` is the complete file or untouched (never a partial file)."""
    from firmware_bridge.atomic_write import atomic_path
    from firmware_bridge.session import SessionWriter

    with atomic_path(out) as tmp:
        writer = SessionWriter(
            tmp,
            subject_id=subject_id,
            session_id=session_id,
            emg_channels=imported.emg_uv.shape[1],
            emg_sampling_rate=imported.recording.rate_hz,
            attrs=session_attrs(imported),
        )
        with writer:
            writer.append_emg(imported.emg_uv, imported.times)
            for name, values in imported.extras.items():
                writer.append_extra(name, values)
            for label, start, end in imported.gestures:
                writer.add_gesture(label, start, end)
    return out
