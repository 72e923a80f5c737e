"""The checkpoint's meta is one typed, versioned structure: old files load, bad ones are refused by key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from export.metadata import build_metadata
from firmware_bridge.emg_filter import InputFilter
from runtime.model_contract import ModelMetadata
from training.hand.open_hand import open_hand_model
from training.models.backbone_io import load_backbone
from training.models.checkpoint_io import CheckpointError
from training.models.checkpoint_meta import (
    META_VERSION,
    BackboneRecord,
    CheckpointMeta,
    ModelConfig,
    Normalisation,
    TrainingRecord,
    ValidationMetrics,
    hand_to_dict,
)
from training.models.direct_model import DirectModel
from training.models.mode2_model import Mode2Model
from training.models.model_io import load_model_checkpoint, save_model_checkpoint

HAND = open_hand_model()
FILTER = InputFilter.design(500.0)


def _plain_mode2_file(
    path: Path, *, format_version: int | None = META_VERSION, **overrides: Any
) -> tuple[Path, Mode2Model]:
    """A Mode 2 checkpoint written as a plain dict built key by key, with only what a reader must accept as
    optional left out (no backbone_input_scale, no content fingerprints, no theta_mean). `format_version=None`
    leaves the version key out, as the files written before CheckpointMeta existed did."""
    torch.manual_seed(0)
    backbone, info = load_backbone(None)
    # no config.confidence_head: read as the guide's MLP head, the only one before meta version 5
    model = Mode2Model(backbone, HAND, adapter_init="geometry", confidence_head="mlp")
    content: dict[str, Any] = {
        "hand_model": hand_to_dict(HAND),
        "config": {"adapter_init": "geometry"},
        "training": {
            "command": "mode2 train --data old/*.h5",
            "seed": 0,
            "train_sessions": ["s01/r01", "s01/r02"],
            "val_sessions": ["s01/r03"],
            "train_windows": 40,
            "val_windows": 20,
            "train_minutes": 1.5,
            "synthetic": True,
        },
        "backbone": {"kind": info.kind, "path": info.path, "sha256": info.sha256, "config": info.config.to_dict()},
        "normalisation": {
            "method": "causal input filter, then divide by the training std",
            "std": [30.0] * 8,
            "units": "µV",
            "input_filter": FILTER.to_dict(),
        },
        "initial_state_mean": [0.1] * 20,
        "metrics": {
            "val_mpjpe_mm": 17.5,
            "val_mpjpe_median_mm": 15.0,
            "val_loss": 0.05,
            "epoch": 3,
            "ground_truth": "camera labels",
        },
        "initial_state_policy": "train_mean",
        "initial_state_eval_mpjpe_mm": {"neutral": 21.0, "train_mean": 17.5, "feedback": 19.0, "label": 15.0},
        "confidence_calibration": {"x": [0.1, 0.5, 0.9], "y": [0.2, 0.6, 0.8], "target": "P(err <= 20 mm)", "n": 30},
        "kind": "mode2",
    }
    if format_version is not None:
        content["format_version"] = format_version
    content.update(overrides)
    content["state_dict"] = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save(content, path)
    return path, model


def _direct_meta(**changes: Any) -> CheckpointMeta:
    return CheckpointMeta(kind="direct", hand_model=HAND, **changes)


def test_a_checkpoint_written_as_a_plain_table_loads_and_exports(tmp_path: Path) -> None:
    path, original = _plain_mode2_file(tmp_path / "plain.pth")
    model, meta = load_model_checkpoint(path)
    assert meta.version == META_VERSION and meta.kind == "mode2"
    assert meta.config == ModelConfig("geometry", 1.0, confidence_head="mlp")  # the defaults the reader applies
    assert meta.training is not None and meta.training.train_sessions == ("s01/r01", "s01/r02")
    assert meta.training.train_emg_sha256 is None, "no content fingerprints: evaluate falls back to keys"
    assert meta.theta_mean is None and meta.metrics is not None and meta.metrics.epoch == 3
    assert meta.initial_state_mean == (0.1,) * 20
    assert meta.normalisation is not None and meta.normalisation.filter == FILTER, "the input filter travels"
    np.testing.assert_array_equal(meta.hand_model.joints_rest, HAND.joints_rest)
    emg = torch.randn(2, 8, 1000) * 30
    with torch.no_grad():
        torch.testing.assert_close(model(emg, torch.zeros(2, 20))[0], original.eval()(emg, torch.zeros(2, 20))[0])
    document = build_metadata(meta, "0" * 64, 17)
    parsed = ModelMetadata.parse(document, "plain export", require_parity=False)
    assert parsed.initial_state_mean == pytest.approx((0.1,) * 20)
    assert parsed.input_filter is not None and InputFilter.from_dict(parsed.input_filter) == FILTER
    assert document["training_data"]["val_sessions"] == ["s01/r03"] and document["validation"]["val_mpjpe_mm"] == 17.5


@pytest.mark.parametrize("format_version", [1, None], ids=["format_version 1", "no version key"])
def test_a_checkpoint_of_the_detrending_model_is_refused_with_a_message_to_retrain(
    tmp_path: Path, format_version: int | None
) -> None:
    """Version 1 weights were trained on detrended raw windows: they do not fit today's filtered input stage."""
    path, _ = _plain_mode2_file(tmp_path / "old.pth", format_version=format_version)
    with pytest.raises(CheckpointError, match=r"version 1\).*retrain with `mode2 train`") as refused:
        load_model_checkpoint(path)
    assert str(refused.value).startswith(f"{path}: trained by an older mode2-edge whose model detrended")


