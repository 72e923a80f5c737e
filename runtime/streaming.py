"""Incremental Mode 2 inference: each feature frame is computed once, rollouts advance as their frames arrive.

The windowed model recomputes 28 feature frames and a 55-step rollout for every hop. With the causal input
stage, a window's frames are the same frames its neighbours use (training/models/streaming.py), so:

- **Encoder phases.** One `encoder_step` call per 20 new samples (40 ms) gives one frame. A window ending at
  sample E uses the 28 frames whose last ends at E − 5 (then E − 25, …). Hops that are a multiple of 20
  samples need one phase (one grid of frame ends); a 10-sample hop needs two grids, 5 samples four.
- **`exact`** — staggered rollouts: every window on the hop grid gets its own rollout, started from the
  model's initial state when its first frame arrives and stepped (frame k → steps 2k−1, 2k) as later frames
  arrive; all rollouts of a phase advance together as one batched LSTM step. A window's last frame is
  complete 5 samples before the window ends, so normally the whole batch (the finishing rollout with it) runs
  before the hop and the hop only runs the head; when one block of samples completes both (a burst), the
  finishing rollout is stepped first, alone, and the others in `idle()` after the hop's command has gone
  out. The result equals the windowed model's.
  The `feedback` initial-state policy is not offered (a window's start would wait for a later window).
- **`continuous`** — `lanes` long-lived rollouts per phase, each restarted from the initial state every
  `lane_steps` steps, staggered evenly, all stepped in one batch; the pose is the oldest lane's (its age
  between lane_steps·(1 − 1/lanes) and lane_steps). One lane that never restarts is `lanes=1, lane_steps=None`.
  Cheaper than exact (lanes instead of ~28 rollouts per phase), not equal to it: its accuracy is measured
  (benchmarks/streaming_accuracy.py) and carried in the model's metadata.

After a start or `restart`, frames need ~0.9 s of signal and exact rollouts a whole window before the first
pose: until then `infer` returns a not-ready prediction (confidence 0) and the loop keeps the gate closed.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from firmware_bridge.errors import UserError
from runtime.inference import Prediction, check_hop, initial_state, ring_capacity
from runtime.input_stage import InputStage
from runtime.model_contract import (
    CARRY_PREFIX,
    CELL,
    CHUNK,
    FEATURE,
    FRAME,
    HEAD_INPUTS,
    HEAD_OUTPUTS,
    HIDDEN,
    NEXT,
    POSE,
)
from runtime.model_metadata import LoadedModel, StreamGraphs, load_stream_graphs

ENCODER_RECEPTIVE_SAMPLES = 450  # a frame reads 1,791 samples at 2 kHz ≈ 448 window samples, plus the pair
MAX_PHASES = 4
# 4 lanes restarted every 76 steps, staggered: the emitted (oldest) lane is 56–76 steps old. Measured on the
# held-out sessions (benchmarks/streaming_accuracy.py): accuracy falls with the emitted rollout's age (2 lanes
# × 110 steps +0.5 mm vs exact, 2 × 250 +2.2 mm, one lane never restarting +7 mm); cross-fading lanes or letting
# the confidence head pick one did not beat keeping them young.
DEFAULT_LANES = 4
DEFAULT_LANE_STEPS = 76


@dataclass
class _Rollout:
    end: int  # exact: the window's end (exclusive sample count); continuous: the lane's number
    first: int  # exclusive end of the frame its step 0 used
    steps: int  # steps taken
    pose: np.ndarray
    h: np.ndarray  # (layers, hidden)
    c: np.ndarray


@dataclass
class _Phase:
    residue: int  # frame ends (exclusive sample counts) ≡ residue (mod frame_samples)
    carry: list[np.ndarray]
    next_end: int
    frames: dict[int, np.ndarray] = field(default_factory=dict)  # frame end → (features,)
    rollouts: list[_Rollout] = field(default_factory=list)


class StreamingEngine:
    def __init__(
        self,
        name: str,
        model: LoadedModel,
        graphs: StreamGraphs,
        hop_samples: int,
        *,
        first_end: int | None = None,
        lanes: int = DEFAULT_LANES,
        lane_steps: int | None = DEFAULT_LANE_STEPS,
    ) -> None:
        check_hop(model, hop_samples)
        meta, info = model.meta, graphs.info
        self.name = name
        self.window_samples = meta.window_samples
        self.rate = meta.sampling_rate_hz
        self.hop = hop_samples
        self.frame = info.frame_samples
        self.before = info.frame_end_before_window_end
        self.n_frames = info.frames_per_window
        if info.steps_per_window != 2 * self.n_frames - 1:
            raise UserError(f"{model.path}: streaming needs steps = 2 × frames − 1, the metadata says otherwise")
        if hop_samples % (self.frame // MAX_PHASES) != 0:
            raise UserError(
                f"--engine {name}: the hop ({hop_samples} samples) must be a multiple of "
                f"{self.frame // MAX_PHASES} samples ({1000 * self.frame / MAX_PHASES / meta.sampling_rate_hz:g} ms) "
                "so that a window's frames fall on at most "
                f"{MAX_PHASES} encoder grids; use --engine windowed for other hops"
            )
        if name == "exact" and meta.initial_state_policy == "feedback":
            raise UserError(
                f"--engine exact: {model.path.name} starts each window from the previous window's estimate "
                "('feedback' policy), which a staggered rollout cannot wait for; use --engine windowed or "
                "continuous, or train with --initial-state train_mean"
            )
        if lanes < 1 or (lane_steps is not None and lane_steps < 2 * lanes):
            raise UserError(f"continuous engine: {lanes} lanes of {lane_steps} steps is not a schedule")
        self.graphs = graphs
        self.first_end = self.window_samples if first_end is None else first_end
        self.lanes, self.lane_steps = lanes, lane_steps
        self.start_pose = initial_state(model)
        self.std = np.asarray(meta.normalisation_std_uv or np.ones(meta.channels), np.float64)
        self.stage = InputStage(model, ring_capacity(self.window_samples, hop_samples))
        self._carry_inputs = [i for i in graphs.encoder_step.get_inputs() if i.name.startswith(CARRY_PREFIX)]
        self._carry_names = [i.name for i in self._carry_inputs]
        self._carry_outputs = [FRAME, *(n + NEXT for n in self._carry_names)]
        h_shape = next(i.shape for i in graphs.lstm_step.get_inputs() if i.name == HIDDEN)
        self.layers, self.hidden = int(h_shape[0]), int(h_shape[2])
        self.residues = sorted(
            {(self.first_end - self.before + k * hop_samples) % self.frame for k in range(self.frame)}
        )
        self._clean_from = 0  # absolute count of the first sample after the last restart
        self._restarts: list[int] = []
        self._phases = [self._new_phase(r) for r in self.residues]
        self._results: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # window end → (angles, last frame)
        self._pending: list[tuple[_Phase, int]] = []  # (phase, frame end) whose batched advance is deferred
        self._work_ms = 0.0
        self._lane_counter = 0
        rest = self._head(self.start_pose[None], np.zeros((1, self._frame_width()), np.float32), np.zeros((1, 8)))
        self._rest = rest

    # -- set-up ----------------------------------------------------------------------------------------
    def _frame_width(self) -> int:
        return int(next(o.shape[1] for o in self.graphs.encoder_step.get_outputs() if o.name == FRAME))

    def _new_phase(self, residue: int) -> _Phase:
        carry = [np.zeros((1, int(i.shape[1]), int(i.shape[2])), np.float32) for i in self._carry_inputs]
        first = self._clean_from + self.frame
        next_end = first + (residue - first) % self.frame
        return _Phase(residue, carry, next_end)

    @property
    def phases(self) -> int:
        return len(self._phases)

    # -- the engine interface --------------------------------------------------------------------------
    def restart(self, offset: int = 0) -> None:
        self._restarts.append(self.stage.restart(offset))

    def feed(self, samples: np.ndarray) -> None:
        started = time.perf_counter()
        start, n = self.stage.total, len(samples)
        cuts = sorted({at for at in self._restarts if at <= start + n})
        self._restarts = [at for at in self._restarts if at > start + n]
        begin = 0
        for at in cuts:
            self._advance(samples[begin : at - start])
            begin = max(begin, at - start)
            self._reset_state(at)
        self._advance(samples[begin:])
        self._work_ms += (time.perf_counter() - started) * 1000.0

    def idle(self) -> None:
        started = time.perf_counter()
        self._flush()
        self._work_ms += (time.perf_counter() - started) * 1000.0

    def infer(self, end: int) -> Prediction:
        started = time.perf_counter()
        result = self._results.pop(end, None)
        for old in [e for e in self._results if e < end]:
            del self._results[old]
        if result is None:
            why = self._not_ready_reason(end)
            elapsed = (time.perf_counter() - started) * 1000.0
            work, self._work_ms = self._work_ms + elapsed, 0.0
            theta, joints = self._rest
            return Prediction(theta, joints, self.start_pose.astype(np.float64), 0.0, work, elapsed, False, why)
        angles, last_frame = result
        window = self.stage.window(end, self.window_samples).astype(np.float64)
        level = np.log(np.mean((window / self.std) ** 2, axis=0) + 1e-3)[None].astype(np.float32)
        theta, joints, confidence = self.graphs.head.run(
            list(HEAD_OUTPUTS), dict(zip(HEAD_INPUTS, (angles[None], last_frame[None], level), strict=True))
        )
        elapsed = (time.perf_counter() - started) * 1000.0
        work, self._work_ms = self._work_ms + elapsed, 0.0
        return Prediction(
            theta[0].astype(np.float64),
            joints[0].astype(np.float64),
            angles.astype(np.float64),
            float(confidence[0]),
            work,
            elapsed,
        )

    # -- internals -------------------------------------------------------------------------------------
    def _head(self, angles: np.ndarray, frame: np.ndarray, level: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        theta, joints, _ = self.graphs.head.run(
            list(HEAD_OUTPUTS),
            dict(zip(HEAD_INPUTS, (angles.astype(np.float32), frame, level.astype(np.float32)), strict=True)),
        )
        return theta[0].astype(np.float64), joints[0].astype(np.float64)

    def _not_ready_reason(self, end: int) -> str:
        since = (end - self._clean_from) / self.rate
        return f"engine {self.name}: warming up ({since:.2f} s of signal since the stream (re)started)"

    def _reset_state(self, at: int) -> None:
        self._clean_from = at
        self._flush()  # frames before the restart are complete: their rollouts may finish windows before it
        self._results = {end: r for end, r in self._results.items() if end <= at}
        self._phases = [self._new_phase(r) for r in self.residues]

    def _advance(self, samples: np.ndarray) -> None:
        """Feed up to each next frame end and compute that frame, so that a burst of several seconds (the SDK
        hands over everything it buffered during a host pause) never outruns the filtered ring."""
        begin = 0
        while begin < len(samples):
            phase = min(self._phases, key=lambda p: p.next_end)
            take = max(1, min(len(samples) - begin, phase.next_end - self.stage.total))
            self.stage.feed(samples[begin : begin + take])
            begin += take
            while phase.next_end <= self.stage.total:
                self._frame(phase, phase.next_end)
                phase.next_end += self.frame
                phase = min(self._phases, key=lambda p: p.next_end)

    def _frame(self, phase: _Phase, end: int) -> None:
        self._flush()  # the previous frame's steps come first
        chunk = self.stage.window(end, self.frame).T[None]  # (1, 8, frame)
        feeds = {CHUNK: np.ascontiguousarray(chunk), **dict(zip(self._carry_names, phase.carry, strict=True))}
        outputs = self.graphs.encoder_step.run(self._carry_outputs, feeds)
        frame, phase.carry = outputs[0][0], list(outputs[1:])
        phase.frames[end] = frame
        for old in [e for e in phase.frames if e <= end - self.n_frames * self.frame]:
            del phase.frames[old]
        if self.name == "continuous":
            self._continuous_step(phase, end)  # a few lanes: one batch, then emit
        elif self.stage.total < end + self.before:
            self._exact_advance(phase, end)  # the hop is still samples away: all rollouts in one batch now
        else:
            self._exact_finish(phase, end)  # the hop is due: finish its rollout alone, the rest after the hop
            self._pending.append((phase, end))

    def _on_grid(self, window_end: int) -> bool:
        return (window_end - self.first_end) % self.hop == 0 and window_end - self.window_samples >= self._clean_from

    def _features(self, phase: _Phase, end: int, rollouts: list[_Rollout]) -> tuple[np.ndarray, np.ndarray]:
        """(B,F) inputs of the odd step (mean of the previous and this frame) and of the even step (this frame)."""
        frame = phase.frames[end]
        if not rollouts:
            empty = np.zeros((0, len(frame)), np.float32)
            return empty, empty
        previous = phase.frames.get(end - self.frame, frame)
        odd = np.stack([(previous + frame) * 0.5 if r.steps > 0 else frame for r in rollouts])
        return odd.astype(np.float32), np.repeat(frame[None], len(rollouts), axis=0)

    def _step(self, rollouts: list[_Rollout], features: np.ndarray) -> None:
        if not rollouts:
            return
        pose = np.stack([r.pose for r in rollouts]).astype(np.float32)
        h = np.ascontiguousarray(np.stack([r.h for r in rollouts], axis=1), np.float32)
        c = np.ascontiguousarray(np.stack([r.c for r in rollouts], axis=1), np.float32)
        pose, h, c = self.graphs.lstm_step.run(
            [POSE + NEXT, HIDDEN + NEXT, CELL + NEXT], {FEATURE: features, POSE: pose, HIDDEN: h, CELL: c}
        )
        for k, r in enumerate(rollouts):
            r.pose, r.h, r.c = pose[k], h[:, k], c[:, k]
            r.steps += 1

    def _new_rollout(self, end: int, first: int) -> _Rollout:
        zeros = np.zeros((self.layers, self.hidden), np.float32)
        return _Rollout(end, first, 0, self.start_pose.copy(), zeros, zeros.copy())

    # exact: staggered rollouts, one per window on the hop grid
    def _exact_finish(self, phase: _Phase, end: int) -> None:
        finishing = [r for r in phase.rollouts if r.end - self.before == end]
        if not finishing:
            return
        phase.rollouts = [r for r in phase.rollouts if r not in finishing]
        odd, even = self._features(phase, end, finishing)
        self._step(finishing, odd)
        self._step(finishing, even)
        for r in finishing:
            self._results[r.end] = (r.pose, phase.frames[end])

    def _exact_advance(self, phase: _Phase, end: int) -> None:
        window_end = end + self.before + (self.n_frames - 1) * self.frame
        if self._on_grid(window_end):
            phase.rollouts.append(self._new_rollout(window_end, end))
        odd, even = self._features(phase, end, phase.rollouts)
        self._step(phase.rollouts, odd)
        older = [r for r in phase.rollouts if r.first != end]
        self._step(older, even[: len(older)])
        finished = [r for r in phase.rollouts if r.end - self.before == end]
        for r in finished:
            self._results[r.end] = (r.pose, phase.frames[end])
        if finished:
            phase.rollouts = [r for r in phase.rollouts if r not in finished]

    # continuous: long-lived lanes, restarted on a staggered schedule
    def _lane_due(self, phase: _Phase, end: int) -> list[int]:
        """Lane numbers that (re)start at this frame."""
        warm_from = self._clean_from + ENCODER_RECEPTIVE_SAMPLES
        if end < warm_from:
            return []
        age_frames = (end - (warm_from + (phase.residue - warm_from) % self.frame)) // self.frame
        if self.lane_steps is None:
            return [0] if age_frames == 0 else []
        period = math.ceil(self.lane_steps / 2)
        offsets = [round(j * period / self.lanes) for j in range(self.lanes)]
        return [j for j, o in enumerate(offsets) if age_frames >= o and (age_frames - o) % period == 0]

    def _continuous_step(self, phase: _Phase, end: int) -> None:
        """Advance every lane by this frame in one batch (lanes due a restart begin again from the initial
        state), then emit the oldest lane's pose if a hop ends with this frame."""
        due = set(self._lane_due(phase, end))
        fresh = [self._new_rollout(lane, end) for lane in sorted(due)]
        going = list(phase.rollouts)
        odd, even = self._features(phase, end, going + fresh)
        self._step(going + fresh, odd)
        self._step(going, even[: len(going)])
        window_end = end + self.before
        if going and self._on_grid(window_end):
            oldest = max(going, key=lambda r: r.steps)
            if oldest.steps >= 2 * self.n_frames - 1:  # as old as an exact rollout at least
                self._results[window_end] = (oldest.pose, phase.frames[end])
        phase.rollouts = [r for r in going if r.end not in due] + fresh

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        for phase, end in pending:
            self._exact_advance(phase, end)


def make_streaming_engine(name: str, model: LoadedModel, hop_samples: int, *, threads: int = 1) -> StreamingEngine:
    if model.meta.streaming is not None and name not in model.meta.streaming.engines:
        raise UserError(f"--engine {name}: {model.path.name} supports {', '.join(model.meta.streaming.engines)}")
    return StreamingEngine(name, model, load_stream_graphs(model, threads=threads), hop_samples)
