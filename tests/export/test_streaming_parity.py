"""The streaming graphs beside the exported model equal the model they were cut from.

- Step by step: each exported step graph (`model.encoder_step.onnx`, `model.lstm_step.onnx`,
  `model.head.onnx`, in onnxruntime) against its PyTorch module (training/models/streaming.py) on filtered EMG
  of the held-out session.
- Composed by hand here (not by the runtime): the step graphs reproduce the windowed ONNX model's θ and joints.
- The runtime's `exact` engine against its `windowed` engine on the held-out session's whole stream at several
  hops with a restart in the middle, ready exactly where the hop grid says.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from export.onnx_export import PiecewiseLinear
from export.stream_parity import JOINTS_TOLERANCE_MM, THETA_TOLERANCE_RAD, compare_engines
from firmware_bridge.emg_filter import InputFilter, filter_session
from firmware_bridge.session import read_session
from runtime.inference import WindowedEngine, initial_state
from runtime.model_metadata import LoadedModel, StreamGraphs, load_model, load_stream_graphs
from runtime.streaming import StreamingEngine
from training.models.model_io import load_model_checkpoint
from training.models.streaming import EncoderStep, Head, LstmStep

HELD_OUT = "s01_r03.h5"
WINDOW = 1000
FRAME = 20
BEFORE = 5  # the window's last frame ends 5 samples before its end
FRAMES = 28


@pytest.fixture(scope="module")
def model(exported_model: Path) -> LoadedModel:
    return load_model(exported_model)


@pytest.fixture(scope="module")
def graphs(model: LoadedModel) -> StreamGraphs:
    return load_stream_graphs(model)


@pytest.fixture(scope="module")
def stream(small_world: Path, model: LoadedModel) -> dict[str, np.ndarray]:
    """The held-out session raw and filtered as the device filters it (restarting at its long gap)."""
    session = read_session(small_world / HELD_OUT)
    spec = InputFilter.from_dict(model.meta.input_filter)
    raw = np.asarray(session.emg_raw, np.float64)
    gaps = np.flatnonzero(np.diff(session.emg_timestamps) * 500 - 1 > 10) + 1
    return {
        "raw": raw,
        "filtered": filter_session(raw, session.emg_timestamps, spec),
        "gaps": gaps,
    }


@pytest.fixture(scope="module")
def torch_parts(trained_checkpoints: Path) -> Iterator[dict[str, torch.nn.Module]]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small steps: more threads only spin against the other processes on 2 cores
    network, meta = load_model_checkpoint(trained_checkpoints / "transfer_mode2_best.pth")
    calibration = meta.confidence_calibration
    calibrate = PiecewiseLinear(calibration["x"], calibration["y"]) if calibration else None
    yield {
        "encoder": EncoderStep(network).eval(),
        "lstm": LstmStep(network).eval(),
        "head": Head(network, calibrate).eval(),
    }
    torch.set_num_threads(threads)


def clean_stretch(stream: dict[str, np.ndarray], length: int) -> tuple[int, int]:
    """A stretch of `length` samples of the held-out session without a long gap in it."""
    bounds = [0, *stream["gaps"].tolist(), len(stream["raw"])]
    for a, b in itertools.pairwise(bounds):
        if b - a >= length:
            return a, a + length
    pytest.fail("the held-out session has no clean stretch long enough")


def onnx_frames(graphs: StreamGraphs, filtered: np.ndarray, start: int, stop: int) -> dict[int, np.ndarray]:
    """Frames of the encoder-step graph over filtered[start:stop] in 20-sample chunks (carry from zero);
    keyed by each frame's exclusive end sample."""
    session = graphs.encoder_step
    carry_inputs = [i for i in session.get_inputs() if i.name != "chunk"]
    carry = {i.name: np.zeros((1, int(i.shape[1]), int(i.shape[2])), np.float32) for i in carry_inputs}
    names = ["frame", *(i.name + "_next" for i in carry_inputs)]
    frames = {}
    for a in range(start, stop - FRAME + 1, FRAME):
        chunk = np.ascontiguousarray(filtered[a : a + FRAME].T[None], np.float32)
        out = session.run(names, {"chunk": chunk, **carry})
        frames[a + FRAME] = out[0][0]
        carry = {i.name: v for i, v in zip(carry_inputs, out[1:], strict=True)}
    return frames


