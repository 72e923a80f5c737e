"""`mode2 simulate`: write synthetic sessions from the physiological world."""

from __future__ import annotations

import argparse
from pathlib import Path

from firmware_bridge.atomic_write import check_writable_dir
from firmware_bridge.cli_types import bounded_float, bounded_int, non_negative_int
from firmware_bridge.session import read_session
from training.synth.world import simulate

MAX_MINUTES = 30.0
MAX_SESSIONS = 99  # file names carry two digits (s01_r01)
MAX_SUBJECTS = 99


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--sessions", type=bounded_int(1, MAX_SESSIONS), default=3, help="sessions per subject (default 3)"
    )
    parser.add_argument(
        "--subjects", type=bounded_int(1, MAX_SUBJECTS), default=1, help="number of subjects (default 1)"
    )
    parser.add_argument(
        "--minutes",
        type=bounded_float(0.0, MAX_MINUTES, low_inclusive=False),
        default=4.0,
        help=f"minutes per session, > 0 and ≤ {MAX_MINUTES:g} (a session is held in memory while it is "
        "made); the guide's 5-phase protocol is scaled to it (default 4)",
    )
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--no-2k", action="store_true", help="skip the 16-ch 2 kHz stream (backbone pretraining)")
    parser.add_argument(
        "--playback-csv",
        action="store_true",
        help="also write a MindRove WiFi playback CSV per session (for the SDK's playback board)",
    )
    parser.add_argument(
        "--faults",
        action="store_true",
        help="inject electrode faults (lift-off, saturation, flat line, stall, duplicates) with labels",
    )


def run(args: argparse.Namespace) -> int:
    check_writable_dir(args.out, what="--out")
    paths = simulate(
        args.out,
        sessions=args.sessions,
        subjects=args.subjects,
        minutes=args.minutes,
        seed=args.seed,
        write_2k=not args.no_2k,
        playback_csv=args.playback_csv,
        faults=args.faults,
    )
    for path in paths:
        if path.suffix == ".h5" and not path.stem.endswith("_2k"):
            session = read_session(path)  # written files must pass the contract's own validation
            print(f"{path}  {session.duration:6.1f} s EMG, {len(session.pose_timestamps)} pose frames")
        else:
            print(path)
    return 0
