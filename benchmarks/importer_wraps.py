"""Counter wraps across stalls and delivery pauses: what `build_timeline` reports, before and after the fix.

Run from the repo: `python benchmarks/importer_wraps.py [--before REV] [--seeds N]`.
"before" is firmware_bridge/mindrove_import.py at git revision REV (read with `git show`, default 70fba82),
"after" is the working tree's. Each case: 20,000 rows at 500 Hz, counter per sample (wraps at 256), chunks
of 2 samples sent when the chunk's last sample is taken, arriving 4 ms + Exp(jitter) later, in order.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import types
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from firmware_bridge import mindrove_import as after_module

RATE = 500.0
N = 20_000
AT = 10_000


def load_before(rev: str) -> types.ModuleType:
    text = subprocess.run(
        ["git", "show", f"{rev}:firmware_bridge/mindrove_import.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    module = types.ModuleType("mindrove_import_before")
    module.__file__ = f"{rev}:firmware_bridge/mindrove_import.py"
    sys.modules[module.__name__] = module  # (dataclasses look their module up)
    exec(compile(text, module.__file__, "exec"), module.__dict__)
    return module


def simulate(
    seed: int,
    lost: int = 0,
    pause_s: float = 0.0,
    jitter_s: float = 0.001,
    held_rows: int = 0,
    straddle: bool = False,
    late_before_s: float = 0.0,
    extra_losses: tuple[tuple[int, int], ...] = (),
    hold_after_s: float = 0.0,
    resend_at: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(true sample times, arrival times, counters).

    lost: samples lost after row AT (a stall; the link pauses for as long).
    pause_s: a delivery pause at row AT without loss (the queue arrives at once when it resumes).
    held_rows: the last rows before the loss sit in the device's buffer and arrive with the first after it.
    straddle: the chunk holding row AT - 1 also holds row AT (chunks by row index, as the world had them).
    late_before_s: the chunk before the loss arrives this much late.
    extra_losses: (row, lost) further losses.
    hold_after_s: after the loss, delivery stays paused until this long after the last sample before it.
    resend_at: rows resend_at … + 3 carry the 4 counters before them again (a re-sent packet in their slots).
    """
    rng = np.random.default_rng(seed)
    jumps = np.zeros(N, dtype=np.int64)
    jumps[AT] = lost
    for row, count in extra_losses:
        jumps[row] += count
    index = np.arange(N) + np.cumsum(jumps)
    t = index / RATE
    gap = np.r_[False, np.diff(index) > 1]
    if straddle:
        position = np.arange(N) + 1  # chunks (9999, 10000), (10001, 10002), …
    else:
        starts = np.flatnonzero(np.r_[True, gap[1:]])
        position = np.arange(N) - starts[np.cumsum(np.r_[False, gap[1:]])]
    chunk = np.cumsum(np.r_[True, position[1:] % 2 == 0]) - 1
    last = np.flatnonzero(np.r_[chunk[1:] != chunk[:-1], True])
    arrive_chunk = t[last] + 0.004 + rng.exponential(jitter_s, len(last))
    arrive = arrive_chunk[chunk]
    if pause_s:
        begin = t[AT]
        held = (arrive >= begin) & (arrive < begin + pause_s)
        arrive[held] = begin + pause_s
    if hold_after_s:
        held = (arrive >= t[AT - 1]) & (arrive < t[AT - 1] + hold_after_s)
        arrive[held] = t[AT - 1] + hold_after_s
    if held_rows:
        arrive[AT - held_rows : AT] = arrive[AT]
    if late_before_s:
        arrive[AT - 2 : AT] += late_before_s
    arrive = np.maximum.accumulate(arrive)
    counters = index % 256
    if resend_at:
        counters[resend_at : resend_at + 4] = counters[resend_at - 4 : resend_at]
    return t, arrive, counters


def run(module: types.ModuleType, t: np.ndarray, arrive: np.ndarray, counters: np.ndarray) -> tuple[str, float, int]:
    recording = module.Recording(Path("x.csv"), "sdk", np.ones((N, 8)), arrive, counters, RATE, [])
    timeline = module.build_timeline(recording)
    offset = timeline.times - t
    worst = float(np.abs(offset - np.median(offset)).max() * 1000)
    gaps = ", ".join(f"{n}@{i}" for i, n in timeline.gaps) or "none"
    return gaps, worst, timeline.repeated_counters


CASES = {
    "stall, 250 lost": {"lost": 250},
    "stall, 254 lost": {"lost": 254},
    "stall, 300 lost": {"lost": 300},
    "stall, 600 lost": {"lost": 600},
    "pause 0.3 s, no loss": {"pause_s": 0.3},
    "pause 0.6 s, no loss": {"pause_s": 0.6},
    "pause 1.2 s, no loss": {"pause_s": 1.2},
    # beyond the brief's list: the other shapes the rule is meant for
    "stall, 256 lost (counter +1)": {"lost": 256},
    "stall, 300 lost, chunk straddles it": {"lost": 300, "straddle": True},
    "stall, 600 lost, 100 rows held in the device": {"lost": 600, "held_rows": 100},
    "stall, 300 lost, packet before 60 ms late": {"lost": 300, "late_before_s": 0.06},
    "stall 300 lost + 3 lost 40 ms later": {"lost": 300, "extra_losses": ((AT + 20, 3),)},
    "two stalls of 300, 0.4 s apart": {"lost": 300, "extra_losses": ((AT + 200, 300),)},
    "stall, 300 lost, delivery held 1.5 s": {"lost": 300, "hold_after_s": 1.5},
    "pause 3 s, no loss": {"pause_s": 3.0},
    "re-sent packet of 4": {"resend_at": AT},
    "re-sent packet 20 ms after a 300 stall": {"lost": 300, "resend_at": AT + 10},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--before", default="70fba82")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--jitter", type=float, default=0.001, help="mean extra delay per chunk, s")
    args = parser.parse_args()
    before = load_before(args.before)
    print(
        f"| case ({args.seeds} seeds, jitter Exp({args.jitter * 1000:g} ms)) | before: gaps | worst ms | repeated "
        "| after: gaps | worst ms | repeated |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, case in CASES.items():
        cells = []
        for module in (before, after_module):
            results = [run(module, *simulate(seed, jitter_s=args.jitter, **case)) for seed in range(args.seeds)]
            gaps = sorted({r[0] for r in results})
            cells.append(f"{' / '.join(gaps)} | {max(r[1] for r in results):.1f} | {max(r[2] for r in results)}")
        print(f"| {name} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
