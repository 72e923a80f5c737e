"""`mode2 export-onnx`: checkpoint → self-contained ONNX + metadata + model card, parity-checked.

Nothing the user already has is touched until the new files are complete and checked: the model, the
int8 variant and the card are written to hidden temporary files beside their final names
(`firmware_bridge.atomic_write.atomic_path`) and renamed over them only after the parity check passed.
A failed check, a bad argument, an exception or a kill -9 at any moment leaves the previous files as
they were (a kill -9 may leave a hidden `.model.tmp-…` file behind). The model is traced once; after the
parity check only its `metadata_props` are rewritten to carry the measured figures.
"""

from __future__ import annotations

import argparse
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from export.metadata import build_metadata, json_safe
from export.model_card import model_card_path, render_model_card
from export.onnx_export import (
    OPSET,
    SUPPORTED_OPSETS,
    ExportWrapper,
    check_opset,
    export_onnx,
    graph_summary,
    write_metadata,
)
from export.parity import Parity, check_parity, session
from export.quantize import quantize_int8
from export.stream_export import export_stream_graphs, stream_paths, streaming_metadata
from export.stream_parity import check_stream_parity, engine_accuracy
from firmware_bridge.atomic_write import atomic_path, check_writable_file
from firmware_bridge.emg_filter import InputFilter
from firmware_bridge.errors import UserError
from runtime.model_contract import INT8_DYNAMIC, N_ANGLES, STREAM_PARTS, ModelMetadata, ModelMetadataError
from runtime.model_metadata import LoadedModel, StreamGraphs
from training.data.windows import WindowSet, build_windows, input_filter_of, load_sessions
from training.models.checkpoint_io import CheckpointError, sha256_of
from training.models.checkpoint_meta import CheckpointMeta
from training.models.model_io import load_model_checkpoint

PARITY_WINDOWS = 24