def test_saved_meta_reads_back_field_for_field(tmp_path: Path) -> None:
    meta = _direct_meta(
        normalisation=Normalisation(std=(1.5,) * 8, input_filter=InputFilter.design(500.0, notch_hz=(50.0,)).to_dict()),
        training=TrainingRecord(command="mode2 train", seed=4, train_sessions=("a/b",), train_emg_sha256={"a/b": "f"}),
        theta_mean=(0.25,) * 20,
        initial_state_mean=(0.5,) * 20,
        initial_state_policy="none",
        metrics=ValidationMetrics(val_mpjpe_mm=1.0, val_mpjpe_median_mm=2.0, val_loss=3.0, epoch=7),
        confidence_calibration={"x": [0.0, 1.0], "y": [0.1, 0.9], "n": 2},
    )
    path = save_model_checkpoint(tmp_path / "direct_best.pth", DirectModel(HAND), meta)
    _model, loaded = load_model_checkpoint(path)
    for name in ("kind", "config", "backbone", "normalisation", "training", "theta_mean", "initial_state_mean"):
        assert getattr(loaded, name) == getattr(meta, name), name
    assert (loaded.initial_state_policy, loaded.metrics) == ("none", meta.metrics)
    assert loaded.confidence_calibration == meta.confidence_calibration
    assert loaded.hand_model.source == HAND.source


def test_a_checkpoint_from_a_newer_version_is_refused_naming_file_and_version(tmp_path: Path) -> None:
    path, _ = _plain_mode2_file(tmp_path / "future.pth", format_version=META_VERSION + 1)
    with pytest.raises(CheckpointError, match=rf"{path}: written by a newer mode2-edge .*version {META_VERSION + 1}"):
        load_model_checkpoint(path)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"hand_model": None}, r"'hand_model' is missing"),
        ({"backbone": None}, r"'backbone' is missing"),
        ({"training": {"train_sessions": "s01/r01"}}, r"'training\.train_sessions': expected a list of strings"),
        ({"initial_state_mean": "0.1"}, r"'initial_state_mean': expected a list of numbers, got str"),
        ({"normalisation": {"std": ["a"] * 8}}, r"'normalisation\.std': expected a list of numbers"),
        ({"normalisation": {"std": [30.0] * 8}}, r"'normalisation\.input_filter' is missing"),
        (
            {
                "normalisation": {
                    "std": [30.0] * 8,
                    "input_filter": {**FILTER.to_dict(), "sos": [[1, 0, 0, 1, -1.5, 0]]},
                }
            },
            r"normalisation\.input_filter\.sos: unstable",
        ),
        ({"metrics": {"val_loss": 0.1}}, r"'metrics\.val_mpjpe_mm' is missing"),
        ({"metrics": {"val_mpjpe_mm": "17", "val_mpjpe_median_mm": 1, "val_loss": 1, "epoch": 1}}, "expected a number"),
        ({"config": {"adapter_init": 3}}, r"'config\.adapter_init': expected a string, got int"),
        ({"config": {"confidence_head": "mlp2"}}, r"'config\.confidence_head': expected 'ridge' or 'mlp'"),
        ({"confidence_calibration": {"x": [0.1, 0.2], "y": [0.3]}}, r"'confidence_calibration\.y': expected as many"),
        ({"kind": "mode3"}, r"not a Mode 2 or direct-baseline checkpoint \(kind='mode3'\)"),
        ({"format_version": "1"}, r"'format_version': expected an integer"),
        ({"epoch": 3}, r"unknown checkpoint meta key 'epoch'"),
    ],
)
def test_a_missing_or_mistyped_key_is_refused_naming_file_and_key(
    tmp_path: Path, override: dict[str, Any], message: str
) -> None:
    path, _ = _plain_mode2_file(tmp_path / "bad.pth", **override)
    with pytest.raises(CheckpointError, match=message) as refused:
        load_model_checkpoint(path)
    assert str(refused.value).startswith(f"{path}: ")


def test_meta_of_another_kind_is_never_saved_with_a_model(tmp_path: Path) -> None:
    _, info = load_backbone(None)
    record = BackboneRecord(kind=info.kind, config=info.config.to_dict())
    mode2_meta = CheckpointMeta(kind="mode2", hand_model=HAND, backbone=record)
    with pytest.raises(ValueError, match="saving a direct model with the meta of a mode2 model"):
        save_model_checkpoint(tmp_path / "x.pth", DirectModel(HAND), mode2_meta)
    assert not (tmp_path / "x.pth").exists()
    with pytest.raises(ValueError, match="needs its backbone"):
        CheckpointMeta(kind="mode2", hand_model=HAND)
