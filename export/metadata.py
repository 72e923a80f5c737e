"""The metadata an exported model carries (JSON under `metadata_props[METADATA_KEY]`), built from the checkpoint.

Names, shapes, rate, window, units and the key come from the model contract (`runtime/model_contract.py`);
the document is checked with `ModelMetadata.parse` before it is written, so the exporter can never write
metadata the runtime would refuse.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from runtime.model_contract import (
    ANGLES,
    CHANNELS,
    CONFIDENCE,
    EMG,
    FEEDBACK_ANGLES,
    INITIAL_POSE,
    JOINTS,
    METADATA_VERSION,
    RECOMMENDED_HOP_SAMPLES,
    SAMPLING_RATE_HZ,
    THETA,
    UNITS,
    WINDOW_SAMPLES,
)
from training.data.windows import HOP
from training.hand.angle_map import EMG2POSE_ANGLE_NAMES
from training.hand.skeleton import MANO_JOINT_NAMES
from training.models.checkpoint_meta import BackboneRecord, CheckpointMeta, TrainingRecord
from training.models.mode2_model import MINDROVE_RATE, WINDOW

# the training code keeps its own copies of these numbers; they must be the contract's
assert (WINDOW, MINDROVE_RATE, HOP) == (WINDOW_SAMPLES, SAMPLING_RATE_HZ, RECOMMENDED_HOP_SAMPLES)


CONFIDENCE_HEADS_SAID = {  # the model card quotes it: how the score is made
    "ridge": "linear confidence head fitted in closed form (strongly penalised ridge) on the training windows' errors",
    "mlp": "the seed guide's MLP head, trained with the pose loss",
}


def software_version() -> str:
    try:
        return version("mode2-edge")
    except PackageNotFoundError:
        return "unknown"


def json_safe(value: Any) -> Any:
    """The same document with non-finite floats (not valid JSON) replaced by null; used only after
    `ModelMetadata.parse` has checked every field the runtime relies on."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value


def _list(values: tuple[float, ...] | None) -> list[float] | None:
    return None if values is None else list(values)


def _dict(table: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return None if table is None else dict(table)


_TRAINING_DATA = ("train_sessions", "val_sessions", "train_minutes", "train_windows", "synthetic", "seed", "command")


def _training_data(training: TrainingRecord | None) -> dict[str, Any]:
    """What the exported model tells about its training data (all null when the checkpoint does not say)."""
    record = training.to_dict() if training is not None else {}
    return {key: record.get(key) for key in _TRAINING_DATA}


def _backbone(record: BackboneRecord | None, finetune: str) -> dict[str, Any]:
    """The backbone the model was built around; `finetuned` names the layers trained since (the file whose
    sha256 this is then no longer holds the model's weights: the ONNX file does)."""
    if record is None:
        return {}
    return {"kind": record.kind, "sha256": record.sha256, "config": dict(record.config), "finetuned": finetune}


def build_metadata(
    meta: CheckpointMeta,
    source_sha256: str,
    opset: int,
    parity: dict[str, Any] | None = None,
    quantization: str = "none",
) -> dict[str, Any]:
    normalisation = meta.normalisation
    return {
        "metadata_version": METADATA_VERSION,
        "model_kind": meta.kind,
        "input": {
            "name": EMG.name,
            "shape": EMG.as_json(),
            "channels": CHANNELS,
            "channel_order": [f"MindRove EMG {i + 1} (SDK EMG row {i})" for i in range(CHANNELS)],
            "sampling_rate_hz": SAMPLING_RATE_HZ,
            "window_samples": WINDOW_SAMPLES,
            "window_seconds": WINDOW_SAMPLES / SAMPLING_RATE_HZ,
            "recommended_hop_samples": RECOMMENDED_HOP_SAMPLES,
            "units": UNITS,
            "meaning": "µV after the input filter (input_filter), which the runtime runs on the stream",
            "input_filter": dict(normalisation.input_filter) if normalisation else None,
            "preprocessing_in_graph": "divide by the training std (normalisation_std_uv), causal ×4 upsampling",
            "normalisation_std_uv": list(normalisation.std) if normalisation else None,
        },
        "initial_pose_input": {
            "name": INITIAL_POSE.name,
            "shape": INITIAL_POSE.as_json(),
            "units": "rad",
            "angle_names": list(EMG2POSE_ANGLE_NAMES),
            "time": "window sample 453.9 of 1000 (backbone output 0)",
            "feedback": f"policy 'feedback': pass the previous window's '{FEEDBACK_ANGLES.name}' output as this "
            f"window's '{INITIAL_POSE.name}' when the hop is exactly recommended_hop_samples; otherwise use "
            "initial_state_mean",
        },
        "initial_state_policy": meta.initial_state_policy or "train_mean",
        "initial_state_mean": _list(meta.initial_state_mean),
        "initial_state_eval_mpjpe_mm": _dict(meta.initial_state_eval_mpjpe_mm),
        "outputs": {
            THETA.name: {"shape": THETA.as_json(), "units": "rad", "meaning": "MANO pose, 15 joints × axis-angle"},
            JOINTS.name: {
                "shape": JOINTS.as_json(),
                "units": "m",
                "meaning": "wrist-relative, canonical hand frame",
            },
            ANGLES.name: {"shape": ANGLES.as_json(), "units": "rad", "meaning": "backbone angles at the window's end"},
            FEEDBACK_ANGLES.name: {
                "shape": FEEDBACK_ANGLES.as_json(),
                "units": "rad",
                "meaning": "backbone angles at the next window's initial-state instant (1-s hop)",
            },
            CONFIDENCE.name: {
                "shape": CONFIDENCE.as_json(),
                "units": "probability",
                "meaning": "calibrated P(mean joint error ≤ 20 mm)"
                if meta.confidence_calibration
                else "uncalibrated confidence score in [0,1]",
                "head": CONFIDENCE_HEADS_SAID[meta.config.confidence_head],
            },
        },
        "joint_names": list(MANO_JOINT_NAMES),
        "hand_model": meta.hand_model.source,
        "training_data": _training_data(meta.training),
        "validation": meta.metrics.to_dict() if meta.metrics else {},
        "confidence_calibration": _dict(meta.confidence_calibration),
        "backbone": _backbone(meta.backbone, meta.config.backbone_finetune),
        "software_version": software_version(),
        "source_checkpoint_sha256": source_sha256,
        "opset": opset,
        "quantization": quantization,
        "parity": parity,
    }
