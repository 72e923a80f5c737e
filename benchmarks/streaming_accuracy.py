"""Held-out accuracy and cost of the streaming engines: windowed (reference), exact, and continuous re-anchoring
schemes, each fed a session's whole raw EMG stream the way `mode2 run` feeds it.

Every variant is the runtime's own engine (runtime/inference.py, runtime/streaming.py) on the exported files:
the raw µV stream goes in as blocks of a few samples (1–8, seeded), `infer(end)` at every hop end (first at
end = window, as the loop does), `idle()` after it; a gap longer than the filter's reset threshold in the
session's timestamps is a `restart`. Every hop is scored against the session's camera labels by
runtime/run_score.py (`mode2 run`'s scorer: valid labels only, linear interpolation, MPJPE in mm at the
window's last sample). A variant is scored on the hops where it is ready (the loop closes the gate
otherwise); `Δ vs exact` compares it with the exact engine on exactly those hops.

Cost per second of EMG: rollout steps (one step = one pose of one rollout through the 2-layer LSTM; the
windowed graph does 55 per hop inside its unrolled graph, counted analytically), batched LSTM calls, and the
measured wall time inside the engine (feed + infer + idle), one onnxruntime thread.

Beside the runtime's engines, three re-anchoring schemes are tried here as subclasses (runtime/streaming.py is
unchanged): a cross-fade from the oldest lane to the next one before the oldest restarts, the confidence head
choosing among the lanes old enough to be ready, and a leak of every step's pose towards the training mean.

    python benchmarks/streaming_accuracy.py --model /tmp/ex/model.onnx --data '/work/meas/data/s0?_r05.h5'
    python benchmarks/streaming_accuracy.py ... --seconds 60 --only 'exact|L2'   # quick look
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.machine import cpu_model
from firmware_bridge.emg_filter import RESET_GAP_SAMPLES, segment_starts
from firmware_bridge.session import read_session
from runtime.inference import Prediction, WindowedEngine
from runtime.model_contract import FEATURE, HEAD_INPUTS, HEAD_OUTPUTS
from runtime.model_metadata import LoadedModel, StreamGraphs, load_model, load_stream_graphs
from runtime.run_score import RunScorer
from runtime.streaming import StreamingEngine, _Phase, _Rollout

MAX_BLOCK = 8  # samples per feed: a MindRove read returns a few samples at a time
STEPS_PER_WINDOW = 55


# -- variants ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Variant:
    label: str
    engine: str  # windowed | exact | continuous
    hop: int  # samples
    lanes: int = 1
    lane_steps: int | None = None
    scheme: str = "oldest"  # oldest (the runtime's) | crossfade | confidence | leak
    param: float = 0.0  # crossfade: fade length in steps; leak: fraction per step


def default_variants() -> list[Variant]:
    out = [Variant("windowed h20", "windowed", 20), Variant("exact h20", "exact", 20)]
    for hop in (20, 10):
        if hop == 10:
            out.append(Variant("exact h10", "exact", 10))
        for lanes, steps in ((1, None), (2, 110), (2, 165), (2, 250), (3, 165), (1, 110)):
            name = f"L{lanes}×∞" if steps is None else f"L{lanes}×{steps}"
            out.append(Variant(f"{name} h{hop}", "continuous", hop, lanes, steps))
    for steps in (165, 250):  # re-anchoring schemes tried here (not in the runtime)
        out.append(Variant(f"L2×{steps} crossfade h20", "continuous", 20, 2, steps, "crossfade", 40))
    for lanes, steps in ((2, 165), (3, 165)):
        out.append(Variant(f"L{lanes}×{steps} confidence h20", "continuous", 20, lanes, steps, "confidence"))
    for leak in (0.01, 0.03):
        out.append(Variant(f"L1×∞ leak {leak:g} h20", "continuous", 20, 1, None, "leak", leak))
    return out


class CountingSession:
    """An onnxruntime session that counts its calls and batch rows (the LSTM step's cost)."""

    def __init__(self, session) -> None:
        self.session = session
        self.calls = 0
        self.rows = 0

    def get_inputs(self):
        return self.session.get_inputs()

    def get_outputs(self):
        return self.session.get_outputs()

    def run(self, outputs, feeds):
        self.calls += 1
        self.rows += len(feeds[FEATURE])
        return self.session.run(outputs, feeds)


class _LaneChoiceEngine(StreamingEngine):
    """The runtime's continuous step (all lanes in one batch, restarts on the same schedule) with the emitted
    pose chosen by `_pose` from the lanes, oldest first."""

    def _continuous_step(self, phase: _Phase, end: int) -> None:
        due = set(self._lane_due(phase, end))
        fresh = [self._new_rollout(lane, end) for lane in sorted(due)]
        going = list(phase.rollouts)
        odd, even = self._features(phase, end, going + fresh)
        self._step(going + fresh, odd)
        self._step(going, even[: len(going)])
        window_end = end + self.before
        if going and self._on_grid(window_end):
            ranked = sorted(going, key=lambda r: -r.steps)
            if ranked[0].steps >= 2 * self.n_frames - 1:
                self._results[window_end] = (self._pose(ranked), phase.frames[end])
        phase.rollouts = [r for r in going if r.end not in due] + fresh

    def _pose(self, ranked: list[_Rollout]) -> np.ndarray:
        return ranked[0].pose


class CrossFadeEngine(_LaneChoiceEngine):
    """The pose fades from the oldest lane to the second oldest over the `fade` steps before the second oldest
    takes over (when the oldest restarts), so the handover is continuous."""

    def __init__(self, *args, fade: float, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fade = max(1.0, fade)
        self.takeover = round(self.lane_steps * (1 - 1 / self.lanes))  # the second oldest's age at handover

    def _pose(self, ranked: list[_Rollout]) -> np.ndarray:
        if len(ranked) < 2:
            return ranked[0].pose
        weight = min(max(1.0 - (self.takeover - ranked[1].steps) / self.fade, 0.0), 1.0)
        return ((1.0 - weight) * ranked[0].pose + weight * ranked[1].pose).astype(np.float32)


class ConfidenceEngine(_LaneChoiceEngine):
    """Every lane at least a window's rollout old is a candidate; the head's confidence picks one each hop."""

    def _pose(self, ranked: list[_Rollout]) -> np.ndarray:
        return np.stack([r.pose for r in ranked if r.steps >= 2 * self.n_frames - 1])

    def infer(self, end: int) -> Prediction:
        found = self._results.get(end)
        if found is not None and found[0].ndim == 2:
            angles, frame = found
            n = len(angles)
            window = self.stage.window(end, self.window_samples).astype(np.float64)
            level = np.log(np.mean((window / self.std) ** 2, axis=0) + 1e-3)[None].astype(np.float32)
            feeds = (angles.astype(np.float32), np.repeat(frame[None], n, 0), np.repeat(level, n, 0))
            _, _, confidence = self.graphs.head.run(list(HEAD_OUTPUTS), dict(zip(HEAD_INPUTS, feeds, strict=True)))
            self._results[end] = (angles[int(np.argmax(confidence))], frame)
        return super().infer(end)


class LeakEngine(StreamingEngine):
    """After every step each rollout's pose moves a fraction `leak` towards the initial state (the training
    mean): a soft, continuous re-anchor instead of a restart."""

    def __init__(self, *args, leak: float, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.leak = leak

    def _step(self, rollouts: list[_Rollout], features: np.ndarray) -> None:
        super()._step(rollouts, features)
        for r in rollouts:
            r.pose = (r.pose + self.leak * (self.start_pose - r.pose)).astype(np.float32)


def build_engine(variant: Variant, model: LoadedModel, graphs: StreamGraphs):
    """(engine, LSTM counter or None)."""
    if variant.engine == "windowed":
        return WindowedEngine(model, variant.hop), None
    counter = CountingSession(graphs.lstm_step)
    counted = dataclasses.replace(graphs, lstm_step=counter)
    if variant.engine == "exact":
        return StreamingEngine("exact", model, counted, variant.hop), counter
    kwargs = {"lanes": variant.lanes, "lane_steps": variant.lane_steps}
    cls, extra = StreamingEngine, {}
    if variant.scheme == "crossfade":
        cls, extra = CrossFadeEngine, {"fade": variant.param}
    elif variant.scheme == "confidence":
        cls = ConfidenceEngine
    elif variant.scheme == "leak":
        cls, extra = LeakEngine, {"leak": variant.param}
    return cls("continuous", model, counted, variant.hop, **kwargs, **extra), counter


# -- one stream through one engine --------------------------------------------------------------------------
@dataclass
class Run:
    ends: np.ndarray  # (H,) hop ends (exclusive absolute sample counts)
    ready: np.ndarray  # (H,) bool
    theta: np.ndarray  # (H,45)
    joints: np.ndarray  # (H,21,3) m
    engine_ms: float  # feed + infer + idle, CPU time of this thread (onnxruntime runs in it at 1 thread)
    wall_ms: float  # the same, wall clock (includes waiting for a core on a busy machine)
    lstm_rows: int
    lstm_calls: int


def run_stream(variant: Variant, engine, counter, raw: np.ndarray, restarts: list[int], window: int, bar) -> Run:
    rng = np.random.default_rng(variant.hop)  # the same blocks for every variant of a hop
    hop = variant.hop
    ends, ready, thetas, joints = [], [], [], []
    next_end, fed, spent, wall = window, 0, 0.0, 0.0
    clean_from = 0  # a window spanning a restart is not inferred on by the loop (gate closed)
    pending = sorted(r for r in restarts if r > 0)
    shown = 0
    while fed < len(raw):
        block = int(rng.integers(1, MAX_BLOCK + 1))
        due = [r for r in pending if fed < r <= fed + block]
        chunk = raw[fed : fed + block]
        started, cpu = time.perf_counter(), time.thread_time()
        for r in due:
            engine.restart(r - fed)
        engine.feed(chunk)
        spent += time.thread_time() - cpu
        wall += time.perf_counter() - started
        for r in due:
            pending.remove(r)
            clean_from = r
        fed += len(chunk)
        while next_end <= fed:
            started, cpu = time.perf_counter(), time.thread_time()
            p = engine.infer(next_end)
            engine.idle()
            spent += time.thread_time() - cpu
            wall += time.perf_counter() - started
            ends.append(next_end)
            ready.append(bool(p.ready) and next_end - window >= clean_from)
            thetas.append(p.theta)
            joints.append(p.joints)
            next_end += hop
        if bar is not None and fed - shown >= 4000:
            bar.update(fed - shown)
            shown = fed
    if bar is not None:
        bar.update(fed - shown)
    return Run(
        np.asarray(ends, np.int64),
        np.asarray(ready, bool),
        np.asarray(thetas),
        np.asarray(joints),
        spent * 1000.0,
        wall * 1000.0,
        counter.rows if counter is not None else STEPS_PER_WINDOW * len(ends),
        counter.calls if counter is not None else 0,
    )


class HopScorer(RunScorer):
    """`mode2 run`'s scorer, one hop at a time: the hop's error in mm, NaN where its label is not valid."""

    def error(self, t_first: float, t_last: float, start: int, joints: np.ndarray) -> float:
        before = len(self._errors)
        self.add(t_first, t_last, start, joints, True)
        return float(self._errors[-1]) if len(self._errors) > before else math.nan


def hop_errors(path: Path, model: LoadedModel, stamps: np.ndarray, run: Run) -> np.ndarray:
    meta = model.meta
    scorer = HopScorer(
        path, rate_hz=meta.sampling_rate_hz, window=meta.window_samples, grid=meta.recommended_hop_samples
    )
    w = meta.window_samples
    return np.array(
        [scorer.error(stamps[e - w], stamps[e - 1], int(e - w), j) for e, j in zip(run.ends, run.joints, strict=True)]
    )


# -- the study -----------------------------------------------------------------------------------------------
@dataclass
class Row:
    """One variant over all sessions."""

    label: str
    variant: Variant
    errors: list[np.ndarray]  # per session, per hop (NaN: label not valid or engine not ready)
    exact_errors: list[np.ndarray]  # the exact engine's errors at the same hops (same hop size)
    minutes: list[np.ndarray]  # per session, each hop's minute into the session
    seconds: float = 0.0
    engine_ms: float = 0.0
    wall_ms: float = 0.0
    lstm_rows: int = 0
    lstm_calls: int = 0
    hops: int = 0
    ready_hops: int = 0

    def summary(self) -> dict:
        e = np.concatenate(self.errors)
        m = np.concatenate(self.minutes)
        x = np.concatenate(self.exact_errors) if self.exact_errors else None
        ok = ~np.isnan(e)
        both = ok & ~np.isnan(x) if x is not None else np.zeros_like(ok)
        return {
            "label": self.label,
            "engine": self.variant.engine,
            "hop_samples": self.variant.hop,
            "lanes": self.variant.lanes,
            "lane_steps": self.variant.lane_steps,
            "scheme": self.variant.scheme,
            "param": self.variant.param,
            "mpjpe_mm": float(np.mean(e[ok])) if ok.any() else None,
            "median_mm": float(np.median(e[ok])) if ok.any() else None,
            "hops_scored": int(ok.sum()),
            "hops": self.hops,
            "ready_fraction": self.ready_hops / max(self.hops, 1),
            "delta_vs_exact_mm": float(np.mean(e[both] - x[both])) if both.any() else None,
            "mpjpe_by_minute_mm": [
                float(np.mean(e[ok & (m == k)])) if (ok & (m == k)).any() else None for k in range(int(m.max()) + 1)
            ],
            "rollout_steps_per_s": self.lstm_rows / self.seconds,
            "lstm_calls_per_s": self.lstm_calls / self.seconds,
            "engine_ms_per_s": self.engine_ms / self.seconds,
            "wall_ms_per_s": self.wall_ms / self.seconds,
        }


@dataclass
class SessionResult:
    """One session through every variant: per-hop errors (NaN: label not valid or engine not ready) and costs."""

    seconds: float
    errors: dict[str, np.ndarray]
    minutes: dict[str, np.ndarray]  # each hop's minute into the session (drift over time)
    hops: dict[str, int]
    ready: dict[str, int]
    engine_ms: dict[str, float]
    wall_ms: dict[str, float]
    lstm_rows: dict[str, int]
    lstm_calls: dict[str, int]
    parity: dict[str, float]  # exact vs windowed at the windowed variant's hop


def session_study(
    model_path: Path, path: Path, variants: list[Variant], seconds: float | None, position: int = 0
) -> SessionResult:
    from tqdm import tqdm

    model = load_model(model_path, threads=1)
    graphs = load_stream_graphs(model, threads=1)
    meta = model.meta
    window = meta.window_samples
    session = read_session(path, validate=False)
    raw = np.asarray(session.emg_raw, np.float64)
    stamps = np.asarray(session.emg_timestamps, np.float64)
    if seconds is not None:
        n = min(len(raw), int(seconds * meta.sampling_rate_hz))
        raw, stamps = raw[:n], stamps[:n]
    restarts = segment_starts(stamps, meta.sampling_rate_hz, RESET_GAP_SAMPLES).tolist()
    out = SessionResult(len(raw) / meta.sampling_rate_hz, {}, {}, {}, {}, {}, {}, {}, {}, {})
    runs: dict[str, Run] = {}
    for v in tqdm(variants, desc=f"{path.stem} variants", position=2 * position, leave=False):
        engine, counter = build_engine(v, model, graphs)
        with tqdm(
            total=len(raw), desc=f"{path.stem} {v.label}", unit="smp", unit_scale=True, position=2 * position + 1,
            leave=False,
        ) as bar:  # fmt: skip
            run = run_stream(v, engine, counter, raw, restarts, window, bar)
        runs[v.label] = run
        err = hop_errors(path, model, stamps, run)
        err[~run.ready] = np.nan
        out.errors[v.label] = err
        out.minutes[v.label] = (run.ends // (60 * meta.sampling_rate_hz)).astype(np.int64)
        out.hops[v.label] = len(run.ends)
        out.ready[v.label] = int(run.ready.sum())
        out.engine_ms[v.label] = run.engine_ms
        out.wall_ms[v.label] = run.wall_ms
        out.lstm_rows[v.label] = run.lstm_rows
        out.lstm_calls[v.label] = run.lstm_calls
    windowed = next((u for u in variants if u.engine == "windowed"), None)
    exact = next((u for u in variants if windowed and u.engine == "exact" and u.hop == windowed.hop), None)
    if windowed is not None and exact is not None:
        a, b = runs[windowed.label], runs[exact.label]
        both = a.ready & b.ready
        out.parity = {
            "hops": int(both.sum()),
            "theta_max_abs_rad": float(np.abs(a.theta[both] - b.theta[both]).max()) if both.any() else math.nan,
            "joints_max_abs_mm": float(np.abs(a.joints[both] - b.joints[both]).max() * 1000)
            if both.any()
            else math.nan,
        }
    return out


def study(model_path: Path, sessions: list[Path], variants: list[Variant], seconds: float | None, jobs: int) -> dict:
    if jobs > 1 and len(sessions) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(jobs, len(sessions))) as pool:
            futures = [pool.submit(session_study, model_path, p, variants, seconds, k) for k, p in enumerate(sessions)]
            results = [f.result() for f in futures]
    else:
        results = [session_study(model_path, p, variants, seconds) for p in sessions]
    rows = []
    for v in variants:
        exact = next((u for u in variants if u.engine == "exact" and u.hop == v.hop), None)
        errors = [r.errors[v.label] for r in results]
        exact_errors = [r.errors[exact.label] for r in results] if exact else []
        row = Row(v.label, v, errors, exact_errors, [r.minutes[v.label] for r in results])
        for r in results:
            row.seconds += r.seconds
            row.engine_ms += r.engine_ms[v.label]
            row.wall_ms += r.wall_ms[v.label]
            row.lstm_rows += r.lstm_rows[v.label]
            row.lstm_calls += r.lstm_calls[v.label]
            row.hops += r.hops[v.label]
            row.ready_hops += r.ready[v.label]
        rows.append(row.summary())
    parity = {"hops": 0, "theta_max_abs_rad": 0.0, "joints_max_abs_mm": 0.0}
    for r in results:
        if r.parity:
            parity["hops"] += r.parity["hops"]
            parity["theta_max_abs_rad"] = max(parity["theta_max_abs_rad"], r.parity["theta_max_abs_rad"])
            parity["joints_max_abs_mm"] = max(parity["joints_max_abs_mm"], r.parity["joints_max_abs_mm"])
    return {
        "model": str(model_path),
        "sessions": [str(p) for p in sessions],
        "seconds_limit": seconds,
        "emg_seconds": sum(r.seconds for r in results),
        "cpu": cpu_model(),
        "threads": 1,
        "jobs": jobs,
        "load_average": os.getloadavg(),
        "exact_vs_windowed": parity,
        "rows": rows,
    }


# -- output ---------------------------------------------------------------------------------------------------
def table(result: dict) -> str:
    head = (
        "| variant | MPJPE mm | median mm | Δ vs exact mm | hops scored | ready | rollout steps/s | LSTM calls/s "
        "| engine CPU ms/s EMG | wall ms/s EMG |\n|---|---|---|---|---|---|---|---|---|---|"
    )
    sessions = ", ".join(Path(p).name for p in result["sessions"])
    lines = [
        f"model {result['model']}; sessions {sessions} ({result['emg_seconds']:.0f} s of EMG); CPU {result['cpu']}; "
        f"onnxruntime 1 thread; {result['jobs']} session(s) in parallel; load {result['load_average'][0]:.1f}\n",
        head,
    ]
    for r in result["rows"]:
        delta = "—" if r["delta_vs_exact_mm"] is None else f"{r['delta_vs_exact_mm']:+.2f}"
        mean = "—" if r["mpjpe_mm"] is None else f"{r['mpjpe_mm']:.2f}"
        median = "—" if r["median_mm"] is None else f"{r['median_mm']:.2f}"
        lines.append(
            f"| {r['label']} | {mean} | {median} | {delta} | {r['hops_scored']} | {100 * r['ready_fraction']:.0f} % "
            f"| {r['rollout_steps_per_s']:.0f} | {r['lstm_calls_per_s']:.0f} | {r['engine_ms_per_s']:.1f} "
            f"| {r['wall_ms_per_s']:.1f} |"
        )
    minutes = max(len(r["mpjpe_by_minute_mm"]) for r in result["rows"])
    lines.append("\nMPJPE (mm) by minute into the session (drift of long-lived rollouts):\n")
    lines.append("| variant | " + " | ".join(f"min {k}" for k in range(minutes)) + " |")
    lines.append("|---" * (minutes + 1) + "|")
    for r in result["rows"]:
        cells = ["—" if x is None else f"{x:.2f}" for x in r["mpjpe_by_minute_mm"]]
        lines.append(f"| {r['label']} | " + " | ".join(cells) + " |")
    p = result["exact_vs_windowed"]
    lines.append(
        f"\nexact vs windowed (hop 20, {p['hops']} hops): max |Δθ| {p['theta_max_abs_rad']:.2e} rad, "
        f"max |Δjoints| {p['joints_max_abs_mm']:.2e} mm"
    )
    return "\n".join(lines)


def plot(result: dict, out: Path) -> None:
    """MPJPE against cost: counted rollout steps (machine-independent) and measured engine time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["rows"] if r["mpjpe_mm"] is not None]
    fig, axes = plt.subplots(1, 2, figsize=(15, 7), sharey=True)
    colours = {"windowed": "black", "exact": "tab:blue", "oldest": "tab:orange", "crossfade": "tab:green"}
    colours |= {"confidence": "tab:purple", "leak": "tab:red"}
    reference = next((r["mpjpe_mm"] for r in rows if r["engine"] == "windowed"), None)
    xs = (
        ("rollout_steps_per_s", "LSTM rollout steps per second of EMG (counted; windowed: 55 per hop)"),
        ("engine_ms_per_s", "engine CPU time per second of EMG (ms, 1 onnxruntime thread; 10 ms = 1 % of a core)"),
    )
    for ax, (key, label) in zip(axes, xs, strict=True):
        for r in rows:
            kind = r["engine"] if r["engine"] != "continuous" else r["scheme"]
            marker = "o" if r["hop_samples"] == 20 else "^"
            ax.scatter(r[key], r["mpjpe_mm"], color=colours.get(kind, "grey"), marker=marker, s=45)
            ax.annotate(r["label"], (r[key], r["mpjpe_mm"]), fontsize=7, xytext=(4, 3), textcoords="offset points")
        if reference is not None:
            ax.axhline(reference, color="black", lw=0.8, ls="--", label=f"windowed {reference:.2f} mm")
            ax.axhline(reference + 0.5, color="grey", lw=0.8, ls=":", label="goal: windowed + 0.5 mm")
        ax.set_xscale("log")
        ax.set_xlabel(label, fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("held-out MPJPE (mm, over the hops where the engine is ready)")
    present = {r["engine"] if r["engine"] != "continuous" else r["scheme"] for r in rows}
    for kind, colour in colours.items():
        if kind in present:
            axes[1].scatter([], [], color=colour, label=kind)
    axes[1].legend(fontsize=8, loc="center right")
    names = ", ".join(Path(s).stem for s in result["sessions"])
    fig.suptitle(
        f"Streaming engines, accuracy vs cost: {Path(result['model']).name} on {names} "
        f"({result['emg_seconds']:.0f} s of EMG)\n{result['cpu']}, 1 thread, load average "
        f"{result['load_average'][0]:.1f}; ● hop 20 samples (40 ms), ▲ hop 10 (20 ms)",
        fontsize=10,
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="exported model.onnx (streaming files beside it)")
    parser.add_argument("--data", nargs="+", required=True, help="held-out session files or globs")
    parser.add_argument("--seconds", type=float, default=None, help="only the first N s of each session")
    parser.add_argument("--only", default=None, help="regex: variants whose label matches (plus exact/windowed)")
    parser.add_argument("--lanes", nargs="*", help="extra continuous schedules LANESxSTEPS at hop 20, e.g. 3x83 4x74")
    parser.add_argument("--jobs", type=int, default=1, help="sessions run in parallel processes (timings contend)")
    parser.add_argument("--json", type=Path, default=None, help="write the result here")
    parser.add_argument("--plot", type=Path, default=REPO / "docs/streaming_accuracy.png")
    args = parser.parse_args(argv)
    sessions = sorted({Path(p) for pattern in args.data for p in (glob.glob(pattern) or [pattern])})
    missing = [p for p in sessions if not p.exists()]
    if missing:
        parser.error(f"--data: no such file {missing[0]}")
    variants = default_variants()
    for item in args.lanes or []:  # e.g. 3x83: 3 lanes restarted every 83 steps, hop 20
        lanes, steps = (int(x) for x in item.lower().split("x"))
        variants.append(Variant(f"L{lanes}×{steps} h20", "continuous", 20, lanes, steps))
    if args.only:
        variants = [v for v in variants if v.engine != "continuous" or re.search(args.only, v.label)]
    print(f"CPU: {cpu_model()}; onnxruntime threads: 1; load average {os.getloadavg()[0]:.2f}", file=sys.stderr)
    result = study(args.model, sessions, variants, args.seconds, args.jobs)
    print(table(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    plot(result, args.plot)
    print(f"plot: {args.plot}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
