"""The hand's kinematic chain for inverse kinematics: batched forward kinematics that keeps every joint's
world frame, and the closed-form Jacobian of the 21 points with respect to θ and the global orientation.

The numbers are those of `training.hand.fk_torch.HandForward` (the same rest skeleton, shape offsets,
skinning and hands_mean), computed level by level (wrist → MCP/CMC → PIP → DIP: three batched steps
instead of fifteen) so that one Gauss–Newton step costs a handful of tensor operations. Autograd
Jacobians (torch.func.jacfwd + vmap) measured 12 ms per frame here; this one is well under 1 ms.

Jacobian: perturbing joint i's local rotation to R(r_i)·exp(J_r(r_i)·dr) (J_r: SO(3)'s right Jacobian of the
exponential map) moves every point x it carries by (W_i J_r dr) × (x − t_i), with W_i, t_i the joint's world
rotation and position. For MANO's blended fingertips the arm is the skinning-weighted sum; the small
pose-corrective (posedirs) term is left out of the Jacobian — Gauss–Newton then converges a little
slower on MANO files, to the same fit, because the residual itself is exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from training.hand.params import HandModelParams
from training.hand.skeleton import MANO_PARENTS, TIP_PARENTS

# MANO joints by depth below the wrist (thumb, index, middle, pinky, ring order as in MANO's numbering)
LEVELS: tuple[tuple[int, ...], ...] = ((1, 4, 7, 10, 13), (2, 5, 8, 11, 14), (3, 6, 9, 12, 15))
# the output point (21 = 16 joints + 5 tips) each level-3 joint carries: its fingertip
LEVEL3_TIPS: tuple[int, ...] = tuple(16 + int(np.flatnonzero(np.equal(TIP_PARENTS, j))[0]) for j in LEVELS[2])
PALM: tuple[int, ...] = (0, 1, 4, 7, 10, 13)  # rigid with the wrist: the global orientation's points


def _ancestors() -> np.ndarray:
    """(16,16) mask: [k, i] is True when joint i is joint k or one of its ancestors."""
    mask = np.zeros((16, 16), dtype=bool)
    for k in range(16):
        j = k
        while j >= 0:
            mask[k, j] = True
            j = int(MANO_PARENTS[j])
    return mask


def skew(v: torch.Tensor) -> torch.Tensor:
    """(...,3) → (...,3,3) cross-product matrices."""
    x, y, z = v.unbind(-1)
    zero = torch.zeros_like(x)
    return torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*v.shape[:-1], 3, 3)


def rodrigues_and_right_jacobian(r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(...,3) axis-angle → rotation R (...,3,3) and the right Jacobian J_r (...,3,3), Taylor-safe near 0."""
    theta2 = (r * r).sum(-1, keepdim=True).unsqueeze(-1)
    small = theta2 < 1e-8
    safe2 = torch.where(small, torch.ones_like(theta2), theta2)
    theta = torch.sqrt(safe2)
    sin, cos = torch.sin(theta), torch.cos(theta)
    a = torch.where(small, 1.0 - theta2 / 6.0, sin / theta)
    b = torch.where(small, 0.5 - theta2 / 24.0, (1.0 - cos) / safe2)
    c = torch.where(small, 1.0 / 6.0 - theta2 / 120.0, (theta - sin) / (safe2 * theta))
    k = skew(r)
    k2 = k @ k
    eye = torch.eye(3, dtype=r.dtype, device=r.device)
    return eye + a * k + b * k2, eye - b * k + c * k2


@dataclass
class ChainState:
    """Forward kinematics of a batch with everything the Jacobian needs (absolute, not wrist-relative)."""

    points: torch.Tensor  # (B,21,3) wrist-relative, MANO order
    rotations: torch.Tensor  # (B,16,3,3) world rotation of each joint's frame
    origins: torch.Tensor  # (B,16,3) joint positions (absolute)
    tip_arms: torch.Tensor  # (B,5,16,3) Σ_j w_vj·anc[j,i]·skinned_vj (tips' weighted positions per carrier)
    right_jacobians: torch.Tensor  # (B,16,3,3) J_r of [global orientation, 15 joints]


