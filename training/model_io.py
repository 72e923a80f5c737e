"""Mode 2 / direct-baseline checkpoint files: one self-contained file per trained model.

`torch.save(dict(kind, format_version, config, state_dict, normalisation, initial_state_policy,
initial_state_mean, hand_model, backbone, training, metrics, confidence_calibration))` — plain tensors,
numbers and strings only, so it loads with `weights_only=True`. The frozen backbone's weights are inside
(a trained model never depends on another file), and so are the hand model's arrays (with a MANO file
these are derived from it: keep such checkpoints to yourself, as MANO's licence asks).
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from firmware_bridge.atomic_write import atomic_path
from training.backbone import BackboneConfig, VEMG2Pose
from training.checkpoint_io import CheckpointError, read_checkpoint_safely
from training.direct_model import DirectModel
from training.hand_model import HandModelParams
from training.mode2_model import Mode2Model

FORMAT_VERSION = 1


def hand_to_dict(params: HandModelParams) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(params):
        value = getattr(params, f.name)
        out[f.name] = torch.as_tensor(value) if isinstance(value, np.ndarray) else value
    return out


def hand_from_dict(data: dict[str, Any]) -> HandModelParams:
    values = {k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in data.items()}
    return HandModelParams(**values)


def build_model(meta: dict[str, Any]) -> nn.Module:
    hand = hand_from_dict(meta["hand_model"])
    if meta["kind"] == "mode2":
        backbone = VEMG2Pose(BackboneConfig(**meta["backbone"]["config"]))
        return Mode2Model(
            backbone,
            hand,
            adapter_init=meta["config"].get("adapter_init", "geometry"),
            backbone_input_scale=meta["config"].get("backbone_input_scale", 1.0),
        )
    if meta["kind"] == "direct":
        return DirectModel(hand)
    raise CheckpointError(f"unknown model kind {meta['kind']!r}")


def save_model_checkpoint(path: str | Path, model: nn.Module, meta: dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    content = dict(meta)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    content.update(kind=model.kind, format_version=FORMAT_VERSION, state_dict=state)
    with atomic_path(path) as tmp:  # never leave a half-written "best" checkpoint behind
        torch.save(content, tmp)
    return path


def _finite(tensor: torch.Tensor) -> bool:
    return bool(torch.isfinite(tensor).all())


def load_model_checkpoint(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a Mode 2 or direct model (eval mode) and return it with its metadata (all but the weights)."""
    content = read_checkpoint_safely(path)
    kind = content.get("kind")
    if kind not in ("mode2", "direct"):
        raise CheckpointError(
            f"{path}: not a Mode 2 or direct-baseline checkpoint (kind={kind!r}); "
            "for backbones use `mode2 inspect-checkpoint`"
        )
    if content.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: written by a newer version (format {content['format_version']})")
    state = content.get("state_dict")
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: no state_dict (weights) in this checkpoint")
    bad = [
        k for k, v in state.items() if isinstance(v, torch.Tensor) and v.is_floating_point() and not v.isfinite().all()
    ]
    if bad:
        raise CheckpointError(
            f"{path}: weights contain NaN or inf ({len(bad)} tensors, e.g. {bad[0]}): the training run that "
            "wrote it diverged; use an earlier checkpoint or retrain"
        )
    meta = {k: v for k, v in content.items() if k != "state_dict"}
    try:
        model = build_model(meta)
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: incomplete or inconsistent model description ({error!r})") from error
    try:
        model.load_state_dict(content["state_dict"], strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"{path}: weights do not fit the recorded configuration ({error})") from error
    model.eval()
    return model, meta
