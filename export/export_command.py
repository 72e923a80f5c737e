"""`mode2 export-onnx`: checkpoint → self-contained ONNX + metadata + model card, parity-checked."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from export.metadata import build_metadata
from export.model_card import write_model_card
from export.onnx_export import OPSET, ExportWrapper, export_onnx, graph_summary
from export.parity import check_parity
from export.quantize import quantize_int8
from training.checkpoint_io import CheckpointError, sha256_of
from training.model_io import load_model_checkpoint
from training.windows import WindowSet, build_windows, load_sessions

PARITY_WINDOWS = 24


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True, help="transfer_mode2_best.pth or direct_best.pth")
    parser.add_argument("--out", type=Path, default=Path("model.onnx"))
    parser.add_argument(
        "--data",
        nargs="+",
        default=None,
        help="held-out session files for the parity check (default: a small synthetic session)",
    )
    parser.add_argument("--int8", action="store_true", help="also write a dynamically quantized int8 model")
    parser.add_argument("--opset", type=int, default=OPSET)


def _parity_windows(patterns: list[str] | None) -> WindowSet:
    if patterns:
        return build_windows(load_sessions(patterns))
    from training.synth import simulate

    with tempfile.TemporaryDirectory() as tmp:
        paths = simulate(tmp, sessions=1, subjects=1, minutes=0.5, seed=12345, write_2k=False, progress=False)
        return build_windows(load_sessions([str(paths[0])]))


def run(args: argparse.Namespace) -> int:
    try:
        model, meta = load_model_checkpoint(args.checkpoint)
    except CheckpointError as error:
        print(f"✗ {error}")
        return 1
    training = meta.get("training", {})
    windows = _parity_windows(args.data)
    overlap = set(training.get("train_sessions", [])) & set(windows.keys)
    if overlap:
        print(f"note: parity windows include training sessions {sorted(overlap)} (fine for parity, not for accuracy)")
    index = torch.as_tensor(np.linspace(0, len(windows) - 1, min(PARITY_WINDOWS, len(windows))).round().astype(int))
    emg = windows.emg[index]
    mean = torch.tensor([meta.get("initial_state_mean") or [0.0] * 20], dtype=torch.float32)
    initial = mean.expand(len(index), 20).contiguous()
    target, ok = windows.joints[index, -1].numpy(), windows.mask[index, -1].numpy()
    source_sha = sha256_of(args.checkpoint)
    metadata = build_metadata(meta, source_sha, args.opset)
    print(f"exporting {meta['kind']} model from {args.checkpoint} (opset {args.opset}) …")
    export_onnx(model, meta, args.out, metadata, args.opset)
    wrapper = ExportWrapper(model, meta.get("confidence_calibration"))
    parity = check_parity(args.out, wrapper, emg, initial, target, ok)
    print(f"parity fp32 vs PyTorch: {parity.describe()}")
    if not parity.passes():
        print(
            "✗ export FAILED: the ONNX model does not reproduce PyTorch within θ ≤ 1e-4 rad and joints ≤ 0.01 mm; "
            f"{args.out} was removed",
            file=sys.stderr,
        )
        args.out.unlink(missing_ok=True)
        return 2
    metadata = build_metadata(meta, source_sha, args.opset, parity.to_dict())
    export_onnx(model, meta, args.out, metadata, args.opset)  # again, now carrying its parity figures
    graph = graph_summary(args.out)
    extra: dict = {}
    if args.int8:
        int8_path = args.out.with_name(args.out.stem + ".int8.onnx")
        quantize_int8(args.out, int8_path)
        int8_parity = check_parity(int8_path, wrapper, emg, initial, target, ok)
        print(f"parity int8 vs PyTorch: {int8_parity.describe()}")
        extra = {"int8": int8_parity.to_dict(), "int8_path": int8_path.name}
        if not int8_parity.passes(int8=True):
            print("⚠ int8 MPJPE differs by more than 2 mm from fp32: prefer the fp32 model", file=sys.stderr)
    card = write_model_card(args.out, metadata, graph, extra)
    print(f"✅ wrote {args.out} ({graph['bytes'] / 1e6:.1f} MB, {graph['nodes']} nodes) and {card}")
    return 0
