"""Which model to train for the amount of data a user has: read off the measured learning curves.

`benchmarks/learning_curve.py` measures held-out MPJPE against minutes of a new subject's data for Mode 2,
Mode 1 and the direct baseline, around one backbone. Its `recommendation_entry` is kept in
`training/assets/learning_curves.json`, keyed by the backbone's sha256 (a curve says nothing about another
backbone). `mode2 train` looks up the entry of the backbone it uses and says which architecture the curve
expects to do best at the minutes of training data given — interpolated on log-minutes between measured
amounts; outside them it shows the nearest and gives no advice — and how sure the curve is (subjects × seeds
behind each point).
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.models.mode2_model import DEFAULT_BACKBONE_FINETUNE, DEFAULT_CONFIDENCE_HEAD

CURVES_PATH = Path(__file__).resolve().parents[1] / "assets" / "learning_curves.json"
# what `mode2 train` trains by default: a curve measured with other Mode 2 settings says nothing about it
MODE2_SETTINGS = {
    "backbone_finetune": DEFAULT_BACKBONE_FINETUNE,
    "adapter_lr": "scaled",
    "confidence_head": DEFAULT_CONFIDENCE_HEAD,
}
NAMES = {"mode2": "Mode 2", "mode1": "Mode 1 (diagnostic, cannot be exported)", "direct": "the direct baseline"}
ROW_KEYS = ("arch", "minutes", "n", "mpjpe_mean_mm", "mpjpe_mean_mm_std")
DEPLOYABLE = ("mode2", "direct")  # Mode 1 is the guide's diagnostic: never recommended for the device
# closer than this, the curve cannot tell the two apart: on the stand-in curve two trainings of one subject on the same
# data differ by 0.02–0.34 mm (seed sd, 3 seeds), but the paired Mode 2 − direct gap varies between subjects by
# 0.35–1.4 mm (sd over 3 subjects)
TIE_MM = 0.5


@dataclass(frozen=True)
class Recommendation:
    arch: str  # the deployable architecture expected to do best
    minutes: float  # the amount of training data asked about
    expected_mm: dict[str, float]  # arch → expected held-out MPJPE at `minutes`
    clamped_to: float | None  # the measured amount used when `minutes` lies outside the curve
    evidence: str  # what the curve rests on
    paired: dict[str, Any] | None = None  # Mode 2 − direct paired at the nearest measured amount, when recorded

    def describe(self, training_arch: str) -> str:
        at = f"{self.minutes:.1f} min" + (
            f" (outside the curve: read at {self.clamped_to:g} min)" if self.clamped_to is not None else ""
        )
        figures = ", ".join(f"{NAMES[a].split(' (')[0]} {mm:.1f} mm" for a, mm in self.expected_mm.items())
        others = [mm for a, mm in self.expected_mm.items() if a in DEPLOYABLE and a != self.arch]
        gap = min(others) - self.expected_mm[self.arch] if others else float("inf")
        margin = f" by {gap:.1f} mm" if others else ""
        if self.clamped_to is not None:
            verdict = (
                f"no advice outside the measured range (the nearest measured amount, {self.clamped_to:g} min, is "
                "shown); `benchmarks/learning_curve.py --minutes …` measures it"
            )
        elif gap < TIE_MM:
            verdict = f"Mode 2 and the direct baseline are about equal here (within {TIE_MM:g} mm): either will do"
        elif training_arch == self.arch:
            verdict = f"{NAMES[training_arch]} is the expected best for this amount of data{margin}"
        else:
            verdict = f"{NAMES[self.arch]} is expected to do better here{margin}: consider --arch {self.arch}"
        said = f"learning curve for this backbone at {at}: {figures} held-out MPJPE ({self.evidence}) → {verdict}"
        return said + (f"; {describe_paired(self.paired)}" if self.paired else "")


def describe_paired(row: dict[str, Any]) -> str:
    """One paired row of a curve in words: the mean difference, its spread over subjects, the wins."""
    se = "" if row.get("se_mm") is None else f" ± {row['se_mm']:.1f}"
    return (
        f"paired at {row['minutes']:g} min, Mode 2 − direct {row['mean_mm']:+.1f}{se} mm (1 se over "
        f"{row['subjects']} subjects), Mode 2 better in {row['wins']} of {row['pairs']} subject × seed runs"
    )


def recommendation_entry(result: dict[str, Any], backbone: dict[str, Any], synthetic: bool) -> dict[str, Any]:
    """What `training/assets/learning_curves.json` keeps of one learning-curve run."""
    arguments = result["arguments"]
    return {
        "synthetic": synthetic,
        "backbone_sha256": backbone["sha256"],
        "backbone": {"kind": backbone["kind"], "path": Path(backbone["path"]).name},
        "subjects": arguments["subjects"] or sorted({r["subject"] for r in result["runs"]}),
        "seeds": sorted({r["seed"] for r in result["runs"]}) or arguments["seeds"],
        "epochs": arguments["epochs"],
        "data": arguments["data"],
        "mode2_settings": dict(MODE2_SETTINGS),
        "rows": [{k: row[k] for k in ROW_KEYS} for row in result["rows"]],
        "paired_mode2_minus_direct": result.get("paired_mode2_minus_direct", []),
    }


def record_curve(entry: dict[str, Any], path: Path = CURVES_PATH) -> None:
    """Keep `entry` as the curve of its backbone (replacing an earlier one of the same backbone)."""
    curves = [c for c in load_curves(path) if c["backbone_sha256"] != entry["backbone_sha256"]]
    path.write_text(json.dumps({"curves": [*curves, entry]}, indent=1) + "\n")


def curve_settings(backbone_sha256: str, curves: list[dict[str, Any]] | None = None) -> list[dict[str, Any] | None]:
    """The Mode 2 settings of every curve measured for this backbone (None: recorded before settings were)."""
    every = load_curves() if curves is None else curves
    return [c.get("mode2_settings") for c in every if c["backbone_sha256"] == backbone_sha256]


def load_curves(path: Path = CURVES_PATH) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return json.loads(path.read_text())["curves"]


def _at(points: list[tuple[float, float]], minutes: float) -> float:
    """Linear interpolation of MPJPE on log-minutes between measured amounts (inside the range only)."""
    for (m0, v0), (m1, v1) in itertools.pairwise(points):
        if m0 <= minutes <= m1:
            w = (math.log(minutes) - math.log(m0)) / (math.log(m1) - math.log(m0)) if m1 > m0 else 0.0
            return v0 + w * (v1 - v0)
    return points[0][1] if minutes < points[0][0] else points[-1][1]


def recommend(
    backbone_sha256: str, minutes: float, curves: list[dict[str, Any]] | None = None
) -> Recommendation | None:
    """The deployable architecture the curve of this backbone expects to do best at `minutes`, or None when
    no curve was measured for it with today's Mode 2 settings (or it lacks Mode 2 or the direct baseline)."""
    entries = [
        c
        for c in (load_curves() if curves is None else curves)
        if c["backbone_sha256"] == backbone_sha256 and c.get("mode2_settings") == MODE2_SETTINGS
    ]
    if not entries:
        return None
    entry = entries[-1]  # the latest measurement of this backbone
    by_arch: dict[str, list[tuple[float, float]]] = {}
    for row in entry["rows"]:
        if row["mpjpe_mean_mm"] is not None:
            by_arch.setdefault(row["arch"], []).append((float(row["minutes"]), float(row["mpjpe_mean_mm"])))
    if not all(a in by_arch for a in DEPLOYABLE):
        return None
    points = {a: sorted(p) for a, p in by_arch.items()}
    low = max(p[0][0] for p in points.values())
    high = min(p[-1][0] for p in points.values())
    clamped = low if minutes < low else high if minutes > high else None
    expected = {a: _at(points[a], minutes) for a in ("mode2", "mode1", "direct") if a in points}
    best = min(DEPLOYABLE, key=lambda a: expected[a])
    runs = min(row["n"] for row in entry["rows"])
    first_look = " — a first look, not a study" if runs < 3 else ""
    world = "synthetic world" if entry.get("synthetic") else "recorded sessions"
    evidence = (
        f"{len(entry['subjects'])} new subject(s) × {len(entry['seeds'])} seed(s), {entry['epochs']} epochs, "
        f"{world}{first_look}"
    )
    paired = entry.get("paired_mode2_minus_direct") or []
    nearest = min(paired, key=lambda r: abs(math.log(r["minutes"]) - math.log(minutes)), default=None)
    return Recommendation(best, minutes, expected, clamped, evidence, nearest)
