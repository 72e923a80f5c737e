"""`mode2 pretrain-backbone`: train the stand-in vemg2pose on 16-ch 2 kHz recordings (emg2pose layout)."""

from __future__ import annotations

import argparse
import glob
import shlex
import sys
from pathlib import Path

import torch

from firmware_bridge.atomic_write import check_writable_file
from firmware_bridge.cli_types import non_negative_int, positive_float, positive_int
from firmware_bridge.errors import UserError
from training.fitting.pretrain import pretrain
from training.models.backbone import BackboneConfig, count_parameters
from training.models.backbone_io import save_standin


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", nargs="+", required=True, help="globs of *_2k.h5 files (emg2pose layout)")
    parser.add_argument(
        "--val-sessions", nargs="+", default=["r03"], help="session ids held out for validation (default r03)"
    )
    parser.add_argument("--out", type=Path, required=True, help="where to write the stand-in backbone (.pth)")
    parser.add_argument("--config", choices=["standin", "official"], default="standin")
    parser.add_argument("--epochs", type=positive_int, default=40)
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--threads", type=non_negative_int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--max-minutes", type=positive_float, default=None, help="stop after this much training time")


def run(args: argparse.Namespace) -> int:
    check_writable_file(args.out, what="--out")
    if args.threads:
        torch.set_num_threads(args.threads)
    paths: set[Path] = set()
    for pattern in args.data:
        matched = {Path(p) for p in glob.glob(pattern)}
        if not matched:
            print(f"note: --data {pattern!r} matches no file", file=sys.stderr)
        paths |= matched
    if not paths:
        raise UserError(f"--data {' '.join(args.data)}: no files match")
    for path in sorted(paths):
        if path.is_dir():
            raise UserError(f"--data {path}: is a folder; give its files, e.g. '{path}/*_2k.h5'")
    ordered = sorted(paths)
    val = [p for p in ordered if any(f"_{s}_2k" in p.name or p.stem.endswith(s) for s in args.val_sessions)]
    train = [p for p in ordered if p not in val]
    if not train or not val:
        raise UserError(
            f"need both training and held-out files: {len(train)} train, {len(val)} held out "
            f"(--val-sessions {' '.join(args.val_sessions)})"
        )
    config = BackboneConfig.standin() if args.config == "standin" else BackboneConfig.official()
    print(
        f"pretraining a {args.config} vemg2pose ({count_parameters_of(config):,} parameters) on {len(train)} files, "
        f"validating on {len(val)} held-out sessions"
    )
    result = pretrain(
        train,
        val,
        config=config,
        epochs=args.epochs,
        seed=args.seed,
        batch_size=args.batch_size,
        max_minutes=args.max_minutes,
    )
    provenance = {
        "command": "mode2 " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "seed": args.seed,
        "train_files": [Path(p).name for p in result.train_files],
        "val_files": [Path(p).name for p in result.val_files],
        "val_mae_deg": result.val_mae_deg,
        "input_rms": result.input_rms,
        "epochs_run": len(result.history),
        "history": result.history,
    }
    path = save_standin(args.out, result.model, provenance)
    print(f"✅ saved {path} (held-out MAE {result.val_mae_deg:.2f}°, input RMS {result.input_rms:.1f})")
    return 0


def count_parameters_of(config: BackboneConfig) -> int:
    from training.models.backbone import VEMG2Pose

    return count_parameters(VEMG2Pose(config))
