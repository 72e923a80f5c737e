"""The Mode 2 (and direct-baseline) training loop, as the seed guide describes it.

AdamW (lr 1e-3, wd 1e-4), CosineAnnealingWarmRestarts (T_0 = 20), gradient clipping 1.0,
loss = MSE(θ) + MSE(joints) over the supervised points (joints in decimetres so that 1 cm of error weighs
like 0.1 rad of θ error) + 0.1 × the confidence head's loss (reported apart) for the guide's MLP head; today's
linear head is fitted in closed form (confidence_head_fit.py) after every epoch on that epoch's windows (so every
checkpoint carries a fitted head), then on all training windows with the final model, in the last epoch's model
and in the best file; its loss trains nothing. Validation on held-out
sessions every epoch; best checkpoint by validation loss; periodic checkpoints; resume; data-parallel
under torchrun (gloo on CPU: each rank takes every world-th window, gradients are all-reduced), where
only rank 0 writes.
"""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from tqdm import tqdm

from firmware_bridge.atomic_write import atomic_path, write_text_atomic
from firmware_bridge.errors import UserError
from training.data.windows import SUPERVISED_INDICES, WindowSet
from training.fitting.confidence_head_fit import (
    fit_confidence_head,
    fit_head_on,
    fits_closed_form,
    learns_by_gradient,
)
from training.hand.fk_numpy import forward_kinematics_np
from training.models.checkpoint_meta import CheckpointMeta, ValidationMetrics
from training.models.model_io import save_model_checkpoint
from training.scoring.evaluation import DEPLOYABLE, POLICIES, predict
from training.scoring.figures import save_figure
from training.scoring.metrics import fingertip_errors_mm, flexion_metrics, mpjpe_mm, skill_score

JOINT_UNIT = 10.0  # metres → decimetres in the joint loss
CONFIDENCE_WEIGHT = 0.1


@dataclass
class TrainConfig:
    out: Path
    epochs: int = 100
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    t0: int = 20
    seed: int = 0
    checkpoint_every: int = 10
    max_minutes: float | None = None
    initial_state: str = "auto"
    prefix: str = "transfer_mode2"
    progress: bool = True
    device: str = "cpu"
    # the adapter learns at lr × its weights' scale (Mode2Model.parameter_groups); False: the guide's plain lr
    scale_adapter_lr: bool = True
    # set (by `mode2 train`'s Ctrl-C handler) to stop at the next batch with KeyboardInterrupt
    stop: threading.Event = field(default_factory=threading.Event)


class TrainingDiverged(UserError):
    """The loss became NaN or inf: the message names the epoch and the likely causes."""


@dataclass
class TrainState:
    epoch: int = 0
    best_val_loss: float = math.inf
    history: list[dict[str, Any]] = field(default_factory=list)