class ParityError(UserError):
    """The exported graph does not reproduce the PyTorch model: nothing was written."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True, help="transfer_mode2_best.pth or direct_best.pth")
    parser.add_argument("--out", type=Path, default=Path("model.onnx"), help="the .onnx file to write")
    parser.add_argument(
        "--data",
        nargs="+",
        default=None,
        help="held-out session files for the parity check (default: a small synthetic session)",
    )
    parser.add_argument("--int8", action="store_true", help="also write a dynamically quantized int8 model")
    parser.add_argument(
        "--opset",
        type=int,
        default=OPSET,
        help=f"ONNX opset, {SUPPORTED_OPSETS.start}–{SUPPORTED_OPSETS.stop - 1} (default {OPSET})",
    )


@dataclass
class ParityInputs:
    """The held-out windows both models are run on, and the labels their MPJPE is measured against."""

    emg: torch.Tensor
    initial: torch.Tensor
    target: np.ndarray
    ok: np.ndarray

    def check(self, path: Path, wrapper: nn.Module) -> Parity:
        return check_parity(path, wrapper, self.emg, self.initial, self.target, self.ok)


def load_checkpoint(path: Path) -> tuple[nn.Module, CheckpointMeta]:
    """The model and its metadata; any checkpoint that cannot be rebuilt is a CheckpointError naming it."""
    if path.is_dir():
        raise CheckpointError(f"--checkpoint {path}: is a folder, expected a checkpoint file")
    try:
        model, meta = load_model_checkpoint(path)
    except UserError:
        raise
    except KeyError as error:
        raise CheckpointError(f"{path}: incomplete Mode 2 checkpoint (missing part {error})") from error
    except (TypeError, ValueError, AttributeError, IndexError, RuntimeError) as error:
        detail = " ".join(str(error).split())[:200]
        raise CheckpointError(f"{path}: inconsistent Mode 2 checkpoint ({type(error).__name__}: {detail})") from error
    if getattr(model, "arch", None) == "mode1":
        raise UserError(f"--checkpoint {path}: a Mode 1 checkpoint; Mode 1 is a diagnostic, export Mode 2")
    return model, meta


def check_draft(metadata: dict[str, Any], checkpoint: Path) -> ModelMetadata:
    """The metadata this checkpoint would give, checked before any work (no parity figures yet)."""
    try:
        return ModelMetadata.parse(metadata, f"{checkpoint}: metadata built from this checkpoint", require_parity=False)
    except ModelMetadataError as error:
        raise CheckpointError(str(error)) from error


STREAM_PARITY_SECONDS = 16.0  # of raw EMG run through both engines at each hop


@dataclass
class ParityData:
    windows: WindowSet  # held-out windows, filtered as the model's training was
    raw: np.ndarray  # (n, 8) raw µV of the first session: the stream the engines are compared on
    session_paths: list[Path]  # the sessions the engines' accuracy is measured on


def parity_windows(patterns: list[str] | None, input_filter: InputFilter) -> ParityData:
    if patterns:
        try:
            sessions = load_sessions(patterns)
            windows = build_windows(sessions, input_filter=input_filter)
        except UserError:
            raise
        except (FileNotFoundError, ValueError) as error:
            raise UserError(f"--data: {' '.join(str(error).split())}") from error
        if len(windows) == 0:
            raise UserError(
                f"--data {' '.join(patterns)}: no 2-s window with valid hand labels for the parity check "
                "(sessions shorter than 2 s, or no label passes the filter)"
            )
        if not torch.isfinite(windows.emg).all():
            raise UserError(f"--data {' '.join(patterns)}: EMG has non-finite values")
        return ParityData(windows, _stream(sessions[0].emg_raw), [s.path for s in sessions])
    from training.synth import simulate

    with tempfile.TemporaryDirectory() as tmp:
        paths = simulate(tmp, sessions=1, subjects=1, minutes=0.5, seed=12345, write_2k=False, progress=False)
        sessions = load_sessions([str(paths[0])])
        windows = build_windows(sessions, input_filter=input_filter)
        return ParityData(windows, _stream(sessions[0].emg_raw), [])  # the temporary session is gone after this


def _stream(raw: np.ndarray) -> np.ndarray:
    return np.asarray(raw[: int(STREAM_PARITY_SECONDS * 500)], np.float64)


def _engines_on(path: Path, streams: dict[str, Path], metadata: dict[str, Any]) -> tuple[LoadedModel, StreamGraphs]:
    """The runtime's view of the files just written (temporary names). The graphs are the same whatever the
    policy; `exact` cannot run `feedback`, so such a model is checked from the training mean."""
    policy = "train_mean" if metadata["initial_state_policy"] == "feedback" else metadata["initial_state_policy"]
    parsed = ModelMetadata.parse({**metadata, "initial_state_policy": policy}, str(path), require_parity=False)
    assert parsed.streaming is not None
    model = LoadedModel(session=session(path), meta=parsed, sha256="", path=path)
    return model, StreamGraphs(*(session(streams[part]) for part in STREAM_PARTS), info=parsed.streaming)


def check_streaming(model: LoadedModel, graphs: StreamGraphs, data: ParityData) -> dict[str, Any]:
    """The runtime's exact engine against its windowed engine on the files just written (exit 2 past the
    tolerances), then the streaming engines' held-out accuracy on the --data sessions."""
    results = check_stream_parity(model, graphs, data.raw)
    for result in results:
        print(f"parity exact engine vs windowed ({result.describe()})")
    failed = [r for r in results if not r.passes()]
    if failed:
        raise ParityError(
            "streaming parity failed: the exact engine does not reproduce the windowed model within θ ≤ 1e-4 rad "
            f"and joints ≤ 0.01 mm ({'; '.join(r.describe() for r in failed)}); nothing was written"
        )
    accuracy = engine_accuracy(model, graphs, data.session_paths)
    for name, figures in accuracy.items():
        print(f"held-out MPJPE, engine {name} (hop 40 ms, every labelled hop): {figures['mpjpe_mm']:.2f} mm")
    return {
        "parity": {"stream_seconds": len(data.raw) / 500.0, "hops": [r.to_dict() for r in results]},
        "accuracy": {**accuracy, "sessions": [p.name for p in data.session_paths]},
    }


def parity_inputs(windows: WindowSet, initial_state_mean: tuple[float, ...] | None) -> ParityInputs:
    """Up to PARITY_WINDOWS windows spread over the data, started from the model's training mean."""
    index = torch.as_tensor(np.linspace(0, len(windows) - 1, min(PARITY_WINDOWS, len(windows))).round().astype(int))
    mean = torch.tensor([initial_state_mean or [0.0] * N_ANGLES], dtype=torch.float32)
    return ParityInputs(
        emg=windows.emg[index],
        initial=mean.expand(len(index), N_ANGLES).contiguous(),
        target=windows.joints[index, -1].numpy(),
        ok=windows.mask[index, -1].numpy(),
    )


