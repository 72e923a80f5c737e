"""Loading a vemg2pose backbone — Meta's official checkpoint or our stand-in — and saying what a file is."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from firmware_bridge.atomic_write import atomic_path
from training.models.backbone import LEFT_CONTEXT, BackboneConfig, VEMG2Pose, count_parameters, default_backbone_path
from training.models.checkpoint_io import CheckpointError, read_checkpoint_safely, sha256_of

WHERE_TO_GET_EMG2POSE = (
    "Meta's tracking_vemg2pose.ckpt is in emg2pose_model_checkpoints.tar.gz, linked from the emg2pose "
    "repository's README (github.com/facebookresearch/emg2pose; CC BY-NC-SA 4.0, non-commercial)"
)


@dataclass(frozen=True)
class BackboneInfo:
    kind: str  # "emg2pose_official" | "standin_backbone"
    config: BackboneConfig
    path: str
    sha256: str
    provenance: dict

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "config": self.config.to_dict(),
            "path": self.path,
            "sha256": self.sha256,
            "provenance": self.provenance,
        }


def _official_state_dict(path: Path, content: dict) -> dict[str, torch.Tensor]:
    state = content["state_dict"]
    if not any(k.startswith("model.") for k in state):
        raise CheckpointError(f"{path}: state_dict has no 'model.' keys — not an emg2pose Lightning checkpoint")
    stripped = {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")}
    head = stripped.get("decoder.mlp_out.1.weight")
    if head is not None and head.shape[0] != 20:
        raise CheckpointError(
            f"{path}: decoder outputs {head.shape[0]} values: this is the regression vemg2pose variant (or another "
            "model); Mode 2 needs the tracking variant (tracking_vemg2pose.ckpt)"
        )
    return stripped


def _load_state(model: VEMG2Pose, state: dict[str, torch.Tensor], path: Path) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: not a vemg2pose tracking network: missing {missing[:3]}{'…' if len(missing) > 3 else ''}, "
            f"unexpected {unexpected[:3]}{'…' if len(unexpected) > 3 else ''}"
        )
    for key, tensor in state.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise CheckpointError(f"{path}: {key}: shape {tuple(tensor.shape)}, expected {tuple(expected[key].shape)}")
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)


def load_backbone(path: str | Path | None = None) -> tuple[VEMG2Pose, BackboneInfo]:
    """The backbone in eval mode with its description; `None` = the shipped stand-in."""
    path = Path(path) if path is not None else default_backbone_path()
    if not path.exists():
        hint = WHERE_TO_GET_EMG2POSE if path != default_backbone_path() else "the shipped stand-in is missing"
        raise CheckpointError(f"{path}: backbone checkpoint not found — {hint}")
    content = read_checkpoint_safely(path)
    if content.get("kind") == "standin_backbone":
        try:
            config = BackboneConfig(**content["config"])
            state, kind, provenance = content["state_dict"], "standin_backbone", dict(content.get("provenance", {}))
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(f"{path}: incomplete stand-in backbone file ({error!r})") from error
    elif "state_dict" in content and "pytorch-lightning_version" in content:
        config = BackboneConfig.official()
        state, kind = _official_state_dict(path, content), "emg2pose_official"
        provenance = {
            "lightning": content.get("pytorch-lightning_version"),
            "epoch": content.get("epoch"),
            "global_step": content.get("global_step"),
        }
    else:
        raise CheckpointError(
            f"{path}: neither an emg2pose Lightning checkpoint nor a stand-in backbone "
            f"(top-level keys: {sorted(content)[:6]})"
        )
    model = VEMG2Pose(config)
    _load_state(model, state, path)
    model.eval()
    return model, BackboneInfo(kind, config, str(path), sha256_of(path), provenance)


def save_standin(path: str | Path, model: VEMG2Pose, provenance: dict[str, Any], half: bool = True) -> Path:
    """Stand-in backbone file: plain tensors and dicts (loads with weights_only=True)."""
    path = Path(path)
    state = {k: (v.half() if half else v).clone() for k, v in model.state_dict().items()}
    content = {
        "kind": "standin_backbone",
        "format_version": 1,
        "config": model.cfg.to_dict(),
        "state_dict": state,
        "provenance": provenance,
    }
    with atomic_path(path) as tmp:
        torch.save(content, tmp)
    return path


def describe_checkpoint(path: str | Path) -> dict[str, Any]:
    """What a checkpoint file is, how big, and what it expects as input."""
    path = Path(path)
    content = read_checkpoint_safely(path)
    kind = content.get("kind")
    info: dict[str, Any] = {"path": str(path), "bytes": path.stat().st_size, "sha256": sha256_of(path)}
    if kind in ("mode2", "direct"):
        state = content.get("state_dict", {})
        info.update(
            kind=f"{kind} model ({'Mode 2 transfer' if kind == 'mode2' else 'direct Conv1D+LSTM baseline'})",
            parameters=sum(v.numel() for v in state.values() if hasattr(v, "numel")),
            tensors=len(state),
            inputs="raw MindRove EMG (B, 8, 1000) µV at 500 Hz (2-s window) + initial pose (B, 20) rad",
            outputs="MANO θ (B,45) rad, joints (B,21,3) m, backbone angles (B,20), confidence (B,)",
            details={k: content[k] for k in ("initial_state_policy", "metrics", "training") if k in content},
        )
        return info
    model, backbone = load_backbone(path)
    info.update(
        kind="emg2pose vemg2pose tracking checkpoint (official Lightning file)"
        if backbone.kind == "emg2pose_official"
        else "stand-in vemg2pose backbone (pretrained on the synthetic 16-ch world)",
        parameters=count_parameters(model),
        tensors=len(model.state_dict()),
        config=backbone.config.to_dict(),
        inputs=f"EMG (B, {backbone.config.in_channels}, T) at 2 kHz, T ≥ {LEFT_CONTEXT + 21} (2-s window: T = 4000), "
        f"raw (not normalised); initial pose (B, 20) rad at sample {LEFT_CONTEXT}",
        outputs=f"(B, 20, T − {LEFT_CONTEXT}) finger angles in radians, emg2pose (UmeTrack) order",
        details=backbone.provenance,
    )
    return info
