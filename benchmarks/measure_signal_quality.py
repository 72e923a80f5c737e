"""Signal-quality detectors against the synthetic world's labelled faults and bad rows, on held-out seeds.

Simulates sessions with `--faults` (thresholds were tuned on seed 1: report on other seeds) and replays each
raw stream the way the live armband path meets it: the rows reach the host when the world says they arrived
(`import/arrival_times`: ~2-sample chunks, jitter, WiFi pauses, a start-up backlog delivered at once), a poll
every 4 ms of host time hands over what arrived since the last one, and the chunk goes through the live
MindRove source's stream checks (`StreamChecker` with the device's package counter `import/package_numbers`:
the backlog is discarded, re-sent packets dropped and reported as "duplicate", counter jumps as "gap", silences
as "stall"), timestamps being the arrival times as the SDK reports them. `runtime.signal_quality.SignalQuality`
gets each chunk with its events and the poll time (`now`). The session's own `emg/timestamps` (reconstructed
afterwards, smooth) are not what a live runtime sees, so they are not used for the replay.

Every report is scored against what the world did, all on the host clock (from the arrival of a fault's first
row; a stall or arrival pause from when the next chunk was due):

- injected faults (`fault_events`): lift-off, saturation, flat line, duplicated packets, stall;
- the world's bad rows, derived from `truth/fault_labels` (every session has them): stale repeats (a whole
  packet or 2–3 carrying the sample before them again → DUPLICATE; the report counts those that also raised
  FLAT) and all-zero rows (→ FLAT on every channel); rows inside the start-up backlog the source discarded
  never reach the checker and are not scored;
- WiFi arrival pauses longer than `stall_after_s` (unlabelled, but a real silence: STALL or GAP is right).

Figures: latency to the first report carrying the fault's own flag (on its channel; row and stream faults on
any channel, zero rows on every channel), recall (≤ 100 ms, and by the report that delivers the fault's last
row / before the fault ended); false alarms per flag on fault-free time (outside every fault and the
1 s after an injected fault / 0.25 s after a bad row or pause); MAINS split by how much of each channel's
20–250 Hz power the world put in mains (`training.data.emg_checks.mains_shares` over the stretches between
injected faults: flagging a channel that is 90 % mains is right, flagging a 10 % one is a false alarm); per
session the share of time the gate would be closed by any flag, overall and outside the injected faults (what
a user would feel on that donning), with the reason it names; and the checker's cost. Issue 11's realistic
conditions (shared DC, drift, mains with harmonics, stale and zero rows, chunked arrival) are the world's own
now, so they are measured on it, donning by donning, rather than added to clean sessions.

What-ifs: `--set KEY=VALUE` replaces a `QualityConfig` threshold (repeatable); `--known-mains` gives the
checker each session's mains frequency instead of letting it detect it, as the runtime does.

Run: `python benchmarks/measure_signal_quality.py --seeds 2 3 4 --out sq.md` (≈ 2–3 min on 2 busy cores).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import cpu_model
from firmware_bridge.emg_rows import hold_over_zero_rows
from firmware_bridge.emg_sources.checks import StreamChecker
from firmware_bridge.emg_sources.sdk import ARMBAND_COUNTER_MODULUS
from firmware_bridge.session import read_session
from runtime.signal_quality import FAULT_FLAGS, FLAG_PRIORITY, QualityConfig, QualityFlag, SignalQuality
from training.data.emg_checks import mains_shares
from training.synth import simulate
from training.synth.nuisance import FAULT_CODES
from training.synth.subjects import make_placement, make_subject

POLL_S = 0.004
HOP_S = 0.05
WITHIN_S = 0.1
RECOVERY_S = 1.0  # after an injected fault
ROW_RECOVERY_S = 0.25  # after a bad row or an arrival pause (the flags' hold is 0.1 s)
SOURCE_STALL_MS = 50.0  # the live MindRove source's defaults (firmware_bridge/emg_sources/mindrove_wifi.py)
SOURCE_BACKLOG_KEEP_S = 0.1
INJECTED = ("lift_off", "saturation", "flat_line", "duplicate", "stall")
ROW_KINDS = ("stale_repeat", "zero_row")
KIND_FLAG = {
    **FAULT_FLAGS,
    "stale_repeat": QualityFlag.DUPLICATE,
    "zero_row": QualityFlag.FLAT,
    "arrival_pause": QualityFlag.STALL | QualityFlag.GAP,
}
KIND_NAME = {
    "lift_off": "electrode lift-off",
    "saturation": "saturation",
    "flat_line": "flat line",
    "duplicate": "duplicated packets (re-sent, counter repeats)",
    "stall": "stall (samples lost)",
    "stale_repeat": "stale repeat rows (bad rows, every session)",
    "zero_row": "all-zero rows (bad rows, every session; FLAT on every channel)",
    "arrival_pause": "WiFi arrival pause > 40 ms (unlabelled)",
}
MAINS_BUCKETS = ((0.0, 0.5), (0.5, 0.8), (0.8, 1.01))  # the world's mains share of a channel's 20–250 Hz power


@dataclass
class Replay:
    times: np.ndarray  # (R,) poll time of each report (host clock, s from the first arrival)
    flags: np.ndarray  # (R, C) int
    cost_s: np.ndarray  # (R,) time spent in SignalQuality.update()
    discarded: np.ndarray  # (N,) bool: rows the source threw away as start-up backlog (never checked)


def replay(
    raw: np.ndarray,
    arrival: np.ndarray,
    counters: np.ndarray,
    fs: float,
    *,
    mains_hz: float | None = None,
    config: QualityConfig | None = None,
    poll_s: float = POLL_S,
) -> Replay:
    """Feed the stream as the armband delivers it: every `poll_s` of host time, what arrived since the last poll,
    through the live source's stream checks (arrival times relative to the first arrival, rising)."""
    channels = raw.shape[1]
    checker = SignalQuality(fs, channels, mains_hz, config=config)
    stream = StreamChecker(
        rate_hz=fs,
        channels=channels,
        counter_modulus=ARMBAND_COUNTER_MODULUS,
        stall_ms=SOURCE_STALL_MS,
        backlog_keep_s=SOURCE_BACKLOG_KEEP_S,
    )
    polls = np.arange(0.0, arrival[-1] + poll_s, poll_s)
    ends = np.searchsorted(arrival, polls, side="right")
    flags = np.zeros((len(polls), channels), dtype=np.int64)
    cost = np.zeros(len(polls))
    discarded = np.zeros(len(raw), dtype=bool)
    start, empty, no_time = 0, np.empty((0, channels)), np.empty(0)
    clock = time.perf_counter
    for i, (now, stop) in enumerate(zip(polls, ends, strict=True)):
        now = float(now)
        if stop > start:
            chunk, chunk_t, _, events = stream.process(
                raw[start:stop], arrival[start:stop], counters[start:stop], now=now
            )
            dropped = sum(e.samples for e in events if e.kind == "backlog")  # the chunk's first rows
            discarded[start : start + dropped] = True
        else:
            chunk, chunk_t, events = empty, no_time, []
        t0 = clock()
        report = checker.update(chunk, chunk_t, events, now=now)
        cost[i] = clock() - t0
        flags[i] = report.flags
        start = stop
    return Replay(polls, flags, cost, discarded)


