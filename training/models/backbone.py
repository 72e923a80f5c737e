"""emg2pose "vemg2pose" tracking network, written from `reference/emg2pose-facts.md` (no upstream code).

16-ch EMG at 2 kHz → TDS encoder (valid convolutions, 25 Hz features, 1,790-sample left context) → a
2-layer LSTM rolled out step by step at 50 Hz, fed [feature ; previous pose], emitting pose increments
(× 0.01) that are integrated from the supplied initial pose → linear upsampling back to 2 kHz.
Parameter names equal the official state_dict's (minus the Lightning `model.` prefix), so Meta's
checkpoint loads strictly; `BackboneConfig.standin()` is the same code at a smaller width.

The rollout is written for speed without changing the numbers: the feature half of the first LSTM
layer's input projection is one batched matmul for all steps, and each step fuses [pose ; h] into one
matmul per layer.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

LEFT_CONTEXT = 1790
SAMPLE_RATE = 2000.0
N_ANGLES = 20


@dataclass(frozen=True)
class BackboneConfig:
    in_channels: int = 16
    width: int = 256  # encoder channels; TDS blocks view them as tds_channels × (width / tds_channels)
    tds_channels: int = 16
    features: int = 64
    hidden: int = 512
    layers: int = 2
    out: int = N_ANGLES
    scale: float = 0.01
    rollout_hz: float = 50.0

    @classmethod
    def official(cls) -> BackboneConfig:
        return cls()

    @classmethod
    def standin(cls) -> BackboneConfig:
        """Same kernels, strides and left context; 4× narrower encoder, 4× smaller LSTM (≈ 0.3 M params)."""
        return cls(width=64, tds_channels=4, features=32, hidden=128)

    def to_dict(self) -> dict:
        return asdict(self)


class ConvBlock(nn.Module):
    """Conv1d (valid) → ReLU → LayerNorm over channels. Keys: conv.0 (the conv), norm."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv1d(c_in, c_out, kernel, stride), nn.ReLU(), nn.Dropout(0.0))
        self.norm = nn.LayerNorm(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x).transpose(1, 2)).transpose(1, 2)


