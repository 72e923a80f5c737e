"""`HandModelParams`: everything forward kinematics needs to know about one hand, as plain arrays.

Built by `open_hand.open_hand_model` (our anthropometric skeleton) or `mano_hand.load_mano` (a user's
MANO file); consumed by `fk_numpy.forward_kinematics_np` and `fk_torch.HandForward`, and stored in
checkpoints (training/models/model_io.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class HandModelParams:
    """Everything forward kinematics needs, as plain arrays (float64)."""

    kind: str  # "open" or "mano"
    joints_rest: np.ndarray  # (16,3) m, for the mean shape
    joints_shapedirs: np.ndarray  # (16,3,10) joint offsets per shape coefficient
    tips_rest: np.ndarray  # (5,3) m
    tips_shapedirs: np.ndarray  # (5,3,10)
    tips_posedirs: np.ndarray  # (5,3,135) pose-corrective offsets (MANO), zeros for the open hand
    tips_weights: np.ndarray  # (5,16) skinning weights
    hands_mean: np.ndarray = field(default_factory=lambda: np.zeros(45))  # added to θ unless flat_hand_mean
    source: str = "open anthropometric skeleton"
