"""`model.md` beside an exported model: what it is, what it was trained on, how good it is, how to run it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from runtime.model_contract import (
    CONFIDENCE,
    EMG,
    FEEDBACK_ANGLES,
    INITIAL_POSE,
    OUTPUTS,
    RECOMMENDED_HOP_SAMPLES,
    SAMPLING_RATE_HZ,
    WINDOW_SAMPLES,
    TensorSpec,
)
from training.scoring.metrics import mean_pose_verdict, skill_score


def _delta(value: float | None) -> str:
    return "— (no labels)" if value is None else f"{value:+.3f} mm"


def _shape(spec: TensorSpec) -> str:
    return "(" + ", ".join("B" if d == "batch" else str(d) for d in spec.shape) + ")"


def _skill_lines(validation: dict[str, Any]) -> list[str]:
    """Fingertip and flexion error, the mean pose's MPJPE and the skill score (absent in models trained
    before they were measured), and the plain sentence when the model does not beat the mean pose."""
    lines = []
    tips, flexion = validation.get("val_fingertip_mm"), validation.get("val_flexion_error_deg")
    if tips is not None or flexion is not None:
        lines.append(
            f"- Held-out fingertip error: {'—' if tips is None else f'{tips:.2f} mm'} (mean of the 5 fingertips); "
            f"flexion error: {'—' if flexion is None else f'{flexion:.1f}°'} (mean |Δ| of the fingers' curl)."
        )
    mpjpe, mean_pose = validation.get("val_mpjpe_mm"), validation.get("val_mean_pose_mpjpe_mm")
    if mpjpe is None or mean_pose is None:
        return [*lines, "- Skill against the mean pose: not measured (trained before it was recorded)."]
    skill = skill_score(mpjpe, mean_pose)
    lines.append(
        f"- Mean pose (training-label mean) on the same frames: {mean_pose:.2f} mm → skill "
        f"{'—' if skill is None else f'{skill:+.3f}'} (1 − MPJPE / MPJPE(mean pose); ≤ 0: no better than it)."
    )
    verdict = mean_pose_verdict(mpjpe, mean_pose)
    if verdict:
        lines.append(f"- **This model {verdict}.**")
    return lines


def model_card_path(onnx_path: Path) -> Path:
    """`model.md` beside `model.onnx`, else `NAME.md` beside `NAME.onnx`."""
    return onnx_path.with_name("model.md") if onnx_path.stem == "model" else onnx_path.with_suffix(".md")


def render_model_card(
    onnx_path: Path, metadata: dict[str, Any], graph: dict[str, Any], int8: tuple[Path, dict[str, Any]] | None
) -> str:
    """The card's text. `int8`: the quantized file's final name and its own metadata document."""
    training = metadata.get("training_data", {})
    validation = metadata.get("validation", {})
    parity = metadata.get("parity") or {}
    nan = float("nan")
    kind = metadata["model_kind"]
    finetuned = metadata.get("backbone", {}).get("finetuned", "none")
    mode2 = "Mode 2 transfer on a " + (
        "vemg2pose backbone whose LSTM decoder was fine-tuned (encoder frozen)"
        if finetuned == "decoder"
        else "frozen vemg2pose backbone"
    )
    described = mode2 if kind == "mode2" else "direct Conv1D+LSTM baseline"
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
        f"- `{EMG.name}` {_shape(EMG)}: MindRove µV **after the input filter** "
        f"({(metadata['input'].get('input_filter') or {}).get('description', 'none: raw µV')}), "
        f"{WINDOW_SAMPLES / SAMPLING_RATE_HZ:g} s at {SAMPLING_RATE_HZ:g} Hz, channels in SDK EMG-row order; "
        f"hop {RECOMMENDED_HOP_SAMPLES} samples. The runtime runs the filter on the stream (its coefficients are in "
        "the metadata); normalisation with the training statistics and the causal ×4 upsampling are in the graph.",
        f"- `{INITIAL_POSE.name}` {_shape(INITIAL_POSE)} rad — policy **{metadata['initial_state_policy']}** "
        f"(`feedback`: the previous window's `{FEEDBACK_ANGLES.name}`; `train_mean`: `initial_state_mean` from the "
        "metadata).",
        "- Outputs (by name): "
        + ", ".join(f"`{s.name}` {_shape(s)} {metadata['outputs'][s.name]['units']}" for s in OUTPUTS)
        + ".",
        "",
        "## Training data and accuracy",
        "",
        f"- Training sessions: {training.get('train_sessions')} ({training.get('train_minutes') or 0:.1f} min); "
        f"held out: {training.get('val_sessions')}; synthetic: {training.get('synthetic')}.",
        f"- Held-out MPJPE (vs camera labels, at the window's last sample): "
        f"{validation.get('val_mpjpe_mm', nan):.2f} mm mean, "
        f"{validation.get('val_mpjpe_median_mm', nan):.2f} mm median.",
        *_skill_lines(validation),
        f"- Initial-state policies measured on held-out sessions (MPJPE mm): {policies}",
        f"- Confidence: {metadata['outputs'][CONFIDENCE.name]['meaning']}"
        + (f" (from the {head})." if (head := metadata["outputs"][CONFIDENCE.name].get("head")) else "."),
        "",
        "## Parity (checked at export)",
        "",
        f"- fp32 vs PyTorch on {parity.get('windows')} held-out windows: "
        f"|Δθ| ≤ {parity.get('theta_max_abs_rad', nan):.1e} rad, "
        f"|Δjoints| ≤ {parity.get('joints_max_abs_mm', nan):.1e} mm, "
        f"MPJPE Δ {_delta(parity.get('mpjpe_delta_mm'))}.",
    ]
    streaming = metadata.get("streaming")
    if streaming:
        files = ", ".join(f"`{entry['file']}`" for entry in streaming["files"].values())
        lines.append(
            f"- Streaming graphs {files}: engines {', '.join(streaming['engines'])} (default "
            f"**{streaming['default_engine']}**)."
        )
        for hop in (streaming.get("parity") or {}).get("hops", []):
            lines.append(
                f"  - exact engine vs windowed, hop {hop['hop_samples']} samples, {hop['hops']} hops: "
                f"|Δθ| ≤ {hop['theta_max_abs_rad']:.1e} rad, |Δjoints| ≤ {hop['joints_max_abs_mm']:.1e} mm."
            )
    if int8 is not None:
        int8_path, int8_meta = int8
        p = int8_meta["parity"]
        lines.append(
            f"- int8 (`{int8_path.name}`, quantization {int8_meta['quantization']}): "
            f"|Δθ| ≤ {p['theta_max_abs_rad']:.1e} rad, |Δjoints| ≤ {p['joints_max_abs_mm']:.2f} mm, "
            f"MPJPE Δ {_delta(p['mpjpe_delta_mm'])} (its own figures, also in its metadata)."
        )
    if training.get("synthetic"):
        lines += ["", "**Trained and measured on synthetic data only** — not validated on a real arm."]
    lines += [
        "",
        "Safety: the device must gate on `confidence` and signal quality, rate-limit every joint and keep the "
        "firmware watchdog; this model alone is not a controller.",
        "",
    ]
    return "\n".join(lines)
