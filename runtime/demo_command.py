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

from runtime.cli import _available_commands


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="working folder (default: demo_out)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--minutes", type=float, default=1.0, help="minutes per synthetic session")
    parser.add_argument("--epochs", type=int, default=4, help="Mode 2 training epochs (short by default)")


def _stages(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """The pipeline a newcomer would type: 4 synthetic sessions; train on r01–r02, r03 held out for model
    selection, r04 never seen until evaluation and the export's parity check."""
    out: Path = args.out
    sessions = out / "sessions"
    best = str(out / "train" / "transfer_mode2_best.pth")
    simulate = f"--out {sessions} --subjects 1 --sessions 4 --minutes {args.minutes} --seed {args.seed} --playback-csv"
    train = f"--out {out / 'train'} --val-sessions s01/r03 --epochs {args.epochs} --seed {args.seed}"
    return [
        ("simulate", simulate.split()),
        ("inspect", [str(sessions / "s01_r01.h5"), "--plot", str(out / "s01_r01_overview.png")]),
        ("inspect-checkpoint", []),
        ("train", ["--data", str(sessions / "s01_r0[1-3].h5"), *train.split()]),
        (
            "evaluate",
            [
                "--checkpoint",
                best,
                "--data",
                str(sessions / "s01_r04.h5"),
                "--out",
                str(out / "evaluation"),
                "--write-calibration",
            ],
        ),
        (
            "export-onnx",
            ["--checkpoint", best, "--out", str(out / "model.onnx"), "--data", str(sessions / "s01_r04.h5"), "--int8"],
        ),
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
    print(f"demo finished: everything is in {args.out}/")
    return 0


def _default_backbone(available: dict[str, object]) -> str:
    """The shipped stand-in backbone's path, asked of the training side in its own process."""
    probe = subprocess.run(
        [sys.executable, "-c", "from training.backbone import default_backbone_path; print(default_backbone_path())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return probe.stdout.strip()
