"""Loading an exported model on the device — without torch (the device has none).

`load_model(path)` is the one way the runtime opens a model: it reads the file once, hashes those bytes,
builds one onnxruntime session with explicit providers and thread counts, and refuses (ModelMetadataError,
naming the file) anything that is not a model it can honour — a missing, empty, truncated or non-ONNX
file, metadata that fails `ModelMetadata.parse`, or a graph whose real inputs and outputs do not match
the model contract (`runtime/model_contract.py`) and the metadata it carries.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.model_contract import (
    BATCH,
    INPUTS,
    METADATA_KEY,
    METADATA_VERSION,
    OUTPUTS,
    STREAM_PARTS,
    SUPPORTED_POLICIES,
    ModelMetadata,
    ModelMetadataError,
    StreamingInfo,
    TensorSpec,
)

__all__ = [
    "METADATA_KEY",
    "METADATA_VERSION",
    "SUPPORTED_POLICIES",
    "LoadedModel",
    "ModelMetadataError",
    "StreamGraphs",
    "load_model",
    "load_stream_graphs",
    "read_model_metadata",
    "validate_metadata",
]


@dataclass(frozen=True)
class LoadedModel:
    """One model ready to run: its session, its checked metadata, and which file (and bytes) it came from."""

    session: Any  # onnxruntime.InferenceSession
    meta: ModelMetadata
    sha256: str
    path: Path


def load_model(path: str | Path, *, threads: int = 1) -> LoadedModel:
    """Open an exported model for inference, or raise ModelMetadataError saying what is wrong with it."""
    import onnxruntime as ort

    path = Path(path)
    if threads < 1:
        raise ModelMetadataError(f"{path}: threads must be ≥ 1, got {threads}")
    data = _read_model_bytes(path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own Fail/InvalidProtobuf/RuntimeException types
        detail = " ".join(str(error).split())[:200]
        raise ModelMetadataError(
            f"{path}: not a loadable ONNX model (truncated, damaged or another format?): {detail}"
        ) from error
    meta = ModelMetadata.parse(_metadata_doc(session, str(path)), str(path))
    check_graph(session, str(path))
    return LoadedModel(session=session, meta=meta, sha256=hashlib.sha256(data).hexdigest(), path=path)


def _read_model_bytes(path: Path) -> bytes:
    if path.is_dir():
        raise ModelMetadataError(f"{path}: is a folder, not an .onnx model file")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelMetadataError(f"{path}: no such model file") from None
    except OSError as error:
        raise ModelMetadataError(f"{path}: cannot read the model file ({error.strerror or error})") from error
    if not data:
        raise ModelMetadataError(f"{path}: empty file (0 bytes), not an ONNX model — was the export interrupted?")
    return data


def check_graph(session: Any, where: str) -> None:
    """Refuse a graph whose real inputs/outputs differ from the contract in name, rank, type or fixed size.

    Inputs must match exactly (the batch dimension may be symbolic or fixed, every other dimension fixed);
    outputs may leave non-batch dimensions symbolic (the exporter cannot always infer them), but a fixed
    one must agree."""
    problems = _compare("input", session.get_inputs(), INPUTS, fixed=True)
    problems += _compare("output", session.get_outputs(), OUTPUTS, fixed=False)
    if problems:
        raise ModelMetadataError(
            f"{where}: the graph does not match the model contract its metadata claims — " + "; ".join(problems)
        )


def _compare(kind: str, actual: list[Any], expected: tuple[TensorSpec, ...], *, fixed: bool) -> list[str]:
    problems = []
    by_name = {arg.name: arg for arg in actual}
    wanted = {spec.name for spec in expected}
    for name in sorted(set(by_name) - wanted):
        problems.append(f"unexpected {kind} '{name}'")
    for spec in expected:
        arg = by_name.get(spec.name)
        if arg is None:
            problems.append(f"no {kind} '{spec.name}'")
            continue
        shape = list(arg.shape) if arg.shape is not None else []
        shown = tuple(BATCH if d == BATCH else d for d in shape)
        if arg.type != spec.onnx_type:
            problems.append(f"{kind} '{spec.name}' is {arg.type}, expected {spec.onnx_type}")
        if len(shape) != spec.rank:
            problems.append(f"{kind} '{spec.name}' has shape {shown}, expected {spec.shape}")
            continue
        for axis, (got, want) in enumerate(zip(shape, spec.shape, strict=True)):
            if want == BATCH:
                bad = isinstance(got, int) and got < 1
            elif isinstance(got, int):
                bad = got != want
            else:  # symbolic (or unknown) size
                bad = fixed
            if bad:
                problems.append(f"{kind} '{spec.name}' has shape {shown}, expected {spec.shape} (axis {axis})")
                break
    return problems


def _metadata_doc(session: Any, where: str) -> Any:
    custom = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in custom:
        raise ModelMetadataError(f"{where}: no '{METADATA_KEY}' metadata — not exported by `mode2 export-onnx`")
    try:
        return json.loads(custom[METADATA_KEY])
    except json.JSONDecodeError as error:
        raise ModelMetadataError(f"{where}: '{METADATA_KEY}' metadata is not valid JSON ({error})") from error


def read_model_metadata(path_or_session: str | Path | Any) -> dict[str, Any]:
    """The decoded metadata document of an ONNX file (path; checked by `load_model`) or of an existing
    onnxruntime InferenceSession (not checked — call `validate_metadata` on it)."""
    if isinstance(path_or_session, str | Path):
        return dict(load_model(path_or_session).meta.raw)
    return _metadata_doc(path_or_session, "the model")


def validate_metadata(
    meta: Any, *, channels: int = 8, sampling_rate_hz: float = 500.0, where: str = "the model"
) -> ModelMetadata:
    """Typed metadata, or ModelMetadataError unless this runtime (its armband: `channels` at
    `sampling_rate_hz`, µV) can run the model."""
    parsed = ModelMetadata.parse(meta, where)
    problems = []
    if parsed.channels != channels:
        problems.append(f"expects {parsed.channels} EMG channels, the armband gives {channels}")
    if parsed.sampling_rate_hz != sampling_rate_hz:
        problems.append(f"expects EMG at {parsed.sampling_rate_hz:g} Hz, the armband gives {sampling_rate_hz:g}")
    if problems:
        raise ModelMetadataError(f"{where}: this runtime cannot honour the model: " + "; ".join(problems))
    return parsed


@dataclass(frozen=True)
class StreamGraphs:
    """The streaming graphs of a Mode 2 model (metadata `streaming`), loaded and checked against their sha256."""

    encoder_step: Any  # onnxruntime.InferenceSession
    lstm_step: Any
    head: Any
    info: StreamingInfo


def load_stream_graphs(model: LoadedModel, *, threads: int = 1) -> StreamGraphs:
    """The sibling files the windowed model's metadata names, or ModelMetadataError naming what is wrong."""
    import onnxruntime as ort

    info = model.meta.streaming
    if info is None:
        raise ModelMetadataError(
            f"{model.path}: no streaming graphs (a direct baseline, or exported before streaming existed): "
            "run it with --engine windowed, or re-export it with `mode2 export-onnx`"
        )
    sessions = {}
    for part in STREAM_PARTS:
        entry = info.files[part]
        path = model.path.with_name(entry["file"])
        data = _read_model_bytes(path)
        digest = hashlib.sha256(data).hexdigest()
        if digest != entry["sha256"]:
            raise ModelMetadataError(
                f"{path}: sha256 {digest[:12]}… differs from the {entry['sha256'][:12]}… that {model.path.name} "
                "names: the streaming files do not belong to this model (copy the whole export together)"
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            sessions[part] = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as error:
            raise ModelMetadataError(
                f"{path}: not a loadable ONNX model: {' '.join(str(error).split())[:200]}"
            ) from error
    return StreamGraphs(sessions["encoder_step"], sessions["lstm_step"], sessions["head"], info)
