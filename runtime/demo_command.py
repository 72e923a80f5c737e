"""`mode2 demo`: the pipeline end to end on the built-in defaults, as a newcomer would run it.

Each stage is run as its own `mode2 <command>` process, exactly as a user would type it, so this module
imports nothing from the training side (the runtime package never imports torch). Stages whose command
is not part of this checkout are reported as skipped instead of failing.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path

from firmware_bridge.errors import UserError
from runtime.cli import _available_commands

# where `mode2 demo` puts what the runtime needs (relative to --out); `mode2 dashboard --demo` looks there
HELD_OUT = Path("sessions") / "s01_r04.h5"  # the session the demo never trains on
MODEL = Path("model.onnx")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="working folder (default: demo_out)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--minutes", type=float, default=1.0, help="minutes per synthetic session")
    parser.add_argument("--epochs", type=int, default=4, help="Mode 2 training epochs (short by default)")


def _stages(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """The pipeline a newcomer would type: 4 synthetic sessions; train on r01–r02, r03 held out for model
    selection, r04 never seen until the per-donning calibration (its first half), evaluation, the export's
    parity check and the runtime replay."""
    out: Path = args.out
    sessions = out / "sessions"
    best = str(out / "train" / "transfer_mode2_best.pth")
    held_out = str(out / HELD_OUT)
    model = str(out / MODEL)
    simulate = ["--out", str(sessions), "--subjects", "1", "--sessions", "4", "--minutes", str(args.minutes)]
    simulate += ["--seed", str(args.seed), "--playback-csv"]
    train = ["--data", str(sessions / "s01_r0[1-3].h5"), "--out", str(out / "train"), "--val-sessions", "s01/r03"]
    train += ["--epochs", str(args.epochs), "--seed", str(args.seed)]
    evaluate = ["--checkpoint", best, "--data", held_out, "--out", str(out / "evaluation")]
    half = f"{args.minutes / 2:g}"
    run = ["--model", model, "--source", f"replay:{held_out}", "--speed", "0", "--port", "sim", "--armed", "--quiet"]
    return [
        ("simulate", simulate),
        ("inspect", [str(sessions / "s01_r01.h5"), "--plot", str(out / "s01_r01_overview.png")]),
        ("inspect-checkpoint", []),
        ("train", train),
        # the per-donning calibration step (on the first half of the held-out session: the demo has no separate
        # calibration recording); evaluate scores the table on the second half
        ("calibrate", ["--checkpoint", best, "--data", held_out, "--minutes", half]),
        ("evaluate", evaluate),
        ("export-onnx", ["--checkpoint", best, "--out", model, "--data", held_out, "--int8"]),
        ("run", [*run, "--record", str(out / "run.h5"), "--summary-json", str(out / "run_summary.json")]),
        # the export's own 1-s hop: the same windows `mode2 evaluate` scored, so the two MPJPEs must agree
        ("run", [*run, "--hop-ms", "1000", "--summary-json", str(out / "run_summary_1s.json")]),
    ]


def run(args: argparse.Namespace) -> int:
    available = _available_commands()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, stage_args in _stages(args):
        if name not in available:
            print(f"── {name}: not part of this checkout yet, skipped")
            continue
        if name == "inspect-checkpoint":
            stage_args = [_default_backbone(available)]
        command = [sys.executable, "-m", "runtime.cli", name, *stage_args]
        print(f"── mode2 {name} {' '.join(shlex.quote(a) for a in stage_args)}", flush=True)
        started = time.perf_counter()
        result = subprocess.run(command, check=False)
        if result.returncode != 0:
            print(f"demo stopped: `mode2 {name}` exited with {result.returncode}", file=sys.stderr)
            return result.returncode
        print(f"   ({time.perf_counter() - started:.1f} s)")
    _print_outcome(args.out)
    return 0


def _print_outcome(out: Path) -> None:
    """One summary of what the newcomer just ran, and where every file went."""
    import json

    def load(name: str) -> dict:
        path = out / name
        return json.loads(path.read_text()) if path.is_file() else {}

    run, run_1s = load("run_summary.json"), load("run_summary_1s.json")
    metrics = load("evaluation/metrics.json")
    evaluated = _find_mpjpe(metrics)
    print("demo finished")
    if run:
        print(
            f"  runtime on the held-out session (replay, engine {run.get('engine')}, {run.get('hop_ms')}-ms hop): "
            f"MPJPE {run.get('mpjpe_vs_labels_mm')} mm "
            f"vs camera labels; gate open {run.get('gate_open_percent')} % of {run.get('hops')} hops; "
            f"commands sent {run.get('commands_sent')}, acked {run.get('commands_acked')}; "
            f"duty p50 {run.get('duty_p50')}; "
            f"latency p50/p99 {run.get('latency_ms_p50')}/{run.get('latency_ms_p99')} ms"
        )
    if run_1s:
        print(
            "  runtime at the export's 1-s hop, on the windows `mode2 evaluate` scored: "
            f"{run_1s.get('mpjpe_evaluate_windows_mm')} mm; mode2 evaluate: "
            f"{evaluated if evaluated is not None else '—'} mm (same model, session and initial-state policy)"
        )
    for line in _skill_lines(metrics, out / MODEL):
        print(f"  {line}")
    print(
        f"  files: sessions {out / 'sessions'}/ · checkpoints {out / 'train'}/ · evaluation {out / 'evaluation'}/ · "
        f"model {out / MODEL} (+ its streaming graphs, model.int8.onnx, model.md) · run file {out / 'run.h5'}"
    )


def _skill_lines(metrics: dict, model: Path) -> list[str]:
    """Mode 2 against the mean pose, in words: from `mode2 evaluate` (the held-out session) when it ran,
    else from the model's metadata (the validation session at training time)."""
    evaluated = metrics.get("mode2", {}).get("camera", {})
    mean_pose = metrics.get("mean_pose", {}).get("camera", {}).get("mpjpe_mean_mm")
    source = "mode2 evaluate on the held-out session"
    if not isinstance(evaluated.get("mpjpe_mean_mm"), int | float) or not isinstance(mean_pose, int | float):
        validation = _model_validation(model)
        evaluated = {
            "mpjpe_mean_mm": validation.get("val_mpjpe_mm"),
            "fingertip_mean_mm": validation.get("val_fingertip_mm"),
            "flexion_error_mean_deg": validation.get("val_flexion_error_deg"),
        }
        mean_pose = validation.get("val_mean_pose_mpjpe_mm")
        source = "the model's metadata (validation session at training)"
    mpjpe = evaluated.get("mpjpe_mean_mm")
    if not isinstance(mpjpe, int | float) or not isinstance(mean_pose, int | float) or mean_pose <= 0:
        return []
    skill = 1.0 - mpjpe / mean_pose
    tips, flexion = evaluated.get("fingertip_mean_mm"), evaluated.get("flexion_error_mean_deg")
    lines = [
        f"Mode 2 ({source}): MPJPE {mpjpe:.1f} mm, fingertips "
        + ("—" if not isinstance(tips, int | float) else f"{tips:.1f} mm")
        + ", flexion error "
        + ("—" if not isinstance(flexion, int | float) else f"{flexion:.1f}°")
        + f"; mean pose {mean_pose:.1f} mm; skill {skill:+.2f}"
    ]
    if skill <= 0:
        lines.append(
            f"⚠ Mode 2 does not beat the mean pose: {mpjpe:.1f} mm vs {mean_pose:.1f} mm (skill {skill:+.2f}); "
            "train longer (--epochs) or on more data before trusting it"
        )
    return lines


def _model_validation(model: Path) -> dict:
    """The exported model's `validation` figures ({} when there is no model or it cannot be read)."""
    if not model.is_file():
        return {}
    from runtime.model_metadata import read_model_metadata

    try:
        validation = read_model_metadata(model).get("validation")
    except UserError:
        return {}
    return validation if isinstance(validation, dict) else {}


def _find_mpjpe(metrics: dict) -> float | None:
    """The deployed policy's held-out MPJPE vs camera labels, as `mode2 evaluate` wrote it."""
    value = metrics.get("mode2", {}).get("camera", {}).get("mpjpe_mean_mm")
    return round(float(value), 3) if isinstance(value, int | float) else None


def _default_backbone(available: dict[str, object]) -> str:
    """The shipped stand-in backbone's path, asked of the training side in its own process."""
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "from training.models.backbone import default_backbone_path; print(default_backbone_path())",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return probe.stdout.strip()