def _rank() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def losses(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    indices = torch.as_tensor(SUPERVISED_INDICES)
    out = model.forward_trajectory(batch["emg"], batch["initial"], indices)
    mask = batch["mask"].float()
    weight = mask.sum().clamp_min(1.0)
    theta = ((out["theta"] - batch["theta"]).pow(2).mean(dim=-1) * mask).sum() / weight
    joints = (((out["joints"] - batch["joints"]) * JOINT_UNIT).pow(2).mean(dim=(-1, -2)) * mask).sum() / weight
    with torch.no_grad():
        now_error_mm = (out["joints"][:, -1] - batch["joints"][:, -1]).norm(dim=-1).mean(dim=-1) * 1000.0
    now_ok = batch["mask"][:, -1].float()
    confidence = ((out["log_error"] - torch.log1p(now_error_mm)).pow(2) * now_ok).sum() / now_ok.sum().clamp_min(1)
    # the head's loss is in the objective only to train the head: a closed-form head (confidence_head_fit.py) or a
    # frozen one gets no gradient, and its loss must not reach the pose path through the head's inputs
    confidence_weight = CONFIDENCE_WEIGHT if learns_by_gradient(model) else 0.0
    return {
        "theta": theta,
        "joints": joints,
        "confidence": confidence,
        "total": theta + joints,  # the guide's dual loss; checkpoints are chosen on it
        "objective": theta + joints + confidence_weight * confidence,
        "now_error_mm": now_error_mm,
        "now_joints": out["joints"][:, -1].detach(),
        "now_ok": batch["mask"][:, -1],
        "confidence_input": out["confidence_input"],
    }


def _batch(
    windows: WindowSet, index: torch.Tensor, initial: torch.Tensor, device: torch.device | str = "cpu"
) -> dict[str, torch.Tensor]:
    """The windows stay in (CPU) memory; each batch goes to the training device."""
    return {
        "emg": windows.emg[index].to(device),
        "theta": windows.theta[index].to(device),
        "joints": windows.joints[index].to(device),
        "mask": windows.mask[index].to(device),
        "initial": initial.to(device),
    }


@torch.no_grad()
def validate(
    model: torch.nn.Module, windows: WindowSet, train_mean: torch.Tensor, batch_size: int, device: str = "cpu"
) -> dict[str, float]:
    model.eval()
    sums = {"theta": 0.0, "joints": 0.0, "confidence": 0.0, "total": 0.0}
    errors, predicted = [], []
    n = 0
    for start in range(0, len(windows), batch_size):
        index = torch.arange(start, min(len(windows), start + batch_size))
        result = losses(model, _batch(windows, index, train_mean.expand(len(index), 20), device))
        for key in sums:
            sums[key] += float(result[key]) * len(index)
        errors.append(result["now_error_mm"][result["now_ok"]].cpu())
        predicted.append(result["now_joints"][result["now_ok"]].cpu())
        n += len(index)
    errors_mm = torch.cat(errors).numpy()
    ok = windows.mask[:, -1]
    now_predicted, now_target = torch.cat(predicted).numpy(), windows.joints[:, -1][ok].numpy()
    flexion = flexion_metrics(now_predicted, now_target)
    return {
        **{k: v / max(1, n) for k, v in sums.items()},
        "mpjpe_mean_mm": float(errors_mm.mean()),
        "mpjpe_median_mm": float(np.median(errors_mm)),
        "fingertip_mean_mm": float(fingertip_errors_mm(now_predicted, now_target).mean()),
        "flexion_error_mean_deg": float(np.mean([v["error_deg"] for v in flexion.values()])),
    }


def mean_pose_mpjpe(meta: CheckpointMeta, windows: WindowSet) -> float | None:
    """MPJPE (mm, vs the labels at "now") of always predicting the training labels' mean pose, on `windows`:
    the skill score's reference. None when the meta has no training-label mean θ."""
    if meta.theta_mean is None:
        return None
    ok = windows.mask[:, -1].numpy()
    mean_joints = forward_kinematics_np(meta.hand_model, np.asarray(meta.theta_mean))
    return float(mpjpe_mm(mean_joints[None], windows.joints[:, -1].numpy()[ok]).mean())


def compare_policies(model: torch.nn.Module, windows: WindowSet, train_mean: torch.Tensor) -> dict[str, float]:
    """Held-out MPJPE (mm, vs camera labels at "now") for each initial-state policy."""
    ok = windows.mask[:, -1].numpy()
    target = windows.joints[:, -1].numpy()
    results = {}
    for policy in POLICIES:
        prediction = predict(model, windows, policy, train_mean)
        results[policy] = float(mpjpe_mm(prediction["joints"][ok], target[ok]).mean())
    return results


@dataclass
class _Fit:
    """One training run's moving parts, which `train` steps through epoch by epoch."""

    model: torch.nn.Module
    config: TrainConfig
    parameters: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: Any
    state: TrainState
    rng: np.random.Generator
    train_mean: torch.Tensor  # (1,20) the training windows' mean initial state (the deployable start)
    rank: int
    world: int
    mean_pose_mm: float | None = None  # the mean pose's MPJPE on the validation windows (skill reference)
    started: float = field(default_factory=time.monotonic)

    @property
    def best_path(self) -> Path:
        return self.config.out / f"{self.config.prefix}_best.pth"


def _start(
    model: torch.nn.Module, train_windows: WindowSet, config: TrainConfig, resume: dict[str, Any] | None
) -> _Fit:
    """Seed, optimizer and schedule (restored from `resume` when given); every rank starts from rank 0's weights."""
    rank, world = _rank()
    model.to(config.device)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    train_mean = train_windows.initial.mean(dim=0, keepdim=True)
    parameters = model.trainable_parameters()
    if world > 1:
        for p in parameters:
            dist.broadcast(p.data, src=0)
    groups = (
        model.parameter_groups(config.lr, scale_adapter_lr=config.scale_adapter_lr)
        if hasattr(model, "parameter_groups")
        else parameters
    )
    optimizer = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=config.t0)
    state = TrainState()
    if resume is not None:
        model.load_state_dict(resume["state_dict"])
        try:
            optimizer.load_state_dict(resume["optimizer"])
        except ValueError as error:  # another number or size of parameter groups
            raise UserError(
                f"--resume: the saved optimizer does not fit this run's trainable parts ({error}); resume with the "
                "--adapter-lr and --finetune-backbone options of the run that wrote it"
            ) from error
        scheduler.load_state_dict(resume["scheduler"])
        state = TrainState(resume["epoch"], resume["best_val_loss"], resume["history"])
        rng = np.random.default_rng([config.seed, state.epoch])
    config.out.mkdir(parents=True, exist_ok=True)
    return _Fit(model, config, parameters, optimizer, scheduler, state, rng, train_mean, rank, world)