@dataclass
class Fault:
    kind: str
    channel: int  # -1: any channel (stream and row faults)
    onset: float  # host clock
    end: float
    recovery: float
    every_channel: bool = False  # the flag must be up on every channel (zero rows)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) row of each run of True."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), (np.flatnonzero(edges == -1) - 1).tolist(), strict=True))


def session_faults(session, arrival: np.ndarray, discarded: np.ndarray, config: QualityConfig) -> list[Fault]:
    """Every labelled fault and bad-row run the checker was given, and every arrival pause, on the host clock
    (bad rows inside the start-up backlog the source discarded never reach it)."""
    labels, fs = session.extras["truth/fault_labels"], session.emg_rate
    chunk_period = 2 / fs  # the next ~2-sample chunk is due this long after the last one
    channel = {kind: int(ch) for kind, ch, *_ in json.loads(session.attrs["fault_events"])}
    faults: list[Fault] = []
    stall_end = None
    for kind in INJECTED:
        rows = np.flatnonzero(labels == FAULT_CODES[kind])
        if not len(rows):
            continue
        if kind == "stall":  # the label sits on the first sample after the gap; the silence began after the
            after = int(rows[0])  # last chunk that arrived before it (a chunk can straddle the gap)
            before = arrival[:after][arrival[:after] < arrival[after]]
            onset = float(before[-1]) + chunk_period if len(before) else float(arrival[after])
            stall_end = float(arrival[after])
            faults.append(Fault(kind, -1, onset, stall_end, RECOVERY_S))
        else:
            ch = -1 if kind == "duplicate" else channel.get(kind, -1)
            faults.append(Fault(kind, ch, float(arrival[rows[0]]), float(arrival[rows[-1]]), RECOVERY_S))
    for kind in ROW_KINDS:
        for first, last in _runs((labels == FAULT_CODES[kind]) & ~discarded):
            faults.append(
                Fault(kind, -1, float(arrival[first]), float(arrival[last]), ROW_RECOVERY_S, kind == "zero_row")
            )
    delivered = np.unique(arrival)
    silence = np.diff(delivered)
    for i in np.flatnonzero(silence > config.stall_after_s):
        if stall_end is not None and delivered[i + 1] == stall_end:
            continue
        faults.append(
            Fault("arrival_pause", -1, float(delivered[i]) + chunk_period, float(delivered[i + 1]), ROW_RECOVERY_S)
        )
    return faults


