"""`mode2 evaluate`: held-out sessions only; Mode 2 against a mean-pose baseline and the direct baseline.

Every number names its ground truth: "camera labels" (the MediaPipe→IK labels that training used, only
frames passing the guide's filter) and, on synthetic data, "true motion" (the simulated hand itself).
Confidence is calibrated on the first held-out session and reported on the others.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from firmware_bridge.atomic_write import check_writable_dir, write_text_atomic
from firmware_bridge.errors import UserError
from training.data.windows import build_windows, input_filter_of, load_sessions, require_labelled
from training.fitting import confidence_calibration as calib
from training.fitting.user_calibration import Frames, fitted_frames, frames_of, per_donning
from training.hand.fk_numpy import forward_kinematics_np
from training.hand.skeleton import FINGERS, MANO_JOINT_NAMES
from training.models.checkpoint_io import CheckpointError
from training.models.checkpoint_meta import CheckpointMeta
from training.models.model_io import load_model_checkpoint, save_model_checkpoint
from training.scoring.evaluation import POLICIES, deployed_policy, predict
from training.scoring.figures import save_figure
from training.scoring.held_out import training_overlap
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
        help="store the table fitted on the first held-out session in the checkpoint (for export); "
        "`mode2 calibrate` on a recording of the donning is the step a user runs",
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
    policy, mean = deployed_policy(meta)
    policies = {}
    if meta.kind == "mode2":
        for p in tqdm(POLICIES, desc="initial-state policies", leave=False):
            out = predict(model, windows, p, mean)
            policies[p] = float(mpjpe_mm(out["joints"][masks["camera"]], targets["camera"][masks["camera"]]).mean())
    prediction = predict(model, windows, policy, mean)
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


def _confidence_report(frames: Frames, stored: dict | None, donning: dict[str, Any]) -> dict[str, Any]:
    """AUROC (overall and per subject), and the calibration four ways: raw; the checkpoint's stored table,
    scored only on frames it was not fitted on; per donning (`donning`: a table fitted on a minute spread over
    each held-out session, scored beside it — what `mode2 calibrate` on a calibration recording gives); and a
    table fitted here on the first held-out session, scored on the others (how a table carries to another
    session or person)."""
    raw, errors = frames.confidence, frames.errors
    sessions = [str(key) for key in dict.fromkeys(frames.session)]
    calibrate_on = frames.session == sessions[0]
    report_on = ~calibrate_on if len(sessions) > 1 else calibrate_on
    over = errors > ERROR_THRESHOLD_MM
    table = calib.fit_from_errors(raw[calibrate_on], errors[calibrate_on])
    table.update({"fitted_by": "mode2 evaluate --write-calibration", "sessions": [sessions[0]], "minutes": None})
    calibrated = calib.apply(table, raw[report_on])
    outcome = ~over[report_on]
    subject_of = np.array([key.split("/")[0] for key in frames.session])
    per_subject = {
        subject: {"auroc": auroc(1.0 - raw[subject_of == subject], over[subject_of == subject]),
                  "frames": int((subject_of == subject).sum())}
        for subject in dict.fromkeys(subject_of)
    }  # fmt: skip
    report: dict[str, Any] = {
        "calibration": table,
        "calibrated_on": sessions[0],
        "reported_on": "other held-out sessions" if len(sessions) > 1 else "the same session (only one held out)",
        "auroc_flag_error_over_20mm": auroc(1.0 - raw, over),
        "auroc_per_subject": per_subject,
        "deciles": by_confidence_decile(raw[report_on], errors[report_on]),  # ranks: raw
        "fraction_over_20mm": float(over[report_on].mean()),
        "raw": calib.calibration_figures(raw, ~over),
        "cross_session": calib.calibration_figures(calibrated, outcome),
        "per_donning": donning,
        "stored": None,
    }
    if stored and stored.get("x"):
        scored = ~fitted_frames(frames, stored)
        report["stored"] = {
            "fitted_by": stored.get("fitted_by", "an earlier version (provenance not recorded)"),
            "fitted_on": list(stored.get("sessions", [])),
            "minutes": stored.get("minutes"),
            "scored_frames": int(scored.sum()),
            "skipped_frames": int((~scored).sum()),
            **(calib.calibration_figures(calib.apply(stored, raw[scored]), ~over[scored]) if scored.any() else {}),
        }
    return report


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
    overlap = training_overlap(sessions, meta, args.checkpoint)
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
    frames = frames_of(windows, mode2["prediction"], sessions)
    donning = per_donning(model, meta, sessions, args.checkpoint, frames)
    results["confidence"] = _confidence_report(frames, meta.confidence_calibration, donning)
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
        "AUROC for flagging frames with error > 20 mm (the raw confidence's ranks, which calibration keeps; all "
        f"held-out frames): **{c['auroc_flag_error_over_20mm']:.3f}**. Deciles on {c['reported_on']} "
        f"({100 * c['fraction_over_20mm']:.1f} % of those frames are over 20 mm):",
        "",
        "| decile (1 = least confident) | n | mean raw confidence | MPJPE (mm) | > 20 mm |",
        "|---|---|---|---|---|",
    ]
    for row in c["deciles"]:
        lines.append(
            f"| {row['decile']} | {row['n']} | {row['confidence_mean']:.3f} | {row['mpjpe_mm']:.2f} | "
            f"{100 * row['fraction_over_threshold']:.0f} % |"
        )
    lines += ["", *_calibration_section(c)]
    lines += [
        "",
        "Plots: `mpjpe_per_joint.png`, `error_vs_confidence.png`, `reliability.png`, `trajectories.png`.",
        "",
    ]
    return "\n".join(lines)


def _calibration_section(c: dict) -> list[str]:
    """Per-subject AUROC and the reliability of the probability the gate reads, four ways."""
    subjects = c["auroc_per_subject"].items()
    lines = [
        "AUROC per held-out subject: "
        + ", ".join(f"{s} {_number(v['auroc'], '.3f')} ({v['frames']} frames)" for s, v in subjects)
        + ".",
        "",
        "Reliability of P(error ≤ 20 mm) (ECE = frame-weighted mean |predicted − observed| over 10 bins; "
        "`reliability.png`):",
        "",
        "| confidence | fitted on | scored on | frames | Brier | ECE |",
        "|---|---|---|---|---|---|",
        f"| raw (uncalibrated) | — | all held-out frames | {_frames(c['raw'])} | {c['raw']['brier']:.3f} | "
        f"{_number(c['raw']['ece'], '.3f')} |",
    ]
    stored = c.get("stored")
    if stored and "brier" in stored:
        span = "" if stored["minutes"] is None else f"first {stored['minutes']:g} min of "
        lines.append(
            f"| stored in the checkpoint ({stored['fitted_by']}) | {span}{', '.join(stored['fitted_on']) or '—'} | "
            f"held-out frames it was not fitted on | {stored['scored_frames']} | {stored['brier']:.3f} | "
            f"{_number(stored['ece'], '.3f')} |"
        )
    donning = c["per_donning"]
    if donning["frames"]:
        blocks = f"one {donning['block_s']:g}-s block in every {donning['every']} of each session"
        lines.append(
            f"| per donning (raw → calibrated) | {blocks} | the windows of that session sharing no sample | "
            f"{donning['frames']} | {donning['raw']['brier']:.3f} → {donning['calibrated']['brier']:.3f} | "
            f"{_number(donning['raw']['ece'], '.3f')} → {_number(donning['calibrated']['ece'], '.3f')} |"
        )
    lines.append(
        f"| fitted here on the first held-out session | {c['calibrated_on']} | {c['reported_on']} | "
        f"{_frames(c['cross_session'])} | {c['cross_session']['brier']:.3f} | "
        f"{_number(c['cross_session']['ece'], '.3f')} |"
    )
    lines.append("")
    for key, reason in donning["skipped"].items():
        lines.append(f"Per donning: {key} left out ({reason}).")
    if stored is None:
        lines.append(
            "The checkpoint carries no calibration: `mode2 calibrate` on about a minute recorded after putting "
            "the band on, through every phase (`mode2 record --phase-scale 0.25`), stores one; the per-donning "
            "row estimates what it gives."
        )
    elif not stored["fitted_on"]:
        lines.append(
            "The stored table does not record what it was fitted on (an older checkpoint): its row may include "
            "its own fitting frames."
        )
    elif stored["skipped_frames"]:
        lines.append(f"{stored['skipped_frames']} frames the stored table was fitted on are left out of its row.")
    if stored is not None and "brier" not in stored:
        lines.append("Every evaluated frame was used to fit the stored table: it cannot be scored here.")
    return lines


def _frames(figures: dict) -> int:
    return sum(r["n"] for r in figures["reliability"])


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
    _reliability_plot(results["confidence"], out / "reliability.png")

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


def _reliability_plot(c: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, (ax, counts) = plt.subplots(2, 1, figsize=(5.5, 6), sharex=True, height_ratios=(3, 1))
    ax.plot([0, 1], [0, 1], color="0.6", ls="--", lw=0.8, label="perfectly calibrated")
    curves = [("raw", c["raw"], "tab:gray")]
    if c.get("stored") and "reliability" in c["stored"]:
        curves.append((f"stored ({c['stored']['fitted_by'].split(' (')[0]})", c["stored"], "tab:blue"))
    if c["per_donning"]["frames"]:
        curves.append(("per donning (estimate)", c["per_donning"]["calibrated"], "tab:green"))
    curves.append((f"fitted on {c['calibrated_on']}", c["cross_session"], "tab:orange"))
    width = 0.1 / len(curves)
    for i, (name, figures, colour) in enumerate(curves):
        bins = figures["reliability"]
        label = f"{name}: ECE {figures['ece']:.3f}"
        ax.plot([b["predicted"] for b in bins], [b["observed"] for b in bins], "o-", color=colour, label=label)
        counts.bar([b["low"] + (i + 0.5) * width for b in bins], [b["n"] for b in bins], width, color=colour)
    ax.set_ylabel("observed fraction within 20 mm")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title("Reliability of the confidence (held-out frames)", fontsize=9)
    counts.set_xlabel("predicted P(error ≤ 20 mm)")
    counts.set_ylabel("frames")
    save_figure(fig, path)
