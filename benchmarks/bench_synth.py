"""Synthetic-world generation speed as a multiple of real time, on one core.

Measures, side by side in one run and for the same motion: the physiology (motor units → both
electrode rings), the 8-ch MindRove recording path (nuisances + recorder filter + session file), and the
whole session with the 2 kHz file. Run: `python benchmarks/bench_synth.py [--minutes 2]`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

from training.synth.motion import generate_motion
from training.synth.subjects import make_placement, make_subject
from training.synth.world import simulate_session, synthesise_streams


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=2.0)
    args = parser.parse_args()
    seconds = args.minutes * 60
    subject = make_subject(1, 0)
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    motion = generate_motion(args.minutes, rng)
    motion_s = time.perf_counter() - started
    started = time.perf_counter()
    synthesise_streams(motion, subject, make_placement(subject, 1), rng)
    physiology_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        simulate_session(Path(tmp), subject, 1, args.minutes, 0, write_2k=False)
        session_8ch_s = time.perf_counter() - started
        started = time.perf_counter()
        simulate_session(Path(tmp), subject, 2, args.minutes, 0, write_2k=True, playback_csv=True)
        full_s = time.perf_counter() - started
    print(f"{args.minutes:g} min of recording, 1 thread")
    print(f"  motion (5-phase protocol)              {motion_s:6.2f} s   {seconds / motion_s:7.0f}× real time")
    print(f"  physiology, 8 + 16 ch                  {physiology_s:6.2f} s   {seconds / physiology_s:7.0f}× real time")
    print(
        f"  8-ch session file (all of it)          {session_8ch_s:6.2f} s   {seconds / session_8ch_s:7.0f}× real time"
    )
    print(f"  + 16-ch 2 kHz file + MindRove CSV      {full_s:6.2f} s   {seconds / full_s:7.0f}× real time")


if __name__ == "__main__":
    main()
