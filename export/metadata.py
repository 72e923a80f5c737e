"""The metadata an exported model carries (JSON under `metadata_props[METADATA_KEY]`), built from the checkpoint.

Names, shapes, rate, window, units and the key come from the model contract (`runtime/model_contract.py`);
the document is checked with `ModelMetadata.parse` before it is written, so the exporter can never write
metadata the runtime would refuse.
"""

from __future__ import annotations

import math
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
from training.hand_model import EMG2POSE_ANGLE_NAMES, MANO_JOINT_NAMES
from training.mode2_model import MINDROVE_RATE, WINDOW
from training.windows import HOP

# the training code keeps its own copies of these numbers; they must be the contract's
assert (WINDOW, MINDROVE_RATE, HOP) == (WINDOW_SAMPLES, SAMPLING_RATE_HZ, RECOMMENDED_HOP_SAMPLES)


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


def _plain(value: Any) -> Any:
    """Tensors/arrays from a checkpoint as JSON lists and numbers."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def build_metadata(
    meta: dict[str, Any],
    source_sha256: str,
    opset: int,
    parity: dict[str, Any] | None = None,
    quantization: str = "none",
) -> dict[str, Any]:
    training = meta.get("training") or {}
    normalisation = meta.get("normalisation") or {}
    hand_model = meta.get("hand_model")
    return {
        "metadata_version": METADATA_VERSION,
        "model_kind": meta.get("kind"),
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
            "preprocessing_in_graph": normalisation.get("method", ""),
            "normalisation_std_uv": _plain(normalisation.get("std")),
        },
        "initial_pose_input": {
            "name": INITIAL_POSE.name,
            "shape": INITIAL_POSE.as_json(),
            "units": "rad",
            "angle_names": list(EMG2POSE_ANGLE_NAMES),
            "time": "window sample 447.5 of 1000 (backbone sample 1,790 at 2 kHz)",
            "feedback": f"policy 'feedback': pass the previous window's '{FEEDBACK_ANGLES.name}' output as this "
            f"window's '{INITIAL_POSE.name}' when the hop is exactly recommended_hop_samples; otherwise use "
            "initial_state_mean",
        },
        "initial_state_policy": meta.get("initial_state_policy", "train_mean"),
        "initial_state_mean": _plain(meta.get("initial_state_mean")),
        "initial_state_eval_mpjpe_mm": meta.get("initial_state_eval_mpjpe_mm"),
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
                if meta.get("confidence_calibration")
                else "uncalibrated confidence score in [0,1]",
            },
        },
        "joint_names": list(MANO_JOINT_NAMES),
        "hand_model": hand_model.get("source", "") if isinstance(hand_model, dict) else "",
        "training_data": {
            k: training.get(k)
            for k in (
                "train_sessions",
                "val_sessions",
                "train_minutes",
                "train_windows",
                "synthetic",
                "seed",
                "command",
            )
        },
        "validation": meta.get("metrics") or {},
        "confidence_calibration": meta.get("confidence_calibration"),
        "backbone": {k: v for k, v in (meta.get("backbone") or {}).items() if k in ("kind", "sha256", "config")},
        "software_version": software_version(),
        "source_checkpoint_sha256": source_sha256,
        "opset": opset,
        "quantization": quantization,
        "parity": parity,
    }
