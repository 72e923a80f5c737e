"""The Mode 2 variants the guide leaves open (issue 15): the adapter's learning rate, a wider AngleConverter and
fine-tuning the backbone's decoder — trained by `mode2 train`, saved, reloaded, exported."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
import torch

from export.parity import THETA_TOLERANCE_RAD
from runtime.cli import main
from runtime.model_contract import METADATA_KEY
from training.hand.open_hand import open_hand_model
from training.models.backbone import BackboneConfig, VEMG2Pose
from training.models.backbone_io import load_backbone
from training.models.checkpoint_io import read_checkpoint_safely
from training.models.checkpoint_meta import META_VERSION, BackboneRecord, CheckpointMeta
from training.models.mode2_model import Mode1Model, Mode2Model, geometry_adapter_init
from training.models.model_io import load_model_checkpoint, save_model_checkpoint


def _train(small_world: Path, out: Path, *options: str) -> Path:
    args = ["train", "--data", str(small_world / "s01_r0*.h5"), "--out", str(out), "--epochs", "1"]
    args += ["--val-sessions", "s01/r03", "--batch-size", "16", "--initial-state", "train_mean", "--threads", "1"]
    assert main([*args, *options]) == 0
    return out / "transfer_mode2_best.pth"


def adapter_movement(model: Mode2Model) -> float:
    """How far the adapter's weights moved from their initial geometry, relative to their scale (RMS)."""
    scale = model.adapter_scale
    prior = geometry_adapter_init() * scale
    return float((model.adapter.linear.weight.detach() - prior).pow(2).mean().sqrt() / scale)


@pytest.fixture(scope="module")
def variant_runs(small_world: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same 1-epoch run two ways: the guide's settings (frozen backbone, plain lr) and today's defaults
    with a narrower converter."""
    root = tmp_path_factory.mktemp("variants")
    guide = ["--adapter-lr", "plain", "--finetune-backbone", "none"]
    return {
        "plain": _train(small_world, root / "plain", *guide),
        "variants": _train(small_world, root / "variants", "--converter-hidden", "24"),
    }


def test_at_the_plain_lr_the_adapter_hardly_moves_and_the_scaled_lr_frees_it(variant_runs: dict[str, Path]) -> None:
    plain, _ = load_model_checkpoint(variant_runs["plain"])
    scaled, _ = load_model_checkpoint(variant_runs["variants"])
    assert isinstance(plain, Mode2Model) and isinstance(scaled, Mode2Model)
    assert plain.adapter_scale > 10, "the shipped stand-in's input scale: the adapter's weights are large"
    moved_plain, moved_scaled = adapter_movement(plain), adapter_movement(scaled)
    assert moved_plain < 0.002, f"plain lr: the adapter moved {moved_plain:.4f} of its scale"
    assert moved_scaled > 10 * moved_plain, (moved_plain, moved_scaled)


def test_finetuning_trains_the_decoder_only_and_the_checkpoint_says_so(variant_runs: dict[str, Path]) -> None:
    model, meta = load_model_checkpoint(variant_runs["variants"])
    assert isinstance(model, Mode2Model)
    assert meta.version == META_VERSION == 5
    assert (meta.config.arch, meta.config.converter_hidden, meta.config.backbone_finetune) == ("mode2", 24, "decoder")
    assert model.converter.residual[0].out_features == 24
    shipped, _ = load_backbone(None)
    for name, weight in shipped.state_dict().items():
        trained = model.backbone.state_dict()[name]
        if name.startswith("decoder."):
            continue
        torch.testing.assert_close(trained, weight, msg=f"{name} is not part of the decoder but changed")
    moved = [
        name
        for name, weight in shipped.decoder.state_dict().items()
        if not torch.equal(weight, model.backbone.decoder.state_dict()[name])
    ]
    assert moved, "the decoder's weights did not change"
    plain, plain_meta = load_model_checkpoint(variant_runs["plain"])
    assert plain_meta.config.backbone_finetune == "none"
    for name, weight in shipped.state_dict().items():
        torch.testing.assert_close(plain.backbone.state_dict()[name], weight)


def test_a_finetuned_model_exports_with_its_own_weights(variant_runs: dict[str, Path], small_world: Path) -> None:
    out = variant_runs["variants"].parent / "model.onnx"
    held_out = str(small_world / "s01_r03.h5")
    code = main(["export-onnx", "--checkpoint", str(variant_runs["variants"]), "--out", str(out), "--data", held_out])
    assert code == 0
    metadata = {p.key: p.value for p in onnx.load(str(out), load_external_data=False).metadata_props}
    document = json.loads(metadata[METADATA_KEY])
    assert document["backbone"]["finetuned"] == "decoder"
    card = (out.parent / "model.md").read_text()
    assert "LSTM decoder was fine-tuned (encoder frozen)" in card and "frozen vemg2pose backbone" not in card
    # the export's parity check ran the ONNX graph against these (fine-tuned) PyTorch weights
    assert document["parity"]["theta_max_abs_rad"] <= THETA_TOLERANCE_RAD


@pytest.mark.parametrize(
    ("arch", "option", "value"),
    [
        ("direct", "--adapter-lr", "scaled"),
        ("direct", "--finetune-backbone", "decoder"),
        ("direct", "--converter-hidden", "512"),
        ("mode1", "--finetune-backbone", "decoder"),
        ("mode1", "--converter-hidden", "512"),
        ("mode1", "--confidence-head", "mlp"),
    ],
)
def test_options_of_parts_an_architecture_lacks_are_refused(
    arch: str, option: str, value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["train", "--arch", arch, option, value, "--data", str(tmp_path / "none.h5"), "--out", str(tmp_path)])
    assert code == 2
    assert f"{option}: not for --arch {arch}" in capsys.readouterr().err


def test_a_mode1_file_from_before_version_4_is_still_told_by_its_weights(tmp_path: Path) -> None:
    """Files written before `config.arch` existed: Mode 1 is recognised by its fixed map's weight."""
    hand = open_hand_model()
    record = BackboneRecord(kind="standin", config=BackboneConfig.standin().to_dict())
    model = Mode1Model(VEMG2Pose(BackboneConfig.standin()), hand, backbone_input_scale=50.0, confidence_head="mlp")
    path = save_model_checkpoint(tmp_path / "m1.pth", model, CheckpointMeta("mode2", hand, backbone=record))
    content = read_checkpoint_safely(path)
    content["format_version"] = 3
    content["config"] = {"adapter_init": "geometry", "backbone_input_scale": 50.0}
    torch.save(content, path)
    loaded, meta = load_model_checkpoint(path)
    assert type(loaded) is Mode1Model and meta.config.arch == "" and meta.config.confidence_head == "mlp"
    content["config"]["backbone_finetune"] = "everything"
    content["format_version"] = 4
    torch.save(content, path)
    with pytest.raises(ValueError, match=r"'config.backbone_finetune': expected 'none' or 'decoder'"):
        load_model_checkpoint(path)
