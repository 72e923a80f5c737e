"""The model bench_streaming.py times: Mode 2 around the OFFICIAL-size vemg2pose (5.97 M parameters, random
fixture weights — fine for timing, meaningless for accuracy), exported with the exporter's own code.

The checkpoint meta is built the way benchmarks/bench_runtime.py builds it, but as today's version 2: the
stream is filtered causally (`normalisation.input_filter` = the default 20-Hz high-pass the trainer uses).
The windowed graph comes from `export.onnx_export.export_onnx` (parity-checked against PyTorch on a few
windows with `export.parity.check_parity`), the streaming graphs from
`export.stream_export.export_stream_graphs`, the int8 variants from `export.quantize.quantize_int8`. The
exact-vs-windowed stream parity that `mode2 export-onnx` also runs is left to the benchmark itself (it runs
both engines on the same stream anyway), so the metadata's `streaming.parity` is null here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO.parent / "shared/fixtures/emg2pose/random_vemg2pose.ckpt"
STD_UV = 50.0  # µV: a plausible training spread for the z-score (as bench_runtime.py)
PARITY_WINDOWS = 4


@dataclass(frozen=True)
class ExportedModel:
    fp32: Path  # the windowed model (its streaming graphs beside it)
    int8: Path  # the windowed model, int8-dynamic
    lstm_step_int8: Path  # the streaming graphs int8-dynamic (not part of the export: for the step timing and
    encoder_step_int8: Path  # the int8 streaming row, a proposal)
    parameters: int  # backbone parameters
    backbone_config: dict
    parity: dict  # fp32 windowed graph vs PyTorch
    torch_model: object  # the Mode2Model (for counting multiply-adds)


def build_official_size(folder: Path, filtered_windows: np.ndarray) -> ExportedModel:
    """Export the official-size model into `folder`; `filtered_windows` (n, 1000, 8) filtered µV are the
    parity-check inputs."""
    import torch

    from export.metadata import build_metadata, json_safe
    from export.onnx_export import OPSET, ExportWrapper, export_onnx, write_metadata
    from export.parity import check_parity
    from export.quantize import quantize_int8
    from export.stream_export import export_stream_graphs, stream_paths, streaming_metadata
    from firmware_bridge.emg_filter import InputFilter
    from runtime.model_contract import ModelMetadata
    from training.hand.open_hand import open_hand_model
    from training.models.backbone_io import load_backbone
    from training.models.checkpoint_io import sha256_of
    from training.models.checkpoint_meta import CheckpointMeta
    from training.models.mode2_model import Mode2Model
    from training.models.model_io import hand_to_dict

    torch.manual_seed(0)
    backbone, info = load_backbone(FIXTURE)
    model = Mode2Model(backbone, open_hand_model(), backbone_input_scale=STD_UV).eval()
    model.preprocess.std.fill_(STD_UV)
    meta = CheckpointMeta.from_dict(
        {
            "format_version": 2,
            "kind": "mode2",
            "hand_model": hand_to_dict(open_hand_model()),
            "config": {"adapter_init": "geometry", "backbone_input_scale": STD_UV},
            "backbone": {"kind": info.kind, "path": info.path, "sha256": info.sha256, "config": info.config.to_dict()},
            "initial_state_policy": "train_mean",
            "initial_state_mean": [0.0] * 20,
            "normalisation": {
                "method": "causal input filter on the stream, then divide by the training std",
                "std": [STD_UV] * 8,
                "units": "µV",
                "input_filter": InputFilter.design(500.0).to_dict(),
            },
            "training": {"command": "benchmarks/bench_streaming.py (random fixture weights)"},
            "metrics": {},
        },
        "benchmarks/streaming_model.py",
    )
    out = folder / "official_size.onnx"
    export_onnx(model, meta, out, json_safe(build_metadata(meta, "0" * 64, OPSET)), OPSET)
    emg = torch.from_numpy(np.ascontiguousarray(filtered_windows[:PARITY_WINDOWS].transpose(0, 2, 1), np.float32))
    initial = torch.zeros(len(emg), 20)
    parity = check_parity(out, ExportWrapper(model, None), emg, initial, None, None)
    paths = stream_paths(out)
    export_stream_graphs(model, None, paths, OPSET)
    final = json_safe(build_metadata(meta, "0" * 64, OPSET, parity.to_dict()))
    files = {part: (path.name, sha256_of(path)) for part, path in paths.items()}
    final["streaming"] = streaming_metadata(files, final["initial_state_policy"])
    ModelMetadata.parse(final, str(out))
    write_metadata(out, final)
    int8 = quantize_int8(out, folder / "official_size.int8.onnx")
    int8_meta = json_safe(build_metadata(meta, "0" * 64, OPSET, parity.to_dict(), quantization="int8-dynamic"))
    write_metadata(int8, int8_meta)
    step_int8 = quantize_int8(paths["lstm_step"], folder / "official_size.lstm_step.int8.onnx")
    encoder_int8 = quantize_int8(paths["encoder_step"], folder / "official_size.encoder_step.int8.onnx")
    return ExportedModel(
        fp32=out,
        int8=int8,
        lstm_step_int8=step_int8,
        encoder_step_int8=encoder_int8,
        parameters=sum(p.numel() for p in backbone.parameters()),
        backbone_config=info.config.to_dict(),
        parity=parity.to_dict(),
        torch_model=model,
    )
