"""Our open anthropometric right hand in MANO's joint layout (no MANO data involved).

Hand frame (right hand, palm down): +x from the wrist towards the fingers, +y out of the back of the
hand (palm normal is −y), +z towards the little finger (thumb on −z). docs/HAND_MODEL.md has the sources.
"""

from __future__ import annotations

import numpy as np

from training.hand.params import HandModelParams
from training.hand.skeleton import TIP_PARENTS

# Anthropometry (Buchholz, Armstrong & Goldstein 1992, Ergonomics 35(3):261-273): segment
# lengths as fractions of hand length (wrist crease to middle fingertip). Order: metacarpal,
# proximal, middle, distal phalanx; the thumb has metacarpal, proximal, distal.
HAND_LENGTH_M = 0.19  # adult mean, between male ~0.19 and female ~0.175 (Greiner 1991, US Army survey)
_SEGMENTS = {
    "thumb": (0.251, 0.196, 0.158),
    "index": (0.374, 0.265, 0.143, 0.097),
    "middle": (0.373, 0.277, 0.170, 0.108),
    "ring": (0.336, 0.259, 0.165, 0.107),
    "pinky": (0.295, 0.206, 0.117, 0.093),
}
# Lateral (z) position of each MCP joint across the palm, as a fraction of hand length (metacarpal
# breadth ≈ 0.45 × hand length, Greiner 1991) and the splay of each finger at rest (radians, about y).
_MCP_Z = {"index": -0.125, "middle": -0.035, "ring": 0.055, "pinky": 0.135}
_SPLAY = {"index": 0.10, "middle": 0.0, "ring": -0.08, "pinky": -0.18}
_THUMB_CMC = np.array([0.045, -0.015, -0.11])  # fraction of hand length: palmar, radial side
_THUMB_DIRECTION = np.array([1.0, -0.25, -0.85])
THUMB_AXIS = _THUMB_DIRECTION / np.linalg.norm(_THUMB_DIRECTION)  # unit vector along the thumb at rest


def _open_rest_positions(scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rest joint and tip positions for the open skeleton; `scale` is (16,) per-bone length factors."""
    length = HAND_LENGTH_M
    joints = np.zeros((16, 3))
    tips = np.zeros((5, 3))
    order = {"index": (1, 2, 3), "middle": (4, 5, 6), "pinky": (7, 8, 9), "ring": (10, 11, 12)}
    tip_slot = {"index": 1, "middle": 2, "ring": 3, "pinky": 4}
    for finger, (j1, j2, j3) in order.items():
        meta, prox, mid, dist = (s * length for s in _SEGMENTS[finger])
        z = _MCP_Z[finger] * length
        meta = meta * scale[j1]
        x = np.sqrt(max(meta**2 - z**2, 1e-6))
        joints[j1] = (x, 0.0, z)
        splay = _SPLAY[finger]
        direction = np.array([np.cos(splay), 0.0, -np.sin(splay)])
        joints[j2] = joints[j1] + prox * scale[j2] * direction
        joints[j3] = joints[j2] + mid * scale[j3] * direction
        tips[tip_slot[finger]] = joints[j3] + dist * scale[j3] * direction
    meta, prox, dist = (s * length for s in _SEGMENTS["thumb"])
    joints[13] = _THUMB_CMC * length * scale[13]
    joints[14] = joints[13] + meta * scale[14] * THUMB_AXIS
    joints[15] = joints[14] + prox * scale[15] * THUMB_AXIS
    tips[0] = joints[15] + dist * scale[15] * THUMB_AXIS
    return joints, tips


def open_hand_model(bone_scale: float | np.ndarray = 1.0) -> HandModelParams:
    """Our anthropometric right hand with MANO's joint layout (no MANO data involved).

    `bone_scale` scales every bone (a float) or each of the 16 bones ending at MANO joint j (array (16,)).
    The 10 shape coefficients act as in MANO's first components, loosely: β0 = overall size (+1 ≈ +5 %),
    β1 = finger length relative to palm (+1 ≈ +5 %); the rest are unused (zero directions).
    """
    scale = np.broadcast_to(np.asarray(bone_scale, dtype=np.float64), (16,)).copy()
    joints, tips = _open_rest_positions(scale)
    joints_sd = np.zeros((16, 3, 10))
    tips_sd = np.zeros((5, 3, 10))
    joints_sd[:, :, 0] = 0.05 * joints
    tips_sd[:, :, 0] = 0.05 * tips
    finger_scale = np.ones(16)
    finger_scale[[2, 3, 5, 6, 8, 9, 11, 12, 15]] = 1.05
    longer_joints, longer_tips = _open_rest_positions(scale * finger_scale)
    joints_sd[:, :, 1] = longer_joints - joints
    tips_sd[:, :, 1] = longer_tips - tips
    weights = np.zeros((5, 16))
    weights[np.arange(5), TIP_PARENTS] = 1.0
    return HandModelParams(
        kind="open",
        joints_rest=joints,
        joints_shapedirs=joints_sd,
        tips_rest=tips,
        tips_shapedirs=tips_sd,
        tips_posedirs=np.zeros((5, 3, 135)),
        tips_weights=weights,
    )
