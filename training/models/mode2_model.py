"""The Mode 2 transfer model (seed guide): MindRove 8 ch @ 500 Hz → pretrained emg2pose backbone → MANO.

    raw µV ─► causal high-pass (outside the graph: firmware_bridge/emg_filter.py, state carried across windows)
      ─► window (B,8,1000) ─► z-score (training statistics) ─► ChannelAdapter 8→16 (trainable)
      ─► ×4 causal linear upsampling to 2 kHz (fixed) ─► vemg2pose (encoder frozen; its LSTM decoder
         fine-tuned at 0.1× the lr by default, `backbone_finetune`) ─► 20 angles at 2 kHz
      ─► AngleConverter 20→45 θ (trainable) ─► hand forward kinematics (frozen) ─► 21 joints
      + confidence head on the backbone's last features, the angles and the channel levels → predicted
        error → confidence (a linear map fitted in closed form after training, `confidence_head`)

Everything after the filter is a plain tensor op inside the module, so the ONNX export carries it and the
device cannot drift from training. The filter is causal and runs on the continuous stream, and the upsampler
only interpolates between neighbouring samples of the window, so the encoder's input for a stretch of signal
is the same in every window that contains it: the streaming engines reuse it (runtime/inference.py).
The backbone (but for a fine-tuned decoder) and the hand model are frozen with `requires_grad_(False)` (never
`torch.no_grad()`), so gradients still flow through them to the adapter.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from training.hand.angle_map import ANGLES_TO_POSE
from training.hand.params import HandModelParams
from training.models.backbone import LEFT_CONTEXT, VEMG2Pose

WINDOW = 1000  # samples at 500 Hz = 2 s
MINDROVE_RATE = 500.0
UPSAMPLE = 4
# The causal upsampler gives 4 samples between each pair of neighbouring window samples: 3,996 at 2 kHz.
# The encoder skips the first 25 of them, so that its last feature frame (which ends 3,950 samples after the
# first it reads) ends on a pair boundary, 5 window samples before "now": a frame is then complete as soon as
# a sample arrives, and 28 frames still give the backbone's 55 rollout steps (frame k ↔ steps 2k−1, 2k).
ENCODER_SKIP = 25
BACKBONE_SAMPLES = (WINDOW - 1) * UPSAMPLE - ENCODER_SKIP  # 3,971 at 2 kHz
N_OUTPUT = BACKBONE_SAMPLES - LEFT_CONTEXT  # 2,181 backbone outputs per window; the last is "now"
# 2-kHz encoder-input sample m lies at window sample (m + ENCODER_SKIP + 0.5) / 4
ENCODER_TIME_OFFSET = ENCODER_SKIP + 0.5
ERROR_THRESHOLD_MM = 20.0
RECOMMENDED_HOP = WINDOW // 2
# With a 1-s hop (2,000 samples at 2 kHz) the next window's output 0 is this window's output 2,000: the
# "feedback" initial state for the next window.
FEEDBACK_INDEX = RECOMMENDED_HOP * UPSAMPLE


class Mode2Output(NamedTuple):
    theta: torch.Tensor  # (B,45) rad
    joints: torch.Tensor  # (B,21,3) m, wrist-relative
    angles: torch.Tensor  # (B,20) rad, backbone angles at "now"
    confidence: torch.Tensor  # (B,) in [0,1]


def output_time_offsets(indices: list[int] | np.ndarray) -> np.ndarray:
    """Seconds from the window's first sample to backbone output `index` (output j ↔ encoder-input sample
    1,790 + j, which lies at window sample (1,790 + j + 25.5) / 4)."""
    return (LEFT_CONTEXT + ENCODER_TIME_OFFSET + np.asarray(indices)) / (MINDROVE_RATE * UPSAMPLE)


class Preprocess(nn.Module):
    """Per-channel z-score with the training statistics. The input is already high-pass filtered (causally,
    on the stream: firmware_bridge/emg_filter.py), so it has no DC offset to remove."""

    def __init__(self, channels: int = 8) -> None:
        super().__init__()
        self.register_buffer("std", torch.ones(channels))

    def forward(self, emg: torch.Tensor) -> torch.Tensor:
        return emg / self.std[:, None]


def geometry_adapter_init(n_in: int = 8, n_out: int = 16) -> torch.Tensor:
    """(n_out, n_in) weights: each of the 16 ring positions reads its nearest MindRove electrodes.

    Both bands are rings around the forearm starting at the same angle (docs/SYNTHETIC_WORLD.md): ring
    position j sits at angle j·360/16, MindRove electrode i at i·360/8. Position j takes the two nearest
    electrodes with linear-interpolation weights by angular distance (so 2i copies electrode i and 2i+1
    averages electrodes i and i+1)."""
    weights = torch.zeros(n_out, n_in)
    for j in range(n_out):
        position = j * n_in / n_out
        lower = math.floor(position)
        frac = position - lower
        weights[j, lower % n_in] += 1.0 - frac
        weights[j, (lower + 1) % n_in] += frac
    return weights


class ChannelAdapter(nn.Module):
    def __init__(self, n_in: int = 8, n_out: int = 16, init: str = "geometry", output_scale: float = 1.0) -> None:
        super().__init__()
        self.linear = nn.Linear(n_in, n_out)
        with torch.no_grad():
            if init == "geometry":
                self.linear.weight.copy_(geometry_adapter_init(n_in, n_out) * output_scale)
            elif init == "random":
                nn.init.normal_(self.linear.weight, 0.0, output_scale / math.sqrt(n_in))
            else:
                raise ValueError(f"adapter init must be 'geometry' or 'random', not {init!r}")
            self.linear.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.transpose(1, 2)).transpose(1, 2)


CONVERTER_HIDDEN = 128  # the AngleConverter residual MLP's width (the guide's "wider" suggestion is 512)
BACKBONE_FINETUNE = ("none", "decoder")  # which backbone layers train (decoder: its LSTM and output layer)
# `mode2 train`'s default since issue 15's variants: fine-tuning the decoder won on new subjects' held-out
# sessions at 1, 2 and 5 minutes of data (README, "Mode 2 variants"); a model's own setting is in its checkpoint
DEFAULT_BACKBONE_FINETUNE = "decoder"
BACKBONE_LR_FACTOR = 0.1  # fine-tuned backbone layers learn at this fraction of the learning rate
UPSAMPLE_WEIGHTS = (0.125, 0.375, 0.625, 0.875)  # positions of the 4 new samples between two neighbours


def upsample(x: torch.Tensor) -> torch.Tensor:
    """Fixed ×4 linear interpolation 500 Hz → 2 kHz, (B,C,n) → (B,C,4(n−1)−25): four samples between each pair of
    neighbours (the same values as half-pixel interpolation away from the edges), none before the first or
    after the last sample, so every output depends on two window samples only; the first ENCODER_SKIP dropped."""
    weights = x.new_tensor(UPSAMPLE_WEIGHTS)
    left = x[..., :-1, None]
    pairs = left + (x[..., 1:, None] - left) * weights  # (B,C,n−1,4)
    return pairs.flatten(-2)[..., ENCODER_SKIP:]


class AngleConverter(nn.Module):
    """emg2pose angles (…,20) → MANO θ (…,45): the analytic axis map (trainable) + a residual MLP
    that starts at zero, so training starts from a sensible converter."""

    def __init__(self, hidden: int = CONVERTER_HIDDEN) -> None:
        super().__init__()
        self.linear = nn.Linear(20, 45)
        with torch.no_grad():
            self.linear.weight.copy_(torch.as_tensor(ANGLES_TO_POSE.T, dtype=torch.float32))
            self.linear.bias.zero_()
        self.residual = nn.Sequential(
            nn.Linear(20, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, 45)
        )
        nn.init.zeros_(self.residual[-1].weight)
        nn.init.zeros_(self.residual[-1].bias)

    def forward(self, angles: torch.Tensor) -> torch.Tensor:
        return self.linear(angles) + self.residual(angles)


CONFIDENCE_HEADS = ("ridge", "mlp")
DEFAULT_CONFIDENCE_HEAD = "ridge"


class ConfidenceHead(nn.Module):
    """Predicts log(1 + joint error in mm) from what the model knows at "now"; confidence = how far
    that prediction is below the 20-mm threshold, squashed to [0,1]. Calibrated later on held-out data.

    kind "ridge" (default): one linear layer, not trained by gradient but fitted in closed form after
    training (training/fitting/confidence_head_fit.py: measured to rank held-out errors better).
    kind "mlp": the seed guide's small MLP, trained with the pose loss (checkpoints before meta version 5)."""

    def __init__(self, n_in: int, kind: str = DEFAULT_CONFIDENCE_HEAD) -> None:
        super().__init__()
        if kind not in CONFIDENCE_HEADS:
            raise ValueError(f"confidence head must be one of {CONFIDENCE_HEADS}, not {kind!r}")
        self.kind = kind
        self.closed_form = kind == "ridge"
        if self.closed_form:
            self.net = nn.Sequential(nn.Linear(n_in, 1))
            nn.init.zeros_(self.net[-1].weight)
            self.requires_grad_(False)
        else:
            self.net = nn.Sequential(nn.Linear(n_in, 64), nn.GELU(), nn.Linear(64, 1))
        with torch.no_grad():  # start near a typical error (~15 mm) instead of 0 mm
            self.net[-1].bias.fill_(math.log1p(15.0))

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_error = self.net(features).squeeze(-1)
        confidence = torch.sigmoid(2.0 * (math.log1p(ERROR_THRESHOLD_MM) - log_error))
        return log_error, confidence

    def set_linear(self, weight: np.ndarray, bias: float) -> None:
        """The closed-form fit's weights (a "ridge" head only)."""
        if not self.closed_form:
            raise ValueError("only a 'ridge' confidence head is fitted in closed form")
        layer = self.net[-1]
        with torch.no_grad():
            layer.weight.copy_(torch.as_tensor(weight, dtype=layer.weight.dtype).reshape(layer.weight.shape))
            layer.bias.fill_(float(bias))


