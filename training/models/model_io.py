"""Mode 2 / direct-baseline checkpoint files: one self-contained file per trained model.

`torch.save(meta.to_dict() | {"state_dict": weights})` with `meta` a `CheckpointMeta` (its layout and
version rule: training/models/checkpoint_meta.py) — plain tensors, numbers and strings only, so it loads
with `weights_only=True`. The frozen backbone's weights are inside
(a trained model never depends on another file), and so are the hand model's arrays (with a MANO file
these are derived from it: keep such checkpoints to yourself, as MANO's licence asks).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from firmware_bridge.atomic_write import atomic_path
from training.hand.params import HandModelParams
from training.models.backbone import BackboneConfig, VEMG2Pose
from training.models.checkpoint_io import CheckpointError, read_checkpoint_safely
from training.models.checkpoint_meta import CheckpointMeta, ModelConfig, hand_from_dict, hand_to_dict
from training.models.direct_model import DirectModel
from training.models.mode2_model import MODE1_MARKER, Mode1Model, Mode2Model

__all__ = [
    "CheckpointMeta",
    "build_model",
    "hand_from_dict",
    "hand_to_dict",
    "load_model_checkpoint",
    "save_model_checkpoint",
]


def mode2_model(backbone: VEMG2Pose, hand: HandModelParams, config: ModelConfig) -> Mode2Model:
    """The Mode 2 (or, for `config.arch` "mode1", Mode 1) model `config` describes, around `backbone`: the one
    place `mode2 train` and the checkpoint reader turn a configuration into a model."""
    model_class = Mode1Model if config.arch == "mode1" else Mode2Model
    return model_class(
        backbone,
        hand,
        adapter_init=config.adapter_init,
        backbone_input_scale=config.backbone_input_scale,
        converter_hidden=config.converter_hidden,
        backbone_finetune=config.backbone_finetune,
        confidence_head=config.confidence_head,
    )


def build_model(meta: CheckpointMeta, *, mode1: bool = False) -> nn.Module:
    """The model `meta` describes; `mode1`: a Mode 2 checkpoint whose weights are Mode 1's (fixed angle map):
    how files written before meta version 4 (which has `config.arch`) are told apart."""
    if meta.kind == "mode2":
        assert meta.backbone is not None  # CheckpointMeta requires it for mode2
        config = meta.config
        if not config.arch:
            config = replace(config, arch="mode1" if mode1 else "mode2")
        return mode2_model(VEMG2Pose(BackboneConfig(**meta.backbone.config)), meta.hand_model, config)
    return DirectModel(meta.hand_model, confidence_head=meta.config.confidence_head)


def save_model_checkpoint(path: str | Path, model: nn.Module, meta: CheckpointMeta) -> Path:
    if meta.kind != model.kind:
        raise ValueError(f"saving a {model.kind} model with the meta of a {meta.kind} model")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    content = meta.to_dict()
    content["state_dict"] = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:  # never leave a half-written "best" checkpoint behind
        torch.save(content, tmp)
    return path


def _finite(tensor: torch.Tensor) -> bool:
    return bool(torch.isfinite(tensor).all())


def load_model_checkpoint(path: str | Path) -> tuple[nn.Module, CheckpointMeta]:
    """Rebuild a Mode 2, Mode 1 or direct model (eval mode) and return it with its metadata (all but the weights)."""
    content = read_checkpoint_safely(path)
    kind = content.get("kind")
    if kind not in ("mode2", "direct"):
        raise CheckpointError(
            f"{path}: not a Mode 2 or direct-baseline checkpoint (kind={kind!r}); "
            "for backbones use `mode2 inspect-checkpoint`"
        )
    meta = CheckpointMeta.from_dict(content, path)  # refuses newer versions, missing and mistyped keys
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
    try:
        model = build_model(meta, mode1=MODE1_MARKER in state)
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(
            f"{path}: incomplete or inconsistent model description (checkpoint meta keys 'hand_model', "
            f"'backbone.config', 'config': {error!r})"
        ) from error
    try:
        model.load_state_dict(content["state_dict"], strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"{path}: weights do not fit the recorded configuration ({error})") from error
    model.eval()
    return model, meta
