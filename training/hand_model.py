"""Hand model: MANO-layout forward kinematics (torch, differentiable; numpy twin), the open skeleton,
the MANO file loader, and the map between emg2pose's 20 finger angles and MANO's 45-D pose.

Conventions (docs/HAND_MODEL.md has the sources):
- 21 joints in MANO order (`MANO_JOINT_NAMES`), metres, wrist at the origin.
- Pose θ: 15 × axis-angle (joints 1…15 in MANO order), each in its parent's frame, which at rest is
  aligned with the hand frame; θ = 0 is the flat hand (`flat_hand_mean`).
- Hand frame of the open skeleton (right hand, palm down): +x from the wrist towards the fingers,
  +y out of the back of the hand (palm normal is −y), +z towards the little finger (thumb on −z).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from training.mano_loader import load_mano_arrays

MANO_JOINT_NAMES: tuple[str, ...] = (
    "wrist",
    "index1",
    "index2",
    "index3",
    "middle1",
    "middle2",
    "middle3",
    "pinky1",
    "pinky2",
    "pinky3",
    "ring1",
    "ring2",
    "ring3",
    "thumb1",
    "thumb2",
    "thumb3",
    "thumb_tip",
    "index_tip",
    "middle_tip",
    "ring_tip",
    "pinky_tip",
)
MANO_PARENTS = np.array([-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14], dtype=np.int64)
TIP_PARENTS = np.array([15, 3, 6, 12, 9], dtype=np.int64)  # distal joint of thumb, index, middle, ring, pinky
MANO_TIP_VERTICES = np.array([745, 317, 444, 556, 673], dtype=np.int64)
FINGERS: dict[str, tuple[int, ...]] = {
    "thumb": (13, 14, 15, 16),
    "index": (1, 2, 3, 17),
    "middle": (4, 5, 6, 18),
    "ring": (10, 11, 12, 19),
    "pinky": (7, 8, 9, 20),
}

MEDIAPIPE_NAMES: tuple[str, ...] = (
    "WRIST",
    "THUMB_CMC",
    "THUMB_MCP",
    "THUMB_IP",
    "THUMB_TIP",
    "INDEX_FINGER_MCP",
    "INDEX_FINGER_PIP",
    "INDEX_FINGER_DIP",
    "INDEX_FINGER_TIP",
    "MIDDLE_FINGER_MCP",
    "MIDDLE_FINGER_PIP",
    "MIDDLE_FINGER_DIP",
    "MIDDLE_FINGER_TIP",
    "RING_FINGER_MCP",
    "RING_FINGER_PIP",
    "RING_FINGER_DIP",
    "RING_FINGER_TIP",
    "PINKY_MCP",
    "PINKY_PIP",
    "PINKY_DIP",
    "PINKY_TIP",
)
# mediapipe_order = mano_joints[..., MANO_TO_MEDIAPIPE, :]
MANO_TO_MEDIAPIPE = np.array([0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20])
MEDIAPIPE_TO_MANO = np.argsort(MANO_TO_MEDIAPIPE)

# emg2pose's 20 outputs (UmeTrack order) and their joint limits in radians (emg2pose-facts.md a.2).
EMG2POSE_ANGLE_NAMES: tuple[str, ...] = (
    "THUMB_CMC_FE",
    "THUMB_CMC_AA",
    "THUMB_MCP_FE",
    "THUMB_IP_FE",
    "INDEX_MCP_AA",
    "INDEX_MCP_FE",
    "INDEX_PIP_FE",
    "INDEX_DIP_FE",
    "MIDDLE_MCP_AA",
    "MIDDLE_MCP_FE",
    "MIDDLE_PIP_FE",
    "MIDDLE_DIP_FE",
    "RING_MCP_AA",
    "RING_MCP_FE",
    "RING_PIP_FE",
    "RING_DIP_FE",
    "PINKY_MCP_AA",
    "PINKY_MCP_FE",
    "PINKY_PIP_FE",
    "PINKY_DIP_FE",
)
EMG2POSE_ANGLE_LIMITS = np.array(
    [
        [-0.787, 1.287],
        [-0.612, 0.612],
        [0.0, 1.287],
        [-0.259, 1.087],
        [-0.337, 0.487],
        [-0.287, 1.337],
        [0.0, 1.882],
        [0.0, 1.434],
        [-0.487, 0.287],
        [-0.287, 1.437],
        [0.0, 1.882],
        [0.0, 1.434],
        [-0.287, 0.287],
        [-0.287, 1.537],
        [0.0, 1.882],
        [0.0, 1.434],
        [-0.687, 0.487],
        [-0.487, 1.637],
        [0.0, 1.882],
        [0.0, 1.434],
    ],
    dtype=np.float32,
)

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


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


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
    thumb_dir = _unit(_THUMB_DIRECTION)
    joints[13] = _THUMB_CMC * length * scale[13]
    joints[14] = joints[13] + meta * scale[14] * thumb_dir
    joints[15] = joints[14] + prox * scale[15] * thumb_dir
    tips[0] = joints[15] + dist * scale[15] * thumb_dir
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


def load_mano(path: str, flat_hand_mean: bool = True) -> HandModelParams:
    """A user's MANO_RIGHT.pkl (original chumpy pickle or numpy-converted), loaded without chumpy.

    `flat_hand_mean=True` makes θ = 0 the flat hand; with False, MANO's `hands_mean` is added to every
    pose (MANO's own default, where θ = 0 is a relaxed, slightly curled hand).
    """
    arrays = load_mano_arrays(path)
    v_template = arrays["v_template"]
    regressor = arrays["J_regressor"]
    shapedirs = arrays["shapedirs"]
    return HandModelParams(
        kind="mano",
        joints_rest=regressor @ v_template,
        joints_shapedirs=np.einsum("jv,vcs->jcs", regressor, shapedirs),
        tips_rest=v_template[MANO_TIP_VERTICES],
        tips_shapedirs=shapedirs[MANO_TIP_VERTICES],
        tips_posedirs=arrays["posedirs"][MANO_TIP_VERTICES],
        tips_weights=arrays["weights"][MANO_TIP_VERTICES],
        hands_mean=np.zeros(45) if flat_hand_mean else arrays["hands_mean"].reshape(45),
        source=f"MANO file {path} (flat_hand_mean={flat_hand_mean})",
    )


# ---------------------------------------------------------------------------------------------------
# emg2pose 20 angles ↔ MANO θ (45)
# ---------------------------------------------------------------------------------------------------
def _motion_axis(direction: np.ndarray, towards: np.ndarray) -> np.ndarray:
    """Rotation axis that swings a bone pointing along `direction` towards `towards`."""
    return _unit(np.cross(direction, towards))


def _angle_axes() -> np.ndarray:
    """(20, 45) matrix A with θ = A·angles: each emg2pose DOF is a rotation about a fixed axis of a
    MANO joint. Flexion swings a bone towards the palm (−y); finger ab/adduction (positive) swings it
    towards the thumb side (−z); thumb CMC flexion swings the thumb across the palm (towards +z) and
    CMC ab/adduction lifts it out of the palm plane (towards −y)."""
    matrix = np.zeros((20, 45))
    palm = np.array([0.0, -1.0, 0.0])
    radial = np.array([0.0, 0.0, -1.0])

    def put(angle: int, joint: int, axis: np.ndarray) -> None:
        matrix[angle, 3 * (joint - 1) : 3 * joint] = axis

    thumb = _unit(_THUMB_DIRECTION)
    across = _unit(np.array([-thumb[2], 0.0, thumb[0]]))  # normal to the thumb in the palm plane, towards +z
    lift = _unit(palm - np.dot(palm, thumb) * thumb - np.dot(palm, across) * across)
    put(0, 13, _motion_axis(thumb, across))  # THUMB_CMC_FE
    put(1, 13, _motion_axis(thumb, lift))  # THUMB_CMC_AA
    curl = _unit(across + lift)
    put(2, 14, _motion_axis(thumb, curl))  # THUMB_MCP_FE
    put(3, 15, _motion_axis(thumb, curl))  # THUMB_IP_FE
    forward = np.array([1.0, 0.0, 0.0])
    for first, (mcp, pip, dip) in zip((4, 8, 12, 16), ((1, 2, 3), (4, 5, 6), (10, 11, 12), (7, 8, 9)), strict=True):
        put(first, mcp, _motion_axis(forward, radial))  # MCP_AA
        put(first + 1, mcp, _motion_axis(forward, palm))  # MCP_FE
        put(first + 2, pip, _motion_axis(forward, palm))  # PIP_FE
        put(first + 3, dip, _motion_axis(forward, palm))  # DIP_FE
    return matrix


ANGLES_TO_POSE = _angle_axes()
POSE_TO_ANGLES = np.linalg.pinv(ANGLES_TO_POSE)  # least-squares inverse (45 → 20)


def emg2pose_angles_to_mano_pose(angles):
    """(...,20) emg2pose angles (rad) → (...,45) MANO axis-angle θ of the open skeleton's convention."""
    return _matmul_last(angles, ANGLES_TO_POSE)


def mano_pose_to_emg2pose_angles(pose):
    """(...,45) θ → (...,20): least-squares projection onto the 20 DOF axes (exact on their span)."""
    return _matmul_last(pose, POSE_TO_ANGLES)


def _matmul_last(values, matrix: np.ndarray):
    if isinstance(values, np.ndarray):
        return values @ matrix.astype(values.dtype if values.dtype.kind == "f" else np.float64)
    import torch

    return values @ torch.as_tensor(matrix, dtype=values.dtype, device=values.device)


# ---------------------------------------------------------------------------------------------------
# Forward kinematics, numpy twin
# ---------------------------------------------------------------------------------------------------
def _rodrigues_np(r: np.ndarray) -> np.ndarray:
    theta2 = np.sum(r * r, axis=-1, keepdims=True)[..., None]
    small = theta2 < 1e-8
    theta = np.sqrt(np.where(small, 1.0, theta2))
    a = np.where(small, 1.0 - theta2 / 6.0, np.sin(theta) / theta)
    b = np.where(small, 0.5 - theta2 / 24.0, (1.0 - np.cos(theta)) / np.where(small, 1.0, theta2))
    x, y, z = r[..., 0], r[..., 1], r[..., 2]
    zero = np.zeros_like(x)
    k = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=-1).reshape(*r.shape[:-1], 3, 3)
    return np.eye(3) + a * k + b * (k @ k)


