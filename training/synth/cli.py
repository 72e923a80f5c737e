"""`mode2 simulate`: write synthetic sessions from the physiological world."""

from __future__ import annotations

import argparse
from pathlib import Path

from firmware_bridge.session_file import read_session
from training.synth.world import simulate


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--sessions", type=int, default=3, help="sessions per subject (default 3)")
    parser.add_argument("--subjects", type=int, default=1, help="number of subjects (default 1)")
    parser.add_argument(
        "--minutes",
        type=float,
        default=4.0,
        help="minutes per session; the guide's 5-phase protocol is scaled to it (default 4)",
    )
    parser.add_argument("--seed", type=int, default=0)
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