def first_flag_latency(run: Replay, fault: Fault, mask: int) -> float:
    """Seconds from onset to the first report with `mask` on the fault's channel (∞ if never, within 2 s)."""
    lo, hi = np.searchsorted(run.times, [fault.onset, fault.end + 2.0])
    rows = run.flags[lo:hi] if fault.channel < 0 else run.flags[lo:hi, [fault.channel]]
    up = (rows & mask) != 0
    hit = np.flatnonzero(up.all(axis=1) if fault.every_channel else up.any(axis=1))
    return float(run.times[lo + hit[0]] - fault.onset) if len(hit) else float("inf")


def fault_mask(run: Replay, faults: list[Fault], kinds: tuple[str, ...] | None = None) -> np.ndarray:
    """Polls inside a fault (of `kinds`, default all) or its recovery."""
    inside = np.zeros(len(run.times), dtype=bool)
    for fault in faults:
        if kinds is None or fault.kind in kinds:
            lo, hi = np.searchsorted(run.times, [fault.onset - POLL_S, fault.end + fault.recovery], side="right")
            inside[lo:hi] = True
    return inside


def hop_costs(run: Replay) -> np.ndarray:
    """Checker time per 50 ms of EMG, µs."""
    hop = ((run.times - run.times[0]) // HOP_S).astype(np.int64)
    return np.bincount(hop, weights=run.cost_s) * 1e6


def once_per_hop_cost(raw: np.ndarray, stamps: np.ndarray, fs: float) -> np.ndarray:
    """µs per update() when the runtime hands over one hop (25 samples) at a time."""
    checker = SignalQuality(fs, raw.shape[1])
    step = round(HOP_S * fs)
    costs = []
    for start in range(0, len(raw) - step, step):
        t0 = time.perf_counter()
        checker.update(raw[start : start + step], stamps[start : start + step], now=float(stamps[start + step - 1]))
        costs.append(time.perf_counter() - t0)
    return np.array(costs[20:]) * 1e6


def world_mains_shares(raw: np.ndarray, labels: np.ndarray, fs: float) -> tuple[float, np.ndarray]:
    """Per-channel mains share of 20–250 Hz power as the world made it: over the stretches between injected
    faults (a lift-off adds its own mains; gluing stretches together would add steps of drift), zero rows held
    over, averaged weighted by length."""
    injected = np.isin(labels, [FAULT_CODES[k] for k in INJECTED])
    total, acc, mains_hz = 0, np.zeros(raw.shape[1]), 0.0
    for first, last in _runs(~injected):
        segment = raw[first : last + 1]
        good = np.flatnonzero(segment.any(axis=1))
        if len(segment) < 5 * fs or not len(good):
            continue
        mains_hz, shares = mains_shares(hold_over_zero_rows(segment, segment[good[0]])[0], fs)
        acc += shares * len(segment)
        total += len(segment)
    return mains_hz, acc / max(total, 1)


def cause(flags: np.ndarray) -> np.ndarray:
    """(R,) index into FLAG_PRIORITY of the reason a closed gate names (-1: open)."""
    union = np.bitwise_or.reduce(flags, axis=1)
    out = np.full(len(flags), -1)
    for i, flag in reversed(list(enumerate(FLAG_PRIORITY))):
        out[(union & int(flag)) != 0] = i
    return out


@dataclass
class Tally:
    latency: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KIND_FLAG})
    gate: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KIND_FLAG})
    ended: dict[str, list[bool]] = field(default_factory=lambda: {k: [] for k in KIND_FLAG})
    also_flat: list[bool] = field(default_factory=list)  # stale repeats that raised FLAT too
    clean_s: float = 0.0
    flagged_any_s: float = 0.0
    flagged_s: dict[str, float] = field(
        default_factory=lambda: {f.name: 0.0 for f in QualityFlag if f and f is not QualityFlag.WARMUP}
    )
    mains_s: list[list[float]] = field(default_factory=lambda: [[0.0, 0.0, 0] for _ in MAINS_BUCKETS])
    sessions: list[str] = field(default_factory=list)
    closed: list[float] = field(default_factory=list)  # per session, outside the injected faults
    reasons: list[np.ndarray] = field(default_factory=list)  # per session, share of time per FLAG_PRIORITY entry
    costs: list[np.ndarray] = field(default_factory=list)
    once: list[np.ndarray] = field(default_factory=list)


