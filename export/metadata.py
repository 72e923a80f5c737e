"""The metadata an exported model carries (JSON under `metadata_props['mode2']`), built from the checkpoint."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from runtime.model_metadata import METADATA_VERSION
from training.hand_model import EMG2POSE_ANGLE_NAMES, MANO_JOINT_NAMES
from training.mode2_model import MINDROVE_RATE, WINDOW
from training.windows import HOP


def software_version() -> str:
    try:
        return version("mode2-edge")
    except PackageNotFoundError:
        return "unknown"


def build_metadata(
    meta: dict[str, Any],
    source_sha256: str,
    opset: int,
    parity: dict[str, Any] | None = None,
    quantization: str = "none",
) -> dict[str, Any]:
    training = meta.get("training", {})
    return {
        "metadata_version": METADATA_VERSION,
        "model_kind": meta["kind"],
        "input": {
            "name": "emg",
            "shape": ["batch", 8, WINDOW],
            "channels": 8,
            "channel_order": [f"MindRove EMG {i + 1} (SDK EMG row {i})" for i in range(8)],
            "sampling_rate_hz": MINDROVE_RATE,
            "window_samples": WINDOW,
            "window_seconds": WINDOW / MINDROVE_RATE,
            "recommended_hop_samples": HOP,
            "units": "uV",
            "preprocessing_in_graph": meta.get("normalisation", {}).get("method", ""),
            "normalisation_std_uv": meta.get("normalisation", {}).get("std"),
        },
        "initial_pose_input": {
            "name": "initial_pose",
            "shape": ["batch", 20],
            "units": "rad",
            "angle_names": list(EMG2POSE_ANGLE_NAMES),
            "time": "window sample 447.5 of 1000 (backbone sample 1,790 at 2 kHz)",
            "feedback": "policy 'feedback': pass the previous window's 'feedback_angles' output as this window's "
            "initial_pose when the hop is exactly recommended_hop_samples; otherwise use initial_state_mean",
        },
        "initial_state_policy": meta.get("initial_state_policy", "train_mean"),
        "initial_state_mean": meta.get("initial_state_mean"),
        "initial_state_eval_mpjpe_mm": meta.get("initial_state_eval_mpjpe_mm"),
        "outputs": {
            "theta": {"shape": ["batch", 45], "units": "rad", "meaning": "MANO pose, 15 joints × axis-angle"},
            "joints": {"shape": ["batch", 21, 3], "units": "m", "meaning": "wrist-relative, canonical hand frame"},
            "angles": {"shape": ["batch", 20], "units": "rad", "meaning": "backbone angles at the window's end"},
            "feedback_angles": {
                "shape": ["batch", 20],
                "units": "rad",
                "meaning": "backbone angles at the next window's initial-state instant (1-s hop)",
            },
            "confidence": {
                "shape": ["batch"],
                "units": "probability",
                "meaning": "calibrated P(mean joint error ≤ 20 mm)"
                if meta.get("confidence_calibration")
                else "uncalibrated confidence score in [0,1]",
            },
        },
        "joint_names": list(MANO_JOINT_NAMES),
        "hand_model": meta.get("hand_model", {}).get("source", "") if isinstance(meta.get("hand_model"), dict) else "",
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
        "validation": meta.get("metrics", {}),
        "confidence_calibration": meta.get("confidence_calibration"),
        "backbone": {k: v for k, v in meta.get("backbone", {}).items() if k in ("kind", "sha256", "config")},
        "software_version": software_version(),
        "source_checkpoint_sha256": source_sha256,
        "opset": opset,
        "quantization": quantization,
        "parity": parity,
    }
