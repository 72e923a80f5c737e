"""The streaming graphs beside the windowed model: `<stem>.encoder_step.onnx`, `<stem>.lstm_step.onnx`,
`<stem>.head.onnx` (training/models/streaming.py says what each computes; runtime/inference.py runs them).

Each is a small fixed graph with a dynamic batch: the encoder step is run once per 40-ms frame and encoder
phase, the LSTM step once per 20-ms rollout step for every rollout in flight at once (batched), the head once
per emitted pose. Their sha256 go into the windowed model's metadata, so the runtime refuses a mismatched set.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import onnx
import torch

from export.onnx_export import PiecewiseLinear
from runtime.model_contract import (
    CARRY_PREFIX,
    CELL,
    CHUNK,
    FEATURE,
    FRAME,
    HEAD_INPUTS,
    HEAD_OUTPUTS,
    HIDDEN,
    NEXT,
    POSE,
    STREAM_PARTS,
)
from training.models.mode2_model import Mode2Model
from training.models.streaming import (
    FRAME_SAMPLES,
    LAST_FRAME_END_BEFORE_NOW,
    N_FRAMES,
    N_STEPS,
    EncoderStep,
    Head,
    LstmStep,
)


def stream_paths(out: Path) -> dict[str, Path]:
    """Where the streaming graphs of the windowed model `out` live: siblings named after it."""
    return {part: out.with_name(f"{out.stem}.{part}.onnx") for part in STREAM_PARTS}


def _export(
    module: torch.nn.Module,
    args: tuple,
    path: Path,
    inputs: list[str],
    outputs: list[str],
    dynamic: dict[str, dict[int, str]],
    opset: int,
    role: str,
) -> None:
    with torch.no_grad():
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=inputs,
            output_names=outputs,
            opset_version=opset,
            dynamic_axes=dynamic,
            do_constant_folding=True,
            dynamo=False,
        )
    graph = onnx.load(str(path))
    graph.doc_string = f"Mode 2 streaming part '{role}' (mode2-edge): see the windowed model's 'streaming' metadata"
    onnx.checker.check_model(graph, full_check=True)
    onnx.save(graph, str(path))


def export_stream_graphs(
    model: Mode2Model, calibration: Mapping[str, Any] | None, paths: Mapping[str, Path], opset: int
) -> None:
    """Write the three streaming graphs to `paths` (temporary files of the caller's)."""
    model = model.eval()
    encoder = EncoderStep(model).eval()
    carry = encoder.zero_carry(2)
    carry_names = [f"{CARRY_PREFIX}{spec.name.removeprefix('carry_')}" for spec in encoder.carry]
    chunk = torch.zeros(2, 8, FRAME_SAMPLES)
    names_in = [CHUNK, *carry_names]
    names_out = [FRAME, *(n + NEXT for n in carry_names)]
    _export(
        encoder,
        (chunk, *carry),
        paths["encoder_step"],
        names_in,
        names_out,
        {n: {0: "batch"} for n in names_in + names_out},
        opset,
        "encoder_step",
    )

    cfg = model.backbone.cfg
    step = LstmStep(model).eval()
    args = (
        torch.zeros(2, cfg.features),
        torch.zeros(2, 20),
        torch.zeros(cfg.layers, 2, cfg.hidden),
        torch.zeros(cfg.layers, 2, cfg.hidden),
    )
    names_in = [FEATURE, POSE, HIDDEN, CELL]
    names_out = [n + NEXT for n in names_in[1:]]
    dynamic = {
        FEATURE: {0: "batch"},
        POSE: {0: "batch"},
        HIDDEN: {1: "batch"},
        CELL: {1: "batch"},
        POSE + NEXT: {0: "batch"},
        HIDDEN + NEXT: {1: "batch"},
        CELL + NEXT: {1: "batch"},
    }
    _export(step, args, paths["lstm_step"], names_in, names_out, dynamic, opset, "lstm_step")

    usable = calibration and len(calibration.get("x", [])) >= 2
    head = Head(model, PiecewiseLinear(calibration["x"], calibration["y"]) if usable else None).eval()
    args = (torch.zeros(2, 20), torch.zeros(2, cfg.features), torch.zeros(2, 8))
    _export(
        head,
        args,
        paths["head"],
        list(HEAD_INPUTS),
        list(HEAD_OUTPUTS),
        {n: {0: "batch"} for n in (*HEAD_INPUTS, *HEAD_OUTPUTS)},
        opset,
        "head",
    )


def streaming_metadata(
    files: Mapping[str, tuple[str, str]],
    policy: str,
    *,
    accuracy: Mapping[str, Any] | None = None,
    parity: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The `streaming` metadata of the windowed model: `files` maps part → (file name, sha256). The `exact`
    engine cannot honour the `feedback` policy (a window's start would wait for a later window)."""
    engines = ["windowed", "continuous"] if policy == "feedback" else ["windowed", "exact", "continuous"]
    return {
        "files": {part: {"file": name, "sha256": sha} for part, (name, sha) in files.items()},
        "frame_samples": FRAME_SAMPLES,
        "frame_end_before_window_end": LAST_FRAME_END_BEFORE_NOW,
        "frames_per_window": N_FRAMES,
        "steps_per_window": N_STEPS,
        "engines": engines,
        # exact equals the trained, validated model at a fraction of windowed's cost; continuous is cheaper still
        # but not equal to it (its held-out accuracy is measured into `accuracy`): a choice the user makes
        "default_engine": "exact" if "exact" in engines else "windowed",
        "hop_rule": "exact and continuous: a hop that is a multiple of 5 samples (10 ms); hops that are not a "
        "multiple of 20 samples (40 ms) run 20/gcd(hop, 20) encoder phases",
        "accuracy": dict(accuracy or {}),
        "parity": dict(parity) if parity else None,
    }