def score_session(
    path: Path, seed: int, tally: Tally, warmup: float, config: QualityConfig, known_mains: bool = False
) -> None:
    """Replay one session file and add its figures to `tally`."""
    session = read_session(path)
    raw, fs = session.emg_raw.astype(np.float64), session.emg_rate
    arrival_unix = session.extras["import/arrival_times"]
    arrival = arrival_unix - float(arrival_unix[0])
    counters = session.extras["import/package_numbers"].astype(np.int64)
    fixed = float(session.attrs["mains_hz"]) if known_mains else None  # the runtime detects it (None)
    run = replay(raw, arrival, counters, fs, mains_hz=fixed, config=config)
    faults = session_faults(session, arrival, run.discarded, config)
    score_faults(run, faults, tally)
    settled = run.times >= warmup
    mains = score_false_alarms(run, faults, settled, raw, session.extras["truth/fault_labels"], fs, tally)
    score_donning(session, seed, run, faults, settled, mains, tally)
    tally.costs.append(hop_costs(run)[10:-1])
    tally.once.append(once_per_hop_cost(raw, session.emg_timestamps, fs))


def score_faults(run: Replay, faults: list[Fault], tally: Tally) -> None:
    """Latency and recall of each fault's own flag, and of any flag (the gate)."""
    for fault in faults:
        lat = first_flag_latency(run, fault, int(KIND_FLAG[fault.kind]))
        tally.latency[fault.kind].append(lat)
        tally.gate[fault.kind].append(first_flag_latency(run, replace(fault, every_channel=False), ~0))
        tally.ended[fault.kind].append(lat <= fault.end - fault.onset + POLL_S + 1e-9)
        if fault.kind == "stale_repeat":
            tally.also_flat.append(np.isfinite(first_flag_latency(run, fault, int(QualityFlag.FLAT))))


def score_false_alarms(
    run: Replay, faults: list[Fault], settled: np.ndarray, raw: np.ndarray, labels: np.ndarray, fs: float, tally: Tally
) -> tuple[np.ndarray, float, np.ndarray]:
    """Flags on fault-free time; MAINS per channel by the world's mains share. Returns MAINS up on the
    fault-free polls (R', C), the mains frequency and the world's per-channel mains shares."""
    keep = settled & ~fault_mask(run, faults)
    flags = run.flags[keep]
    tally.clean_s += keep.sum() * POLL_S
    tally.flagged_any_s += (flags != 0).any(axis=1).sum() * POLL_S
    for flag in QualityFlag:
        if flag.name in tally.flagged_s:
            tally.flagged_s[flag.name] += (flags & int(flag)).any(axis=1).sum() * POLL_S
    mains_hz, shares = world_mains_shares(raw, labels, fs)
    mains_on = (flags & int(QualityFlag.MAINS)) != 0
    for b, (lo, hi) in enumerate(MAINS_BUCKETS):
        chans = np.flatnonzero((shares >= lo) & (shares < hi))
        tally.mains_s[b][0] += mains_on[:, chans].sum() * POLL_S
        tally.mains_s[b][1] += len(flags) * len(chans) * POLL_S
        tally.mains_s[b][2] += len(chans)
    return mains_on, mains_hz, shares


