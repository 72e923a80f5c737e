"""int8 variant: onnxruntime's dynamic quantization (weights int8, activations quantized on the fly)."""

from __future__ import annotations

from pathlib import Path

import onnx
from onnxruntime.quantization import QuantType, quantize_dynamic


def quantize_int8(fp32_path: Path, int8_path: Path) -> Path:
    quantize_dynamic(
        str(fp32_path), str(int8_path), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"]
    )
    model = onnx.load(str(int8_path))
    source = {p.key: p.value for p in onnx.load(str(fp32_path), load_external_data=False).metadata_props}
    del model.metadata_props[:]
    for key, value in source.items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    onnx.save(model, str(int8_path))
    return int8_path
