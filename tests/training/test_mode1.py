"""Mode 1 (the guide's "data or architecture?" diagnostic): only the adapter trains, the angle map is fixed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from runtime.cli import main
from tests.training.test_mode2_variants import adapter_movement
from training.data.windows import SUPERVISED_INDICES
from training.hand.angle_map import emg2pose_angles_to_mano_pose
from training.hand.open_hand import open_hand_model
from training.models.backbone import BackboneConfig, VEMG2Pose
from training.models.checkpoint_meta import BackboneRecord, CheckpointMeta
from training.models.mode2_model import Mode1Model, Mode2Model
from training.models.model_io import load_model_checkpoint, save_model_checkpoint


def _model(cls: type[Mode2Model] = Mode1Model) -> Mode2Model:
    torch.manual_seed(0)
    return cls(VEMG2Pose(BackboneConfig.standin()), open_hand_model(), backbone_input_scale=50.0)


def test_mode1_trains_nothing_but_the_adapter() -> None:
    model = _model()
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(name.startswith("adapter.") for name in trainable)
    assert len(model.trainable_parameters()) == len(trainable)
    assert not list(model.converter.parameters()), "the angle map must not be a parameter"


def test_mode1_angle_map_is_the_numpy_geometric_map() -> None:
    angles = np.random.default_rng(3).uniform(-1.0, 1.5, (7, 20)).astype(np.float32)
    torch_theta = _model().converter(torch.from_numpy(angles)).numpy()
    np.testing.assert_allclose(torch_theta, emg2pose_angles_to_mano_pose(angles), atol=1e-6)


def test_pose_gradients_reach_the_adapter_through_the_frozen_backbone_and_nothing_else() -> None:
    model = _model()
    g = torch.Generator().manual_seed(1)
    emg, initial = torch.randn(2, 8, 1000, generator=g) * 30, torch.rand(2, 20, generator=g) * 0.5
    out = model.forward_trajectory(emg, initial, torch.as_tensor(SUPERVISED_INDICES))
    (out["theta"].pow(2).mean() + out["joints"].pow(2).mean() + out["log_error"].mean()).backward()
    assert model.adapter.linear.weight.grad is not None and model.adapter.linear.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.backbone.parameters())
    assert all(p.grad is None for p in model.confidence_head.parameters())
    # the confidence loss moves nothing: Mode 1 is trained on the pose only
    assert not out["log_error"].requires_grad


def test_mode2_checkpoints_still_load_as_mode2(tmp_path: Path) -> None:
    model = _model(Mode2Model)
    record = BackboneRecord(kind="standin", config=BackboneConfig.standin().to_dict())
    path = save_model_checkpoint(
        tmp_path / "m2.pth", model, CheckpointMeta("mode2", open_hand_model(), backbone=record)
    )
    loaded, meta = load_model_checkpoint(path)
    assert type(loaded) is Mode2Model and meta.kind == "mode2"


@pytest.fixture(scope="module")
def mode1_run(small_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mode1")
    args = ["train", "--arch", "mode1", "--data", str(small_world / "s01_r0*.h5"), "--out", str(out)]
    args += ["--epochs", "1", "--val-sessions", "s01/r03", "--batch-size", "16", "--initial-state", "train_mean"]
    args += ["--threads", "1"]  # 2 threads on 2 shared cores run ~10× slower here
    assert main(args) == 0
    return out


def test_mode2_train_arch_mode1_writes_a_checkpoint_that_evaluate_reads(
    mode1_run: Path, small_world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    best = mode1_run / "transfer_mode1_best.pth"
    model, meta = load_model_checkpoint(best)
    assert isinstance(model, Mode1Model) and meta.training is not None
    capsys.readouterr()
    code = main(
        ["evaluate", "--checkpoint", str(best), "--data", str(small_world / "s01_r03.h5"), "--out", str(tmp_path)]
    )
    code_out = capsys.readouterr().out
    assert code == 0
    assert "Mode 1" in code_out
    assert (tmp_path / "metrics.json").is_file()


def test_export_refuses_a_mode1_checkpoint(mode1_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(
        ["export-onnx", "--checkpoint", str(mode1_run / "transfer_mode1_best.pth"), "--out", str(tmp_path / "m.onnx")]
    )
    assert code == 2
    assert "Mode 1 is a diagnostic, export Mode 2" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()


def test_mode1_checkpoints_name_their_arch_and_their_adapter_learns(mode1_run: Path) -> None:
    model, meta = load_model_checkpoint(mode1_run / "transfer_mode1_best.pth")
    assert isinstance(model, Mode1Model)
    assert (meta.config.arch, meta.config.backbone_finetune) == ("mode1", "none")
    # at the default (scaled) adapter lr the adapter leaves its initial geometry (at the plain lr it moved
    # ~0.1 % of its size in a whole run: Mode 1 was then the fixed geometry, not a trained adapter)
    assert adapter_movement(model) > 0.002