class KinematicChain:
    """One hand model's arrays as float64 tensors, with `rest`, `forward` and `jacobian`."""

    def __init__(self, params: HandModelParams, dtype: torch.dtype = torch.float64) -> None:
        def tensor(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.asarray(a, dtype=np.float64), dtype=dtype)

        self.dtype = dtype
        self.joints_rest = tensor(params.joints_rest)
        self.joints_shapedirs = tensor(params.joints_shapedirs)
        self.tips_rest = tensor(params.tips_rest)
        self.tips_shapedirs = tensor(params.tips_shapedirs)
        self.tips_weights = tensor(params.tips_weights)
        self.hands_mean = tensor(params.hands_mean).reshape(15, 3)
        self.posedirs = tensor(params.tips_posedirs)
        self.has_posedirs = bool(np.any(params.tips_posedirs))
        weights = np.asarray(params.tips_weights)
        self.rigid_tips = bool(np.all(weights[np.arange(5), TIP_PARENTS] == 1.0) and np.count_nonzero(weights) == 5)
        anc = _ancestors()
        self.ancestors = torch.as_tensor(anc, dtype=dtype)  # (16,16)
        self.tip_ancestors = self.tips_weights @ self.ancestors  # (5,16): Σ_j w_vj anc[j,i]
        # shape directions that move something (the open hand uses 2 of the 10)
        moving = np.any(params.joints_shapedirs != 0, axis=(0, 1)) | np.any(params.tips_shapedirs != 0, axis=(0, 1))
        self.shape_components = np.flatnonzero(moving)
        self._parents = {lvl: torch.as_tensor([int(MANO_PARENTS[j]) for j in lvl]) for lvl in LEVELS}
        self._order = torch.as_tensor(np.argsort(np.concatenate([[0], *LEVELS])))
        self._tip_parents = torch.as_tensor(TIP_PARENTS)

    def rest(self, betas: torch.Tensor | None, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Rest joints (B,16,3) and tips (B,5,3) for shape `betas` ((10,), (B,10) or None)."""
        joints = self.joints_rest.expand(batch, 16, 3)
        tips = self.tips_rest.expand(batch, 5, 3)
        if betas is not None:
            betas = betas.to(self.dtype).reshape(-1, betas.shape[-1]).expand(batch, -1)
            k = betas.shape[1]
            joints = joints + torch.einsum("jcs,ns->njc", self.joints_shapedirs[..., :k], betas)
            tips = tips + torch.einsum("jcs,ns->njc", self.tips_shapedirs[..., :k], betas)
        return joints, tips

    def forward(self, theta: torch.Tensor, orient: torch.Tensor, rest: tuple[torch.Tensor, torch.Tensor]) -> ChainState:
        """θ (B,45), global orientation (B,3), rest from `rest()` → `ChainState`."""
        n = theta.shape[0]
        joints, tips = rest
        r = torch.cat([orient.unsqueeze(1), theta.reshape(n, 15, 3) + self.hands_mean], dim=1)  # (B,16,3)
        rot, jr = rodrigues_and_right_jacobian(r)
        world_r = [rot[:, :1]]
        world_t = [joints[:, :1]]
        parent_r, parent_t, parent_idx = rot[:, :1], joints[:, :1], [0] * 5
        for lvl in LEVELS:
            idx = list(lvl)
            bone = joints[:, idx] - joints[:, parent_idx]
            t = parent_t + (parent_r @ bone.unsqueeze(-1)).squeeze(-1)
            w = parent_r @ rot[:, idx]
            world_r.append(w)
            world_t.append(t)
            parent_r, parent_t, parent_idx = w, t, idx
        rotations = torch.cat(world_r, dim=1)[:, self._order]
        origins = torch.cat(world_t, dim=1)[:, self._order]
        if self.has_posedirs:
            eye = torch.eye(3, dtype=theta.dtype)
            feature = (rot[:, 1:] - eye).reshape(n, 135)
            tips = tips + torch.einsum("vcp,np->nvc", self.posedirs, feature)
        if self.rigid_tips:
            p = self._tip_parents
            tip_points = origins[:, p] + (rotations[:, p] @ (tips - joints[:, p]).unsqueeze(-1)).squeeze(-1)
            tip_arms = self.tip_ancestors[None, :, :, None] * tip_points[:, :, None, :]
        else:
            offsets = tips.unsqueeze(2) - joints.unsqueeze(1)  # (B,5,16,3)
            skinned = torch.einsum("njab,nvjb->nvja", rotations, offsets) + origins.unsqueeze(1)
            tip_points = torch.einsum("vj,nvja->nva", self.tips_weights, skinned)
            weighted = self.tips_weights[None, :, :, None] * skinned  # (B,5,16,3) by carrier j
            tip_arms = torch.einsum("nvjc,ji->nvic", weighted, self.ancestors)
        absolute = torch.cat([origins, tip_points], dim=1)
        return ChainState(
            points=absolute - absolute[:, :1],
            rotations=rotations,
            origins=origins,
            tip_arms=tip_arms,
            right_jacobians=jr,
        )

    def jacobian(self, state: ChainState) -> torch.Tensor:
        """(B,63,48): d points (21×3, row-major) / d [θ (45), global orientation (3)]."""
        origins = state.origins
        # moment arm of point k about joint i: x_k − t_i for the joints i that carry k
        joint_arms = self.ancestors[None, :, :, None] * (origins[:, :, None, :] - origins[:, None, :, :])
        tip_arms = state.tip_arms - self.tip_ancestors[None, :, :, None] * origins[:, None, :, :]
        arms = torch.cat([joint_arms, tip_arms], dim=1)  # (B,21,16,3)
        axes = (state.rotations @ state.right_jacobians).transpose(-1, -2)  # (B,16,3c,3xyz): W_i J_r columns
        d = torch.linalg.cross(axes[:, None], arms[:, :, :, None, :].expand(-1, -1, -1, 3, -1), dim=-1)
        n = origins.shape[0]
        jac = d.permute(0, 1, 4, 2, 3).reshape(n, 63, 48)  # columns: [orient, θ joints 1..15]
        return torch.cat([jac[:, :, 3:], jac[:, :, :3]], dim=2)