def test_encoder_step_graph_equals_its_pytorch_module_chunk_by_chunk(graphs, torch_parts, stream) -> None:
    a, _ = clean_stretch(stream, 2000)
    filtered = stream["filtered"]
    encoder = torch_parts["encoder"]
    session = graphs.encoder_step
    carry_inputs = [i for i in session.get_inputs() if i.name != "chunk"]
    assert [i.name.removeprefix("carry_") for i in carry_inputs] == [
        c.name.removeprefix("carry_") for c in encoder.carry
    ]
    onnx_carry = [np.zeros((1, int(i.shape[1]), int(i.shape[2])), np.float32) for i in carry_inputs]
    torch_carry = encoder.zero_carry(1)
    names = ["frame", *(i.name + "_next" for i in carry_inputs)]
    worst_frame = worst_carry = 0.0
    scale = 0.0
    with torch.no_grad():
        for k in range(60):  # 2.4 s: past the 0.9-s receptive field, carries fully populated by real signal
            chunk = np.ascontiguousarray(filtered[a + k * FRAME : a + (k + 1) * FRAME].T[None], np.float32)
            out = session.run(
                names, {"chunk": chunk, **{i.name: c for i, c in zip(carry_inputs, onnx_carry, strict=True)}}
            )
            expected = encoder(torch.from_numpy(chunk), *torch_carry)
            worst_frame = max(worst_frame, float(np.abs(out[0] - expected[0].numpy()).max()))
            worst_carry = max(
                worst_carry, max(float(np.abs(o - e.numpy()).max()) for o, e in zip(out[1:], expected[1:], strict=True))
            )
            scale = max(scale, float(np.abs(expected[0].numpy()).max()))
            onnx_carry, torch_carry = list(out[1:]), list(expected[1:])  # each side carries its own state
    assert scale > 0.01, "the frames are not trivially zero"
    assert worst_frame <= 1e-4 * max(1.0, scale), worst_frame
    assert worst_carry <= 1e-4 * max(1.0, scale), worst_carry


def test_lstm_step_graph_equals_its_pytorch_module_for_a_batch_of_rollouts(graphs, torch_parts, stream, model) -> None:
    a, b = clean_stretch(stream, 2400)
    frames = onnx_frames(graphs, stream["filtered"], a, b)
    features = np.stack(list(frames.values())[-40:])  # (40, F): real frames past the warm-up
    session = graphs.lstm_step
    h_shape = next(i.shape for i in session.get_inputs() if i.name == "h")
    layers, hidden = int(h_shape[0]), int(h_shape[2])
    batch = 3  # three rollouts started at different frames, stepped together
    pose = np.repeat(initial_state(model)[None], batch, axis=0).astype(np.float32)
    h = np.zeros((layers, batch, hidden), np.float32)
    c = np.zeros_like(h)
    tp, th, tc = torch.from_numpy(pose), torch.from_numpy(h), torch.from_numpy(c)
    worst = 0.0
    with torch.no_grad():
        for step in range(30):
            feature = np.ascontiguousarray(features[[step, step + 5, step + 10]], np.float32)
            pose, h, c = session.run(
                ["pose_next", "h_next", "c_next"], {"feature": feature, "pose": pose, "h": h, "c": c}
            )
            tp, th, tc = torch_parts["lstm"](torch.from_numpy(feature), tp, th, tc)
            worst = max(worst, float(np.abs(pose - tp.numpy()).max()), float(np.abs(h - th.numpy()).max()))
            worst = max(worst, float(np.abs(c - tc.numpy()).max()))
    assert worst < 1e-4, worst
    assert np.abs(pose - initial_state(model)).max() > 1e-3, "the rollout moved"
    assert np.abs(pose[0] - pose[2]).max() > 1e-5, "different inputs, different rollouts: the batch is not mixed up"


