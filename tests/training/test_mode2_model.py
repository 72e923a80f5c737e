"""Mode 2 model: gradients reach the adapter through the frozen backbone; frozen parts never change."""

from __future__ import annotations

import numpy as np
import torch

from firmware_bridge.emg_filter import InputFilter, StreamFilter
from training.data.windows import SUPERVISED_INDICES
from training.hand.open_hand import open_hand_model
from training.models.backbone import BackboneConfig, VEMG2Pose
from training.models.direct_model import DirectModel
from training.models.mode2_model import Mode2Model, Preprocess, geometry_adapter_init


def _model(init: str = "geometry") -> Mode2Model:
    torch.manual_seed(0)
    return Mode2Model(
        VEMG2Pose(BackboneConfig.standin()), open_hand_model(), adapter_init=init, backbone_input_scale=50.0
    )


FILTER = InputFilter.design(500.0)


def _filtered(raw: torch.Tensor, window: int = 1000) -> torch.Tensor:
    """(n, 8, T) raw µV streams → the last `window` samples of each after the model's causal input filter."""
    out = [StreamFilter(FILTER, 8).process(stream.T.double().numpy())[-window:].T for stream in raw]
    return torch.from_numpy(np.stack(out))


def _raw(n: int, samples: int = 2000) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 8, samples, generator=g) * 60 + torch.linspace(-3e5, 3e5, 8)[None, :, None]


def _batch(n: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Model input: windows of a raw stream with offsets of ±300 mV, after the input filter (as training cuts them)."""
    g = torch.Generator().manual_seed(2)
    return _filtered(_raw(n)), torch.rand(n, 20, generator=g) * 0.5


def test_gradients_flow_through_the_frozen_backbone_into_the_adapter() -> None:
    model = _model()
    emg, initial = _batch()
    out = model.forward_trajectory(emg, initial, torch.as_tensor(SUPERVISED_INDICES))
    (out["theta"].pow(2).mean() + out["joints"].pow(2).mean()).backward()
    assert model.adapter.linear.weight.grad is not None
    assert model.adapter.linear.weight.grad.abs().sum() > 0, "the adapter learns only through the backbone"
    assert all(p.grad is None for p in model.backbone.parameters())
    assert all(not p.requires_grad for p in model.backbone.parameters())
    assert all(not b.requires_grad for b in model.hand.buffers())


def test_optimizer_steps_never_change_frozen_weights() -> None:
    model = _model()
    frozen = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    hand = {k: v.clone() for k, v in model.hand.state_dict().items()}
    adapter_before = model.adapter.linear.weight.clone()
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=1e-2, weight_decay=1e-4)
    emg, initial = _batch()
    model.train()
    for _ in range(3):
        out = model.forward_trajectory(emg, initial, torch.as_tensor(SUPERVISED_INDICES))
        loss = out["theta"].pow(2).mean() + out["joints"].pow(2).mean() + out["log_error"].pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert all(torch.equal(v, model.backbone.state_dict()[k]) for k, v in frozen.items())
    assert all(torch.equal(v, model.hand.state_dict()[k]) for k, v in hand.items())
    assert not torch.equal(adapter_before, model.adapter.linear.weight)
    assert not model.backbone.training, "the frozen backbone stays in eval mode inside a training model"


def test_outputs_shapes_ranges_and_dc_immunity() -> None:
    model = _model().eval()
    raw = _raw(4)
    _, initial = _batch(4)
    drift = torch.linspace(0, 1000, raw.shape[-1])  # 500 µV per window on top of 100 mV more DC
    with torch.no_grad():
        out = model(_filtered(raw), initial)
        shifted = model(_filtered(raw + 1e5 + drift), initial)
    assert out.theta.shape == (4, 45) and out.joints.shape == (4, 21, 3) and out.angles.shape == (4, 20)
    assert torch.all((out.confidence >= 0) & (out.confidence <= 1))
    assert torch.allclose(out.joints[:, 0], torch.zeros(4, 3), atol=1e-7), "wrist-relative"
    assert torch.allclose(out.joints, shifted.joints, atol=1e-5), "DC offsets and drift never reach the model"


def test_geometry_init_maps_each_electrode_to_its_nearest_ring_positions() -> None:
    weights = geometry_adapter_init()
    assert weights.shape == (16, 8)
    assert torch.allclose(weights.sum(dim=1), torch.ones(16))
    for i in range(8):
        assert weights[2 * i, i] == 1.0
        assert weights[2 * i + 1, i] == 0.5 and weights[2 * i + 1, (i + 1) % 8] == 0.5
    random_init = _model("random").adapter.linear.weight
    assert not torch.allclose(random_init / random_init.abs().max(), weights / weights.abs().max())


def test_input_filter_removes_dc_and_drift_preprocess_scales_and_direct_model_contract() -> None:
    # the causal input filter (not the model any more) takes out DC and drift: a ramp of ±10 mV per 2-s window on
    # a 300 mV offset, running since the window before, leaves < 0.05 µV in the window (float rounding only)
    ramp = (torch.linspace(-2, 2, 2000) * 1e4 + 3e5).expand(1, 8, 2000)
    assert _filtered(ramp).abs().max() < 0.05, "a ±10 mV ramp on a 300 mV offset leaves < 0.05 µV"
    # a constant 300 mV offset leaves nothing from the very first sample: the filter starts in its steady state
    emg = torch.randn(1, 8, 1000, generator=torch.Generator().manual_seed(3)) * 60
    offset = _filtered(emg + 3e5) - _filtered(emg)
    assert offset.abs().max() < 0.05, "no start-up transient from a DC offset"
    # what stays in the graph: divide by the training std
    pre = Preprocess()
    pre.std.copy_(torch.arange(1.0, 9.0))
    torch.testing.assert_close(pre(emg), emg / torch.arange(1.0, 9.0)[:, None])
    direct = DirectModel(open_hand_model()).eval()
    emg, initial = _batch(2)
    out = direct(emg, initial)
    assert out.theta.shape == (2, 45) and out.joints.shape == (2, 21, 3) and out.confidence.shape == (2,)
