"""Forward kinematics in torch: `HandForward`, a frozen, differentiable, batched, ONNX-exportable module.

Imports torch at the top on purpose: numpy-only users (the synthetic world, evaluation) import
`fk_numpy` instead and never load this module.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from training.hand.params import HandModelParams
from training.hand.skeleton import MANO_PARENTS

_BUFFERS = ("joints_rest", "joints_shapedirs", "tips_rest", "tips_shapedirs", "tips_weights", "hands_mean")


def rodrigues(r: torch.Tensor) -> torch.Tensor:
    """(...,3) axis-angle → (...,3,3) rotation matrices; a Taylor branch keeps θ ≈ 0 finite and smooth."""
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
        for name in _BUFFERS:
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
