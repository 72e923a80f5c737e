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


def test_report_carries_skill_fingertip_and_flexion_and_calls_out_a_model_worse_than_the_mean_pose(
    models: Path, small_world: Path, tmp_path: Path
) -> None:
    """A direct baseline whose head always answers a strongly bent hand cannot beat the mean pose: the report,
    metrics.json and the numbers must say so; every model carries the new figures against every ground truth."""
    import torch

    from training.models.model_io import save_model_checkpoint

    model, meta = load_model_checkpoint(models / "direct_best.pth")
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.fill_(1.2)  # every joint bent 1.2 rad about every axis, whatever the EMG
    broken = tmp_path / "broken_direct.pth"
    save_model_checkpoint(broken, model, meta)
    out = tmp_path / "eval"
    code = main(
        [
            "evaluate",
            "--checkpoint",
            str(models / "transfer_mode2_best.pth"),
            "--direct",
            str(broken),
            "--data",
            str(small_world / "s01_r03.h5"),
            "--out",
            str(out),
        ]
    )
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("mode2", "direct", "mean_pose"):
        for truth in ("camera", "truth"):
            block = metrics[key][truth]
            assert block["fingertip_mean_mm"] > 0 and block["flexion_error_mean_deg"] > 0
            assert set(block["per_finger_flexion"]) == {"thumb", "index", "middle", "ring", "pinky"}
    mean_pose = metrics["mean_pose"]["camera"]["mpjpe_mean_mm"]
    direct = metrics["direct"]["camera"]
    assert metrics["mean_pose"]["camera"]["skill"] == 0.0
    assert direct["skill"] == pytest.approx(1 - direct["mpjpe_mean_mm"] / mean_pose) and direct["skill"] < 0
    assert direct["verdict"].startswith("does not beat the mean pose")
    mode2 = metrics["mode2"]["camera"]
    assert mode2["skill"] == pytest.approx(1 - mode2["mpjpe_mean_mm"] / mean_pose)
    assert (mode2["verdict"] is None) == (mode2["skill"] > 0)
    report = (out / "report.md").read_text()
    assert "| fingertips (mm) | skill | flexion error (°) | flexion r |" in report
    assert (
        f"**direct Conv1D+LSTM does not beat the mean pose: {direct['mpjpe_mean_mm']:.1f} mm vs {mean_pose:.1f} mm"
        in report
    )
    assert ("**Mode 2 does not beat the mean pose" in report) == (mode2["skill"] <= 0)
    assert report.count("| correlation (r) |") == 2, "per-finger flexion for Mode 2 and the direct baseline"