def _train_epoch(fit: _Fit, train_windows: WindowSet) -> dict[str, float]:
    """One pass over this rank's share of the training windows; returns the mean losses."""
    config, state = fit.config, fit.state
    fit.model.train()
    order = torch.as_tensor(fit.rng.permutation(len(train_windows)))[fit.rank :: fit.world]
    sums = {"theta": 0.0, "joints": 0.0, "confidence": 0.0, "total": 0.0}
    head_inputs: list[torch.Tensor] = []  # the deployable-start windows' head inputs and log errors, for the head
    head_targets: list[torch.Tensor] = []
    bar = tqdm(
        range(0, len(order), config.batch_size),
        desc=f"Epoch {state.epoch}/{config.epochs}",
        disable=not config.progress or fit.rank != 0,
        leave=False,
    )
    for start in bar:
        if config.stop.is_set():
            raise KeyboardInterrupt
        index = order[start : start + config.batch_size]
        # teacher forcing mixed with the deployable start: half the windows start from the label
        # pose at sample 1,790, half from the training mean
        use_label = torch.as_tensor(fit.rng.random(len(index)) < 0.5)[:, None]
        initial = torch.where(use_label, train_windows.initial[index], fit.train_mean.expand(len(index), 20))
        result = losses(fit.model, _batch(train_windows, index, initial, config.device))
        if not torch.isfinite(result["objective"]).all():
            raise TrainingDiverged(_diverged_message(config, state.epoch, "training", train_windows))
        _step(fit, result["objective"])
        deployable = ~use_label[:, 0].to(result["now_ok"].device) & result["now_ok"]
        head_inputs.append(result["confidence_input"][deployable].cpu())
        head_targets.append(torch.log1p(result["now_error_mm"][deployable]).cpu())
        for key in sums:
            sums[key] += float(result[key].detach()) * len(index)
        bar.set_postfix(loss=f"{float(result['total'].detach()):.4f}")
    fit.scheduler.step()
    if fits_closed_form(fit.model) and head_targets:
        # so that every checkpoint written during training (best, periodic, an interrupted run's) carries a fitted
        # head: fitted on this epoch's windows that started from the training mean, as the model was trained on
        # them (free: no extra pass); the end of training refits it on every training window with the final model
        inputs, targets = torch.cat(head_inputs).double(), torch.cat(head_targets).double()
        if bool(torch.isfinite(inputs).all() and torch.isfinite(targets).all()):
            fit_head_on(fit.model, inputs.numpy(), targets.numpy())
    n = max(1, len(order))
    return {k: v / n for k, v in sums.items()}


def _step(fit: _Fit, objective: torch.Tensor) -> None:
    """Backward, average the (few) trainable gradients over data-parallel ranks, clip, update."""
    fit.optimizer.zero_grad()
    objective.backward()
    if fit.world > 1:
        for p in fit.parameters:
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= fit.world
    torch.nn.utils.clip_grad_norm_(fit.parameters, 1.0)
    fit.optimizer.step()


def _validate_epoch(fit: _Fit, val_windows: WindowSet) -> dict[str, float]:
    val = validate(fit.model, val_windows, fit.train_mean, fit.config.batch_size, fit.config.device)
    if not all(math.isfinite(v) for v in val.values()):
        raise TrainingDiverged(_diverged_message(fit.config, fit.state.epoch, "validation", val_windows))
    return val