class TdsConv(nn.Module):
    """Conv2d over time on the (channels × width) view, ReLU, right-aligned residual, LayerNorm."""

    def __init__(self, width: int, channels: int, kernel: int) -> None:
        super().__init__()
        self.channels = channels
        self.conv2d = nn.Conv2d(channels, channels, (1, kernel))
        self.layer_norm = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, length = x.shape
        y = self.conv2d(x.reshape(b, self.channels, c // self.channels, length)).relu()
        y = y.reshape(b, c, -1) + x[..., length - y.shape[-1] :]
        return self.layer_norm(y.transpose(1, 2)).transpose(1, 2)


class TdsFullyConnected(nn.Module):
    """Per time step: LayerNorm(x + Linear(ReLU(Linear(x))))."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc_block = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))
        self.layer_norm = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.transpose(1, 2)
        return self.layer_norm(t + self.fc_block(t)).transpose(1, 2)


class TdsStage(nn.Module):
    def __init__(self, cfg: BackboneConfig, kernel: int, stride: int, tds_kernel: int, project: bool) -> None:
        super().__init__()
        if project:  # registered first, as in the official module (state_dict order)
            self.linear_layer = nn.Linear(cfg.width, cfg.features)
        tds = nn.Module()
        tds.tds_conv_blocks = nn.Sequential(
            TdsConv(cfg.width, cfg.tds_channels, tds_kernel),
            TdsFullyConnected(cfg.width),
            TdsConv(cfg.width, cfg.tds_channels, tds_kernel),
            TdsFullyConnected(cfg.width),
        )
        self.layers = nn.Sequential(
            OrderedDict(conv1dblock=ConvBlock(cfg.width, cfg.width, kernel, stride), tds_block=tds)
        )
        self.project = project

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers.conv1dblock(x)
        x = self.layers.tds_block.tds_conv_blocks(x)
        if self.project:
            x = self.linear_layer(x.transpose(1, 2)).transpose(1, 2)
        return x


class TdsEncoder(nn.Module):
    def __init__(self, cfg: BackboneConfig) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            ConvBlock(cfg.in_channels, cfg.width, 11, 5),
            ConvBlock(cfg.width, cfg.width, 5, 2),
            TdsStage(cfg, 17, 4, 9, project=False),
            TdsStage(cfg, 9, 2, 5, project=True),
        )

    def forward(self, emg: torch.Tensor) -> torch.Tensor:
        return self.layers(emg)


class SequentialDecoder(nn.Module):
    """The LSTM and its output head; stepped by VEMG2Pose.rollout (state zeroed per window)."""

    def __init__(self, cfg: BackboneConfig) -> None:
        super().__init__()
        self.lstm = nn.LSTM(cfg.features + cfg.out, cfg.hidden, cfg.layers, batch_first=True)
        self.mlp_out = nn.Sequential(nn.LeakyReLU(0.01), nn.Linear(cfg.hidden, cfg.out))


def n_rollout_steps(n_samples: int, rollout_hz: float = 50.0) -> int:
    """Decoder steps for a window of `n_samples` at 2 kHz (Python round: half to even, as the official code)."""
    return round((n_samples - LEFT_CONTEXT) / SAMPLE_RATE * rollout_hz)


class VEMG2Pose(nn.Module):
    """vemg2pose tracking: (B,16,T) EMG at 2 kHz + initial pose (B,20) at sample 1,790 → (B,20,T−1,790) radians."""

    def __init__(self, cfg: BackboneConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or BackboneConfig()
        self.network = TdsEncoder(self.cfg)
        self.decoder = SequentialDecoder(self.cfg)

    def encode(self, emg: torch.Tensor) -> torch.Tensor:
        """(B,16,T) → (B,features,K) at 25 Hz, K = (T − 1791) // 80 + 1."""
        return self.network(emg)

    def n_rollout_steps(self, n_samples: int) -> int:
        return n_rollout_steps(n_samples, self.cfg.rollout_hz)

    def rollout(self, features: torch.Tensor, initial_pose: torch.Tensor, n_steps: int) -> torch.Tensor:
        """(B,F,K) features + (B,20) start → (B,20,N) poses at 50 Hz (the start itself is not emitted)."""
        cfg = self.cfg
        steps = F.interpolate(features, size=n_steps, mode="linear", align_corners=True)  # (B,F,N)
        lstm = self.decoder.lstm
        w_ih0 = lstm.weight_ih_l0
        hidden = cfg.hidden
        # feature part of layer 0's input projection for every step at once, both biases folded in
        pre = torch.matmul(steps.transpose(1, 2), w_ih0[:, : cfg.features].t()) + lstm.bias_ih_l0 + lstm.bias_hh_l0
        w0 = torch.cat([w_ih0[:, cfg.features :], lstm.weight_hh_l0], dim=1).t()  # [pose ; h0] → gates
        upper = [
            (
                torch.cat([getattr(lstm, f"weight_ih_l{k}"), getattr(lstm, f"weight_hh_l{k}")], dim=1).t(),
                getattr(lstm, f"bias_ih_l{k}") + getattr(lstm, f"bias_hh_l{k}"),
            )
            for k in range(1, cfg.layers)
        ]
        head = self.decoder.mlp_out[1]
        batch = features.shape[0]
        h = [features.new_zeros(batch, hidden) for _ in range(cfg.layers)]
        c = [features.new_zeros(batch, hidden) for _ in range(cfg.layers)]
        pose = initial_pose
        outputs = []
        for t in range(n_steps):
            gates = pre[:, t] + torch.cat([pose, h[0]], dim=1) @ w0
            h[0], c[0] = _lstm_cell(gates, c[0], hidden)
            below = h[0]
            for k, (w, b) in enumerate(upper, start=1):
                gates = torch.cat([below, h[k]], dim=1) @ w + b
                h[k], c[k] = _lstm_cell(gates, c[k], hidden)
                below = h[k]
            pose = pose + cfg.scale * head(F.leaky_relu(below, 0.01))
            outputs.append(pose)
        return torch.stack(outputs, dim=2)

    def forward(self, emg: torch.Tensor, initial_pose: torch.Tensor) -> torch.Tensor:
        n_samples = int(emg.shape[-1])
        trajectory = self.rollout(self.encode(emg), initial_pose, self.n_rollout_steps(n_samples))
        return F.interpolate(trajectory, size=n_samples - LEFT_CONTEXT, mode="linear", align_corners=False)


def _lstm_cell(gates: torch.Tensor, c: torch.Tensor, hidden: int) -> tuple[torch.Tensor, torch.Tensor]:
    i, f, g, o = gates.split(hidden, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def default_backbone_path() -> Path:
    """The shipped stand-in backbone (pretrained on the synthetic 16-ch world; see its .md beside it)."""
    return Path(__file__).resolve().parents[1] / "assets" / "standin_backbone.pth"
