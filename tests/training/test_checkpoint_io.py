"""Checkpoint reading is safe and its errors are clear; `mode2 inspect-checkpoint` says what a file is."""

from __future__ import annotations

import importlib.util
import pickle
import zipfile
from pathlib import Path

import pytest
import torch

from runtime.cli import main
from training.models.backbone import BackboneConfig, VEMG2Pose
from training.models.backbone_io import describe_checkpoint, load_backbone, save_standin
from training.models.checkpoint_io import CheckpointError, read_checkpoint_safely


def test_official_checkpoint_needs_neither_omegaconf_nor_lightning(shared_dir: Path) -> None:
    for package in ("omegaconf", "pytorch_lightning", "lightning", "hydra"):
        assert importlib.util.find_spec(package) is None, f"{package} must not be installed for this test"
    content = read_checkpoint_safely(shared_dir / "fixtures/emg2pose/random_vemg2pose.ckpt")
    assert content["pytorch-lightning_version"] == "2.2.2"
    assert type(content["hyper_parameters"]["network_conf"]).__module__.startswith("inert.omegaconf")


def test_truncated_and_foreign_files_are_refused(tmp_path: Path, shared_dir: Path) -> None:
    original = (shared_dir / "fixtures/emg2pose/random_vemg2pose.ckpt").read_bytes()
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(original[: len(original) // 2])
    with pytest.raises(CheckpointError, match=r"truncated\.ckpt: not a PyTorch checkpoint"):
        read_checkpoint_safely(truncated)
    text = tmp_path / "notes.ckpt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        load_backbone(text)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        read_checkpoint_safely(tmp_path / "missing.ckpt")


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned",))


def test_a_pickle_that_runs_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "pytorch-lightning_version": "2.2.2", "payload": _Evil()}, path, pickle_protocol=2)
    with pytest.raises(CheckpointError, match=r"refusing to load posix\.system|refusing to load os\.system"):
        read_checkpoint_safely(path)


def test_wrong_shapes_and_wrong_variant(tmp_path: Path) -> None:
    model = VEMG2Pose(BackboneConfig.official())
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    state["model.network.layers.0.conv.0.weight"] = torch.zeros(256, 8, 11)
    path = tmp_path / "wrong.ckpt"
    torch.save({"state_dict": state, "pytorch-lightning_version": "2.2.2"}, path)
    with pytest.raises(CheckpointError, match=r"layers\.0\.conv\.0\.weight: shape \(256, 8, 11\)"):
        load_backbone(path)
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    state["model.decoder.mlp_out.1.weight"] = torch.zeros(40, 512)
    torch.save({"state_dict": state, "pytorch-lightning_version": "2.2.2"}, path)
    with pytest.raises(CheckpointError, match="regression vemg2pose variant"):
        load_backbone(path)


def test_standin_round_trip_and_descriptions(
    tmp_path: Path, shared_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.manual_seed(0)
    model = VEMG2Pose(BackboneConfig.standin())
    path = save_standin(tmp_path / "standin.pth", model, {"seed": 0})
    loaded, info = load_backbone(path)
    assert info.kind == "standin_backbone" and info.config == BackboneConfig.standin()
    for key, value in model.state_dict().items():
        assert torch.allclose(loaded.state_dict()[key], value.half().float())
    assert "stand-in" in describe_checkpoint(path)["kind"]
    assert main(["inspect-checkpoint", str(shared_dir / "fixtures/emg2pose/random_vemg2pose.ckpt")]) == 0
    out = capsys.readouterr().out
    assert "official Lightning file" in out and "5,970,068 in 68 tensors" in out and "sample 1790" in out
    broken = tmp_path / "broken.pth"
    with zipfile.ZipFile(broken, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps([1, 2]))
    assert main(["inspect-checkpoint", str(broken)]) == 1
    assert "✗" in capsys.readouterr().out
