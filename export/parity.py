"""Parity of an exported model against the PyTorch model on the same held-out windows."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from runtime.model_contract import CONFIDENCE, EMG, INITIAL_POSE, JOINTS, OUTPUT_NAMES, THETA, ParityFigures

THETA_TOLERANCE_RAD = 1e-4
JOINTS_TOLERANCE_M = 1e-5  # 0.01 mm
INT8_MPJPE_TOLERANCE_MM = 2.0  # a quantized model is allowed to differ; this much is reported as acceptable


class Parity(ParityFigures):
    """The contract's parity record (what the metadata carries and the runtime reads back), with the
    exporter's pass/fail rule and wording."""

    def passes(self, int8: bool = False) -> bool:
        if int8:
            return self.mpjpe_delta_mm is None or abs(self.mpjpe_delta_mm) <= INT8_MPJPE_TOLERANCE_MM
        return self.theta_max_abs_rad <= THETA_TOLERANCE_RAD and self.joints_max_abs_mm <= JOINTS_TOLERANCE_M * 1000

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        text = (
            f"{self.windows} windows: |Δθ| max {self.theta_max_abs_rad:.2e} rad, |Δjoints| max "
            f"{self.joints_max_abs_mm:.2e} mm, |Δconfidence| max {self.confidence_max_abs:.2e}"
        )
        if self.mpjpe_delta_mm is not None:
            text += (
                f"; MPJPE {self.mpjpe_torch_mm:.3f} mm (PyTorch) vs {self.mpjpe_onnx_mm:.3f} mm (ONNX), "
                f"Δ {self.mpjpe_delta_mm:+.4f} mm"
            )
        return text


def session(path: Path, threads: int = 1) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def check_parity(
    onnx_path: Path,
    wrapper: torch.nn.Module,
    emg: torch.Tensor,
    initial: torch.Tensor,
    target_joints: np.ndarray | None,
    target_ok: np.ndarray | None,
) -> Parity:
    with torch.no_grad():  # the wrapper returns the outputs in the contract's order (it is what was exported)
        reference = dict(zip(OUTPUT_NAMES, (t.numpy() for t in wrapper(emg, initial)), strict=True))
    values = session(onnx_path).run(list(OUTPUT_NAMES), {EMG.name: emg.numpy(), INITIAL_POSE.name: initial.numpy()})
    got = dict(zip(OUTPUT_NAMES, values, strict=True))
    mpjpe_torch = mpjpe_onnx = None
    if target_joints is not None and target_ok is not None and target_ok.any():

        def mpjpe(joints: np.ndarray) -> float:
            return float(np.linalg.norm(joints[target_ok] - target_joints[target_ok], axis=-1).mean() * 1000)

        mpjpe_torch, mpjpe_onnx = mpjpe(reference[JOINTS.name]), mpjpe(got[JOINTS.name])

    def largest(name: str) -> float:
        return float(np.abs(got[name] - reference[name]).max())

    return Parity(
        windows=int(emg.shape[0]),
        theta_max_abs_rad=largest(THETA.name),
        joints_max_abs_mm=largest(JOINTS.name) * 1000,
        confidence_max_abs=largest(CONFIDENCE.name),
        mpjpe_torch_mm=mpjpe_torch,
        mpjpe_onnx_mm=mpjpe_onnx,
        mpjpe_delta_mm=None if mpjpe_torch is None or mpjpe_onnx is None else mpjpe_onnx - mpjpe_torch,
    )