def test_head_graph_equals_its_pytorch_module(graphs, torch_parts, stream, model) -> None:
    a, b = clean_stretch(stream, 2400)
    frames = np.stack(list(onnx_frames(graphs, stream["filtered"], a, b).values())[-8:]).astype(np.float32)
    rng = np.random.default_rng(0)
    angles = (initial_state(model)[None] + rng.normal(0, 0.2, (8, 20))).astype(np.float32)
    level = rng.normal(0.0, 1.0, (8, 8)).astype(np.float32)
    theta, joints, confidence = graphs.head.run(
        ["theta", "joints", "confidence"], {"angles": angles, "last_feature": frames, "level": level}
    )
    with torch.no_grad():
        t_theta, t_joints, t_conf = torch_parts["head"](*(torch.from_numpy(v) for v in (angles, frames, level)))
    np.testing.assert_allclose(theta, t_theta.numpy(), atol=1e-5)
    np.testing.assert_allclose(joints, t_joints.numpy(), atol=1e-8)  # metres: 1e-5 mm
    np.testing.assert_allclose(confidence, t_conf.numpy(), atol=1e-5)
    assert np.ptp(joints[:, :, 0]) > 1e-4, "different angles give different hands"


def test_step_graphs_composed_by_hand_reproduce_the_windowed_onnx_model(graphs, model, stream) -> None:
    """Frames once over the stream; per window, a 55-step rollout (step 2k: frame k; step 2k−1: the mean of
    frames k−1 and k) and the head; against the exported window graph on the same filtered window."""
    filtered = stream["filtered"]
    a, b = clean_stretch(stream, 4000)
    start = a + 15  # frames end on E − 5 − 20k: put the grid there for windows ending at a + 1000 + 20m
    frames = onnx_frames(graphs, filtered, start, b)
    session = graphs.lstm_step
    h_shape = next(i.shape for i in session.get_inputs() if i.name == "h")
    std = np.asarray(model.meta.normalisation_std_uv, np.float64)
    ends = [a + WINDOW + 20 + 140 * m for m in range(20) if a + WINDOW + 20 + 140 * m <= b]
    start_pose = initial_state(model)
    worst_theta = worst_joints = 0.0
    for end in ends:
        window_frames = [frames[end - BEFORE - FRAME * (FRAMES - 1 - k)] for k in range(FRAMES)]
        pose = start_pose[None].astype(np.float32)
        h = np.zeros((int(h_shape[0]), 1, int(h_shape[2])), np.float32)
        c = np.zeros_like(h)
        for step in range(2 * FRAMES - 1):
            k = step // 2 if step % 2 == 0 else (step + 1) // 2
            feature = window_frames[k] if step % 2 == 0 else 0.5 * (window_frames[k - 1] + window_frames[k])
            pose, h, c = session.run(
                ["pose_next", "h_next", "c_next"],
                {"feature": feature[None].astype(np.float32), "pose": pose, "h": h, "c": c},
            )
        window = filtered[end - WINDOW : end].astype(np.float64)
        level = np.log(np.mean((window / std) ** 2, axis=0) + 1e-3)[None].astype(np.float32)
        theta, joints, _ = graphs.head.run(
            ["theta", "joints", "confidence"],
            {"angles": pose, "last_feature": window_frames[-1][None].astype(np.float32), "level": level},
        )
        ref_theta, ref_joints = model.session.run(
            ["theta", "joints"],
            {"emg": np.ascontiguousarray(window.T[None], np.float32), "initial_pose": start_pose[None]},
        )
        worst_theta = max(worst_theta, float(np.abs(theta - ref_theta).max()))
        worst_joints = max(worst_joints, float(np.abs(joints - ref_joints).max()) * 1000)
    assert len(ends) >= 10
    assert worst_theta <= THETA_TOLERANCE_RAD, worst_theta
    assert worst_joints <= JOINTS_TOLERANCE_MM, worst_joints


def expected_compared_hops(n: int, hop: int, restarts: list[int]) -> int:
    """Hops on the grid 1000, 1000 + hop, … ≤ n whose window holds no restart (the stream breaks before
    sample r: a window [end − 1000, end) with end − 1000 < r < end spans it)."""
    ends = np.arange(WINDOW, n + 1, hop)
    spans = np.zeros(len(ends), bool)
    for r in restarts:
        spans |= (ends - WINDOW < r) & (r < ends)
    return int(np.sum(~spans))


