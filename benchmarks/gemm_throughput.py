"""Single-core fp32 GEMM throughput here (numpy and onnxruntime), and the published Raspberry Pi 4 figures the
Pi-4-class estimate of bench_streaming.py scales by.

Published figures (each with its source, printed with the estimate):
- compute: HPL (Linpack, OpenBLAS 0.3.5–0.3.7, Debian arm64) on ONE core of a Raspberry Pi 4 (Cortex-A72 at
  1.5 GHz): 4.8 GFLOP/s in fp64 — https://github.com/OpenMathLib/OpenBLAS/issues/2230 (2019). fp32 is taken as
  2× that (a 128-bit NEON register holds 4 fp32 against 2 fp64; the A72 issues one 128-bit FMA per cycle
  either way): 9.6 GFLOP/s, 80 % of the core's 12 GFLOP/s fp32 peak (8 flop/cycle × 1.5 GHz).
- memory: STREAM (single-threaded C, gcc -O3) on a Pi 4: copy 5.5 GB/s, triad 4.8 GB/s —
  https://www.sci-pi.org.uk/bench/stream.html.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

PI4_FP64_GFLOPS_1CORE = 4.8
PI4_FP32_GFLOPS_1CORE = 2 * PI4_FP64_GFLOPS_1CORE
PI4_STREAM_GBPS = 5.5
PI4_SOURCES = (
    "Pi 4 (Cortex-A72 @ 1.5 GHz) one core: HPL 4.8 GFLOP/s fp64 (OpenBLAS; github.com/OpenMathLib/OpenBLAS/"
    "issues/2230), fp32 taken as 2× = 9.6 GFLOP/s (4 vs 2 lanes per 128-bit NEON FMA); STREAM copy 5.5 GB/s "
    "(www.sci-pi.org.uk/bench/stream.html)"
)


@dataclass(frozen=True)
class GemmFigure:
    library: str
    shape: str  # "B×K @ K×N (+ …)"
    gflops: float
    ms: float


def _timed(fn, repeats: int) -> float:
    fn()
    samples = []
    for _ in range(repeats):
        started = time.process_time()
        fn()
        samples.append(time.process_time() - started)
    return statistics.median(samples)


def _ort_matmul(weights: list[np.ndarray], threads: int):
    """An onnxruntime session computing X_k @ W_k for each weight (the weights as initializers)."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    nodes, inputs, outputs, inits = [], [], [], []
    for k, w in enumerate(weights):
        inputs.append(helper.make_tensor_value_info(f"x{k}", TensorProto.FLOAT, ["b", w.shape[0]]))
        outputs.append(helper.make_tensor_value_info(f"y{k}", TensorProto.FLOAT, ["b", w.shape[1]]))
        inits.append(numpy_helper.from_array(w, f"w{k}"))
        nodes.append(helper.make_node("MatMul", [f"x{k}", f"w{k}"], [f"y{k}"]))
    graph = helper.make_graph(nodes, "gemm", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gemm.onnx"
        onnx.save(model, str(path))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def measure_gemm(lstm_shapes: list[tuple[int, int]], batches: tuple[int, ...], repeats: int) -> list[GemmFigure]:
    """fp32 GEMM throughput at one thread: the LSTM step's two gate products at each batch, and a large square
    product (the kind HPL runs), with numpy (its BLAS) and with onnxruntime's MatMul."""
    rng = np.random.default_rng(0)
    weights = [rng.standard_normal(shape).astype(np.float32) for shape in lstm_shapes]
    session = _ort_matmul(weights, 1)
    figures = []
    for batch in batches:
        xs = [rng.standard_normal((batch, w.shape[0])).astype(np.float32) for w in weights]
        flops = 2 * batch * sum(w.shape[0] * w.shape[1] for w in weights)
        shape = " + ".join(f"{batch}×{w.shape[0]} @ {w.shape[0]}×{w.shape[1]}" for w in weights)
        t = _timed(lambda xs=xs: [x @ w for x, w in zip(xs, weights, strict=True)], repeats)
        figures.append(GemmFigure("numpy", shape, flops / t / 1e9, t * 1000))
        feeds = {f"x{k}": x for k, x in enumerate(xs)}
        t = _timed(lambda feeds=feeds: session.run(None, feeds), repeats)
        figures.append(GemmFigure("onnxruntime", shape, flops / t / 1e9, t * 1000))
    n = 1024
    a = rng.standard_normal((n, n)).astype(np.float32)
    square = _ort_matmul([a], 1)
    t = _timed(lambda: a @ a, max(3, repeats // 10))
    figures.append(GemmFigure("numpy", f"{n}×{n} @ {n}×{n}", 2 * n**3 / t / 1e9, t * 1000))
    t = _timed(lambda: square.run(None, {"x0": a}), max(3, repeats // 10))
    figures.append(GemmFigure("onnxruntime", f"{n}×{n} @ {n}×{n}", 2 * n**3 / t / 1e9, t * 1000))
    return figures


def to_dict(figures: list[GemmFigure]) -> list[dict]:
    return [asdict(f) for f in figures]
