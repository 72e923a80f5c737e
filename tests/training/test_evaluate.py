"""`mode2 evaluate` on held-out synthetic sessions: report sections, ground truths, refusing training data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runtime.cli import main
from training.models.model_io import load_model_checkpoint


@pytest.fixture(scope="module")
def models(trained_checkpoints: Path) -> Path:
    """Mode 2 and the direct baseline, one epoch on s01 r01–r02: the session-wide fixture (tests/conftest.py)."""
    return trained_checkpoints


def test_report_has_every_section(models: Path, small_world: Path, tmp_path: Path) -> None:
    code = main(
        [
            "evaluate",
            "--checkpoint",
            str(models / "transfer_mode2_best.pth"),
            "--direct",
            str(models / "direct_best.pth"),
            "--data",
            str(small_world / "s01_r03.h5"),
            "--out",
            str(tmp_path),
            "--write-calibration",
        ]
    )
    assert code == 0
    report = (tmp_path / "report.md").read_text()
    for needle in (
        "MPJPE against camera labels",
        "MPJPE against true motion of the synthetic hand",
        "| Mode 2 |",
        "| direct Conv1D+LSTM |",
        "| mean pose |",
        "per finger and per joint",
        "Tracking initial-state policy",
        "AUROC for flagging frames with error > 20 mm",
        "**All data here is synthetic**",
    ):
        assert needle in report, needle
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["sessions"] == ["s01/r03"]
    assert 0 <= metrics["confidence"]["auroc_flag_error_over_20mm"] <= 1
    assert metrics["mean_pose"]["source"] == "training-label mean θ"
    for plot in ("mpjpe_per_joint.png", "error_vs_confidence.png", "trajectories.png"):
        assert (tmp_path / plot).stat().st_size > 5000
    _, meta = load_model_checkpoint(models / "transfer_mode2_best.pth")
    calibration = meta.confidence_calibration
    assert calibration and calibration["x"], "--write-calibration stores the table in the checkpoint"


def test_training_sessions_are_refused(
    models: Path, small_world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "evaluate",
            "--checkpoint",
            str(models / "transfer_mode2_best.pth"),
            "--data",
            str(small_world / "s01_r01.h5"),
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 2
    assert "were used to train" in capsys.readouterr().err
