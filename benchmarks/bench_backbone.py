"""Mode 2 training throughput, measured side by side in one run.

For the shipped stand-in backbone and for the official-size vemg2pose (fixture weights): forward+backward
per training batch of the Mode 2 model (gradients through the frozen backbone into the adapter, batch 32,
dense supervision), as windows/s, the time of one epoch on 20 minutes of data (1,200 windows at the
guide's 50 % overlap) and of 100 epochs; plus the official-style reference (the backbone's per-step
nn.LSTM loop, weights frozen) for the same batch.
Run: `python benchmarks/bench_backbone.py [--threads 2] [--batches 3]`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_onnx import FIXTURE, official_style_forward
from training.data.windows import SUPERVISED_INDICES
from training.hand.open_hand import open_hand_model
from training.models.backbone_io import load_backbone
from training.models.mode2_model import Mode2Model

WINDOWS_PER_EPOCH = 1200  # 20 min of data, 2-s windows, 1-s hop


def step_seconds(fn, batches: int) -> float:
    fn()
    started = time.perf_counter()
    for _ in range(batches):
        fn()
    return (time.perf_counter() - started) / batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    emg = torch.randn(args.batch_size, 8, 1000) * 60 + 2e5
    initial = torch.zeros(args.batch_size, 20)
    indices = torch.as_tensor(SUPERVISED_INDICES)
    rows = []
    for label, path in (("stand-in (0.40 M)", None), ("official size (5.97 M)", FIXTURE)):
        backbone, _ = load_backbone(path)
        model = Mode2Model(backbone, open_hand_model(), backbone_input_scale=50.0).train()
        optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=1e-3)

        def train_step() -> None:
            out = model.forward_trajectory(emg, initial, indices)
            loss = out["theta"].pow(2).mean() + out["joints"].pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        x16 = torch.randn(args.batch_size, 16, 4000, requires_grad=True)

        def reference_step() -> None:
            official_style_forward(backbone, x16, initial).pow(2).mean().backward()

        ours = step_seconds(train_step, args.batches)
        reference = step_seconds(reference_step, args.batches)
        rows.append((label, ours, reference))
    print(
        f"Mode 2 training, batch {args.batch_size}, {args.threads} threads, "
        "forward+backward through the frozen backbone"
    )
    print("backbone | ours: ms/window | windows/s | epoch on 20 min | 100 epochs | official-style ms/window | ratio")
    for label, ours, reference in rows:
        per_window = ours / args.batch_size
        epoch = per_window * WINDOWS_PER_EPOCH
        print(
            f"{label:22s} | {per_window * 1000:8.1f} | {1 / per_window:8.1f} | {epoch:7.1f} s | "
            f"{epoch * 100 / 3600:5.2f} h | {reference / args.batch_size * 1000:8.1f} | "
            f"{reference / ours:4.1f}× faster"
        )


if __name__ == "__main__":
    main()
