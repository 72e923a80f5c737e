"""Running a trained model over held-out windows with a given tracking initial-state policy.

Policies for the pose the backbone starts from at sample 1,790 of each window:
- `neutral`: all 20 angles zero (flat hand);
- `train_mean`: the mean label-derived initial state of the training windows;
- `feedback`: the model's own earlier estimate — the previous window (1 s earlier) predicted this very
  instant (its backbone output 2,000) — falling back to `train_mean` after a gap; what a device can do;
- `label`: the camera label at that instant (available in training only: an upper bound, not deployable).
"""

from __future__ import annotations

import numpy as np
import torch

from training.data.windows import HOP, SUPERVISED_INDICES, WindowSet
from training.models.mode2_model import FEEDBACK_INDEX, MINDROVE_RATE, N_OUTPUT

POLICIES = ("neutral", "train_mean", "feedback", "label")
DEPLOYABLE = ("neutral", "train_mean", "feedback")
assert HOP * 4 == FEEDBACK_INDEX < N_OUTPUT


@torch.no_grad()
def predict(
    model: torch.nn.Module, windows: WindowSet, policy: str, train_mean: torch.Tensor, batch_size: int = 64
) -> dict[str, np.ndarray]:
    """Predictions at "now" for every window: theta (W,45), joints (W,21,3), confidence (W,)."""
    if policy not in POLICIES:
        raise ValueError(f"unknown initial-state policy {policy!r}; choose from {POLICIES}")
    model.eval()
    now = torch.as_tensor(SUPERVISED_INDICES[-1:])
    if policy != "feedback" or not hasattr(model, "backbone"):
        thetas, joints, confidences = [], [], []
        for start in range(0, len(windows), batch_size):
            sl = slice(start, start + batch_size)
            n = windows.emg[sl].shape[0]
            initial = {
                "neutral": torch.zeros(n, 20),
                "train_mean": train_mean.expand(n, 20),
                "label": windows.initial[sl],
                "feedback": train_mean.expand(n, 20),  # direct model: no state to feed back
            }[policy]
            out = model.forward_trajectory(windows.emg[sl], initial, now)
            thetas.append(out["theta"][:, -1])
            joints.append(out["joints"][:, -1])
            confidences.append(out["confidence"])
        return {
            "theta": torch.cat(thetas).numpy(),
            "joints": torch.cat(joints).numpy(),
            "confidence": torch.cat(confidences).numpy(),
        }
    if windows.chain_emg is not None:
        return _predict_feedback_chained(model, windows, train_mean, now)
    return _predict_feedback(model, windows.emg, windows.session, windows.start_time, train_mean, now)


def _predict_feedback_chained(
    model: torch.nn.Module, windows: WindowSet, train_mean: torch.Tensor, now: torch.Tensor
) -> dict[str, np.ndarray]:
    """`feedback` as the device runs it: the state is carried through every contiguous window, labelled
    or not; the labelled windows' predictions are then picked out."""
    assert windows.chain_session is not None and windows.chain_start_time is not None
    chained = _predict_feedback(
        model, windows.chain_emg, windows.chain_session, windows.chain_start_time, train_mean, now
    )
    where = {
        (int(s), round(float(t), 6)): i
        for i, (s, t) in enumerate(zip(windows.chain_session.tolist(), windows.chain_start_time.tolist(), strict=True))
    }
    index = [where[(int(s), round(float(t), 6))] for s, t in zip(windows.session, windows.start_time, strict=True)]
    return {key: value[index] for key, value in chained.items()}


def _predict_feedback(
    model: torch.nn.Module,
    emg: torch.Tensor,
    session_index: torch.Tensor,
    start_time: torch.Tensor,
    train_mean: torch.Tensor,
    now: torch.Tensor,
) -> dict[str, np.ndarray]:
    """Sessions run in parallel, windows in time order within each session (the state is carried)."""
    order = np.lexsort((start_time.numpy(), session_index.numpy()))
    sessions = session_index.numpy()[order]
    theta = np.zeros((len(emg), 45), np.float32)
    joints = np.zeros((len(emg), 21, 3), np.float32)
    confidence = np.zeros(len(emg), np.float32)
    per_session = [order[sessions == s] for s in np.unique(sessions)]
    positions = [0] * len(per_session)
    carried: list[tuple[float, torch.Tensor] | None] = [None] * len(per_session)
    hop_s = HOP / MINDROVE_RATE
    while any(p < len(idx) for p, idx in zip(positions, per_session, strict=True)):
        batch, lanes, initial = [], [], []
        for lane, idx in enumerate(per_session):
            if positions[lane] >= len(idx):
                continue
            w = idx[positions[lane]]
            previous = carried[lane]
            start = start_time[w].item()
            use_feedback = previous is not None and abs(start - previous[0] - hop_s) < 1e-3
            initial.append(previous[1] if use_feedback else train_mean[0])
            batch.append(w)
            lanes.append(lane)
        index = torch.as_tensor(batch)
        out = model.forward_trajectory(emg[index], torch.stack(initial), now)
        theta[batch] = out["theta"][:, -1].numpy()
        joints[batch] = out["joints"][:, -1].numpy()
        confidence[batch] = out["confidence"].numpy()
        for k, lane in enumerate(lanes):
            carried[lane] = (start_time[batch[k]].item(), out["angles_full"][k, :, FEEDBACK_INDEX])
            positions[lane] += 1
    return {"theta": theta, "joints": joints, "confidence": confidence}


def deployed_policy(meta) -> tuple[str, torch.Tensor]:
    """The initial-state policy a device runs this checkpoint with, and the mean state it starts from:
    the recorded policy for Mode 2 (train_mean when unknown), train_mean for the direct model (no state)."""
    mean = torch.tensor([meta.initial_state_mean or [0.0] * 20], dtype=torch.float32)
    policy = meta.initial_state_policy if meta.initial_state_policy in POLICIES else "train_mean"
    return (policy if meta.kind == "mode2" else "train_mean"), mean
