"""`model.md` beside an exported model: what it is, what it was trained on, how good it is, how to run it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_model_card(onnx_path: Path, metadata: dict[str, Any], graph: dict[str, Any], extra: dict[str, Any]) -> Path:
    training = metadata.get("training_data", {})
    validation = metadata.get("validation", {})
    parity = metadata.get("parity") or {}
    nan = float("nan")
    kind = metadata["model_kind"]
    described = "Mode 2 transfer on a frozen vemg2pose backbone" if kind == "mode2" else "direct Conv1D+LSTM baseline"
    backbone = metadata.get("backbone", {}).get("kind", "—")
    rollout = "a Loop" if graph["has_loop"] else "no Loop (the 50 Hz rollout is unrolled)"
    policies = json.dumps(metadata.get("initial_state_eval_mpjpe_mm"))
    lines = [
        f"# Model card: `{onnx_path.name}`",
        "",
        f"- Kind: **{kind}** ({described})",
        f"- Backbone: {backbone}; hand model: {metadata.get('hand_model') or 'open'}",
        f"- Source checkpoint sha256: `{metadata['source_checkpoint_sha256']}`",
        f"- Software {metadata['software_version']}; ONNX opset {metadata['opset']}; "
        f"quantization: {metadata['quantization']}",
        f"- Graph: {graph['nodes']} nodes, {rollout}, {graph['bytes'] / 1e6:.1f} MB",
        "",
        "## Input and output",
        "",
        "- `emg` (B, 8, 1000): **raw MindRove µV**, 2 s at 500 Hz, channels in SDK EMG-row order; hop 500 samples.",
        "  DC removal/detrend, normalisation with the training statistics and ×4 upsampling happen inside the graph.",
        f"- `initial_pose` (B, 20) rad — policy **{metadata['initial_state_policy']}** "
        "(`feedback`: the previous window's `feedback_angles`; `train_mean`: `initial_state_mean` from the metadata).",
        "- Outputs: `theta` (B,45) rad MANO pose, `joints` (B,21,3) m wrist-relative, `angles` (B,20), "
        "`confidence` (B,), `feedback_angles` (B,20).",
        "",
        "## Training data and accuracy",
        "",
        f"- Training sessions: {training.get('train_sessions')} ({training.get('train_minutes') or 0:.1f} min); "
        f"held out: {training.get('val_sessions')}; synthetic: {training.get('synthetic')}.",
        f"- Held-out MPJPE (vs camera labels, at the window's last sample): "
        f"{validation.get('val_mpjpe_mm', nan):.2f} mm mean, "
        f"{validation.get('val_mpjpe_median_mm', nan):.2f} mm median.",
        f"- Initial-state policies measured on held-out sessions (MPJPE mm): {policies}",
        f"- Confidence: {metadata['outputs']['confidence']['meaning']}.",
        "",
        "## Parity (checked at export)",
        "",
        f"- fp32 vs PyTorch on {parity.get('windows')} held-out windows: "
        f"|Δθ| ≤ {parity.get('theta_max_abs_rad', nan):.1e} rad, "
        f"|Δjoints| ≤ {parity.get('joints_max_abs_mm', nan):.1e} mm, "
        f"MPJPE Δ {parity.get('mpjpe_delta_mm')} mm.",
    ]
    if extra.get("int8"):
        p = extra["int8"]
        lines.append(
            f"- int8 (`{extra['int8_path']}`): |Δθ| ≤ {p['theta_max_abs_rad']:.1e} rad, |Δjoints| ≤ "
            f"{p['joints_max_abs_mm']:.2f} mm, MPJPE Δ {p['mpjpe_delta_mm']} mm."
        )
    if training.get("synthetic"):
        lines += ["", "**Trained and measured on synthetic data only** — not validated on a real arm."]
    lines += [
        "",
        "Safety: the device must gate on `confidence` and signal quality, rate-limit every joint and keep the "
        "firmware watchdog; this model alone is not a controller.",
        "",
    ]
    path = onnx_path.with_name("model.md") if onnx_path.stem == "model" else onnx_path.with_suffix(".md")
    path.write_text("\n".join(lines))
    return path
