"""Pretraining the stand-in vemg2pose backbone on 16-ch 2 kHz recordings in emg2pose's file layout.

Same task as Meta's tracking training (emg2pose-facts.md d): windows of EMG, the ground-truth pose at
sample 1,790 as the initial state, L1 loss on the 20 angles over the predicted span, Adam (lr 1e-3),
gradient clipping 1, channel-rotation augmentation (±1 electrode). Validation is on held-out sessions.
It runs on our synthetic world's `*_2k.h5` files and would run unchanged on Meta's files.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from firmware_bridge.errors import UserError
from training.data.emg2pose_format import read_emg2pose_file
from training.models.backbone import LEFT_CONTEXT, BackboneConfig, VEMG2Pose


@dataclass
class PretrainResult:
    model: VEMG2Pose
    history: list[dict]
    val_mae_deg: float
    input_rms: float
    train_files: list[str]
    val_files: list[str]


def _windows(paths: list[Path], length: int, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    emg_windows, angle_windows = [], []
    for path in paths:
        rec = read_emg2pose_file(path)
        valid = rec.no_ik_failure
        for start in range(0, len(rec.time) - length + 1, stride):
            if not valid[start + LEFT_CONTEXT : start + length].all():
                continue
            emg_windows.append(rec.emg[start : start + length].T)
            angle_windows.append(rec.joint_angles[start : start + length].T)
    if not emg_windows:
        raise UserError(
            f"{', '.join(str(p) for p in paths)}: no {length}-sample window ({length / 2000:g} s at 2 kHz) without "
            "an IK failure"
        )
    return torch.tensor(np.stack(emg_windows)), torch.tensor(np.stack(angle_windows))


def pretrain(
    train_paths: list[Path],
    val_paths: list[Path],
    *,
    config: BackboneConfig,
    epochs: int,
    seed: int = 0,
    batch_size: int = 32,
    window: int = 4000,
    max_minutes: float | None = None,
    progress: bool = True,
) -> PretrainResult:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    train_emg, train_angles = _windows(train_paths, window, window // 2)
    val_emg, val_angles = _windows(val_paths, window, window // 2)
    input_rms = float(train_emg.pow(2).mean().sqrt())
    model = VEMG2Pose(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    history: list[dict] = []
    started = time.monotonic()
    best = (math.inf, None)
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.tensor(rng.permutation(len(train_emg)))
        losses = []
        bar = tqdm(
            range(0, len(order), batch_size), desc=f"pretrain {epoch}/{epochs}", disable=not progress, leave=False
        )
        for start in bar:
            idx = order[start : start + batch_size]
            emg = torch.roll(train_emg[idx], shifts=int(rng.integers(-1, 2)), dims=1)  # band rotation ±1
            emg = emg * float(rng.uniform(0.8, 1.25))
            target = train_angles[idx][..., LEFT_CONTEXT:]
            prediction = model(emg, train_angles[idx][..., LEFT_CONTEXT])
            loss = (prediction - target).abs().mean()
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            losses.append(float(loss))
            bar.set_postfix(loss=f"{loss.item():.4f}")
        val_mae = evaluate_mae(model, val_emg, val_angles)
        history.append(
            {
                "epoch": epoch,
                "train_mae_rad": float(np.mean(losses)),
                "val_mae_rad": val_mae,
                "val_mae_deg": math.degrees(val_mae),
            }
        )
        if progress:
            train_deg, val_deg = math.degrees(np.mean(losses)), math.degrees(val_mae)
            print(f"epoch {epoch:3d}  train MAE {train_deg:6.2f}°  val MAE {val_deg:6.2f}°")
        if val_mae < best[0]:
            best = (val_mae, {k: v.clone() for k, v in model.state_dict().items()})
        if max_minutes is not None and time.monotonic() - started > 60 * max_minutes:
            break
    model.load_state_dict(best[1])
    model.eval()
    return PretrainResult(
        model, history, math.degrees(best[0]), input_rms, [str(p) for p in train_paths], [str(p) for p in val_paths]
    )


@torch.no_grad()
def evaluate_mae(model: VEMG2Pose, emg: torch.Tensor, angles: torch.Tensor, batch_size: int = 64) -> float:
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(emg), batch_size):
        prediction = model(emg[start : start + batch_size], angles[start : start + batch_size, :, LEFT_CONTEXT])
        error = (prediction - angles[start : start + batch_size, :, LEFT_CONTEXT:]).abs()
        total += float(error.sum())
        count += error.numel()
    return total / max(1, count)
