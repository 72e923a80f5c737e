"""The Mode 2 model cut into the steps a streaming device runs, each equal to its part of the windowed model.

The windowed model recomputes a whole 2-s window every hop. Because the input filter is causal and runs on
the stream, the upsampler only looks at neighbouring samples and every encoder convolution is "valid" (no
padding, no right context), the encoder's feature frame for a stretch of signal is the same in every window
that contains it. So a device can compute each frame once:

- `EncoderStep`: 20 new filtered samples (40 ms) and the per-layer carry → one feature frame and the new
  carry. A frame is exact once its 1,791-sample receptive field (≈ 0.9 s) lies inside the stream; earlier
  ones (the carry starts at zero) are discarded.
- `LstmStep`: one 50-Hz rollout step for a batch of rollouts (each its own h, c, pose): a window's 55-step
  rollout takes frame k at step 2k and the mean of frames k−1 and k at step 2k−1 (the windowed model's
  align-corners interpolation of 28 frames onto 55 steps), so it can advance as its frames arrive.
- `Head`: the rollout's last pose, the window's last frame and its channel levels → θ, joints, confidence
  (calibrated like the windowed export).

`runtime/inference.py` orchestrates them (staggered rollouts for the `exact` engine, long-lived ones for
`continuous`); `tests/export/test_streaming_parity.py` proves them equal to the windowed model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from training.models.backbone import ConvBlock, TdsConv, TdsFullyConnected, _lstm_cell
from training.models.mode2_model import ENCODER_SKIP, UPSAMPLE, UPSAMPLE_WEIGHTS, WINDOW, Mode2Model

FRAME_STRIDE = 80  # encoder-input samples (2 kHz) per feature frame
FRAME_SAMPLES = FRAME_STRIDE // UPSAMPLE  # 20 window samples (40 ms) per frame
N_FRAMES = 28  # feature frames per window
N_STEPS = 55  # rollout steps per window (50 Hz)
# The window's last frame ends with the upsampled pair (window sample 993, 994): 5 samples before "now".
LAST_FRAME_END_BEFORE_NOW = (WINDOW - 1) - (ENCODER_SKIP + (N_FRAMES - 1) * FRAME_STRIDE + 1790) // UPSAMPLE - 1
assert LAST_FRAME_END_BEFORE_NOW == 5
# frames whose receptive field (1,791 encoder-input samples) starts before the stream are not exact
WARMUP_FRAMES = 23


@dataclass(frozen=True)
class CarrySpec:
    name: str
    channels: int
    length: int


def _stateful_layers(model: Mode2Model) -> list[tuple[nn.Module, int, int]]:
    """The encoder as a flat list of (module, kernel, stride); per-position modules have kernel 1."""
    layers: list[tuple[nn.Module, int, int]] = []
    for block in model.backbone.network.layers:
        if isinstance(block, ConvBlock):
            conv = block.conv[0]
            layers.append((block, conv.kernel_size[0], conv.stride[0]))
            continue
        conv = block.layers.conv1dblock.conv[0]
        layers.append((block.layers.conv1dblock, conv.kernel_size[0], conv.stride[0]))
        for sub in block.layers.tds_block.tds_conv_blocks:
            if isinstance(sub, TdsConv):
                layers.append((sub, sub.conv2d.kernel_size[1], 1))
            else:
                assert isinstance(sub, TdsFullyConnected)
                layers.append((sub, 1, 1))
        if block.project:
            layers.append((_Projection(block.linear_layer), 1, 1))
    return layers


class _Projection(nn.Module):
    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.linear = linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.transpose(1, 2)).transpose(1, 2)


class EncoderStep(nn.Module):
    """(B,8,20) new filtered µV + carry → (B,F) feature frame + new carry (see the module docstring)."""

    def __init__(self, model: Mode2Model) -> None:
        super().__init__()
        self.preprocess = model.preprocess
        self.adapter = model.adapter
        layers = _stateful_layers(model)
        self.layers = nn.ModuleList(m for m, _, _ in layers)
        self.kernels = [k for _, k, _ in layers]
        self.strides = [s for _, _, s in layers]
        width = model.backbone.cfg.width
        self.carry: list[CarrySpec] = [CarrySpec("carry_input", 8, 1)]  # the previous filtered sample
        new = FRAME_STRIDE
        for index, (kernel, stride) in enumerate(zip(self.kernels, self.strides, strict=True)):
            if kernel > 1:
                channels = model.backbone.cfg.in_channels if index == 0 else width
                self.carry.append(CarrySpec(f"carry_{index}", channels, kernel - stride))
            new //= stride
        assert new == 1, "the encoder's strides must multiply to one frame per 80 samples"

    def zero_carry(self, batch: int = 1) -> list[torch.Tensor]:
        return [torch.zeros(batch, c.channels, c.length) for c in self.carry]

    def forward(self, chunk: torch.Tensor, *carry: torch.Tensor) -> tuple[torch.Tensor, ...]:
        previous, rest = carry[0], list(carry[1:])
        x = torch.cat([previous, chunk], dim=-1)  # (B,8,21)
        x = self.adapter(self.preprocess(x))  # (B,16,21)
        left = x[..., :-1, None]
        y = (left + (x[..., 1:, None] - left) * x.new_tensor(UPSAMPLE_WEIGHTS)).flatten(-2)  # (B,16,80)
        new_carry = [chunk[..., -1:]]
        for layer, kernel, stride in zip(self.layers, self.kernels, self.strides, strict=True):
            if kernel > 1:
                y = torch.cat([rest.pop(0), y], dim=-1)
                out = layer(y)
                new_carry.append(y[..., stride * out.shape[-1] :])
                y = out
            else:
                y = layer(y)
        return (y[..., -1], *new_carry)


class LstmStep(nn.Module):
    """One rollout step for a batch: feature (B,F), pose (B,20), h and c (layers,B,H) → pose, h, c."""

    def __init__(self, model: Mode2Model) -> None:
        super().__init__()
        self.backbone = model.backbone
        self.cfg = model.backbone.cfg

    def forward(
        self, feature: torch.Tensor, pose: torch.Tensor, h: torch.Tensor, c: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        lstm = self.backbone.decoder.lstm
        below = torch.cat([feature, pose], dim=1)
        hs, cs = [], []
        for k in range(cfg.layers):
            w_ih, w_hh = getattr(lstm, f"weight_ih_l{k}"), getattr(lstm, f"weight_hh_l{k}")
            bias = getattr(lstm, f"bias_ih_l{k}") + getattr(lstm, f"bias_hh_l{k}")
            gates = torch.cat([below, h[k]], dim=1) @ torch.cat([w_ih, w_hh], dim=1).t() + bias
            h_k, c_k = _lstm_cell(gates, c[k], cfg.hidden)
            hs.append(h_k)
            cs.append(c_k)
            below = h_k
        head = self.backbone.decoder.mlp_out[1]
        pose = pose + cfg.scale * head(F.leaky_relu(below, 0.01))
        return pose, torch.stack(hs), torch.stack(cs)


class Head(nn.Module):
    """Angles (B,20) at "now", the window's last frame (B,F) and channel levels (B,8) → θ, joints, confidence."""

    def __init__(self, model: Mode2Model, calibrate: nn.Module | None = None) -> None:
        super().__init__()
        self.model = model
        self.calibrate = calibrate

    def forward(
        self, angles: torch.Tensor, last_feature: torch.Tensor, level: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        theta = self.model.converter(angles)
        _, confidence = self.model.confidence_head(torch.cat([last_feature, angles, level], dim=1))
        if self.calibrate is not None:
            confidence = self.calibrate(confidence)
        return theta, self.model.hand(theta), confidence


def channel_level(window_filtered: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """The confidence head's per-channel level of a (B,8,1000) filtered window (as Mode2Model computes it)."""
    x = window_filtered / std[:, None]
    return torch.log(x.pow(2).mean(dim=-1) + 1e-3)


def step_features(frames: torch.Tensor) -> torch.Tensor:
    """(B,F,28) frames → (B,F,55) rollout inputs, the way the windowed model interpolates them."""
    return F.interpolate(frames, size=N_STEPS, mode="linear", align_corners=True)