def forward_kinematics_np(
    params: HandModelParams,
    pose: np.ndarray,
    global_orient: np.ndarray | None = None,
    betas: np.ndarray | None = None,
) -> np.ndarray:
    """(...,45) θ → (...,21,3) joints in metres, wrist at the origin (numpy twin of HandForward)."""
    pose = np.asarray(pose, dtype=np.float64)
    batch = pose.shape[:-1]
    pose = pose.reshape(-1, 45) + params.hands_mean
    n = pose.shape[0]
    joints = np.broadcast_to(params.joints_rest, (n, 16, 3)).copy()
    tips = np.broadcast_to(params.tips_rest, (n, 5, 3)).copy()
    if betas is not None:
        beta = np.asarray(betas, dtype=np.float64).reshape(n, -1)
        joints += np.einsum("jcs,ns->njc", params.joints_shapedirs[..., : beta.shape[1]], beta)
        tips += np.einsum("jcs,ns->njc", params.tips_shapedirs[..., : beta.shape[1]], beta)
    local = _rodrigues_np(pose.reshape(n, 15, 3))
    root = (
        np.broadcast_to(np.eye(3), (n, 3, 3))
        if global_orient is None
        else _rodrigues_np(np.asarray(global_orient, dtype=np.float64).reshape(n, 3))
    )
    tips = tips + np.einsum("vcp,np->nvc", params.tips_posedirs, (local - np.eye(3)).reshape(n, 135))
    rotations = [root]
    translations = [joints[:, 0]]
    for j in range(1, 16):
        parent = MANO_PARENTS[j]
        rotations.append(rotations[parent] @ local[:, j - 1])
        translations.append(
            translations[parent] + np.einsum("nab,nb->na", rotations[parent], joints[:, j] - joints[:, parent])
        )
    world_r = np.stack(rotations, axis=1)  # (n,16,3,3)
    world_t = np.stack(translations, axis=1)  # (n,16,3)
    offsets = tips[:, :, None, :] - joints[:, None, :, :]  # (n,5,16,3)
    skinned = np.einsum("njab,nvjb->nvja", world_r, offsets) + world_t[:, None]
    tip_positions = np.einsum("vj,nvja->nva", params.tips_weights, skinned)
    out = np.concatenate([world_t, tip_positions], axis=1)
    out = out - out[:, :1]
    return out.reshape(*batch, 21, 3)