def _save_epoch(fit: _Fit, meta: CheckpointMeta, val: dict[str, float]) -> None:
    """Rank 0's files after an epoch: the best checkpoint if it improved, the periodic one, resume, curves."""
    config, state = fit.config, fit.state
    epoch_meta = meta.with_(metrics=_metrics(val, state, fit.mean_pose_mm))
    if val["total"] < state.best_val_loss:
        state.best_val_loss = val["total"]
        save_model_checkpoint(fit.best_path, fit.model, epoch_meta)
        print(f"  ✅ Saved best model (val_loss={val['total']:.6f}, MPJPE={val['mpjpe_mean_mm']:.2f}mm)")
    if config.checkpoint_every and state.epoch % config.checkpoint_every == 0:
        save_model_checkpoint(config.out / f"{config.prefix}_epoch{state.epoch}.pth", fit.model, epoch_meta)
    _save_resume(config, fit.model, fit.optimizer, fit.scheduler, state)
    _write_curves(config.out, state.history)


def _out_of_time(fit: _Fit) -> bool:
    limit = fit.config.max_minutes
    if limit is None or time.monotonic() - fit.started <= 60 * limit:
        return False
    if fit.rank == 0:
        print(f"stopping after {fit.state.epoch} epochs: --max-minutes {limit} reached")
    return True


