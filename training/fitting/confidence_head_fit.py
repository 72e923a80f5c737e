"""The confidence head fitted in closed form: a heavily penalised ridge regression of log(1 + error in mm) on
the head's inputs, over the training windows with the deployed initial state, then rescaled so that its
predictions have the errors' spread.

Why not gradient training with the pose loss (the seed guide's head, `--confidence-head mlp`): the head has
one target per window — 45 of them in a minute of data — for ~100 inputs, and an MLP learned them by heart:
on held-out sessions it ranked the frames over 20 mm worse (AUROC) than a linear score with strong
shrinkage did. Measured on the synthetic world (3 new subjects, stand-in backbone, Mode 2's defaults, paired per
subject; README, "Confidence"): mean AUROC 0.75 / 0.79 / 0.76 / 0.75 / 0.80 → 0.79 / 0.83 / 0.81 / 0.81 / 0.84 at
1 / 2 / 5 / 10 / 20 minutes, MPJPE within ±0.1 mm.

Why the penalty is so strong: on those runs AUROC rose with the penalty up to ~1,000 (in units of one
standardised window) and stayed flat beyond it, where the ridge direction is close to each input's covariance
with the error. Such a direction predicts the errors' ranking but shrinks their spread, so the score is then
rescaled by least squares on the same windows (a monotone map: the ranking is unchanged, the raw confidence
keeps its meaning of "predicted error below 20 mm" for an uncalibrated gate).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from training.data.windows import SUPERVISED_INDICES, WindowSet
from training.scoring.metrics import mpjpe_mm

RIDGE_PENALTY = 1000.0  # in units of one standardised window (Z'Z has n on its diagonal)
MIN_WINDOWS = 2  # fewer labelled windows than this leave the head as it was


@dataclass(frozen=True)
class LinearFit:
    """log(1 + error mm) ≈ x @ weight + bias in the head's raw input units, and what it was fitted on."""

    weight: np.ndarray  # (n_in,)
    bias: float
    windows: int


def ridge_then_rescale(inputs: np.ndarray, targets: np.ndarray, penalty: float = RIDGE_PENALTY) -> LinearFit:
    """Ridge on standardised inputs (the intercept unpenalised), then least squares of the targets on the
    ridge score; folded back into one linear map of the raw inputs."""
    x = np.asarray(inputs, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"inputs (N, n_in) and targets (N,) expected, got {x.shape} and {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("the confidence head's inputs or targets are not finite")
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale = np.where(scale > 1e-8, scale, 1.0)  # a constant input carries no information: weight 0 after centring
    z = (x - mean) / scale
    y_mean = float(y.mean())
    direction = np.linalg.solve(z.T @ z + penalty * np.eye(z.shape[1]), z.T @ (y - y_mean))
    score = z @ direction
    spread = float(score @ score)
    gain = float(score @ (y - y_mean)) / spread if spread > 1e-12 else 0.0
    weight = gain * direction / scale
    return LinearFit(weight=weight, bias=y_mean - float(weight @ mean), windows=len(y))


@torch.no_grad()
def head_inputs_and_targets(
    model: torch.nn.Module, windows: WindowSet, initial: torch.Tensor, batch_size: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """The head's inputs at "now" and log(1 + MPJPE at "now" in mm) for every labelled window, the model run
    in eval mode from `initial` (1,20) — the deployed start."""
    model.eval()
    device = next(model.parameters()).device
    now = torch.as_tensor(SUPERVISED_INDICES[-1:])
    inputs, targets = [], []
    for start in range(0, len(windows), batch_size):
        sl = slice(start, start + batch_size)
        emg = windows.emg[sl].to(device)
        out = model.forward_trajectory(emg, initial.to(device).expand(emg.shape[0], 20), now)
        ok = windows.mask[sl, -1].numpy()
        error_mm = mpjpe_mm(out["joints"][:, -1].cpu().numpy(), windows.joints[sl, -1].numpy())
        inputs.append(out["confidence_input"].cpu().double().numpy()[ok])
        targets.append(np.log1p(error_mm[ok].astype(np.float64)))
    return np.concatenate(inputs), np.concatenate(targets)


def fit_confidence_head(
    model: torch.nn.Module, windows: WindowSet, initial: torch.Tensor, batch_size: int = 64
) -> LinearFit | None:
    """Fit `model`'s closed-form confidence head on `windows` (in place); None when the model's head is not
    fitted this way (the MLP head, Mode 1's frozen head) or there are too few labelled windows."""
    if not fits_closed_form(model):
        return None
    inputs, targets = head_inputs_and_targets(model, windows, initial, batch_size)
    return fit_head_on(model, inputs, targets)


def fits_closed_form(model: torch.nn.Module) -> bool:
    """Whether `model`'s confidence head is fitted here (not the MLP head, not Mode 1's frozen head)."""
    head = getattr(model, "confidence_head", None)
    return bool(getattr(head, "closed_form", False)) and getattr(model, "fits_confidence", True)


def learns_by_gradient(model: torch.nn.Module) -> bool:
    """Whether `model`'s confidence head is trained with the pose loss (the guide's MLP head; not a closed-form
    head, not Mode 1's frozen one)."""
    return any(p.requires_grad for p in model.confidence_head.parameters())


def fit_head_on(model: torch.nn.Module, inputs: np.ndarray, targets: np.ndarray) -> LinearFit | None:
    """Fit `model`'s closed-form head on given head inputs and log(1 + error mm) targets (in place); None when
    the head is not fitted this way or there are too few windows (the head is then left as it was)."""
    if not fits_closed_form(model) or len(targets) < MIN_WINDOWS:
        return None
    fit = ridge_then_rescale(inputs, targets)
    model.confidence_head.set_linear(fit.weight, fit.bias)
    return fit