# ---------------------------------------------------------------------------------------------------
# Forward kinematics, torch
# ---------------------------------------------------------------------------------------------------
def _build_torch_module():
    import torch
    from torch import nn

    def rodrigues(r: torch.Tensor) -> torch.Tensor:
        theta2 = (r * r).sum(-1, keepdim=True).unsqueeze(-1)
        small = theta2 < 1e-8
        safe2 = torch.where(small, torch.ones_like(theta2), theta2)
        theta = torch.sqrt(safe2)
        a = torch.where(small, 1.0 - theta2 / 6.0, torch.sin(theta) / theta)
        b = torch.where(small, 0.5 - theta2 / 24.0, (1.0 - torch.cos(theta)) / safe2)
        x, y, z = r[..., 0], r[..., 1], r[..., 2]
        zero = torch.zeros_like(x)
        k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*r.shape[:-1], 3, 3)
        eye = torch.eye(3, dtype=r.dtype, device=r.device)
        return eye + a * k + b * (k @ k)

    class HandForward(nn.Module):
        """θ (B,45) [+ global orientation (B,3), shape β (B,10)] → 21 joints (B,21,3), metres, wrist-relative.

        Frozen (all arrays are buffers), differentiable, batched, and exportable to ONNX (plain tensor ops).
        """

        def __init__(self, params: HandModelParams) -> None:
            super().__init__()
            self.kind = params.kind
            for name in (
                "joints_rest",
                "joints_shapedirs",
                "tips_rest",
                "tips_shapedirs",
                "tips_weights",
                "hands_mean",
            ):
                self.register_buffer(name, torch.as_tensor(getattr(params, name), dtype=torch.float32))
            self.register_buffer("tips_posedirs", torch.as_tensor(params.tips_posedirs, dtype=torch.float32))
            self.has_posedirs = bool(np.any(params.tips_posedirs))
            self.parents = [int(p) for p in MANO_PARENTS]

        def forward(
            self,
            pose: torch.Tensor,
            global_orient: torch.Tensor | None = None,
            betas: torch.Tensor | None = None,
        ) -> torch.Tensor:
            dtype = pose.dtype
            n = pose.shape[0]
            pose = pose + self.hands_mean.to(dtype)
            joints = self.joints_rest.to(dtype).expand(n, 16, 3)
            tips = self.tips_rest.to(dtype).expand(n, 5, 3)
            if betas is not None:
                k = betas.shape[1]
                joints = joints + torch.einsum("jcs,ns->njc", self.joints_shapedirs[..., :k].to(dtype), betas)
                tips = tips + torch.einsum("jcs,ns->njc", self.tips_shapedirs[..., :k].to(dtype), betas)
            local = rodrigues(pose.reshape(n, 15, 3))
            eye = torch.eye(3, dtype=dtype, device=pose.device)
            if self.has_posedirs:
                feature = (local - eye).reshape(n, 135)
                tips = tips + torch.einsum("vcp,np->nvc", self.tips_posedirs.to(dtype), feature)
            root = eye.expand(n, 3, 3) if global_orient is None else rodrigues(global_orient)
            rotations = [root]
            translations = [joints[:, 0]]
            for j in range(1, 16):
                p = self.parents[j]
                rotations.append(rotations[p] @ local[:, j - 1])
                bone = (joints[:, j] - joints[:, p]).unsqueeze(-1)
                translations.append(translations[p] + (rotations[p] @ bone).squeeze(-1))
            world_r = torch.stack(rotations, dim=1)
            world_t = torch.stack(translations, dim=1)
            offsets = tips.unsqueeze(2) - joints.unsqueeze(1)  # (n,5,16,3)
            skinned = torch.einsum("njab,nvjb->nvja", world_r, offsets) + world_t.unsqueeze(1)
            tip_positions = torch.einsum("vj,nvja->nva", self.tips_weights.to(dtype), skinned)
            out = torch.cat([world_t, tip_positions], dim=1)
            return out - out[:, :1]

    return HandForward


def __getattr__(name: str):
    if name == "HandForward":
        cls = _build_torch_module()
        globals()["HandForward"] = cls
        return cls
    raise AttributeError(f"module 'training.hand_model' has no attribute {name!r}")