def drive(windowed, exact, raw: np.ndarray, restarts: list[int], seed: int) -> tuple[int, list[int], float, float]:
    """Feed both engines the raw stream in uneven blocks of 1–40 (a block boundary at each restart), infer at
    every hop as soon as its samples are in; (compared hops, ends where exact was not ready, worst θ, mm)."""
    rng = np.random.default_rng(seed)
    cuts = [0]
    while cuts[-1] < len(raw):
        cuts.append(min(len(raw), cuts[-1] + int(rng.integers(1, 41))))
    cuts = sorted(set(cuts) | set(restarts))
    next_end, compared, not_ready = WINDOW, 0, []
    worst_theta = worst_mm = 0.0
    for a, b in itertools.pairwise(cuts):
        if a in restarts:
            windowed.restart(0)
            exact.restart(0)
        windowed.feed(raw[a:b])
        exact.feed(raw[a:b])
        while next_end <= b:
            ref, got = windowed.infer(next_end), exact.infer(next_end)
            exact.idle()
            if got.ready:
                compared += 1
                worst_theta = max(worst_theta, float(np.abs(ref.theta - got.theta).max()))
                worst_mm = max(worst_mm, float(np.abs(ref.joints - got.joints).max()) * 1000)
            else:
                not_ready.append(next_end)
                assert got.confidence == 0.0 and "warming up" in got.note
            next_end += exact.hop
    return compared, not_ready, worst_theta, worst_mm


@pytest.mark.parametrize("hop", [20, 40, 10, 100])
def test_exact_engine_equals_windowed_on_the_held_out_stream_with_a_restart(model, graphs, stream, hop) -> None:
    """Hop 100 (cheap): the whole session, restarted at its own long gap (389 missing samples, where the
    runtime's source would report it) and once more mid-stream; the others 8–14 s of it with one restart."""
    n = {20: 5000, 40: 7000, 10: 4000, 100: len(stream["raw"])}[hop]
    raw = stream["raw"][:n]
    restarts = [2000 + 7 * hop // 5 + 3]  # off the hop grid and off the frame grid
    if hop == 100:
        restarts = sorted([5003, *stream["gaps"].tolist()])
        assert len(restarts) == 2
    windowed = WindowedEngine(model, hop)
    exact = StreamingEngine("exact", model, graphs, hop)
    assert exact.phases == {20: 1, 40: 1, 10: 2, 100: 1}[hop]
    compared, not_ready, worst_theta, worst_mm = drive(windowed, exact, raw, restarts, seed=hop)
    assert worst_theta <= THETA_TOLERANCE_RAD and worst_mm <= JOINTS_TOLERANCE_MM, (worst_theta, worst_mm)
    assert compared + len(not_ready) == len(range(WINDOW, n + 1, hop)), "a hop of the grid was not inferred"
    # ready from the first hop after the start, and from the first hop a whole window after each restart
    assert compared == expected_compared_hops(n, hop, restarts), (compared, not_ready[:3], not_ready[-3:])
    assert not_ready and all(any(r < end < r + WINDOW for r in restarts) for end in not_ready)


def test_compare_engines_counts_every_hop_of_the_grid_and_passes(model, graphs, stream) -> None:
    """export/stream_parity.compare_engines (what `export-onnx` writes into the metadata) on the held-out
    stream: it compares hops, finds them equal, and accounts for every hop on the grid."""
    raw = stream["raw"][:4500]
    restart = 2000
    result = compare_engines(
        WindowedEngine(model, 20), StreamingEngine("exact", model, graphs, 20), raw, restart_at=restart, seed=3
    )
    assert result.passes(), result.describe()
    assert result.hops + result.not_ready == len(range(WINDOW, len(raw) + 1, 20))
    assert result.hops == expected_compared_hops(len(raw), 20, [restart])
    assert result.not_ready <= WINDOW // 20 + 1
