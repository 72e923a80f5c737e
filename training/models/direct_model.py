"""The direct baseline: EMG → MANO θ with a small Conv1D + LSTM (the seed project's successful alternative).

Same window, preprocessing, outputs and checkpoint contract as Mode 2, so training, evaluation, export
and the runtime treat both alike; it ignores the initial pose.
"""

from __future__ import annotations

import torch
from torch import nn

from training.hand.params import HandModelParams
from training.models.backbone import LEFT_CONTEXT
from training.models.mode2_model import (
    DEFAULT_CONFIDENCE_HEAD,
    ENCODER_SKIP,
    UPSAMPLE,
    ConfidenceHead,
    Mode2Output,
    Preprocess,
)

CONV_STRIDE = 4  # two stride-2 convolutions: 500 Hz → 125 Hz


class DirectModel(nn.Module):
    kind = "direct"

    def __init__(
        self, hand: HandModelParams, hidden: int = 128, confidence_head: str = DEFAULT_CONFIDENCE_HEAD
    ) -> None:
        super().__init__()
        from training.hand.fk_torch import HandForward

        self.preprocess = Preprocess()
        self.conv = nn.Sequential(
            nn.Conv1d(8, 64, 9, stride=2, padding=4),
            nn.GELU(),
            nn.Conv1d(64, 64, 9, stride=2, padding=4),
            nn.GELU(),
        )
        self.lstm = nn.LSTM(64, hidden, num_layers=2, batch_first=True)
        self.head = nn.Linear(hidden, 45)
        self.hand = HandForward(hand).requires_grad_(False)
        self.confidence_head = ConfidenceHead(hidden + 8, confidence_head)

    def _sequence(self, emg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.preprocess(emg)
        level = torch.log(x.pow(2).mean(dim=-1) + 1e-3)
        hidden, _ = self.lstm(self.conv(torch.log1p(x.abs()) * torch.sign(x)).transpose(1, 2))
        return hidden, level  # (B, L, H) at 125 Hz

    def forward_trajectory(self, emg: torch.Tensor, initial_pose: torch.Tensor, indices: torch.Tensor) -> dict:
        """Outputs at the Mode 2 backbone-output `indices` mapped to this rate (output j lies at window sample
        (1,815.5 + j) / 4; step s of this model at window samples 4s … 4s + 3)."""
        hidden, level = self._sequence(emg)
        first = LEFT_CONTEXT + ENCODER_SKIP
        steps = ((indices + first) // (UPSAMPLE * CONV_STRIDE)).clamp(max=hidden.shape[1] - 1)
        picked = hidden[:, steps]  # (B,S,H)
        theta = self.head(picked)
        b, s = theta.shape[:2]
        joints = self.hand(theta.reshape(b * s, 45)).reshape(b, s, 21, 3)
        head_input = torch.cat([picked[:, -1], level], dim=1)
        log_error, confidence = self.confidence_head(head_input)
        return {
            "theta": theta,
            "joints": joints,
            "log_error": log_error,
            "confidence": confidence,
            "confidence_input": head_input.detach(),
        }

    def forward(self, emg: torch.Tensor, initial_pose: torch.Tensor) -> Mode2Output:
        hidden, level = self._sequence(emg)
        last = hidden[:, -1]
        theta = self.head(last)
        _, confidence = self.confidence_head(torch.cat([last, level], dim=1))
        angles = theta.new_zeros(theta.shape[0], 20) + 0.0 * initial_pose  # keeps the input in the graph
        return Mode2Output(theta, self.hand(theta), angles, confidence)

    def forward_with_feedback(self, emg: torch.Tensor, initial_pose: torch.Tensor) -> tuple[torch.Tensor, ...]:
        theta, joints, angles, confidence = self.forward(emg, initial_pose)
        return theta, joints, angles, confidence, angles  # no tracking state: zeros

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]
