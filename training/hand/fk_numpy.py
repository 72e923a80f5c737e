"""Forward kinematics in numpy: θ (45) [+ global orientation, shape β] → 21 joints, metres, wrist-relative.

The same numbers as the torch module `fk_torch.HandForward` (to 1e-6 m) for code that must not import
torch (the synthetic world, evaluation, session tests).
"""

from __future__ import annotations

import numpy as np

from training.hand.params import HandModelParams
from training.hand.skeleton import MANO_PARENTS


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
