"""Pretraining the vemg2pose backbone on 16-ch 2 kHz recordings in emg2pose's file layout.

Same task as Meta's tracking training (emg2pose-facts.md d): windows of EMG, the ground-truth pose at
sample 1,790 as the initial state, L1 loss on the 20 angles over the predicted span, Adam (lr 1e-3),
gradient clipping 1, channel-rotation augmentation (±1 electrode). Validation is on held-out files (other
sessions, or other subjects). Windows are streamed from disk (`pretrain_data`), so the corpus may be larger
than RAM; the run is resumable: the data order of epoch e is `rng([seed, e])` and the augmentation of step s
is `rng([seed, e, s])`, so a checkpoint needs only (epoch, step) to continue exactly where it stopped.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from threading import Event
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from firmware_bridge.atomic_write import atomic_path
from firmware_bridge.errors import UserError
from training.data.emg2pose_format import read_emg2pose_file
from training.fitting.pretrain_data import WindowReader, estimate_input_rms, index_windows
from training.models.backbone import LEFT_CONTEXT, BackboneConfig, VEMG2Pose
from training.models.checkpoint_io import CheckpointError

CHECKPOINT_KIND = "pretrain_partial"


@dataclass
class StageLimits:
    """When this stage (process) stops: the run's total limits and this stage's own."""

    max_steps: int | None = None  # total optimizer steps of the whole run (then the run finishes)
    budget_minutes: float | None = None  # total training time of the whole run, across stages
    stage_minutes: float | None = None  # this stage only (then checkpoint and stop)
    stage_steps: int | None = None  # this stage only (tests)
    checkpoint_path: Path | None = None
    checkpoint_every_min: float | None = None
    stop: Event = field(default_factory=Event)  # set by Ctrl-C / SIGTERM


@dataclass
class PretrainResult:
    model: VEMG2Pose
    history: list[dict]
    val_mae_deg: float
    input_rms: float
    train_files: list[str]
    val_files: list[str]
    finished: bool = True
    stopped_because: str = "epochs"
    state: dict[str, Any] = field(default_factory=dict)


def _windows(paths: list[Path], length: int, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All windows in memory (the reference the streaming index must equal; small data sets only)."""
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


@torch.no_grad()
def evaluate_rows(model: VEMG2Pose, reader: WindowReader, rows: np.ndarray, batch_size: int = 32) -> dict[str, float]:
    """MAE (rad) over the predicted span and at its last sample, and the same for holding the initial pose."""
    model.eval()
    sums = dict(span=0.0, last=0.0, hold_span=0.0, hold_last=0.0)
    span_count = last_count = 0
    for start in range(0, len(rows), batch_size):
        emg, angles = (torch.from_numpy(a) for a in reader.read(rows[start : start + batch_size]))
        initial, target = angles[..., LEFT_CONTEXT], angles[..., LEFT_CONTEXT:]
        prediction = model(emg, initial)
        hold = (initial[..., None] - target).abs()
        error = (prediction - target).abs()
        sums["span"] += float(error.sum())
        sums["last"] += float(error[..., -1].sum())
        sums["hold_span"] += float(hold.sum())
        sums["hold_last"] += float(hold[..., -1].sum())
        span_count += error.numel()
        last_count += error[..., -1].numel()
    return {
        "mae_span_rad": sums["span"] / max(1, span_count),
        "mae_last_rad": sums["last"] / max(1, last_count),
        "hold_span_rad": sums["hold_span"] / max(1, span_count),
        "hold_last_rad": sums["hold_last"] / max(1, last_count),
        "windows": len(rows),
    }