def score_donning(
    session,
    seed: int,
    run: Replay,
    faults: list[Fault],
    settled: np.ndarray,
    mains: tuple[np.ndarray, float, np.ndarray],
    tally: Tally,
) -> None:
    """What a user feels on this donning: the share of time the gate is closed by any flag, and why."""
    closed_all = (run.flags[settled] != 0).any(axis=1).mean()
    why = cause(run.flags[settled & ~fault_mask(run, faults, INJECTED)])
    closed = (why >= 0).mean()
    reasons = np.array([(why == i).mean() for i in range(len(FLAG_PRIORITY))])
    named = ", ".join(
        f"{FLAG_PRIORITY[i].name} {100 * reasons[i]:.1f}" for i in np.argsort(-reasons) if reasons[i] >= 0.001
    )
    labels = session.extras["truth/fault_labels"]
    subject = make_subject(int(session.subject_id.lstrip("s")), seed)
    profile = make_placement(subject, int(session.session_id.lstrip("r"))).recording
    stale = (labels == FAULT_CODES["stale_repeat"]).mean()
    zeros = len(_runs(labels == FAULT_CODES["zero_row"]))
    pauses = sum(f.kind == "arrival_pause" for f in faults)
    mains_on, mains_hz, shares = mains
    flagged_mains = [c for c in range(mains_on.shape[1]) if mains_on[:, c].mean() > 0.01]
    worst, high = int(np.argmax(shares)), MAINS_BUCKETS[-1][0]
    tally.closed.append(float(closed))
    tally.reasons.append(reasons)
    tally.sessions.append(
        f"| {seed}:{session.key} | {mains_hz:.0f} Hz: ch{worst} {100 * shares[worst]:.0f} %, "
        f"≥ {100 * high:.0f} %: {int((shares >= high).sum())} ch | {','.join(map(str, flagged_mains)) or '–'} "
        f"| {profile.drift_mv:.1f} | {100 * stale:.2f} % / {zeros} | {pauses} | {profile.arrival.backlog_s:.1f} s "
        f"| {100 * closed_all:.1f} % | **{100 * closed:.1f} %** | {named or '–'} |"
    )


def pct(values: list[float], q: float) -> str:
    finite = [v for v in values if np.isfinite(v)]
    return f"{np.percentile(finite, q) * 1000:.0f}" if finite else "–"


def render(tally: Tally, warmup: float) -> str:
    rows = [
        "| fault (host clock, from its first row's arrival) | n | own flag: latency median / p95 / max (ms) "
        "| caught ≤ 100 ms | caught in fault | gate closed (any flag): median / max (ms) |",
        "|---|---|---|---|---|---|",
    ]
    for kind in KIND_FLAG:
        lat, g = tally.latency[kind], tally.gate[kind]
        if not lat:
            continue
        within = sum(v <= WITHIN_S for v in lat)
        rows.append(
            f"| {KIND_NAME[kind]} | {len(lat)} | {pct(lat, 50)} / {pct(lat, 95)} / {pct(lat, 100)} "
            f"| {within}/{len(lat)} | {sum(tally.ended[kind])}/{len(lat)} | {pct(g, 50)} / {pct(g, 100)} |"
        )
    if tally.also_flat:
        rows += ["", f"Stale repeats that also raised FLAT: {sum(tally.also_flat)}/{len(tally.also_flat)}."]
    minutes = tally.clean_s / 60.0
    rows += [
        "",
        f"False alarms on {minutes:.1f} min of fault-free signal (outside every fault, bad row and arrival pause, "
        f"{RECOVERY_S:.0f} s after an injected fault and {ROW_RECOVERY_S} s after the others; the first "
        f"{warmup:.2f} s of each session excluded): any flag {tally.flagged_any_s / minutes:.2f} s/min",
        "",
        "| flag | flagged s per min of fault-free signal (any channel) |",
        "|---|---|",
    ]
    rows += [f"| {name} | {seconds / minutes:.2f} |" for name, seconds in tally.flagged_s.items()]
    rows += [
        "",
        "MAINS by the world's mains share of the channel's 20–250 Hz power (whole session, injected faults cut):",
        "",
        "| channels with mains share | channels | MAINS up, share of their fault-free time |",
        "|---|---|---|",
    ]
    for (lo, hi), (on, total, count) in zip(MAINS_BUCKETS, tally.mains_s, strict=True):
        share = f"{100 * on / total:.1f} %" if total else "–"
        rows.append(f"| {100 * lo:.0f}–{min(100, 100 * hi):.0f} % | {count} | {share} |")
    rows += [
        "",
        "Per session (seed:subject/session): the world's worst mains channel and how many exceed 80 %; channels "
        "MAINS flagged > 1 % of fault-free time; the donning's drift (median 2-s swing, mV); stale rows / zero-row "
        "runs; arrival pauses > 40 ms; start-up backlog; gate closed by any flag after warm-up — all of the "
        "session, and outside the injected faults (+1 s): what a user would feel on that donning — with the "
        "reasons it names (% of that time):",
        "",
        "| session | mains (world) | MAINS on | drift mV | stale / zero runs | pauses | backlog | closed (all) "
        "| closed (no injected fault) | by reason, % |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *tally.sessions,
    ]
    closed, reasons = np.array(tally.closed), np.array(tally.reasons)
    top = np.argsort(-reasons.mean(axis=0))
    rows += [
        "",
        f"Gate closed outside the injected faults, {len(closed)} sessions: median {100 * np.median(closed):.1f} %, "
        f"mean {100 * closed.mean():.1f} %, max {100 * closed.max():.1f} %; by the reason it names (mean over "
        "sessions, % of time): "
        + ", ".join(f"{FLAG_PRIORITY[i].name} {100 * reasons[:, i].mean():.1f}" for i in top if reasons[:, i].any()),
    ]
    cost, per_hop = np.concatenate(tally.costs), np.concatenate(tally.once)
    rows += [
        "",
        "| cost (this CPU, 8 ch @ 500 Hz; SignalQuality.update only) | median | p99 | max |",
        "|---|---|---|---|",
        f"| µs per 50-ms hop, fed what arrived per 4-ms poll (12.5 calls) | {np.median(cost):.0f} "
        f"| {np.percentile(cost, 99):.0f} | {cost.max():.0f} |",
        f"| µs per 50-ms hop, fed once per hop (25 samples) | {np.median(per_hop):.0f} "
        f"| {np.percentile(per_hop, 99):.0f} | {per_hop.max():.0f} |",
    ]
    return "\n".join(rows)


