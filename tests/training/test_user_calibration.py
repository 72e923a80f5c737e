"""Per-donning confidence calibration: the reliability figures, both fits (isotonic, Platt), the refusals,
`mode2 calibrate`, what `mode2 train` reports, and the evaluate report's reliability section."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from runtime.cli import main
from training.data.windows import load_sessions
from training.fitting import confidence_calibration as calib
from training.fitting.user_calibration import (
    MIN_EACH_OUTCOME,
    MIN_WINDOWS,
    Frames,
    fit_user_calibration,
    in_blocks,
    model_frames,
)
from training.models.model_io import load_model_checkpoint
from training.synth.subjects import make_subject
from training.synth.world import simulate_session

WORLD_SEED = 7  # the seed of the session-wide `small_world` (tests/conftest.py): r04 is the same person


@pytest.fixture(scope="module")
def user_session(small_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fourth, 1.5-minute session of the small world's subject (the models never trained on it)."""
    out = tmp_path_factory.mktemp("calibration_session")
    (path,) = simulate_session(out, make_subject(1, WORLD_SEED), 4, 1.5, WORLD_SEED, write_2k=False, faults=True)
    return path


@pytest.fixture()
def checkpoint(trained_checkpoints: Path, tmp_path: Path) -> Path:
    """A private copy of the session-wide 1-epoch Mode 2 model (calibrating writes to it)."""
    return Path(shutil.copy(trained_checkpoints / "transfer_mode2_best.pth", tmp_path / "mode2.pth"))


def _both_outcomes(checkpoint: Path, session: Path) -> None:
    """The precondition of the success paths: the model's errors on `session` fall on both sides of 20 mm."""
    model, meta = load_model_checkpoint(checkpoint)
    errors = model_frames(model, meta, load_sessions([str(session)]), checkpoint).errors
    within = int((errors <= 20.0).sum())
    assert len(errors) >= MIN_WINDOWS and min(within, len(errors) - within) >= MIN_EACH_OUTCOME, (
        f"{within} of {len(errors)} windows within 20 mm: the test world no longer exercises the fit"
    )


def test_reliability_bins_and_ece_tell_calibrated_from_overconfident() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 20000)
    calibrated = rng.uniform(0, 1, p.size) < p
    overconfident = rng.uniform(0, 1, p.size) < p**3  # says p, is right p³ of the time
    assert calib.expected_calibration_error(p, calibrated) < 0.02
    assert calib.expected_calibration_error(p, overconfident) > 0.15
    bins = calib.reliability_bins(p, overconfident)
    assert sum(b["n"] for b in bins) == p.size and len(bins) == 10
    assert all(b["low"] <= b["predicted"] <= b["high"] for b in bins)
    assert bins[5]["observed"] < bins[5]["predicted"] - 0.3  # 0.55 said, 0.17 observed
    # empty bins are left out; a probability of exactly 1 falls in the last bin
    only = calib.reliability_bins(np.array([0.05, 0.07, 1.0]), np.array([1, 0, 1]))
    assert [(b["low"], b["n"]) for b in only] == [(0.0, 2), (0.9, 1)]


def test_platt_fit_recovers_a_known_map_and_its_table_is_a_monotone_probability() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(0.0, 1.5, 20000)
    confidence = 1 / (1 + np.exp(-x))
    outcome = rng.uniform(0, 1, x.size) < 1 / (1 + np.exp(-(2.0 * x - 0.5)))
    a, b = calib.platt_fit(confidence, outcome)
    assert abs(a - 2.0) < 0.15 and abs(b + 0.5) < 0.1
    table = calib.platt_table(a, b)
    assert table["x"][0] == 0.0 and table["x"][-1] == 1.0
    assert all(0 <= y <= 1 for y in table["y"]) and table["y"] == sorted(table["y"])
    # the identity stays the identity when the data carry no signal to move it
    a0, b0 = calib.platt_fit(np.array([0.5, 0.5]), np.array([1.0, 0.0]))
    assert abs(a0 - 1.0) < 1e-6 and abs(b0) < 1e-6
    with pytest.raises(ValueError, match="unknown calibration method 'spline'"):
        calib.fit_from_errors(confidence, np.zeros(x.size), method="spline")


def test_the_per_donning_estimate_scores_only_windows_that_share_no_sample_with_the_fitted_blocks() -> None:
    end_s = np.arange(2.0, 90.0, 0.25)  # 2-s windows every 0.25 s over a 90-s session
    frames = Frames(np.zeros(end_s.size), np.zeros(end_s.size), end_s, np.array(["u/r1"] * end_s.size))
    fit, score = in_blocks(frames, 15.0, 4)
    start = end_s - 2.0
    # fitted: wholly inside 0–15 s or 60–75 s; scored: no sample in either
    assert np.array_equal(fit, ((start >= 0) & (end_s <= 15)) | ((start >= 60) & (end_s <= 75)))
    assert np.array_equal(score, ((start >= 15) & (end_s <= 60)) | (start >= 75))
    assert not (fit & score).any()


def _sessions(*keys: str) -> list:
    return [SimpleNamespace(key=k, subject_id=k.split("/")[0]) for k in keys]


def test_fit_refuses_what_cannot_make_a_table() -> None:
    few = fit_user_calibration(np.full(10, 0.5), np.full(10, 10.0), _sessions("u/r1"), "test")
    assert few.table is None and "10 labelled windows" in few.reason
    one_sided = fit_user_calibration(np.linspace(0, 1, 100), np.full(100, 12.0), _sessions("u/r1"), "test")
    assert one_sided.table is None and "100 of 100 windows are within 20 mm" in one_sided.reason
    assert "not calibrated" in one_sided.describe()


