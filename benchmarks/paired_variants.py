"""Mode 2 variants against one baseline, paired per subject and seed (issue 15), from learning-curve runs.

Between-subject spread (± 3.5 mm here) hides differences of a millimetre, while the same subject, seed and data
trained two ways differ by exactly the change made. This reads the `learning_curve.json` files of
benchmarks/learning_curve.py runs on the same world and seeds (one file per arch or several archs per file),
pairs every variant's run with the baseline's run of the same subject, seed and minutes, and prints per variant
and amount: the mean difference in the held-out `--metric` (MPJPE by default: negative = the variant is better;
`--metric confidence_auroc`: positive = better), the per-subject differences, how many pairs it wins, and the
other metric beside the baseline's. It plots the paired differences (`--plot`).

    python benchmarks/paired_variants.py --curves A/learning_curve.json B/learning_curve.json \\
        --baseline mode2 --plot docs/mode2_variants.png
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from training.scoring.figures import save_figure

Key = tuple[str, int, float]  # subject, seed, minutes used
# metric → (its name in tables and plots, +1 if higher is better else −1, digits)
METRICS = {"mpjpe_mean_mm": ("MPJPE (mm)", -1, 2), "confidence_auroc": ("confidence AUROC", +1, 3)}


def load_runs(paths: list[Path]) -> dict[str, dict[Key, dict[str, Any]]]:
    """arch → (subject, seed, minutes) → run; a later file's run of the same key replaces an earlier one."""
    runs: dict[str, dict[Key, dict[str, Any]]] = defaultdict(dict)
    for path in paths:
        for run in json.loads(path.read_text())["runs"]:
            runs[run["arch"]][(run["subject"], run["seed"], round(run["minutes_used"], 3))] = run
    return runs


def paired(
    runs: dict[str, dict[Key, dict[str, Any]]], baseline: str, metric: str = "mpjpe_mean_mm"
) -> list[dict[str, Any]]:
    """One row per variant × minutes with the pairs it shares with the baseline (and a finite `metric`)."""
    if baseline not in runs:
        raise SystemExit(f"--baseline {baseline}: no such arch in the curves (have {', '.join(sorted(runs))})")
    rows = []
    for arch, mine in runs.items():
        if arch == baseline:
            continue
        for minutes in sorted({k[2] for k in mine}):
            shared = [k for k in mine if k[2] == minutes and k in runs[baseline]]
            keys = sorted(k for k in shared if _has(mine[k], metric) and _has(runs[baseline][k], metric))
            if not keys:
                continue
            delta = [mine[k]["metrics"][metric] - runs[baseline][k]["metrics"][metric] for k in keys]
            other = next(m for m in METRICS if m != metric)
            rows.append(
                {
                    "arch": arch,
                    "minutes": minutes,
                    "pairs": [f"{k[0]}/seed {k[1]}" for k in keys],
                    "subjects": [k[0] for k in keys],
                    "delta": delta,
                    "mean_delta": float(np.mean(delta)),
                    "wins": sum(d * METRICS[metric][1] > 0 for d in delta),
                    "value": float(np.mean([mine[k]["metrics"][metric] for k in keys])),
                    "baseline_value": float(np.mean([runs[baseline][k]["metrics"][metric] for k in keys])),
                    "other": _mean((mine[k] for k in keys), other),
                    "baseline_other": _mean((runs[baseline][k] for k in keys), other),
                }
            )
    return rows


def _has(run: dict[str, Any], metric: str) -> bool:
    value = run["metrics"].get(metric)
    return value is not None and bool(np.isfinite(value))


def _mean(runs: Any, metric: str) -> float | None:
    finite = [r["metrics"][metric] for r in runs if _has(r, metric)]
    return float(np.mean(finite)) if finite else None


def table(rows: list[dict[str, Any]], baseline: str, metric: str = "mpjpe_mean_mm") -> str:
    name, _, digits = METRICS[metric]
    other_name, _, other_digits = METRICS[next(m for m in METRICS if m != metric)]
    lines = [
        f"| variant | minutes | {name} | {baseline} | paired Δ mean | per pair | wins | {other_name} (vs {baseline}) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        other = "—" if r["other"] is None else f"{r['other']:.{other_digits}f} ({r['baseline_other']:.{other_digits}f})"
        lines.append(
            f"| {r['arch']} | {r['minutes']:g} | {r['value']:.{digits}f} | {r['baseline_value']:.{digits}f} | "
            f"{r['mean_delta']:+.{digits}f} | {' / '.join(f'{d:+.{digits}f}' for d in r['delta'])} | "
            f"{r['wins']}/{len(r['delta'])} | {other} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], baseline: str, path: Path, metric: str = "mpjpe_mean_mm") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    arches = list(dict.fromkeys(r["arch"] for r in rows))
    for i, arch in enumerate(arches):
        mine = [r for r in rows if r["arch"] == arch]
        x = np.array([r["minutes"] for r in mine]) * (1 + 0.04 * (i - (len(arches) - 1) / 2))  # side by side
        (line,) = ax.plot(x, [r["mean_delta"] for r in mine], "o-", label=arch)
        for xi, r in zip(x, mine, strict=True):
            ax.scatter([xi] * len(r["delta"]), r["delta"], s=12, color=line.get_color(), alpha=0.5)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ticks = sorted({r["minutes"] for r in rows})
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("minutes of the new subject's data")
    name, sign, _ = METRICS[metric]
    ax.set_ylabel(f"held-out {name}: variant − {baseline}")
    better = "above" if sign > 0 else "below"
    ax.set_title(f"Paired with {baseline} (dots: subject × seed; {better} 0 = better)")
    ax.legend(fontsize=8)
    save_figure(fig, path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--curves", nargs="+", type=Path, required=True, help="learning_curve.json files")
    parser.add_argument("--baseline", default="mode2", help="the arch every other one is paired with")
    parser.add_argument("--metric", choices=list(METRICS), default="mpjpe_mean_mm", help="what is paired")
    parser.add_argument("--variants", nargs="+", default=None, help="the archs to pair (default: every other one)")
    parser.add_argument("--plot", type=Path, default=None, help="write the paired differences here (PNG)")
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.curves if not p.is_file()]
    if missing:
        parser.error(f"--curves: no such file: {', '.join(missing)}")
    runs = load_runs(args.curves)
    if args.variants:
        runs = {arch: mine for arch, mine in runs.items() if arch in {*args.variants, args.baseline}}
    rows = paired(runs, args.baseline, args.metric)
    if not rows:
        print(f"no run shares a subject, seed and amount with {args.baseline}'s runs", file=sys.stderr)
        return 1
    print(table(rows, args.baseline, args.metric))
    if args.plot:
        plot(rows, args.baseline, args.plot, args.metric)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
