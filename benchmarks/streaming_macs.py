"""Multiply-add counts of the Mode 2 model's parts, from its architecture, and per second of EMG for each engine.

Convolutions and linear layers are counted by forward hooks on a real forward pass (each output element of a
layer costs in_channels/groups × kernel multiply-adds), the LSTM step by its formula. Elementwise work
(activations, norms, the LSTM gate nonlinearities, the upsampler) is not counted: it is small beside the
matrix products.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

WINDOW_SAMPLES = 1000
RATE_HZ = 500.0
STEPS_PER_WINDOW = 55
FRAMES_PER_SECOND = 25  # per encoder phase: one frame per 20 samples
STEPS_PER_SECOND = 50  # per rollout


@dataclass(frozen=True)
class ModelMacs:
    encoder_window: int  # the windowed graph's encoder over one 2-s window (adapter included)
    encoder_frame: int  # one encoder_step call (one 40-ms frame)
    lstm_step: int  # one rollout step of one rollout (2 layers + pose head)
    head: int  # θ, confidence from the angles (per emitted pose; FK not counted)
    lstm_formula: str  # the arithmetic of `lstm_step`, spelled out
    lstm_weight_bytes_fp32: int


def _count(modules, run) -> int:
    import torch
    from torch import nn

    total = [0]

    def hook(module, inputs, output) -> None:
        if isinstance(module, nn.Linear):
            total[0] += output.numel() * module.in_features
        elif isinstance(module, nn.Conv1d | nn.Conv2d):
            total[0] += output.numel() * (module.in_channels // module.groups) * math.prod(module.kernel_size)

    handles = [
        m.register_forward_hook(hook)
        for root in modules
        for m in root.modules()
        if isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d)
    ]
    try:
        with torch.no_grad():
            run()
    finally:
        for h in handles:
            h.remove()
    return total[0]


def model_macs(model) -> ModelMacs:
    """Counts for one Mode2Model (batch 1)."""
    import torch

    from training.models.streaming import FRAME_SAMPLES, EncoderStep

    cfg = model.backbone.cfg
    encoder_parts = [model.adapter, model.backbone.network]
    emg = torch.randn(1, 8, WINDOW_SAMPLES) * 50
    initial = torch.zeros(1, 20)
    encoder_window = _count(encoder_parts, lambda: model.forward_with_feedback(emg, initial))
    step = EncoderStep(model).eval()
    carry = step.zero_carry(1)
    encoder_frame = _count(encoder_parts, lambda: step(torch.randn(1, 8, FRAME_SAMPLES) * 50, *carry))
    h, f, o = cfg.hidden, cfg.features, cfg.out
    layer1 = 4 * h * (f + o + h)
    layer2 = 4 * h * (h + h) * (cfg.layers - 1)
    out = h * o
    lstm = layer1 + layer2 + out
    formula = (
        f"layer 1: 4·{h}·({f} feature + {o} pose + {h} h) = {layer1:,}; "
        f"layer 2: 4·{h}·({h} + {h}) = {layer2:,}; pose head {h}·{o} = {out:,} → {lstm / 1e6:.2f} M per step"
    )
    head_parts = [model.converter, model.confidence_head]
    angles = torch.zeros(1, 20)
    features = torch.zeros(1, f + 20 + 8)
    head = _count(head_parts, lambda: (model.converter(angles), model.confidence_head(features)))
    weights = sum(
        getattr(model.backbone.decoder.lstm, f"weight_{kind}_l{k}").numel()
        for k in range(cfg.layers)
        for kind in ("ih", "hh")
    )
    return ModelMacs(encoder_window, encoder_frame, lstm, head, formula, 4 * (weights + h * o))


@dataclass(frozen=True)
class ModeMacs:
    encoder_per_s: float
    rollout_steps_per_s: float
    lstm_per_s: float
    head_per_s: float
    arithmetic: str

    @property
    def total_per_s(self) -> float:
        return self.encoder_per_s + self.lstm_per_s + self.head_per_s


def phases(hop_samples: int, frame_samples: int = 20) -> int:
    return frame_samples // math.gcd(hop_samples, frame_samples)


def mode_macs(macs: ModelMacs, engine: str, hop_samples: int, lanes: int = 2, lane_steps: int | None = 110) -> ModeMacs:
    """Multiply-adds per second of EMG for an engine at a hop (the schedule runtime/streaming.py runs)."""
    rate = RATE_HZ / hop_samples
    if engine == "windowed":
        steps = rate * STEPS_PER_WINDOW
        encoder = rate * macs.encoder_window
        text = (
            f"{rate:g}/s × ({macs.encoder_window / 1e6:.1f} M encoder + {STEPS_PER_WINDOW} steps × "
            f"{macs.lstm_step / 1e6:.2f} M)"
        )
    else:
        p = phases(hop_samples)
        encoder = p * FRAMES_PER_SECOND * macs.encoder_frame
        if engine == "exact":
            steps = rate * STEPS_PER_WINDOW
            text = (
                f"{p}×{FRAMES_PER_SECOND} frames/s × {macs.encoder_frame / 1e6:.2f} M + {rate:g} windows/s × 55 steps"
            )
        else:
            steps = p * lanes * STEPS_PER_SECOND
            text = (
                f"{p}×{FRAMES_PER_SECOND} frames/s × {macs.encoder_frame / 1e6:.2f} M + {p} phase(s) × {lanes} "
                f"lane(s) × {STEPS_PER_SECOND} steps/s"
            )
        text += f" = {steps:g} steps/s × {macs.lstm_step / 1e6:.2f} M"
    lstm = steps * macs.lstm_step
    return ModeMacs(float(encoder), float(steps), float(lstm), float(rate * macs.head), text)


def gmacs(value: float) -> str:
    return f"{value / 1e9:.2f} G" if value >= 1e8 else f"{value / 1e6:.0f} M"