def test_fit_records_where_it_came_from_and_improves_an_overconfident_score() -> None:
    rng = np.random.default_rng(1)
    errors = rng.uniform(5.0, 35.0, 400)
    honest = np.clip(1.0 - (errors - 5.0) / 30.0 + rng.normal(0, 0.1, errors.size), 0, 1)
    raw = honest**0.2  # ranks kept, probabilities inflated
    fit = fit_user_calibration(raw, errors, _sessions("u1/r05", "u1/r06"), "mode2 calibrate", minutes=1.0)
    assert fit.table is not None and fit.reason is None
    assert fit.table["sessions"] == ["u1/r05", "u1/r06"] and fit.table["subjects"] == ["u1"]
    assert fit.table["method"] == "isotonic" and fit.table["minutes"] == 1.0
    assert fit.table["fitted_by"] == "mode2 calibrate" and fit.table["windows"] == 400
    assert fit.brier_calibrated < fit.brier_raw - 0.05
    assert fit.ece_calibrated < 0.5 * fit.ece_raw
    platt = fit_user_calibration(raw, errors, _sessions("u1/r05"), "mode2 calibrate", method="platt")
    assert platt.table["method"] == "platt" and len(platt.table["x"]) == 33
    assert platt.brier_calibrated < platt.brier_raw - 0.05
    assert fit.auroc > 0.85  # the ranks carry the information; the table only rescales them
    assert "first 1 min of u1/r05, u1/r06 (400 windows" in fit.describe()


def test_calibrate_refuses_training_sessions_and_short_ones_and_leaves_the_file(
    checkpoint: Path, small_world: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = checkpoint.read_bytes()
    assert main(["calibrate", "--checkpoint", str(checkpoint), "--data", str(small_world / "s01_r01.h5")]) == 2
    assert "s01/r01" in capsys.readouterr().err and checkpoint.read_bytes() == before
    short = ["--data", str(small_world / "s01_r03.h5"), "--minutes", "0.1"]  # 6 s: too few windows
    assert main(["calibrate", "--checkpoint", str(checkpoint), *short]) == 2
    err = capsys.readouterr().err
    assert f"at least {MIN_WINDOWS} needed" in err and "unchanged" in err
    assert checkpoint.read_bytes() == before


def test_calibrate_stores_a_per_donning_table_that_evaluate_scores_on_unseen_frames(
    checkpoint: Path, small_world: Path, user_session: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _both_outcomes(checkpoint, user_session)
    command = ["calibrate", "--checkpoint", str(checkpoint), "--data", str(user_session), "--minutes", "1"]
    assert main(command) == 0
    assert "confidence calibrated on first 1 min of s01/r04" in capsys.readouterr().out
    _, meta = load_model_checkpoint(checkpoint)
    table = meta.confidence_calibration
    assert table["fitted_by"] == "mode2 calibrate" and table["sessions"] == ["s01/r04"] and table["minutes"] == 1
    assert len(table["x"]) >= 2 and all(0 <= y <= 1 for y in table["y"])

    out = tmp_path / "eval"
    data = [str(small_world / "s01_r03.h5"), str(user_session)]
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--data", *data, "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())["confidence"]
    stored = metrics["stored"]
    total = sum(b["n"] for b in metrics["raw"]["reliability"])
    # the table is scored on r03 and on r04 after its first minute, not on the minute it was fitted on
    assert stored["fitted_on"] == ["s01/r04"] and stored["minutes"] == 1
    assert stored["skipped_frames"] > 0 and stored["scored_frames"] + stored["skipped_frames"] == total
    assert stored["scored_frames"] == sum(b["n"] for b in stored["reliability"])
    donning = metrics["per_donning"]
    assert donning["frames"] > 0 and (donning["block_s"], donning["every"]) == (15.0, 4)
    assert donning["raw"]["brier"] >= 0 and donning["calibrated"]["ece"] >= 0
    assert set(metrics["auroc_per_subject"]) == {"s01"}
    report = (out / "report.md").read_text()
    assert "| stored in the checkpoint (mode2 calibrate) | first 1 min of s01/r04 |" in report
    assert "| per donning (raw → calibrated) | one 15-s block in every 4 of each session |" in report
    assert f"{stored['skipped_frames']} frames the stored table was fitted on are left out" in report
    assert (out / "reliability.png").stat().st_size > 5000


def test_train_reports_the_per_donning_calibration_and_stores_none(
    small_world: Path, user_session: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for name in ("s01_r01.h5", "s01_r02.h5"):
        shutil.copy(small_world / name, data / name)
    shutil.copy(user_session, data / user_session.name)
    out = tmp_path / "ckpt"
    args = ["train", "--data", str(data / "*.h5"), "--out", str(out), "--epochs", "1", "--batch-size", "16"]
    assert main([*args, "--val-sessions", "s01/r04", "--initial-state", "train_mean"]) == 0
    best = out / "transfer_mode2_best.pth"
    printed = capsys.readouterr().out
    _both_outcomes(best, user_session)
    _, meta = load_model_checkpoint(best)
    # a table from the validation session would not carry to the user's next donning: none is stored
    assert meta.confidence_calibration is None
    assert "confidence on the validation sessions: AUROC" in printed
    assert "calibrated per donning (estimate on" in printed
    assert f"--phase-scale 0.25`) and run `mode2 calibrate --checkpoint {best} --data <it>`" in printed
    # and before training, which model the shipped backbone's learning curve expects to win with 1 minute
    assert "learning curve for this backbone at 1.0 min: Mode 2" in printed
