"""The `exact` engine against the windowed engine on the same raw stream: the proof that streaming changes
nothing (and the figure the export writes into the model's metadata).

Both engines are the runtime's own (runtime/inference.py, runtime/streaming.py) on the exported files; the
stream is fed in blocks of uneven size, as an armband delivers it, with a restart in the middle, and every hop
at which both give a pose is compared.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from firmware_bridge.emg_filter import InputFilter, device_input
from runtime.inference import WindowedEngine
from runtime.model_contract import ModelMetadata
from runtime.model_metadata import LoadedModel, StreamGraphs
from runtime.streaming import StreamingEngine

THETA_TOLERANCE_RAD = 1e-4
JOINTS_TOLERANCE_MM = 0.01


@dataclass(frozen=True)
class StreamParity:
    hop_samples: int
    hops: int  # hops compared (both engines ready)
    not_ready: int  # hops the exact engine was still warming up (after the start and the restart)
    theta_max_abs_rad: float
    joints_max_abs_mm: float
    confidence_max_abs: float

    def passes(self) -> bool:
        return (
            self.hops > 0
            and self.theta_max_abs_rad <= THETA_TOLERANCE_RAD
            and self.joints_max_abs_mm <= JOINTS_TOLERANCE_MM
        )

    def describe(self) -> str:
        return (
            f"hop {self.hop_samples} samples: {self.hops} hops, |Δθ| max {self.theta_max_abs_rad:.2e} rad, "
            f"|Δjoints| max {self.joints_max_abs_mm:.2e} mm, |Δconfidence| max {self.confidence_max_abs:.2e} "
            f"({self.not_ready} hops warming up)"
        )

    def to_dict(self) -> dict:
        return asdict(self)


def compare_engines(
    windowed: WindowedEngine,
    exact: StreamingEngine,
    raw: np.ndarray,
    *,
    restart_at: int | None = None,
    seed: int = 0,
) -> StreamParity:
    """Feed `raw` (n, channels) µV to both engines in random blocks of 1–40 samples (a restart at sample
    `restart_at`), infer at every hop, compare where the exact engine is ready."""
    hop = exact.hop
    rng = np.random.default_rng(seed)
    next_end = exact.first_end
    fed = 0
    worst = np.zeros(3)
    hops = not_ready = 0
    while fed < len(raw):
        block = int(rng.integers(1, 41))
        if restart_at is not None and fed < restart_at <= fed + block:
            for engine in (windowed, exact):
                engine.restart(restart_at - fed)
        chunk = raw[fed : fed + block]
        windowed.feed(chunk)
        exact.feed(chunk)
        fed += len(chunk)
        while next_end <= fed:
            a, b = windowed.infer(next_end), exact.infer(next_end)
            exact.idle()
            if b.ready:
                hops += 1
                worst = np.maximum(
                    worst,
                    [
                        np.abs(a.theta - b.theta).max(),
                        np.abs(a.joints - b.joints).max() * 1000,
                        abs(a.confidence - b.confidence),
                    ],
                )
            else:
                not_ready += 1
            next_end += hop
    return StreamParity(hop, hops, not_ready, float(worst[0]), float(worst[1]), float(worst[2]))


def loaded(path: Path, session, meta_doc: dict) -> LoadedModel:
    """A LoadedModel for a file still under its temporary name (the exporter checks before renaming)."""
    return LoadedModel(session=session, meta=ModelMetadata.parse(meta_doc, str(path)), sha256="", path=path)


def check_stream_parity(
    model: LoadedModel, graphs: StreamGraphs, raw: np.ndarray, hops: tuple[int, ...] = (20, 10)
) -> list[StreamParity]:
    """Exact vs windowed at each hop (samples), with a restart a third of the way in."""
    results = []
    for hop in hops:
        windowed = WindowedEngine(model, hop)
        exact = StreamingEngine("exact", model, graphs, hop)
        results.append(compare_engines(windowed, exact, raw, restart_at=len(raw) // 3, seed=hop))
    return results


def engine_accuracy(
    model: LoadedModel, graphs: StreamGraphs, sessions: list[Path], hop: int = 20
) -> dict[str, dict[str, float | int]]:
    """Held-out MPJPE (vs camera labels, every hop with a valid label, the runtime's scorer) of the exact and
    the continuous engine over the sessions' whole streams. Exact equals windowed (checked separately), so it
    stands for both."""
    from firmware_bridge.session import read_session
    from runtime.run_score import RunScorer

    names = ("exact", "continuous")
    spec = InputFilter.from_dict(model.meta.input_filter or {}, "input.input_filter")
    weighted = dict.fromkeys(names, 0.0)
    hops = dict.fromkeys(names, 0)
    for path in sessions:
        session = read_session(path, validate=False)
        stamps = np.asarray(session.emg_timestamps)
        # as the runtime sees the stream: zero rows repaired, the engine restarted where the loop restarts it
        raw, restarts = device_input(np.asarray(session.emg_raw, np.float64), stamps, spec)
        blocks = [*np.union1d(np.arange(0, len(raw), 50), restarts).tolist(), len(raw)]
        for name in names:
            engine = StreamingEngine(name, model, graphs, hop)
            scorer = RunScorer(session, rate_hz=model.meta.sampling_rate_hz, window=engine.window_samples, grid=1)
            next_end = engine.first_end
            for begin, fed in itertools.pairwise(blocks):
                if begin and begin in restarts:
                    engine.restart(0)
                engine.feed(raw[begin:fed])
                while next_end <= fed:
                    prediction = engine.infer(next_end)
                    engine.idle()
                    if prediction.ready:
                        first = next_end - engine.window_samples
                        scorer.add(stamps[first], stamps[next_end - 1], first, prediction.joints, True)
                    next_end += hop
            score = scorer.result()
            if score is not None:
                weighted[name] += score.mpjpe_mm * score.scored_hops
                hops[name] += score.scored_hops
    figures = {
        name: {"mpjpe_mm": round(weighted[name] / hops[name], 3), "scored_hops": hops[name], "hop_samples": hop}
        for name in names
        if hops[name]
    }
    if "exact" in figures:
        figures["windowed"] = dict(figures["exact"])
    return figures
