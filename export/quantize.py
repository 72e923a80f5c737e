"""int8 variant: onnxruntime's dynamic quantization (weights int8, activations quantized on the fly).

The quantized file does not inherit the fp32 file's metadata: that document describes the fp32 graph
(its quantization, its parity). The exporter measures the int8 file's own parity and writes its own
document (`quantization: "int8-dynamic"`) with `export.onnx_export.write_metadata`.
"""

from __future__ import annotations

from pathlib import Path

import onnx
from onnxruntime.quantization import QuantType, quantize_dynamic

from runtime.model_contract import INT8_DYNAMIC, METADATA_KEY

QUANTIZATION = INT8_DYNAMIC


def quantize_int8(fp32_path: Path, int8_path: Path) -> Path:
    """Write the quantized graph of `fp32_path` to `int8_path`, without the fp32 file's `mode2` metadata."""
    quantize_dynamic(
        str(fp32_path), str(int8_path), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"]
    )
    model = onnx.load(str(int8_path))
    kept = [(p.key, p.value) for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    for key, value in kept:
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    onnx.save(model, str(int8_path))
    return int8_path
