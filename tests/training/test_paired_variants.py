"""benchmarks/paired_variants.py: variants paired with a baseline per subject, seed and amount."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from tests.benchmark_scripts import load_benchmark


def _run(arch: str, subject: str, minutes: float, mpjpe: float, seed: int = 1, auroc: float = 0.8) -> dict:
    return {
        "arch": arch,
        "subject": subject,
        "seed": seed,
        "minutes_used": minutes,
        "metrics": {"mpjpe_mean_mm": mpjpe, "confidence_auroc": auroc},
    }


def _write(path: Path, runs: list[dict]) -> Path:
    path.write_text(json.dumps({"runs": runs}))
    return path


def test_variants_are_paired_with_the_baselines_run_of_the_same_subject_seed_and_amount(tmp_path: Path) -> None:
    baseline = _write(
        tmp_path / "base.json",
        [_run("guide", "s01", 1.0, 15.0), _run("guide", "s02", 1.0, 20.0), _run("guide", "s01", 5.0, 14.0)],
    )
    variants = _write(
        tmp_path / "variants.json",
        [
            _run("ft", "s01", 1.0, 14.0),  # −1
            _run("ft", "s02", 1.0, 20.5),  # +0.5
            _run("ft", "s03", 1.0, 5.0),  # no baseline run of s03: left out, not counted as a win
            _run("ft", "s01", 5.0, 13.0, seed=2),  # another seed: no pair
        ],
    )
    module = load_benchmark("paired_variants")
    rows = module.paired(module.load_runs([baseline, variants]), "guide")
    assert len(rows) == 1
    (row,) = rows
    assert row["arch"] == "ft" and row["minutes"] == 1.0
    assert row["delta"] == pytest.approx([-1.0, 0.5]) and row["mean_delta"] == pytest.approx(-0.25)
    assert row["wins"] == 1 and row["pairs"] == ["s01/seed 1", "s02/seed 1"]
    assert row["value"] == pytest.approx(17.25) and row["baseline_value"] == pytest.approx(17.5)

    plot = tmp_path / "paired.png"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert module.main(["--curves", str(baseline), str(variants), "--baseline", "guide", "--plot", str(plot)]) == 0
    assert "| ft | 1 | 17.25 | 17.50 | -0.25 | -1.00 / +0.50 | 1/2 |" in printed.getvalue()
    assert plot.stat().st_size > 1000


def test_an_unknown_baseline_names_the_archs_there_are(tmp_path: Path) -> None:
    curves = _write(tmp_path / "c.json", [_run("ft", "s01", 1.0, 14.0)])
    module = load_benchmark("paired_variants")
    with pytest.raises(SystemExit, match=r"--baseline mode2: no such arch in the curves \(have ft\)"):
        module.main(["--curves", str(curves)])


def test_auroc_is_paired_with_higher_as_better_and_undefined_pairs_left_out(tmp_path: Path) -> None:
    curves = _write(
        tmp_path / "c.json",
        [
            _run("mlp", "s01", 1.0, 15.0, auroc=0.70),
            _run("mlp", "s02", 1.0, 20.0, auroc=0.90),
            _run("mlp", "s03", 1.0, 18.0, auroc=0.80),
            _run("ridge", "s01", 1.0, 15.1, auroc=0.80),  # +0.10: a win
            _run("ridge", "s02", 1.0, 19.9, auroc=0.85),  # −0.05: a loss
            _run("ridge", "s03", 1.0, 18.0, auroc=float("nan")),  # no frame over 20 mm: nothing to pair
        ],
    )
    module = load_benchmark("paired_variants")
    (row,) = module.paired(module.load_runs([curves]), "mlp", "confidence_auroc")
    assert row["delta"] == pytest.approx([0.10, -0.05]) and row["wins"] == 1
    assert row["other"] == pytest.approx(17.5) and row["baseline_other"] == pytest.approx(17.5)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        args = ["--curves", str(curves), "--baseline", "mlp", "--metric", "confidence_auroc"]
        assert module.main(args) == 0
        assert module.main([*args, "--variants", "other"]) == 1  # nothing left to pair
    assert "| ridge | 1 | 0.825 | 0.800 | +0.025 | +0.100 / -0.050 | 1/2 | 17.50 (17.50) |" in printed.getvalue()