def train(
    model: torch.nn.Module,
    train_windows: WindowSet,
    val_windows: WindowSet,
    config: TrainConfig,
    meta: CheckpointMeta,
    resume: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train `model` (its trainable part) and write its checkpoints; returns the run's summary (metrics.json)."""
    fit = _start(model, train_windows, config, resume)
    meta = meta.with_(initial_state_mean=tuple(fit.train_mean[0].tolist()))
    fit.mean_pose_mm = mean_pose_mpjpe(meta, val_windows)
    while fit.state.epoch < config.epochs:
        fit.state.epoch += 1
        train_losses = _train_epoch(fit, train_windows)
        val = _validate_epoch(fit, val_windows)
        lr = fit.optimizer.param_groups[0]["lr"]
        seconds = time.monotonic() - fit.started
        fit.state.history.append(
            {"epoch": fit.state.epoch, "train": train_losses, "val": val, "lr": lr, "seconds": seconds}
        )
        if fit.rank == 0:
            _log_epoch(fit.state.epoch, config.epochs, train_losses, val, lr)
            _save_epoch(fit, meta, val)
        if _out_of_time(fit):
            break
    result = {
        "best_path": str(fit.best_path),
        "history": fit.state.history,
        "epochs_run": fit.state.epoch,
        "best_val_loss": fit.state.best_val_loss,
        "mean_pose_mpjpe_mm": fit.mean_pose_mm,
    }
    if fit.rank == 0:
        if not fit.best_path.exists():
            raise UserError(f"{fit.best_path}: no best checkpoint was written (no epoch finished with a finite loss)")
        # the caller's `model` (the last epoch's weights) gets its head fitted too, like the best file's
        fit_confidence_head(model, train_windows, fit.train_mean, config.batch_size)
        result.update(_finish(fit.best_path, train_windows, val_windows, fit.train_mean.cpu(), config))
        write_text_atomic(config.out / "metrics.json", json.dumps(_json_safe(result), indent=1))
    return result


def _diverged_message(config: TrainConfig, epoch: int, phase: str, windows: WindowSet) -> str:
    peak = float(windows.emg.abs().max()) if len(windows) else 0.0
    causes = [f"--lr {config.lr:g} too high (try 10× lower)"]
    if peak > 1e5:
        causes.insert(0, f"EMG values up to {peak:.3g} µV in the {phase} sessions (wrong units or corrupted data?)")
    kept = f"; checkpoints of earlier epochs in {config.out} are intact" if epoch > 1 else ""
    return (
        f"the {phase} loss became NaN or inf in epoch {epoch}; training stopped. Likely cause: "
        + " or ".join(causes)
        + kept
    )


def _metrics(val: dict[str, float], state: TrainState, mean_pose_mm: float | None) -> ValidationMetrics:
    return ValidationMetrics(
        val_mpjpe_mm=val["mpjpe_mean_mm"],
        val_mpjpe_median_mm=val["mpjpe_median_mm"],
        val_loss=val["total"],
        epoch=state.epoch,
        val_fingertip_mm=val["fingertip_mean_mm"],
        val_flexion_error_deg=val["flexion_error_mean_deg"],
        val_mean_pose_mpjpe_mm=mean_pose_mm,
        val_skill=skill_score(val["mpjpe_mean_mm"], mean_pose_mm),
    )


def _finish(
    best_path: Path, train_windows: WindowSet, val_windows: WindowSet, train_mean: torch.Tensor, config: TrainConfig
) -> dict[str, Any]:
    """Fit the best file's closed-form confidence head on the training windows, pick the initial-state policy
    by measurement on the held-out sessions, and record both in the best file."""
    from training.models.model_io import load_model_checkpoint

    model, meta = load_model_checkpoint(best_path)
    head_fit = fit_confidence_head(model, train_windows, train_mean, config.batch_size)
    if head_fit is not None:
        print(
            f"confidence head: linear, fitted in closed form on {head_fit.windows} training windows "
            "(the training loss does not train it)"
        )
    if meta.kind != "mode2":
        save_model_checkpoint(best_path, model, meta.with_(initial_state_policy="none"))
        return {"initial_state_policy": "none"}
    measured = compare_policies(model, val_windows, train_mean)
    chosen = min(DEPLOYABLE, key=lambda p: measured[p]) if config.initial_state == "auto" else config.initial_state
    save_model_checkpoint(
        best_path, model, meta.with_(initial_state_policy=chosen, initial_state_eval_mpjpe_mm=measured)
    )
    print(
        "initial-state policy (held-out MPJPE vs camera labels): "
        + ", ".join(f"{p} {v:.2f} mm" for p, v in measured.items())
        + f" → {chosen}"
    )
    return {"initial_state_policy": chosen, "initial_state_eval_mpjpe_mm": measured}


def _log_epoch(epoch: int, total: int, train: dict[str, float], val: dict[str, float], lr: float) -> None:
    print(f"Epoch {epoch}/{total}")
    print(
        f"  Train Loss: {train['total']:.6f} (θ: {train['theta']:.6f}, joints: {train['joints']:.6f}, "
        f"confidence: {train['confidence']:.4f})"
    )
    print(
        f"  Val Loss:   {val['total']:.6f} (θ: {val['theta']:.6f}, joints: {val['joints']:.6f}, "
        f"confidence: {val['confidence']:.4f})"
    )
    print(
        f"  Val MPJPE:  {val['mpjpe_mean_mm']:.2f}mm (median: {val['mpjpe_median_mm']:.2f}mm; fingertips "
        f"{val['fingertip_mean_mm']:.2f}mm; flexion error {val['flexion_error_mean_deg']:.1f}°)"
    )
    print(f"  LR:         {lr:.6f}", flush=True)


def _save_resume(
    config: TrainConfig, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, state: TrainState
) -> None:
    path = config.out / f"{config.prefix}_last.pth"
    content = {
        "kind": "resume",
        "arch": config.prefix,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "epoch": state.epoch,
        "best_val_loss": state.best_val_loss,
        "history": state.history,
    }
    with atomic_path(path) as tmp:
        torch.save(content, tmp)


def _write_curves(out: Path, history: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for key, style in (("total", "-"), ("theta", "--"), ("joints", ":")):
        axes[0].plot(epochs, [h["train"][key] for h in history], "b" + style, label=f"train {key}")
        axes[0].plot(epochs, [h["val"][key] for h in history], "r" + style, label=f"val {key}")
    axes[0].set_yscale("log")
    axes[0].set_title("loss")
    axes[0].legend(fontsize=7)
    axes[1].plot(epochs, [h["val"]["mpjpe_mean_mm"] for h in history], label="mean")
    axes[1].plot(epochs, [h["val"]["mpjpe_median_mm"] for h in history], label="median")
    axes[1].axhline(15, color="g", ls="--", lw=0.8, label="15 mm (guide's target)")
    axes[1].set_title("held-out MPJPE (mm, vs camera labels)")
    axes[1].legend(fontsize=7)
    axes[2].plot(epochs, [h["lr"] for h in history])
    axes[2].set_title("learning rate")
    for ax in axes:
        ax.set_xlabel("epoch")
    save_figure(fig, out / "training_curves.png")


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    return float(value)
