"""Which confidence calibration carries to unseen frames: isotonic vs Platt, fitted on what.

For each `--pair CHECKPOINT:SESSION[:OTHER_SESSION]` (a trained model and a held-out session; optionally another
held-out session of the same person), three fitting sets, each scored on windows that share no sample with it:

- `first minute`: the session's first minute (mostly the rest phase), scored on the rest of the session;
- `spread minute`: every 4th 15-s block of the session (a minute spread over its phases, as the per-donning
  calibration recording is), scored on the windows beside those blocks — what `mode2 evaluate` reports;
- `other session`: all of OTHER_SESSION, scored on all of SESSION (a table that must carry to another donning,
  or, when OTHER_SESSION is another person's, to another person).

Tables are fitted at the calibration hop (0.25 s), scored at the evaluation hop (1 s), with both methods;
Brier score and ECE before (raw) and after, per pair and averaged over pairs.

    .venv/bin/python benchmarks/calibration_methods.py \\
        --pair /work/cal/s01/transfer_mode2_best.pth:/work/curve/data/s01_r06.h5:/work/curve/data/s01_r05.h5 …
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from training.data.windows import load_sessions
from training.fitting import confidence_calibration as calib
from training.fitting.user_calibration import (
    CALIBRATION_HOP,
    DONNING_BLOCK_S,
    DONNING_EVERY,
    WINDOW_S,
    Frames,
    in_blocks,
    model_frames,
)
from training.models.model_io import load_model_checkpoint
from training.scoring.metrics import ERROR_THRESHOLD_MM, auroc

METHODS = ("isotonic", "platt")


def _scores(fit: Frames, scored: Frames) -> dict[str, float]:
    within = scored.errors <= ERROR_THRESHOLD_MM
    result = {
        "brier_raw": calib.brier(scored.confidence, within),
        "ece_raw": calib.expected_calibration_error(scored.confidence, within),
        "frames": len(within),
        "fit_windows": len(fit.errors),
    }
    for method in METHODS:
        table = calib.fit_from_errors(fit.confidence, fit.errors, method=method)
        probability = calib.apply(table, scored.confidence)
        result[f"brier_{method}"] = calib.brier(probability, within)
        result[f"ece_{method}"] = calib.expected_calibration_error(probability, within)
    return result


def measure_pair(checkpoint: Path, session: Path, other: Path | None) -> dict[str, dict[str, float]]:
    model, meta = load_model_checkpoint(checkpoint)
    sessions = load_sessions([str(session)], quiet=True)
    dense = model_frames(model, meta, sessions, checkpoint, hop=CALIBRATION_HOP)
    scored = model_frames(model, meta, sessions, checkpoint)
    rows = {
        "first minute": _scores(dense.select(dense.end_s <= 60.0), scored.select(scored.end_s - WINDOW_S >= 60.0)),
    }
    fit_blocks, _ = in_blocks(dense, DONNING_BLOCK_S, DONNING_EVERY)
    _, score_blocks = in_blocks(scored, DONNING_BLOCK_S, DONNING_EVERY)
    rows["spread minute"] = _scores(dense.select(fit_blocks), scored.select(score_blocks))
    if other is not None:
        other_frames = model_frames(model, meta, load_sessions([str(other)], quiet=True), checkpoint, CALIBRATION_HOP)
        rows["other session"] = _scores(other_frames, scored)
    over = scored.errors > ERROR_THRESHOLD_MM
    rows["_auroc"] = {"auroc": auroc(1.0 - scored.confidence, over)}
    return rows


def table(results: dict[str, dict[str, dict[str, float]]]) -> str:
    lines = [
        "| session | fitted on | fit / scored windows | Brier raw → isotonic / Platt | ECE raw → isotonic / Platt |",
        "|---|---|---|---|---|",
    ]
    by_fit: dict[str, list[dict[str, float]]] = {}
    for name, rows in results.items():
        for fit, r in rows.items():
            if fit.startswith("_"):
                continue
            by_fit.setdefault(fit, []).append(r)
            lines.append(
                f"| {name} (AUROC {rows['_auroc']['auroc']:.3f}) | {fit} | {r['fit_windows']} / {r['frames']} | "
                f"{r['brier_raw']:.3f} → {r['brier_isotonic']:.3f} / {r['brier_platt']:.3f} | "
                f"{r['ece_raw']:.3f} → {r['ece_isotonic']:.3f} / {r['ece_platt']:.3f} |"
            )
    for fit, rows in by_fit.items():
        mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
        lines.append(
            f"| **mean of {len(rows)}** | {fit} | | {mean['brier_raw']:.3f} → {mean['brier_isotonic']:.3f} / "
            f"{mean['brier_platt']:.3f} | {mean['ece_raw']:.3f} → {mean['ece_isotonic']:.3f} / "
            f"{mean['ece_platt']:.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pair", nargs="+", required=True, help="CHECKPOINT:SESSION[:OTHER_SESSION]")
    args = parser.parse_args(argv)
    results = {}
    for pair in args.pair:
        parts = pair.split(":")
        if len(parts) not in (2, 3):
            parser.error(f"--pair {pair!r}: expected CHECKPOINT:SESSION[:OTHER_SESSION]")
        checkpoint, session = Path(parts[0]), Path(parts[1])
        other = Path(parts[2]) if len(parts) == 3 else None
        results[f"{session.stem}"] = measure_pair(checkpoint, session, other)
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
