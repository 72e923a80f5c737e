"""The confidence head fitted in closed form (issue 15): the fit's arithmetic, what `mode2 train` writes, the
training objective it leaves alone, and the guide's MLP head still selectable and loadable."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from runtime.cli import main
from training.data.windows import SUPERVISED_INDICES, build_windows, input_filter_of, load_sessions
from training.fitting.confidence_head_fit import fit_confidence_head, ridge_then_rescale
from training.fitting.trainer import CONFIDENCE_WEIGHT, losses
from training.hand.open_hand import open_hand_model
from training.models.backbone import BackboneConfig, VEMG2Pose
from training.models.mode2_model import ConfidenceHead, Mode2Model
from training.models.model_io import load_model_checkpoint


def _linear_data(n: int = 400, n_in: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n_in)) * rng.uniform(0.1, 50.0, size=n_in) + rng.normal(size=n_in) * 10
    weight, bias = rng.normal(size=n_in) / x.std(axis=0), 2.5
    return x, x @ weight + bias, weight, bias


def test_with_no_penalty_the_fit_recovers_an_exact_linear_relation() -> None:
    x, y, weight, bias = _linear_data()
    fit = ridge_then_rescale(x, y, penalty=1e-9)
    np.testing.assert_allclose(fit.weight, weight, rtol=1e-5, atol=1e-9)
    assert fit.bias == pytest.approx(bias, abs=1e-5) and fit.windows == len(y)


def test_a_strong_penalty_keeps_the_direction_of_covariance_and_the_errors_spread() -> None:
    x, y, _, _ = _linear_data()
    y = y + np.random.default_rng(1).normal(size=len(y))  # noisy targets
    fit = ridge_then_rescale(x, y, penalty=1e6)
    predicted = x @ fit.weight + fit.bias
    z = (x - x.mean(axis=0)) / x.std(axis=0)
    covariance_direction = z.T @ (y - y.mean())
    direction = fit.weight * x.std(axis=0)
    cosine = direction @ covariance_direction / np.linalg.norm(direction) / np.linalg.norm(covariance_direction)
    assert cosine > 0.999
    # unshrunk: least squares of the targets on the prediction has slope 1 and no offset
    slope, offset = np.polyfit(predicted, y, 1)
    assert slope == pytest.approx(1.0, abs=1e-6) and offset == pytest.approx(0.0, abs=1e-5)
    assert predicted.std() > 0.5 * y.std()


def test_a_constant_input_gets_no_weight_and_bad_values_are_named() -> None:
    x, y, _, _ = _linear_data()
    x[:, 2] = 7.0
    fit = ridge_then_rescale(x, y)
    assert fit.weight[2] == 0.0 and np.isfinite(fit.weight).all() and np.isfinite(fit.bias)
    x[5, 0] = np.nan
    with pytest.raises(ValueError, match="inputs or targets are not finite"):
        ridge_then_rescale(x, y)


def _training_windows(small_world: Path, meta: object, source: Path) -> object:
    """The windows `mode2 train` trained on in the shared fixture (s01 r01–r02; r03 held out)."""
    sessions = load_sessions([str(small_world / "s01_r01.h5"), str(small_world / "s01_r02.h5")], quiet=True)
    return build_windows(sessions, input_filter=input_filter_of(meta, source))


@pytest.mark.parametrize("name", ["transfer_mode2_best.pth", "direct_best.pth"])
def test_the_best_file_holds_the_head_fitted_on_the_training_windows(
    name: str, trained_checkpoints: Path, small_world: Path
) -> None:
    path = trained_checkpoints / name
    model, meta = load_model_checkpoint(path)
    head = model.confidence_head
    assert meta.config.confidence_head == "ridge" and head.closed_form
    assert len(head.net) == 1 and not any(p.requires_grad for p in head.parameters())
    assert float(head.net[0].weight.abs().max()) > 0, "the head was never fitted"
    windows = _training_windows(small_world, meta, path)
    refitted = copy.deepcopy(model)
    fit = fit_confidence_head(refitted, windows, windows.initial.mean(dim=0, keepdim=True))
    assert fit is not None and fit.windows == int(windows.mask[:, -1].sum())
    torch.testing.assert_close(refitted.confidence_head.net[0].weight, head.net[0].weight, rtol=1e-4, atol=1e-6)
    # the confidence then tells windows apart
    with torch.no_grad():
        confidence = model(windows.emg[:64], windows.initial[:64]).confidence
    assert float(confidence.std()) > 1e-3 and bool(((confidence > 0) & (confidence < 1)).all())


def _tiny_mode2(head: str) -> Mode2Model:
    torch.manual_seed(0)
    return Mode2Model(VEMG2Pose(BackboneConfig.standin()), open_hand_model(), confidence_head=head)


@pytest.mark.parametrize("head", ["ridge", "mlp"])
def test_only_the_mlp_heads_loss_enters_the_training_objective(head: str) -> None:
    model = _tiny_mode2(head)
    steps = len(SUPERVISED_INDICES)
    batch = {
        "emg": torch.randn(3, 8, 1000) * 30,
        "theta": torch.randn(3, steps, 45) * 0.1,
        "joints": torch.randn(3, steps, 21, 3) * 0.01,
        "mask": torch.ones(3, steps, dtype=torch.bool),
        "initial": torch.zeros(3, 20),
    }
    result = losses(model, batch)
    assert float(result["confidence"]) > 0
    weight = CONFIDENCE_WEIGHT if head == "mlp" else 0.0
    expected = result["theta"] + result["joints"] + weight * result["confidence"]
    torch.testing.assert_close(result["objective"], expected)
    trainable_head = [p for p in model.confidence_head.parameters() if p.requires_grad]
    assert bool(trainable_head) == (head == "mlp")


def test_the_guides_mlp_head_is_trained_by_gradient_and_says_so(
    small_world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["train", "--data", str(small_world / "s01_r0*.h5"), "--out", str(tmp_path), "--epochs", "1"]
    args += ["--val-sessions", "s01/r03", "--batch-size", "16", "--initial-state", "train_mean", "--threads", "1"]
    assert main([*args, "--confidence-head", "mlp"]) == 0
    printed = capsys.readouterr().out
    assert "confidence: " in printed and "fitted in closed form" not in printed
    assert "+ 0.1 × confidence-head loss" in printed
    model, meta = load_model_checkpoint(tmp_path / "transfer_mode2_best.pth")
    assert meta.config.confidence_head == "mlp"
    head = model.confidence_head
    assert isinstance(head, ConfidenceHead) and not head.closed_form and len(head.net) == 3
    untrained = ConfidenceHead(head.net[0].in_features, "mlp")
    assert float(head.net[-1].bias) != pytest.approx(float(untrained.net[-1].bias)), "the MLP head did not train"


def test_the_model_card_says_how_the_confidence_is_made(exported_model: Path) -> None:
    card = (exported_model.parent / "model.md").read_text()
    assert "(from the linear confidence head fitted in closed form" in card


def test_every_checkpoint_written_during_training_carries_a_fitted_head(small_world: Path, tmp_path: Path) -> None:
    """An interrupted run's files are exportable: their head must not be the unfitted constant."""
    args = ["train", "--data", str(small_world / "s01_r0*.h5"), "--out", str(tmp_path), "--epochs", "2"]
    args += ["--val-sessions", "s01/r03", "--batch-size", "16", "--initial-state", "train_mean", "--threads", "1"]
    assert main([*args, "--checkpoint-every", "1"]) == 0
    first, _ = load_model_checkpoint(tmp_path / "transfer_mode2_epoch1.pth")
    final, _ = load_model_checkpoint(tmp_path / "transfer_mode2_best.pth")
    weight = first.confidence_head.net[0].weight
    assert float(weight.abs().max()) > 0, "epoch 1's checkpoint holds the unfitted head"
    # the end of training refits on every training window with the final model: another fit
    assert not torch.equal(weight, final.confidence_head.net[0].weight)