def check_out(out: Path, checkpoint: Path) -> tuple[Path, Path]:
    """Refuse an --out that cannot be written, before any work. Returns the model card's and the int8 path."""
    if out.is_dir():
        raise UserError(f"--out {out}: is a folder; give the .onnx file to write, e.g. {out / 'model.onnx'}")
    if out.suffix != ".onnx":
        raise UserError(f"--out {out}: the model file name must end in .onnx")
    if out.exists() and checkpoint.exists() and out.resolve() == checkpoint.resolve():
        raise UserError(f"--out {out}: is the checkpoint itself")
    int8 = out.with_name(out.stem + ".int8.onnx")
    card = model_card_path(out)
    for path in (out, int8, card):
        check_writable_file(path, "--out")
    return card, int8


def _finite(parity: Parity, what: str) -> Parity:
    figures = [v for v in parity.to_dict().values() if isinstance(v, float)]
    if not np.all(np.isfinite(figures)):
        raise UserError(
            f"parity check of the {what} model gave non-finite figures ({parity.describe()}): the --data EMG is "
            "probably out of range for this model; nothing was written"
        )
    return parity


def run(args: argparse.Namespace) -> int:
    opset = check_opset(args.opset)
    out: Path = args.out
    card_path, int8_path = check_out(out, args.checkpoint)
    model, meta = load_checkpoint(args.checkpoint)
    source_sha = sha256_of(args.checkpoint)
    draft = build_metadata(meta, source_sha, opset)
    parsed = check_draft(draft, args.checkpoint)
    data = parity_windows(args.data, input_filter_of(meta, args.checkpoint))
    windows = data.windows
    overlap = set(meta.training.train_sessions if meta.training else ()) & set(windows.keys)
    if overlap:
        print(f"note: parity windows include training sessions {sorted(overlap)} (fine for parity, not for accuracy)")
    inputs = parity_inputs(windows, parsed.initial_state_mean)
    wrapper = ExportWrapper(model, meta.confidence_calibration)
    print(f"exporting {parsed.model_kind} model from {args.checkpoint} (opset {opset}) …")
    with ExitStack() as stack:  # entered card, int8, model → renamed model, int8, card, only if all succeeded
        card_tmp = stack.enter_context(atomic_path(card_path))
        int8_tmp = stack.enter_context(atomic_path(int8_path)) if args.int8 else None
        streams = (
            {part: stack.enter_context(atomic_path(p)) for part, p in stream_paths(out).items()}
            if meta.kind == "mode2"
            else {}
        )
        tmp = stack.enter_context(atomic_path(out))
        export_onnx(model, meta, tmp, json_safe(draft), opset)
        parity = _finite(inputs.check(tmp, wrapper), "fp32")
        print(f"parity fp32 vs PyTorch: {parity.describe()}")
        if not parity.passes():
            raise ParityError(
                "parity check failed: the ONNX model does not reproduce PyTorch within θ ≤ 1e-4 rad and joints "
                f"≤ 0.01 mm ({parity.describe()}); nothing was written, {out} is unchanged"
            )
        final = json_safe(build_metadata(meta, source_sha, opset, parity.to_dict()))
        if streams:
            export_stream_graphs(model, meta.confidence_calibration, streams, opset)
            files = {part: (stream_paths(out)[part].name, sha256_of(path)) for part, path in streams.items()}
            final["streaming"] = streaming_metadata(files, final["initial_state_policy"])
            final["streaming"].update(json_safe(check_streaming(*_engines_on(tmp, streams, final), data)))

        ModelMetadata.parse(final, str(out))  # what the runtime will read back
        write_metadata(tmp, final)
        graph = graph_summary(tmp)
        int8 = None
        if int8_tmp is not None:
            quantize_int8(tmp, int8_tmp)
            int8_parity = _finite(inputs.check(int8_tmp, wrapper), "int8")
            print(f"parity int8 vs PyTorch: {int8_parity.describe()}")
            if not int8_parity.passes(int8=True):
                print("⚠ int8 MPJPE differs by more than 2 mm from PyTorch: prefer the fp32 model")
            int8_meta = build_metadata(meta, source_sha, opset, int8_parity.to_dict(), quantization=INT8_DYNAMIC)
            int8_meta["quantized_from"] = {"file": out.name, "sha256": sha256_of(tmp)}
            int8_meta = json_safe(int8_meta)
            ModelMetadata.parse(int8_meta, str(int8_path))
            write_metadata(int8_tmp, int8_meta)
            int8 = (int8_path, int8_meta)
        card_tmp.write_text(render_model_card(out, final, graph, int8), encoding="utf-8")
    written = f" + {int8_path.name}" if args.int8 else ""
    if meta.kind == "mode2":
        written += " + streaming graphs " + ", ".join(p.name for p in stream_paths(out).values())
    print(f"✅ wrote {out} ({graph['bytes'] / 1e6:.1f} MB, {graph['nodes']} nodes){written} and {card_path}")
    return 0
