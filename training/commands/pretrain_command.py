"""`mode2 pretrain-backbone`: train the vemg2pose backbone on 16-ch 2 kHz recordings (emg2pose layout).

Runs in stages when asked: `--max-minutes` (or Ctrl-C / SIGTERM) ends a stage with `OUT.partial.pth`,
`--resume OUT.partial.pth` continues it with the same data order; `--budget-minutes`, `--max-steps` or
`--epochs` end the whole run, which writes OUT (the best model, loadable by `--backbone`) and OUT.md (its
sha256, recipe and training log).
"""

from __future__ import annotations

import argparse
import glob
import math
import shlex
import signal
import sys
from pathlib import Path
from typing import Any

import torch

from firmware_bridge.atomic_write import check_writable_file, write_text_atomic
from firmware_bridge.cli_types import non_negative_int, positive_float, positive_int
from firmware_bridge.errors import UserError
from training.fitting.pretrain import PretrainResult, StageLimits, pretrain, read_checkpoint
from training.fitting.pretrain_data import RMS_SAMPLE_WINDOWS, check_subjects_disjoint
from training.models.backbone import BackboneConfig, count_parameters
from training.models.backbone_io import save_standin, sha256_of


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", nargs="+", help="globs of *_2k.h5 files (emg2pose layout)")
    held_out = parser.add_mutually_exclusive_group()
    held_out.add_argument(
        "--val-sessions", nargs="+", default=None, help="session ids of --data held out for validation (default r03)"
    )
    held_out.add_argument(
        "--val-data", nargs="+", default=None, help="globs of *_2k.h5 files of OTHER subjects, held out by subject"
    )
    parser.add_argument("--out", type=Path, help="where to write the backbone (.pth); OUT.md gets its log")
    parser.add_argument("--config", choices=["standin", "official"], default="standin")
    parser.add_argument("--epochs", type=positive_int, default=40)
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--threads", type=non_negative_int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument(
        "--max-minutes", type=positive_float, default=None, help="end this stage after this much training time"
    )
    parser.add_argument("--budget-minutes", type=positive_float, default=None, help="total training time, all stages")
    parser.add_argument("--max-steps", type=positive_int, default=None, help="total optimizer steps, all stages")
    parser.add_argument("--stage-steps", type=positive_int, default=None, help="end this stage after N steps")
    parser.add_argument("--val-windows", type=positive_int, default=512, help="held-out windows checked per epoch")
    parser.add_argument(
        "--checkpoint-every-min", type=positive_float, default=None, help="write OUT.partial.pth this often"
    )
    parser.add_argument("--resume", type=Path, default=None, help="continue a run from its OUT.partial.pth")


def _expand(patterns: list[str], option: str) -> list[Path]:
    paths: set[Path] = set()
    for pattern in patterns:
        matched = {Path(p) for p in glob.glob(pattern)}
        if not matched:
            print(f"note: {option} {pattern!r} matches no file", file=sys.stderr)
        paths |= matched
    if not paths:
        raise UserError(f"{option} {' '.join(patterns)}: no files match")
    for path in sorted(paths):
        if path.is_dir():
            raise UserError(f"{option} {path}: is a folder; give its files, e.g. '{path}/*_2k.h5'")
    return sorted(paths)


def partial_path(out: Path) -> Path:
    return out.with_name(out.stem + ".partial.pth")