class Mode2Model(nn.Module):
    kind = "mode2"
    arch = "mode2"

    def __init__(
        self,
        backbone: VEMG2Pose,
        hand: HandModelParams,
        *,
        adapter_init: str = "geometry",
        backbone_input_scale: float = 1.0,
        converter_hidden: int = CONVERTER_HIDDEN,
        backbone_finetune: str = "none",
        confidence_head: str = DEFAULT_CONFIDENCE_HEAD,
    ) -> None:
        super().__init__()
        from training.hand.fk_torch import HandForward

        if backbone_finetune not in BACKBONE_FINETUNE:
            raise ValueError(f"backbone_finetune must be one of {BACKBONE_FINETUNE}, not {backbone_finetune!r}")
        self.preprocess = Preprocess()
        self.adapter = ChannelAdapter(init=adapter_init, output_scale=backbone_input_scale)
        self.adapter_scale = backbone_input_scale
        self.backbone = backbone.eval().requires_grad_(False)
        if backbone_finetune == "decoder":  # the guide's "fine-tune the backbone's last layers"
            self.backbone.decoder.requires_grad_(True)
        self.converter = AngleConverter(converter_hidden)
        self.hand = HandForward(hand).requires_grad_(False)
        features = backbone.cfg.features
        self.confidence_head = ConfidenceHead(features + 20 + 8, confidence_head)

    def train(self, mode: bool = True) -> Mode2Model:
        super().train(mode)
        self.backbone.eval()  # frozen: no dropout/normalisation updates, whatever the outer mode
        return self

    def _run(self, emg: torch.Tensor, initial_pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.preprocess(emg)
        channel_level = torch.log(x.pow(2).mean(dim=-1) + 1e-3)  # (B,8) signal level, for the confidence head
        x16 = upsample(self.adapter(x))
        features = self.backbone.encode(x16)
        n_samples = int(x16.shape[-1])  # fixed by the window (3,971); a constant in the exported graph
        trajectory = self.backbone.rollout(features, initial_pose, self.backbone.n_rollout_steps(n_samples))
        angles = F.interpolate(trajectory, size=n_samples - LEFT_CONTEXT, mode="linear", align_corners=False)
        return angles, features[..., -1], channel_level

    def forward_trajectory(self, emg: torch.Tensor, initial_pose: torch.Tensor, indices: torch.Tensor) -> dict:
        """Outputs at backbone output `indices` (S,) — dense supervision over the window's last part."""
        angles, last_features, level = self._run(emg, initial_pose)
        picked = angles[:, :, indices].transpose(1, 2)  # (B,S,20)
        theta = self.converter(picked)
        b, s = theta.shape[:2]
        joints = self.hand(theta.reshape(b * s, 45)).reshape(b, s, 21, 3)
        head_input = self._confidence_input(last_features, picked[:, -1], level)
        log_error, confidence = self.confidence_head(head_input)
        return {
            "theta": theta,
            "joints": joints,
            "angles": picked,
            "log_error": log_error,
            "confidence": confidence,
            "confidence_input": head_input.detach(),
            "angles_full": angles,
        }

    def forward(self, emg: torch.Tensor, initial_pose: torch.Tensor) -> Mode2Output:
        angles, last_features, level = self._run(emg, initial_pose)
        now = angles[:, :, -1]
        theta = self.converter(now)
        joints = self.hand(theta)
        _, confidence = self.confidence_head(self._confidence_input(last_features, now, level))
        return Mode2Output(theta, joints, now, confidence)

    def forward_with_feedback(self, emg: torch.Tensor, initial_pose: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """`forward` plus the angles at backbone output FEEDBACK_INDEX: the next window's initial state."""
        angles, last_features, level = self._run(emg, initial_pose)
        now = angles[:, :, -1]
        theta = self.converter(now)
        _, confidence = self.confidence_head(self._confidence_input(last_features, now, level))
        return theta, self.hand(theta), now, confidence, angles[:, :, FEEDBACK_INDEX]

    def _confidence_input(self, features: torch.Tensor, angles: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        return torch.cat([features, angles, level], dim=1)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def parameter_groups(self, lr: float, *, scale_adapter_lr: bool = False) -> list[dict]:
        """Optimizer groups. Fine-tuned backbone layers (if any) learn BACKBONE_LR_FACTOR times slower, so a
        few minutes of one person's data nudge the pretrained weights instead of overwriting them.

        `scale_adapter_lr`: the adapter learns at lr × the backbone's input scale. Its weights are that scale
        (≈ 89 for the shipped backbones) times the electrode geometry, and Adam's steps are about lr in absolute
        size whatever the weight's size: at the plain lr the adapter moves ~0.1 % of its size in a whole run —
        it is all but frozen. Scaled, it moves like a unit-size weight would (Adam is invariant to the
        gradient's scale, so this equals training `scale × W` with W of unit size)."""
        backbone = [p for p in self.backbone.parameters() if p.requires_grad]
        adapter = list(self.adapter.parameters()) if scale_adapter_lr else []
        taken = {id(p) for p in backbone + adapter}
        rest = [p for p in self.trainable_parameters() if id(p) not in taken]
        groups: list[dict] = [{"params": rest, "lr": lr}]
        if adapter:
            groups.append({"params": adapter, "lr": lr * self.adapter_scale})
        if backbone:
            groups.append({"params": backbone, "lr": lr * BACKBONE_LR_FACTOR})
        return groups


class FixedAngleMap(nn.Module):
    """emg2pose angles (…,20) → MANO θ (…,45) by the geometric axis map of training/hand/angle_map.py, as a
    buffer: no trainable parameter, so nothing can learn to correct the backbone's angles."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("angles_to_pose", torch.as_tensor(ANGLES_TO_POSE, dtype=torch.float32))

    def forward(self, angles: torch.Tensor) -> torch.Tensor:
        return angles @ self.angles_to_pose


class Mode1Model(Mode2Model):
    """The seed guide's troubleshooting variant ("data or architecture?"): only the ChannelAdapter trains;
    the frozen backbone's angles reach the hand through the fixed geometric map. The confidence head is
    frozen at its initial values and its input detached, so no loss but the pose loss reaches the adapter
    (Mode 1 reports no meaningful confidence). Its checkpoints carry kind "mode2" (the checkpoint format's
    kinds) and are told apart by the `converter.angles_to_pose` weight (training/models/model_io.py)."""

    arch = "mode1"
    fits_confidence = False  # its head stays at its initial values (no meaningful confidence)

    def __init__(
        self,
        backbone: VEMG2Pose,
        hand: HandModelParams,
        *,
        adapter_init: str = "geometry",
        backbone_input_scale: float = 1.0,
        converter_hidden: int = CONVERTER_HIDDEN,
        backbone_finetune: str = "none",
        confidence_head: str = DEFAULT_CONFIDENCE_HEAD,
    ) -> None:
        if backbone_finetune != "none":
            raise ValueError("Mode 1 trains the adapter only: the backbone cannot be fine-tuned in it")
        super().__init__(
            backbone,
            hand,
            adapter_init=adapter_init,
            backbone_input_scale=backbone_input_scale,
            confidence_head=confidence_head,
        )
        self.converter = FixedAngleMap()  # converter_hidden does not apply: the map has no hidden layer
        self.confidence_head.requires_grad_(False)

    def _confidence_input(self, features: torch.Tensor, angles: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        return super()._confidence_input(features, angles, level).detach()


MODE1_MARKER = "converter.angles_to_pose"  # a state_dict key only Mode 1 has
