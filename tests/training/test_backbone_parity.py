"""Our vemg2pose reproduces the official code's outputs from the official checkpoint format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from training.models.backbone import BackboneConfig, VEMG2Pose, count_parameters
from training.models.backbone_io import load_backbone


@pytest.fixture(scope="module")
def official(shared_dir: Path) -> tuple[VEMG2Pose, dict]:
    model, info = load_backbone(shared_dir / "fixtures/emg2pose/random_vemg2pose.ckpt")
    io = dict(np.load(shared_dir / "fixtures/emg2pose/io.npz"))
    return model, {"info": info, **io}


def test_architecture_size_matches_the_official_model(official: tuple) -> None:
    model, data = official
    assert count_parameters(model) == 5_970_068
    assert len(model.state_dict()) == 68
    assert data["info"].kind == "emg2pose_official"


@pytest.mark.parametrize("case", ["2s", "win"])
def test_reproduces_fixture_outputs(official: tuple, case: str) -> None:
    model, data = official
    emg = torch.tensor(data[f"emg_{case}"])
    initial = torch.tensor(data[f"initial_pos_{case}"])
    assert np.array_equal(data[f"joint_angles_{case}"][..., 1790], data[f"initial_pos_{case}"])
    with torch.no_grad():
        features = model.encode(emg)
        rollout = model.rollout(features, initial, model.n_rollout_steps(emg.shape[-1]))
        prediction = model(emg, initial)
    assert np.abs(features.numpy() - data[f"features_{case}"]).max() <= 1e-5
    assert np.abs(rollout.numpy() - data[f"rollout_{case}"]).max() <= 1e-4
    assert np.abs(prediction.numpy() - data[f"pred_{case}"]).max() <= 1e-4
    assert prediction.shape == data[f"pred_{case}"].shape


def test_step_count_rounds_half_to_even() -> None:
    model = VEMG2Pose(BackboneConfig.standin())
    assert model.n_rollout_steps(4000) == 55  # 55.25
    assert model.n_rollout_steps(11790) == 250
    assert model.n_rollout_steps(1790 + 100) == 2  # 2.5 → 2 (half to even), not 3


def test_standin_keeps_the_left_context_and_batches() -> None:
    torch.manual_seed(0)
    model = VEMG2Pose(BackboneConfig.standin()).eval()
    emg = torch.randn(3, 16, 4000)
    initial = torch.rand(3, 20)
    with torch.no_grad():
        together = model(emg, initial)
        alone = model(emg[1:2], initial[1:2])
    assert together.shape == (3, 20, 2210)
    assert torch.allclose(together[1:2], alone, atol=1e-5)
    emg_changed = emg.clone()
    emg_changed[:, :, -45:] += 5.0  # T=4000: frame 27 ends at sample 3950; later samples influence nothing
    with torch.no_grad():
        assert torch.allclose(model(emg_changed, initial), together, atol=1e-6)