def measure(
    seeds: list[int],
    sessions: int,
    subjects: int,
    minutes: float,
    work: Path,
    config: QualityConfig | None = None,
    known_mains: bool = False,
) -> tuple[str, Tally]:
    tally, config = Tally(), config or QualityConfig()
    warmup = config.warmup_s + config.mains_window_s
    for seed in seeds:
        paths = simulate(
            work / f"seed{seed}",
            sessions=sessions,
            subjects=subjects,
            minutes=minutes,
            seed=seed,
            faults=True,
            write_2k=False,
            progress=False,
        )
        for path in paths:
            score_session(path, seed, tally, warmup, config, known_mains)
    return render(tally, warmup), tally


def parse_overrides(parser: argparse.ArgumentParser, items: list[str]) -> QualityConfig:
    """`--set KEY=VALUE` → a QualityConfig with those fields replaced (numbers only)."""
    known = {f.name: f for f in fields(QualityConfig)}
    values: dict[str, float | int] = {}
    for item in items:
        key, _, text = item.partition("=")
        if key not in known or not text:
            parser.error(f"--set {item}: expected KEY=VALUE with KEY one of {', '.join(known)}")
        default = getattr(QualityConfig(), key)
        if not isinstance(default, int | float):
            parser.error(f"--set {item}: {key} is not a number")
        try:
            values[key] = type(default)(float(text)) if isinstance(default, float) else int(text)
        except ValueError:
            parser.error(f"--set {item}: '{text}' is not a {type(default).__name__}")
    return replace(QualityConfig(), **values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[2, 3, 4], help="held-out world seeds (tuned on 1)")
    parser.add_argument("--sessions", type=int, default=2)
    parser.add_argument("--subjects", type=int, default=3)
    parser.add_argument("--minutes", type=float, default=1.5)
    parser.add_argument("--out", type=Path, default=None, help="write the markdown tables here too")
    parser.add_argument(
        "--set",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="override a QualityConfig threshold for a what-if run (repeatable), e.g. --set lift_on_uv=10000",
    )
    parser.add_argument(
        "--known-mains",
        action="store_true",
        help="what-if: give the checker each session's mains frequency (the runtime detects it from the data)",
    )
    args = parser.parse_args()
    config = parse_overrides(parser, args.set)
    with tempfile.TemporaryDirectory() as tmp:
        table, _ = measure(args.seeds, args.sessions, args.subjects, args.minutes, Path(tmp), config, args.known_mains)
    overrides = f" QualityConfig overrides: {', '.join(args.set)}." if args.set else ""
    overrides += " Mains frequency given (what-if), not detected." if args.known_mains else ""
    header = (
        f"Signal quality vs the world's labelled faults and bad rows: seeds {args.seeds}, {args.subjects} subjects "
        f"× {args.sessions} sessions × {args.minutes} min each, 5 injected faults per session; rows fed as they "
        f"arrived (import/arrival_times) through the live source's stream checks, a poll every 4 ms. "
        f"CPU: {cpu_model()}.{overrides}\n"
    )
    text = f"{header}\n{table}\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
