"""Per-window latency: ONNX Runtime (fp32, int8) vs PyTorch, official-size Mode 2 model, same windows, one run.

The model is Mode 2 around the OFFICIAL-size vemg2pose (5.97 M parameters, weights from the shared
fixture checkpoint), open hand model. PyTorch rows: our implementation (fused rollout) and an
official-style rollout (one nn.LSTM call per 50-Hz step, as the emg2pose code does). Batch 1, 2-s windows.
Run: `python benchmarks/bench_onnx.py [--windows 20]`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import cpu_model
from export.metadata import build_metadata
from export.onnx_export import ExportWrapper, export_onnx, graph_summary
from export.quantize import quantize_int8
from firmware_bridge.emg_filter import InputFilter
from training.hand.open_hand import open_hand_model
from training.models.backbone import LEFT_CONTEXT, VEMG2Pose
from training.models.backbone_io import load_backbone
from training.models.checkpoint_meta import BackboneRecord, CheckpointMeta, Normalisation
from training.models.mode2_model import BACKBONE_SAMPLES, Mode2Model

FIXTURE = Path(__file__).resolve().parents[2] / "shared/fixtures/emg2pose/random_vemg2pose.ckpt"


def official_style_forward(backbone: VEMG2Pose, emg: torch.Tensor, initial: torch.Tensor) -> torch.Tensor:
    """The emg2pose code's way: nn.LSTM called once per step on [feature ; pose], state carried on the side."""
    features = backbone.encode(emg)
    n = backbone.n_rollout_steps(int(emg.shape[-1]))
    steps = F.interpolate(features, size=n, mode="linear", align_corners=True)
    pose, state, out = initial, None, []
    for t in range(n):
        x = torch.cat([steps[:, :, t], pose], dim=1)[:, None]
        o, state = backbone.decoder.lstm(x, state)
        pose = pose + 0.01 * backbone.decoder.mlp_out(o[:, 0])
        out.append(pose)
    return F.interpolate(
        torch.stack(out, 2), size=int(emg.shape[-1]) - LEFT_CONTEXT, mode="linear", align_corners=False
    )


def timed(fn, repeats: int) -> float:
    fn()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--windows", type=int, default=20)
    args = parser.parse_args()
    backbone, info = load_backbone(FIXTURE)
    model = Mode2Model(backbone, open_hand_model(), backbone_input_scale=50.0).eval()
    meta = CheckpointMeta(
        kind="mode2",
        hand_model=open_hand_model(),
        backbone=BackboneRecord(kind=info.kind, config=info.config.to_dict()),
        normalisation=Normalisation(
            std=tuple(model.preprocess.std.tolist()), input_filter=InputFilter.design(500.0).to_dict()
        ),
        initial_state_policy="train_mean",
    )
    rng = np.random.default_rng(0)
    # the graph's input: µV after the causal input filter (no DC left; the runtime filters the stream)
    windows = [rng.normal(0, 60, (1, 8, 1000)).astype(np.float32) for _ in range(args.windows)]
    initial = np.zeros((1, 20), np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(model, meta, Path(tmp) / "model.onnx", build_metadata(meta, "0" * 64, 17))
        int8 = quantize_int8(fp32, Path(tmp) / "model.int8.onnx")
        graph = graph_summary(fp32)
        wrapper = ExportWrapper(model, None)
        rows = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            sessions = {}
            for name, path in (("fp32", fp32), ("int8", int8)):
                options = ort.SessionOptions()
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
                options.log_severity_level = 3
                sessions[name] = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            state = {"i": 0}

            def next_window() -> np.ndarray:
                state["i"] = (state["i"] + 1) % len(windows)
                return windows[state["i"]]

            with torch.no_grad():
                x16 = torch.randn(1, 16, BACKBONE_SAMPLES) * 50
                t_official = timed(lambda: official_style_forward(backbone, x16, torch.zeros(1, 20)), args.windows)
                t_torch = timed(
                    lambda: wrapper(torch.from_numpy(next_window()), torch.from_numpy(initial)), args.windows
                )
            t_fp32 = timed(
                lambda: sessions["fp32"].run(None, {"emg": next_window(), "initial_pose": initial}), args.windows
            )
            t_int8 = timed(
                lambda: sessions["int8"].run(None, {"emg": next_window(), "initial_pose": initial}), args.windows
            )
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            options.log_severity_level = 3
            plain = ort.InferenceSession(str(fp32), options, providers=["CPUExecutionProvider"])
            t_plain = timed(lambda: plain.run(None, {"emg": next_window(), "initial_pose": initial}), args.windows)
            rows.append((threads, t_official, t_torch, t_fp32, t_int8, t_plain))
        with torch.no_grad():
            reference = [t.numpy() for t in wrapper(torch.from_numpy(windows[0]), torch.from_numpy(initial))]
        got32 = sessions["fp32"].run(None, {"emg": windows[0], "initial_pose": initial})
        got8 = sessions["int8"].run(None, {"emg": windows[0], "initial_pose": initial})
    print(
        f"machine: {cpu_model()}, {os.cpu_count()} logical cores; onnxruntime {ort.__version__} (intra-op threads as "
        f"listed, inter-op 1), torch {torch.__version__} (torch.set_num_threads as listed)"
    )
    print(
        f"Mode 2 with the official-size vemg2pose (5.97 M params), batch 1, 2-s window; graph {graph['nodes']} nodes, "
        f"loop unrolled: {not graph['has_loop']}"
    )
    print(
        "threads | PyTorch official-style rollout | PyTorch (ours) | ORT fp32 | ORT int8 | fp32 speed-up vs ours | "
        "vs official-style"
    )
    for threads, official, ours, fp32_ms, int8_ms, plain_ms in rows:
        print(
            f"{threads:7d} | {official:10.1f} ms (backbone only) | {ours:8.1f} ms | {fp32_ms:6.1f} ms | "
            f"{int8_ms:6.1f} ms | {ours / fp32_ms:5.1f}× | {official / fp32_ms:5.1f}×   "
            f"(fp32 without ORT graph optimisation: {plain_ms:.1f} ms)"
        )
    top = ", ".join(f"{op} {n}" for op, n in list(graph["ops"].items())[:6])
    print(f"exported graph: {top}, …")
    print(
        f"outputs: fp32 |Δjoints| max {np.abs(got32[1] - reference[1]).max() * 1000:.1e} mm; "
        f"int8 |Δjoints| max {np.abs(got8[1] - reference[1]).max() * 1000:.2f} mm (random weights)"
    )


if __name__ == "__main__":
    main()