def _new_recipe(args: argparse.Namespace) -> dict[str, Any]:
    if not args.data or args.out is None:
        raise UserError("--data and --out are required (or --resume OUT.partial.pth)")
    check_writable_file(args.out, what="--out")
    ordered = _expand(args.data, "--data")
    if args.val_data:
        val = _expand(args.val_data, "--val-data")
        train = ordered
        check_subjects_disjoint(train, val)
        how = "held-out subjects"
    else:
        sessions = args.val_sessions or ["r03"]
        val = [p for p in ordered if any(f"_{s}_2k" in p.name or p.stem.endswith(s) for s in sessions)]
        train = [p for p in ordered if p not in val]
        how = f"held-out sessions ({' '.join(sessions)})"
    if not train or not val:
        raise UserError(f"need both training and held-out files: {len(train)} train, {len(val)} held out ({how})")
    return {
        "command": "mode2 " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "config_name": args.config,
        "config": (BackboneConfig.standin() if args.config == "standin" else BackboneConfig.official()).to_dict(),
        "train_files": [str(p) for p in train],
        "val_files": [str(p) for p in val],
        "subject_holdout": bool(args.val_data),
        "holdout": how,
        "epochs": args.epochs,
        "seed": args.seed,
        "batch_size": args.batch_size,
        "window": 4000,
        "val_windows": args.val_windows,
        "max_steps": args.max_steps,
        "budget_minutes": args.budget_minutes,
        "checkpoint_every_min": args.checkpoint_every_min,
        "out": str(args.out),
    }


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.resume is not None:
        given = [o for o, v in (("--data", args.data), ("--val-data", args.val_data), ("--out", args.out)) if v]
        if given or args.val_sessions:
            raise UserError(
                f"--resume {args.resume}: takes data, output and recipe from the checkpoint; drop "
                f"{' '.join(given + (['--val-sessions'] if args.val_sessions else []))} "
                "(per stage: --max-minutes, --stage-steps, --threads, --checkpoint-every-min)"
            )
    resume = read_checkpoint(args.resume) if args.resume is not None else None
    recipe = resume["recipe"] if resume is not None else _new_recipe(args)
    out = Path(recipe["out"])
    if resume is not None:
        check_writable_file(out, what="--out (from the checkpoint)")
    every = args.checkpoint_every_min or recipe["checkpoint_every_min"]
    limits = StageLimits(
        max_steps=recipe["max_steps"],
        budget_minutes=recipe["budget_minutes"],
        stage_minutes=args.max_minutes,
        stage_steps=args.stage_steps,
        checkpoint_path=partial_path(out),
        checkpoint_every_min=every,
    )
    config = BackboneConfig(**recipe["config"])
    if resume is not None:
        resume["stages"].append(" ".join(["mode2"] + [shlex.quote(a) for a in sys.argv[1:]]))
    print(
        f"pretraining a {recipe['config_name']} vemg2pose ({count_parameters_of(config):,} parameters) on "
        f"{len(recipe['train_files'])} files, validating on {len(recipe['val_files'])} files ({recipe['holdout']})"
        + (f"; resuming {args.resume}" if resume is not None else "")
    )
    previous = {s: signal.signal(s, lambda *_: limits.stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        result = pretrain(
            [Path(p) for p in recipe["train_files"]],
            [Path(p) for p in recipe["val_files"]],
            config=config,
            epochs=recipe["epochs"],
            seed=recipe["seed"],
            batch_size=recipe["batch_size"],
            window=recipe["window"],
            val_windows=recipe["val_windows"],
            limits=limits,
            resume=resume,
            recipe=recipe,
            subject_holdout=recipe["subject_holdout"],
        )
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    if not result.finished:
        extra = f" --max-minutes {args.max_minutes:g}" if args.max_minutes else ""
        extra += f" --threads {args.threads}" if args.threads else ""
        state = result.state
        print(
            f"⏸ stage ended ({result.stopped_because}) after {state['total_steps']} steps, "
            f"{state['elapsed_s'] / 60:.1f} training minutes; checkpoint {limits.checkpoint_path}\n"
            f"resume with: mode2 pretrain-backbone --resume {shlex.quote(str(limits.checkpoint_path))}{extra}"
        )
        return 130 if result.stopped_because == "interrupted" else 0
    return _finish(out, result, recipe)


def _finish(out: Path, result: PretrainResult, recipe: dict[str, Any]) -> int:
    state = result.state
    heldout = {k: (float(v) if isinstance(v, float) else v) for k, v in state["heldout"].items()}
    provenance = {
        "command": recipe["command"],
        "resumed_with": list(state["stages"]),
        "seed": recipe["seed"],
        "holdout": recipe["holdout"],
        "train_files": [Path(p).name for p in result.train_files],
        "val_files": [Path(p).name for p in result.val_files],
        "val_mae_deg": result.val_mae_deg,
        "heldout": heldout,
        "input_rms": result.input_rms,
        "input_rms_windows": state["rms_windows"],
        "epochs_run": len(result.history),
        "steps": state["total_steps"],
        "training_minutes": state["elapsed_s"] / 60,
        "stopped_because": result.stopped_because,
        "history": result.history,
    }
    path = save_standin(out, result.model, provenance)
    digest = sha256_of(path)
    write_text_atomic(out.with_suffix(".md"), training_log(path, digest, recipe, provenance, state))
    print(
        f"✅ saved {path} (held-out MAE {result.val_mae_deg:.2f}° over the span, "
        f"{math.degrees(heldout['mae_last_rad']):.2f}° at the last sample; input RMS {result.input_rms:.1f})\n"
        f"sha256 {digest}\nlog {out.with_suffix('.md')}"
    )
    return 0


def training_log(
    path: Path, digest: str, recipe: dict[str, Any], provenance: dict[str, Any], state: dict[str, Any]
) -> str:
    h = provenance["heldout"]
    deg = math.degrees
    params = count_parameters_of(BackboneConfig(**recipe["config"]))
    lines = [
        f"# Pretrained backbone `{path.name}`",
        "",
        f"sha256 `{digest}`",
        "",
        f"vemg2pose, `BackboneConfig.{recipe['config_name']}()` ({params:,} parameters, stored as float16), "
        "pretrained on the files below only. Load it anywhere with `--backbone " + path.name + "`.",
        "",
        "## Recipe",
        "",
        "```bash",
        recipe["command"],
        *state["stages"],
        "```",
        "",
        f"- training: {len(recipe['train_files'])} files, {state['train_windows']:,} windows of 2 s (hop 1 s, "
        f"16-ch 2 kHz); seed {recipe['seed']}, batch {recipe['batch_size']}, Adam 1e-3, L1 on the 20 angles, "
        "band rotation ±1, gain 0.8–1.25",
        f"- validation: {recipe['holdout']}: {len(recipe['val_files'])} files, {state['val_windows']:,} windows "
        f"({state['val_subset_windows']} seeded windows checked per epoch; best epoch chosen on them)",
        f"- input RMS {state['input_rms']:.2f} from {state['rms_windows']} seeded windows "
        f"(at most {RMS_SAMPLE_WINDOWS})",
        f"- ran {state['total_steps']:,} steps, {state['elapsed_s'] / 60:.1f} training minutes, "
        f"{len(state['stages']) + 1} stage(s); stopped by {provenance['stopped_because']}",
        "",
        f"## Held-out figures (all {h['windows']:,} held-out windows, best model, ground-truth initial pose)",
        "",
        "| | model | holding the initial pose |",
        "|---|---:|---:|",
        f"| angle MAE over the predicted span | {deg(h['mae_span_rad']):.2f}° | {deg(h['hold_span_rad']):.2f}° |",
        f"| angle MAE at the last sample | {deg(h['mae_last_rad']):.2f}° | {deg(h['hold_last_rad']):.2f}° |",
        "",
        "## History",
        "",
        "| epoch | steps | training min | train MAE | held-out MAE (subset) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for e in provenance["history"]:
        epoch = f"{e['epoch']}{' (partial)' if e.get('partial') else ''}"
        lines.append(
            f"| {epoch} | {e['steps']} | {e['elapsed_min']:.1f} | {e['train_mae_deg']:.2f}° | {e['val_mae_deg']:.2f}° |"
        )
    if state["stage_checks"]:
        lines += ["", "Stage ends (held-out subset, not used to pick the best):", ""]
        for c in state["stage_checks"]:
            lines.append(
                f"- epoch {c['epoch']} step {c['step']} ({c['steps']} steps, {c['elapsed_min']:.1f} min): "
                f"{c['val_mae_deg']:.2f}°"
            )
    return "\n".join(lines) + "\n"


def count_parameters_of(config: BackboneConfig) -> int:
    from training.models.backbone import VEMG2Pose

    return count_parameters(VEMG2Pose(config))
