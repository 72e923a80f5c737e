"""benchmarks/streaming_accuracy.py run as a user runs it, on the test suite's exported model and a held-out
synthetic session: the exact engine scores exactly what the windowed one scores, and the cost counts are
the schedule's (a never-restarting lane takes 2 steps per 40-ms frame; exact 55 per hop)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SECONDS = 12.0


@pytest.fixture(scope="module")
def study(exported_model: Path, small_world: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("anchor")
    command = [sys.executable, str(REPO / "benchmarks/streaming_accuracy.py"), "--model", str(exported_model)]
    command += ["--data", str(small_world / "s01_r03.h5"), "--seconds", str(SECONDS), "--only", "^L1×∞ h20|crossfade"]
    command += ["--json", str(out / "result.json"), "--plot", str(out / "plot.png")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads((out / "result.json").read_text())
    result["_plot"] = out / "plot.png"
    result["_stdout"] = done.stdout
    return result


def rows(result: dict) -> dict[str, dict]:
    return {r["label"]: r for r in result["rows"]}


def test_exact_engine_scores_the_same_hops_as_windowed(study: dict) -> None:
    by = rows(study)
    windowed, exact = by["windowed h20"], by["exact h20"]
    assert exact["hops_scored"] == windowed["hops_scored"] > 0
    assert exact["mpjpe_mm"] == pytest.approx(windowed["mpjpe_mm"], abs=1e-3)
    parity = study["exact_vs_windowed"]
    assert parity["hops"] > 0 and parity["theta_max_abs_rad"] <= 1e-4 and parity["joints_max_abs_mm"] <= 0.01
    assert "exact vs windowed" in study["_stdout"]


def test_cost_counts_follow_each_engines_schedule(study: dict) -> None:
    by = rows(study)
    frames_per_s = 500 / 20
    lane = by["L1×∞ h20"]["rollout_steps_per_s"]
    assert 0.8 * 2 * frames_per_s <= lane <= 2 * frames_per_s  # minus the warm-up before the first frame
    hops_per_s = 500 / 20
    exact = by["exact h20"]["rollout_steps_per_s"]
    assert 0.8 * 55 * hops_per_s <= exact <= 1.1 * 55 * hops_per_s
    assert by["L2×165 crossfade h20"]["rollout_steps_per_s"] <= 2 * 2 * frames_per_s  # two lanes, two steps a frame


def test_every_variant_is_scored_and_plotted(study: dict) -> None:
    assert {"windowed h20", "exact h20", "exact h10", "L1×∞ h20", "L2×165 crossfade h20"} <= set(rows(study))
    assert all(r["hops_scored"] > 0 and r["mpjpe_mm"] > 0 for r in study["rows"])
    assert study["_plot"].stat().st_size > 10_000
