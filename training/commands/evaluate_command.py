"""`mode2 evaluate`: held-out sessions only; Mode 2 against a mean-pose baseline and the direct baseline.

Every number names its ground truth: "camera labels" (the MediaPipe→IK labels that training used, only
frames passing the guide's filter) and, on synthetic data, "true motion" (the simulated hand itself).
Confidence is calibrated on the first held-out session and reported on the others.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from firmware_bridge.atomic_write import check_writable_dir, write_text_atomic
from firmware_bridge.errors import UserError
from training.data.windows import build_windows, emg_fingerprint, input_filter_of, load_sessions, require_labelled
from training.fitting import confidence_calibration as calib
from training.hand.fk_numpy import forward_kinematics_np
from training.hand.skeleton import FINGERS, MANO_JOINT_NAMES
from training.models.checkpoint_io import CheckpointError
from training.models.checkpoint_meta import CheckpointMeta
from training.models.model_io import load_model_checkpoint, save_model_checkpoint
from training.scoring.evaluation import POLICIES, predict
from training.scoring.figures import save_figure
from training.scoring.metrics import (
    ERROR_THRESHOLD_MM,
    FINGER_NAMES,
    auroc,
    by_confidence_decile,
    mean_pose_verdict,
    mpjpe_mm,
    summary,
)

CAMERA = "camera labels (MediaPipe→IK, frames passing ik_error < 15 mm and confidence > 0.5)"
TRUTH = "true motion of the synthetic hand (no camera error)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True, help="transfer_mode2_best.pth")
    parser.add_argument("--direct", type=Path, default=None, help="direct_best.pth (the direct baseline)")
    parser.add_argument("--data", nargs="+", required=True, help="globs of HELD-OUT session files")
    parser.add_argument("--out", type=Path, default=Path("evaluation"))
    parser.add_argument(
        "--allow-train-sessions",
        action="store_true",
        help="evaluate on sessions the model trained on (numbers then mean nothing)",
    )
    parser.add_argument(
        "--write-calibration",
        action="store_true",
        help="store the fitted confidence calibration in the checkpoint (for export)",
    )


def _model_results(
    model: torch.nn.Module,
    meta: CheckpointMeta,
    windows: Any,
    targets: dict[str, np.ndarray],
    masks: dict[str, np.ndarray],
    checkpoint: Path,
    mean_pose_mm: dict[str, float],
) -> dict[str, Any]:
    mean = torch.tensor([meta.initial_state_mean or [0.0] * 20], dtype=torch.float32)
    policy = meta.initial_state_policy or "train_mean"
    policy = policy if policy in POLICIES else "train_mean"
    policies = {}
    if meta.kind == "mode2":
        for p in tqdm(POLICIES, desc="initial-state policies", leave=False):
            out = predict(model, windows, p, mean)
            policies[p] = float(mpjpe_mm(out["joints"][masks["camera"]], targets["camera"][masks["camera"]]).mean())
    prediction = predict(model, windows, policy if meta.kind == "mode2" else "train_mean", mean)
    result: dict[str, Any] = {
        "initial_state_policy": policy,
        "policies_mpjpe_mm_vs_camera": policies,
        "prediction": prediction,
    }
    _check_finite_predictions(result, checkpoint)
    for truth, target in targets.items():
        result[truth] = summary(prediction["joints"][masks[truth]], target[masks[truth]], mean_pose_mm[truth])
        result[truth]["verdict"] = mean_pose_verdict(result[truth]["mpjpe_mean_mm"], mean_pose_mm[truth])
    ok = masks["camera"]
    theta_error = np.abs(prediction["theta"][ok] - windows.theta[:, -1].numpy()[ok])
    result["theta_mae_rad"] = float(theta_error.mean())
    result["theta_mae_deg"] = math.degrees(result["theta_mae_rad"])
    return result


def _mean_pose(
    meta: CheckpointMeta, windows: Any, targets: dict[str, np.ndarray], masks: dict[str, np.ndarray]
) -> dict[str, Any]:
    """The mean-pose baseline (the skill score's reference): the label mean θ of the model's training
    sessions when the checkpoint stores it, else this data's own mean (optimistic)."""
    train_theta_mean = np.asarray(meta.theta_mean or windows.theta[:, -1][windows.mask[:, -1]].mean(0))
    mean_joints = forward_kinematics_np(meta.hand_model, train_theta_mean)[None].repeat(len(windows), 0)
    result: dict[str, Any] = {t: summary(mean_joints[masks[t]], targets[t][masks[t]]) for t in targets}
    for t in targets:
        result[t]["skill"] = 0.0  # by definition
    result["source"] = "training-label mean θ" if meta.theta_mean else "held-out label mean θ (optimistic)"
    return result


def _confidence_report(prediction: dict, errors: np.ndarray, sessions: np.ndarray) -> dict[str, Any]:
    unique = np.unique(sessions)
    calibrate_on = sessions == unique[0]
    report_on = ~calibrate_on if len(unique) > 1 else calibrate_on
    raw = prediction["confidence"]
    table = calib.fit_from_errors(raw[calibrate_on], errors[calibrate_on])
    calibrated = calib.apply(table, raw[report_on])
    outcome = errors[report_on] <= ERROR_THRESHOLD_MM
    return {
        "calibration": table,
        "calibrated_on_session_index": int(unique[0]),
        "reported_on": "other held-out sessions" if len(unique) > 1 else "the same session (only one held out)",
        "auroc_flag_error_over_20mm": auroc(1.0 - raw[report_on], errors[report_on] > ERROR_THRESHOLD_MM),
        "brier_raw": calib.brier(raw[report_on], outcome),
        "brier_calibrated": calib.brier(calibrated, outcome),
        "deciles": by_confidence_decile(raw[report_on], errors[report_on]),  # ranks: raw (calibration ties)
        "fraction_over_20mm": float((errors[report_on] > ERROR_THRESHOLD_MM).mean()),
    }


def _training_overlap(sessions: list, meta: CheckpointMeta, checkpoint: Path) -> list[str]:
    """Sessions the model trained on: the same EMG content (any name), or, for checkpoints written before
    content fingerprints existed, the same `subject/session` key (with a note that renamed copies pass)."""
    fingerprints = meta.training.train_emg_sha256 if meta.training else None
    trained_keys = set(meta.training.train_sessions if meta.training else ())
    if not fingerprints:
        print(
            f"note: {checkpoint} predates content fingerprints: training sessions are recognised by their "
            "subject/session key only (a renamed copy would pass); retrain to get the stronger check",
            file=sys.stderr,
        )
        return sorted(f"{s.path} ({s.key})" for s in sessions if s.key in trained_keys)
    by_content = {digest: key for key, digest in fingerprints.items()}
    overlap = []
    for s in sessions:
        digest = emg_fingerprint(s)
        if digest in by_content:
            same = "" if by_content[digest] == s.key else f", the EMG of training session {by_content[digest]}"
            overlap.append(f"{s.path} ({s.key}{same})")
        elif s.key in trained_keys:
            print(
                f"note: {s.path} has the key {s.key} of a training session but different EMG; evaluated",
                file=sys.stderr,
            )
    return sorted(overlap)


def _check_finite_predictions(result: dict, checkpoint: Path) -> None:
    prediction = result["prediction"]
    for key in ("theta", "joints", "confidence"):
        if not np.all(np.isfinite(prediction[key])):
            raise CheckpointError(
                f"{checkpoint}: the model predicts NaN or inf {key} on these sessions (diverged weights or "
                "extreme EMG values)"
            )


def run(args: argparse.Namespace) -> int:
    check_writable_dir(args.out, what="--out")
    model, meta = load_model_checkpoint(args.checkpoint)
    if getattr(model, "arch", None) == "mode1":
        print(f"note: {args.checkpoint} is Mode 1 (the guide's diagnostic: fixed angle map); reported as Mode 2")
    direct = load_model_checkpoint(args.direct) if args.direct else None
    sessions = load_sessions(args.data)
    overlap = _training_overlap(sessions, meta, args.checkpoint)
    if overlap and not args.allow_train_sessions:
        raise UserError(
            f"{'; '.join(overlap)} were used to train {args.checkpoint}; evaluate on held-out sessions "
            "(or pass --allow-train-sessions and do not report the numbers as accuracy)"
        )
    # `feedback` is carried through unlabelled windows too; each model sees the stream through its own input filter
    windows = build_windows(sessions, with_chain=True, input_filter=input_filter_of(meta, args.checkpoint))
    require_labelled(windows, sessions, "evaluation")
    synthetic = windows.truth_joints is not None
    targets = {"camera": windows.joints[:, -1].numpy()}
    masks = {"camera": windows.mask[:, -1].numpy()}
    if synthetic:
        targets["truth"] = windows.truth_joints.numpy()
        masks["truth"] = np.ones(len(windows), dtype=bool)
    results: dict[str, Any] = {
        "sessions": [s.key for s in sessions],
        "windows": len(windows),
        "ground_truth": {"camera": CAMERA, **({"truth": TRUTH} if synthetic else {})},
    }
    # windows are in session then time order, so the flexion correlations run over time
    results["mean_pose"] = _mean_pose(meta, windows, targets, masks)
    mean_pose_mm = {t: results["mean_pose"][t]["mpjpe_mean_mm"] for t in targets}
    mode2 = _model_results(model, meta, windows, targets, masks, args.checkpoint, mean_pose_mm)
    results["mode2" if meta.kind == "mode2" else "direct"] = mode2
    if direct is not None:
        direct_model, direct_meta = direct
        direct_filter = input_filter_of(direct_meta, args.direct)
        direct_windows = (
            windows
            if direct_filter == input_filter_of(meta, args.checkpoint)
            else build_windows(sessions, with_chain=True, input_filter=direct_filter)
        )
        results["direct"] = _model_results(
            direct_model, direct_meta, direct_windows, targets, masks, args.direct, mean_pose_mm
        )
    errors = mpjpe_mm(mode2["prediction"]["joints"], targets["camera"])
    ok = masks["camera"]
    results["confidence"] = _confidence_report(
        {k: v[ok] for k, v in mode2["prediction"].items()}, errors[ok], windows.session.numpy()[ok]
    )
    results["confidence"]["calibrated_on"] = windows.keys[results["confidence"]["calibrated_on_session_index"]]
    if args.write_calibration:
        meta = meta.with_(confidence_calibration=results["confidence"]["calibration"])
        save_model_checkpoint(args.checkpoint, model, meta)
    _plots(args.out, results, windows, targets, masks)
    report = _report(results, meta, args)
    write_text_atomic(args.out / "report.md", report)
    for key in ("mode2", "direct"):
        if key in results:
            results[key] = {k: v for k, v in results[key].items() if k != "prediction"}
    write_text_atomic(args.out / "metrics.json", json.dumps(results, indent=1, default=float))
    print(report)
    return 0


def _number(value: float | None, spec: str) -> str:
    return "—" if value is None or not math.isfinite(value) else format(value, spec)


def _row(name: str, block: dict, truth: str) -> str:
    s = block[truth]
    numbers = (s["mpjpe_mean_mm"], s["mpjpe_median_mm"], s["pa_mpjpe_mean_mm"], s["fingertip_mean_mm"])
    return (
        f"| {name} | "
        + " | ".join(f"{v:.2f}" for v in numbers)
        + f" | {_number(s['skill'], '+.3f')} | {_number(s['flexion_error_mean_deg'], '.1f')} | "
        f"{_number(s['flexion_correlation_mean'], '.2f')} | {s['n_frames']} |"
    )


def _flexion_table(block: dict) -> list[str]:
    flexion = block["per_finger_flexion"]
    return [
        "| flexion | " + " | ".join(FINGER_NAMES) + " |",
        "|---|" + "---|" * len(FINGER_NAMES),
        "| error (° mean abs) | " + " | ".join(_number(flexion[f]["error_deg"], ".1f") for f in FINGER_NAMES) + " |",
        "| correlation (r) | " + " | ".join(_number(flexion[f]["correlation"], ".2f") for f in FINGER_NAMES) + " |",
    ]


def _report(results: dict, meta: CheckpointMeta, args: argparse.Namespace) -> str:
    lines = [
        f"# Evaluation of `{args.checkpoint}`",
        "",
        f"Held-out sessions: {', '.join(results['sessions'])} ({results['windows']} windows, 2 s, hop 1 s; "
        'the pose evaluated is the window\'s last sample, "now").',
        f"Trained on: {', '.join(meta.training.train_sessions if meta.training else ())}.",
        "",
    ]
    if meta.training and meta.training.synthetic:
        lines += [
            "**All data here is synthetic** (`mode2 simulate`): these numbers measure the pipeline on the "
            "synthetic world, not accuracy on a real arm.",
            "",
        ]
    for truth, description in results["ground_truth"].items():
        lines += [
            f"## MPJPE against {description}",
            "",
            "| model | mean (mm) | median (mm) | PA-MPJPE (mm) | fingertips (mm) | skill | flexion error (°) "
            "| flexion r | frames |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for key, name in (("mode2", "Mode 2"), ("direct", "direct Conv1D+LSTM"), ("mean_pose", "mean pose")):
            if key in results:
                lines.append(_row(name, results[key], truth))
        lines.append("")
        for key, name in (("mode2", "Mode 2"), ("direct", "direct Conv1D+LSTM")):
            if key in results and results[key][truth]["verdict"]:
                lines += [f"**{name} {results[key][truth]['verdict']}.**", ""]
    lines += [
        "Skill = 1 − MPJPE / MPJPE(mean pose): 1 is perfect, ≤ 0 is no better than always predicting the training "
        "labels' mean pose. Fingertips: mean error of the 5 fingertips. Flexion: each finger's curl, the sum of "
        "the angles between consecutive bones at its 3 joints (MCP, PIP, DIP; thumb CMC, MCP, IP), from the 21 "
        "joints; error = mean |Δ| over fingers, r = Pearson correlation over time (mean over fingers; — for a "
        "constant prediction such as the mean pose).",
        "",
    ]
    for key, name in (("mode2", "Mode 2"), ("direct", "direct baseline")):
        if key not in results:
            continue
        r = results[key]
        lines += [
            f"## {name}: per finger and per joint (mm, vs camera labels)",
            "",
            "| " + " | ".join(FINGERS) + " |",
            "|" + "---|" * len(FINGERS),
            "| " + " | ".join(f"{r['camera']['per_finger_mm'][f]:.1f}" for f in FINGERS) + " |",
            "",
            "| joint | " + " | ".join(MANO_JOINT_NAMES[1:]) + " |",
            "|---|" + "---|" * 20,
            "| mm | " + " | ".join(f"{r['camera']['per_joint_mm'][j]:.1f}" for j in MANO_JOINT_NAMES[1:]) + " |",
            "",
            f"θ error vs camera labels: {r['theta_mae_rad']:.4f} rad ({r['theta_mae_deg']:.2f}°) mean absolute.",
            "",
            "Per-finger flexion vs camera labels:",
            "",
            *_flexion_table(r["camera"]),
            "",
        ]
        if r["policies_mpjpe_mm_vs_camera"]:
            lines += [
                "Tracking initial-state policy (MPJPE mm vs camera labels; `label` needs labels, so it is an "
                "upper bound, not deployable):",
                "",
                "| " + " | ".join(r["policies_mpjpe_mm_vs_camera"]) + " |",
                "|" + "---|" * len(r["policies_mpjpe_mm_vs_camera"]),
                "| " + " | ".join(f"{v:.2f}" for v in r["policies_mpjpe_mm_vs_camera"].values()) + " |",
                "",
                f"Policy recorded in the checkpoint: **{r['initial_state_policy']}**.",
                "",
            ]
    c = results["confidence"]
    lines += [
        "## Confidence (Mode 2)",
        "",
        f"Calibrated (isotonic, P(error ≤ 20 mm)) on held-out session {c['calibrated_on']}, "
        f"reported on {c['reported_on']}. AUROC for flagging frames with error > 20 mm: "
        f"**{c['auroc_flag_error_over_20mm']:.3f}**; Brier score {c['brier_raw']:.3f} raw → "
        f"{c['brier_calibrated']:.3f} calibrated; {100 * c['fraction_over_20mm']:.1f} % of frames are over 20 mm.",
        "",
        "| decile (1 = least confident) | n | mean raw confidence | MPJPE (mm) | > 20 mm |",
        "|---|---|---|---|---|",
    ]
    for row in c["deciles"]:
        lines.append(
            f"| {row['decile']} | {row['n']} | {row['confidence_mean']:.3f} | {row['mpjpe_mm']:.2f} | "
            f"{100 * row['fraction_over_threshold']:.0f} % |"
        )
    lines += ["", "Plots: `mpjpe_per_joint.png`, `error_vs_confidence.png`, `trajectories.png`.", ""]
    return "\n".join(lines)


def _plots(out: Path, results: dict, windows: Any, targets: dict, masks: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(14, 4))
    names = MANO_JOINT_NAMES[1:]
    models = [
        (k, n) for k, n in (("mode2", "Mode 2"), ("direct", "direct"), ("mean_pose", "mean pose")) if k in results
    ]
    width = 0.8 / len(models)
    for i, (key, name) in enumerate(models):
        values = [results[key]["camera"]["per_joint_mm"][j] for j in names]
        ax.bar(np.arange(len(names)) + i * width, values, width, label=name)
    ax.set_xticks(np.arange(len(names)) + 0.4, names, rotation=60, fontsize=7)
    ax.set_ylabel("mm (vs camera labels)")
    ax.legend()
    save_figure(fig, out / "mpjpe_per_joint.png")

    deciles = results["confidence"]["deciles"]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([d["confidence_mean"] for d in deciles], [d["mpjpe_mm"] for d in deciles], "o-")
    ax.axhline(ERROR_THRESHOLD_MM, color="r", ls="--", lw=0.8)
    ax.set_xlabel("raw confidence (decile mean)")
    ax.set_ylabel("MPJPE (mm)")
    save_figure(fig, out / "error_vs_confidence.png")

    prediction = results["mode2"]["prediction"]
    first = windows.session.numpy() == windows.session.numpy()[0]
    order = np.argsort(windows.start_time.numpy()[first])
    t = windows.start_time.numpy()[first][order]
    fig, axes = plt.subplots(3, 1, figsize=(12, 7), sharex=True)
    for ax, (finger, (_j, _, _, tip)) in zip(axes, list(FINGERS.items())[1:4], strict=False):
        ax.plot(t - t[0], targets["camera"][first][order][:, tip, 1] * 1000, "k.", ms=3, label="camera label")
        if "truth" in targets:
            ax.plot(t - t[0], targets["truth"][first][order][:, tip, 1] * 1000, "g-", lw=0.8, label="true motion")
        ax.plot(t - t[0], prediction["joints"][first][order][:, tip, 1] * 1000, "b-", lw=1, label="Mode 2")
        ax.set_ylabel(f"{finger} tip y (mm)")
    axes[0].legend(fontsize=7)
    axes[-1].set_xlabel("time in session (s)")
    save_figure(fig, out / "trajectories.png")
