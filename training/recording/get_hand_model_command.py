"""`mode2 get-hand-model [--out PATH] [--wheel-dir DIR]`: build the MediaPipe hand model file once.

Downloads the mediapipe 0.10.21 wheel through the package registry (download only, never installed),
verifies it, and writes `hand_landmarker.task` + its licence sidecar to the per-user location that
`mode2 record` looks in (see training/recording/hand_model_file.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from training.recording.hand_model_file import (
    HAND_MODEL_ENV,
    OFFICIAL_MODEL_URL,
    TASK_SHA256,
    build_hand_model,
    default_hand_model_path,
    is_built_model,
    sidecar_path,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Build hand_landmarker.task (MediaPipe's hand detector + landmark networks) from the mediapipe 0.10.21 "
        "wheel: downloaded only, never installed, sha256-checked. Alternative: Google's official file "
        f"{OFFICIAL_MODEL_URL} (pass it with --hand-model or ${HAND_MODEL_ENV})."
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"where to write the model (default: {default_hand_model_path()}, i.e. ${HAND_MODEL_ENV} or "
        "$XDG_DATA_HOME/mode2/hand_landmarker.task)",
    )
    parser.add_argument(
        "--wheel-dir",
        type=Path,
        default=None,
        help="a folder holding an already downloaded mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl "
        "(offline machines); nothing is downloaded then",
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if the file is already there")


def run(args: argparse.Namespace) -> int:
    out = args.out if args.out is not None else default_hand_model_path()
    if not args.force and is_built_model(out):
        print(f"{out} is already built (sha256 {TASK_SHA256}); nothing to do (--force rebuilds)")
        return 0
    build_hand_model(out, wheel_dir=args.wheel_dir, progress=print)
    print(f"wrote {out} ({out.stat().st_size:,} bytes)")
    print(f"  sha256:  {TASK_SHA256}")
    print(f"  licence: {sidecar_path(out)}")
    return 0
