"""Reading and checking the metadata of an exported model — without torch (the device has none).

The export writes one JSON document under the `metadata_props` key `mode2`. The runtime refuses a model
whose metadata it cannot honour, and says why.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from firmware_bridge.errors import UserError

METADATA_KEY = "mode2"
METADATA_VERSION = 1
SUPPORTED_POLICIES = ("neutral", "train_mean", "feedback", "none")


class ModelMetadataError(UserError, ValueError):
    """An exported model's metadata is missing or asks for something this runtime cannot do."""


def read_model_metadata(path_or_session: str | Path | Any) -> dict[str, Any]:
    """Metadata dict of an ONNX file (path) or an onnxruntime InferenceSession."""
    if isinstance(path_or_session, str | Path):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(str(path_or_session), options, providers=["CPUExecutionProvider"])
        where = str(path_or_session)
    else:
        session, where = path_or_session, "the model"
    custom = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in custom:
        raise ModelMetadataError(f"{where}: no '{METADATA_KEY}' metadata — not exported by `mode2 export-onnx`")
    try:
        return json.loads(custom[METADATA_KEY])
    except json.JSONDecodeError as error:
        raise ModelMetadataError(f"{where}: '{METADATA_KEY}' metadata is not valid JSON ({error})") from error


def validate_metadata(meta: dict[str, Any], *, channels: int = 8, sampling_rate_hz: float = 500.0) -> None:
    """Raise ModelMetadataError unless this runtime (8 MindRove channels at 500 Hz, µV) can run the model."""
    problems = []
    if meta.get("metadata_version", 0) > METADATA_VERSION:
        problems.append(
            f"metadata version {meta.get('metadata_version')} is newer than this runtime's ({METADATA_VERSION})"
        )
    if meta.get("input", {}).get("channels") != channels:
        problems.append(f"expects {meta.get('input', {}).get('channels')} EMG channels, the armband gives {channels}")
    if meta.get("input", {}).get("sampling_rate_hz") != sampling_rate_hz:
        problems.append(
            f"expects EMG at {meta.get('input', {}).get('sampling_rate_hz')} Hz, the armband gives {sampling_rate_hz}"
        )
    if meta.get("input", {}).get("units") != "uV":
        problems.append(
            f"expects EMG in {meta.get('input', {}).get('units')!r}, the MindRove SDK (≥ 5) gives µV ('uV')"
        )
    if meta.get("initial_state_policy") not in SUPPORTED_POLICIES:
        problems.append(f"initial-state policy {meta.get('initial_state_policy')!r} is not one of {SUPPORTED_POLICIES}")
    if len(meta.get("joint_names", [])) != 21:
        problems.append("joint names missing or not 21")
    if problems:
        raise ModelMetadataError("this runtime cannot honour the model: " + "; ".join(problems))
