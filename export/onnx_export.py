"""Checkpoint → one self-contained ONNX file (the model-artifact contract in DESIGN.md).

Inputs `emg` (B,8,1000) raw MindRove µV and `initial_pose` (B,20); outputs `theta` (B,45) rad, `joints`
(B,21,3) m, `angles` (B,20) rad, `confidence` (B,) — already calibrated when the checkpoint carries a
calibration table — and `feedback_angles` (B,20): the backbone's estimate for the instant that becomes
the next window's tracking initial state at the recommended 1-s hop (the "feedback" policy).
Detrending, normalisation, the ×4 upsampling, the 50 Hz rollout and the calibration
are all inside the graph. Exported with the TorchScript exporter at opset 17: the rollout's 55 steps are
unrolled into plain MatMul/Sigmoid/Tanh nodes (no Loop), with the feature half of the first LSTM layer's
input projection already hoisted out of the loop by the model code; onnxruntime's graph optimiser fuses
the rest (`benchmarks/bench_onnx.py` measures it on and off).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import nn

from firmware_bridge.errors import UserError
from runtime.model_contract import BATCH, INPUT_NAMES, INPUTS, METADATA_KEY, OUTPUT_NAMES
from training.models.checkpoint_meta import CheckpointMeta

OPSET = 17
# the opsets this exporter can write the model in: below 12 some ops have no ONNX form (einsum, a
# dynamic Slice, linear upsampling); 20 is the TorchScript exporter's newest
SUPPORTED_OPSETS = range(13, 21)


def check_opset(opset: int) -> int:
    if opset not in SUPPORTED_OPSETS:
        raise UserError(
            f"--opset {opset}: not supported; choose {SUPPORTED_OPSETS.start}–{SUPPORTED_OPSETS.stop - 1} "
            f"(default {OPSET})"
        )
    return opset


class PiecewiseLinear(nn.Module):
    """y = interp(x, knots_x, knots_y) with flat ends, written with clamps so that it exports to ONNX."""

    def __init__(self, knots_x: list[float], knots_y: list[float]) -> None:
        super().__init__()
        x = torch.tensor(knots_x, dtype=torch.float32)
        y = torch.tensor(knots_y, dtype=torch.float32)
        widths = (x[1:] - x[:-1]).clamp_min(1e-12)
        self.register_buffer("x0", x[:-1])
        self.register_buffer("widths", widths)
        self.register_buffer("slopes", (y[1:] - y[:-1]) / widths)
        self.register_buffer("y0", y[:1])

    def forward(self, value: torch.Tensor) -> torch.Tensor:
        steps = torch.minimum(torch.clamp(value[:, None] - self.x0, min=0.0), self.widths)
        return self.y0 + (steps * self.slopes).sum(dim=1)


class ExportWrapper(nn.Module):
    def __init__(self, model: nn.Module, calibration: Mapping[str, Any] | None) -> None:
        super().__init__()
        self.model = model.eval()
        usable = calibration and len(calibration.get("x", [])) >= 2
        self.calibrate = PiecewiseLinear(calibration["x"], calibration["y"]) if usable else None

    def forward(self, emg: torch.Tensor, initial_pose: torch.Tensor) -> tuple[torch.Tensor, ...]:
        theta, joints, angles, confidence, feedback = self.model.forward_with_feedback(emg, initial_pose)
        if self.calibrate is not None:
            confidence = self.calibrate(confidence)
        return theta, joints, angles, confidence, feedback


def export_onnx(
    model: nn.Module, meta: CheckpointMeta, out: Path, metadata: dict[str, Any], opset: int = OPSET
) -> Path:
    """Trace the model once into `out` (a temporary file of the caller's) and attach `metadata`."""
    wrapper = ExportWrapper(model, meta.confidence_calibration)
    example = tuple(torch.zeros(2, *spec.shape[1:]) for spec in INPUTS)
    dynamic = {name: {0: BATCH} for name in (*INPUT_NAMES, *OUTPUT_NAMES)}
    with torch.no_grad():
        torch.onnx.export(
            wrapper,
            example,
            str(out),
            input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES),
            opset_version=opset,
            dynamic_axes=dynamic,
            do_constant_folding=True,
            dynamo=False,
        )
    return write_metadata(out, metadata, full_check=True)


def write_metadata(path: Path, metadata: dict[str, Any], *, full_check: bool = False) -> Path:
    """Replace the file's `mode2` metadata (and only that): the graph and weights are kept as they are."""
    graph = onnx.load(str(path))
    kept = [(p.key, p.value) for p in graph.metadata_props if p.key != METADATA_KEY]
    del graph.metadata_props[:]
    for key, value in kept:
        graph.metadata_props.add(key=key, value=value)
    graph.metadata_props.add(key=METADATA_KEY, value=json.dumps(metadata, allow_nan=False))
    graph.doc_string = f"Mode 2 EMG → hand pose model (mode2-edge); see the '{METADATA_KEY}' metadata and model.md"
    onnx.checker.check_model(graph, full_check=full_check)
    onnx.save(graph, str(path))
    return path


def graph_summary(path: Path) -> dict[str, Any]:
    """What the exporter made of the model: op counts, Loop/Scan presence, size."""
    graph = onnx.load(str(path))
    counts: dict[str, int] = {}
    for node in graph.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return {
        "nodes": len(graph.graph.node),
        "ops": dict(sorted(counts.items(), key=lambda kv: -kv[1])),
        "has_loop": "Loop" in counts or "Scan" in counts,
        "bytes": path.stat().st_size,
        "opset": graph.opset_import[0].version,
    }