def write_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Atomic: a kill at any moment leaves the previous checkpoint or the new one, never a torn file."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def read_checkpoint(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as error:
        raise CheckpointError(f"--resume {path}: no such file") from error
    except Exception as error:  # any unreadable file is the user's input, said in one line
        raise CheckpointError(f"--resume {path}: not a readable pretraining checkpoint ({error})") from error
    if not isinstance(state, dict) or state.get("kind") != CHECKPOINT_KIND:
        raise CheckpointError(f"--resume {path}: not a pretrain-backbone partial checkpoint (*.partial.pth)")
    return state


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
    val_windows: int = 512,
    limits: StageLimits | None = None,
    resume: dict[str, Any] | None = None,
    recipe: dict[str, Any] | None = None,
    subject_holdout: bool = False,
) -> PretrainResult:
    limits = limits or StageLimits(stage_minutes=max_minutes)
    if limits.stage_minutes is None and max_minutes is not None:
        limits.stage_minutes = max_minutes
    train_index = index_windows(list(train_paths), window, window // 2)
    val_index = index_windows(list(val_paths), window, window // 2)
    if subject_holdout:
        shared = sorted(set(train_index.subjects) & set(val_index.subjects))
        if shared:
            raise UserError(f"--val-data: subject(s) {', '.join(shared[:5])} also in --data")
    train_reader, val_reader = WindowReader(train_index), WindowReader(val_index)
    val_subset = np.arange(len(val_index))
    if len(val_index) > val_windows:
        val_subset = np.sort(np.random.default_rng([seed, 11]).choice(len(val_index), val_windows, replace=False))

    torch.manual_seed(seed)
    model = VEMG2Pose(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    if resume is None:
        input_rms, rms_windows = estimate_input_rms(train_reader, seed)
        state: dict[str, Any] = {
            "kind": CHECKPOINT_KIND,
            "recipe": recipe or {},
            "epoch": 1,
            "step": 0,
            "total_steps": 0,
            "loss_sum": 0.0,
            "loss_count": 0,
            "history": [],
            "stage_checks": [],
            "best_val": math.inf,
            "best_state": None,
            "elapsed_s": 0.0,
            "input_rms": input_rms,
            "rms_windows": rms_windows,
            "done": False,
            "stages": [],
        }
    else:
        state = resume
        if state["done"]:
            raise CheckpointError("--resume: this run already finished; its backbone was written at the end")
        if len(train_index) != state["train_windows"] or len(val_index) != state["val_windows"]:
            raise CheckpointError(
                f"--resume: the data changed since the checkpoint ({len(train_index)} training windows now, "
                f"{state['train_windows']} then)"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
    state.update(train_windows=len(train_index), val_windows=len(val_index), val_subset_windows=len(val_subset))

    stage_start, stage_steps, last_checkpoint = time.monotonic(), 0, time.monotonic()
    elapsed_before = float(state["elapsed_s"])

    def elapsed() -> float:
        return elapsed_before + time.monotonic() - stage_start

    def snapshot() -> dict[str, Any]:
        state.update(
            model={k: v.clone() for k, v in model.state_dict().items()},
            optimizer=optimizer.state_dict(),
            torch_rng=torch.get_rng_state(),
            elapsed_s=elapsed(),
        )
        return state

    def conclude(val_mae_rad: float, *, finished: bool) -> PretrainResult:
        """The stage's (or the run's) end: checkpoint, files closed, the result."""
        if limits.checkpoint_path is not None:
            write_checkpoint(limits.checkpoint_path, state)
        train_reader.close()
        val_reader.close()
        return PretrainResult(
            model,
            state["history"],
            math.degrees(val_mae_rad),
            state["input_rms"],
            list(train_index.files),
            list(val_index.files),
            finished=finished,
            stopped_because=reason,
            state=state,
        )

    def validate(entry: dict[str, Any], candidate: bool) -> None:
        result = evaluate_rows(model, val_reader, val_subset)
        entry.update(val_mae_rad=result["mae_span_rad"], val_mae_deg=math.degrees(result["mae_span_rad"]))
        if candidate and result["mae_span_rad"] < state["best_val"]:
            state["best_val"] = result["mae_span_rad"]
            state["best_state"] = {k: v.clone() for k, v in model.state_dict().items()}
        model.train()

    n_batches = math.ceil(len(train_index) / batch_size)
    reason = "epochs"
    stage_ended = False
    while state["epoch"] <= epochs and not stage_ended:
        epoch = state["epoch"]
        order = np.random.default_rng([seed, epoch]).permutation(len(train_index))
        model.train()
        bar = tqdm(
            total=len(train_index),
            initial=min(len(train_index), state["step"] * batch_size),
            desc=f"pretrain epoch {epoch}/{epochs}",
            unit="win",
            disable=not progress,
            leave=False,
        )
        while state["step"] < n_batches:
            if limits.max_steps is not None and state["total_steps"] >= limits.max_steps:
                reason = "max-steps"
            elif limits.budget_minutes is not None and elapsed() >= 60 * limits.budget_minutes:
                reason = "budget-minutes"
            elif limits.stop.is_set():
                reason, stage_ended = "interrupted", True
            elif limits.stage_steps is not None and stage_steps >= limits.stage_steps:
                reason, stage_ended = "stage-steps", True
            elif limits.stage_minutes is not None and time.monotonic() - stage_start >= 60 * limits.stage_minutes:
                reason, stage_ended = "max-minutes", True
            if reason != "epochs":
                break
            rows = order[state["step"] * batch_size : (state["step"] + 1) * batch_size]
            augment = np.random.default_rng([seed, epoch, state["step"]])
            emg_np, angles_np = train_reader.read(rows)
            emg = torch.roll(torch.from_numpy(emg_np), shifts=int(augment.integers(-1, 2)), dims=1)  # band ±1
            emg = emg * float(augment.uniform(0.8, 1.25))
            angles = torch.from_numpy(angles_np)
            prediction = model(emg, angles[..., LEFT_CONTEXT])
            loss = (prediction - angles[..., LEFT_CONTEXT:]).abs().mean()
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            state["loss_sum"] += loss.item()
            state["loss_count"] += 1
            state["step"] += 1
            state["total_steps"] += 1
            stage_steps += 1
            bar.update(len(rows))
            bar.set_postfix(loss=f"{math.degrees(loss.item()):.2f}°")
            if (
                limits.checkpoint_path is not None
                and limits.checkpoint_every_min is not None
                and time.monotonic() - last_checkpoint >= 60 * limits.checkpoint_every_min
            ):
                write_checkpoint(limits.checkpoint_path, snapshot())
                last_checkpoint = time.monotonic()
        bar.close()
        if reason != "epochs":
            break
        entry = {"epoch": epoch, "train_mae_rad": state["loss_sum"] / max(1, state["loss_count"])}
        entry["train_mae_deg"] = math.degrees(entry["train_mae_rad"])
        validate(entry, candidate=True)
        entry.update(steps=state["total_steps"], elapsed_min=elapsed() / 60)
        state["history"].append(entry)
        if progress:
            print(
                f"epoch {epoch:3d}  train MAE {entry['train_mae_deg']:6.2f}°  held-out MAE {entry['val_mae_deg']:6.2f}°"
                f"  ({entry['elapsed_min']:.1f} min)"
            )
        state.update(epoch=epoch + 1, step=0, loss_sum=0.0, loss_count=0)

    if stage_ended:
        check = {"epoch": state["epoch"], "step": state["step"], "steps": state["total_steps"]}
        validate(check, candidate=False)
        check["elapsed_min"] = elapsed() / 60
        state["stage_checks"].append(check)
        if progress:
            print(
                f"stage ends ({reason}) at epoch {state['epoch']} step {state['step']}: "
                f"held-out MAE {check['val_mae_deg']:.2f}° on {len(val_subset)} windows"
            )
        snapshot()
        return conclude(state["best_val"], finished=False)

    if state["step"] > 0 or state["best_state"] is None:  # a partial last epoch still competes for "best"
        entry = {
            "epoch": state["epoch"],
            "partial": True,
            "train_mae_rad": state["loss_sum"] / max(1, state["loss_count"]),
        }
        entry["train_mae_deg"] = math.degrees(entry["train_mae_rad"])
        validate(entry, candidate=True)
        entry.update(steps=state["total_steps"], elapsed_min=elapsed() / 60)
        state["history"].append(entry)
    snapshot()  # state["model"] keeps the last weights; the result carries the best
    model.load_state_dict(state["best_state"])
    final = evaluate_rows(model, val_reader, np.arange(len(val_index)))
    state.update(done=True, stopped_because=reason, heldout=final)
    model.eval()
    return conclude(final["mae_span_rad"], finished=True)


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
