"""A closed-form first guess for inverse kinematics, good enough that a few Gauss–Newton steps finish it.

1. Global orientation + translation: Kabsch (least-squares rotation) of the six palm points that are rigid
   with the wrist (wrist, the four MCPs, thumb CMC) onto their landmarks.
2. Fingers, level by level (MCP/CMC, then PIP, then DIP): the swing that turns the rest bone towards its
   landmark, seen in the parent's frame, projected onto the joint's anatomical axes (the emg2pose DOFs)
   and clipped to their limits — so twist and sideways bending of the hinges start at zero.
"""

from __future__ import annotations

import torch

from training.recording.ik_chain import LEVEL3_TIPS, LEVELS, PALM, KinematicChain, rodrigues_and_right_jacobian


def kabsch(model: torch.Tensor, observed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotation R (B,3,3) and translation t (B,3) minimising Σ|R·model + t − observed|² ((B,N,3) each)."""
    mc = model.mean(dim=1, keepdim=True)
    oc = observed.mean(dim=1, keepdim=True)
    cov = (model - mc).transpose(1, 2) @ (observed - oc)  # (B,3,3)
    u, _, vt = torch.linalg.svd(cov)
    v = vt.transpose(1, 2)
    d = torch.sign(torch.linalg.det(v @ u.transpose(1, 2)))
    d = torch.where(d == 0, torch.ones_like(d), d)
    fix = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], dim=-1))
    rot = v @ fix @ u.transpose(1, 2)
    t = oc.squeeze(1) - (rot @ mc.transpose(1, 2)).squeeze(-1)
    return rot, t


def matrix_to_axis_angle(rot: torch.Tensor) -> torch.Tensor:
    """(B,3,3) rotation matrices → (B,3) axis-angle, stable for every angle (via a unit quaternion)."""
    m = rot
    trace = m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]
    # Shepperd: build the quaternion from its largest component
    candidates = torch.stack(
        [
            torch.stack([1 + trace, m[:, 2, 1] - m[:, 1, 2], m[:, 0, 2] - m[:, 2, 0], m[:, 1, 0] - m[:, 0, 1]], -1),
            torch.stack(
                [m[:, 2, 1] - m[:, 1, 2], 1 + 2 * m[:, 0, 0] - trace, m[:, 0, 1] + m[:, 1, 0], m[:, 0, 2] + m[:, 2, 0]],
                -1,
            ),
            torch.stack(
                [m[:, 0, 2] - m[:, 2, 0], m[:, 0, 1] + m[:, 1, 0], 1 + 2 * m[:, 1, 1] - trace, m[:, 1, 2] + m[:, 2, 1]],
                -1,
            ),
            torch.stack(
                [m[:, 1, 0] - m[:, 0, 1], m[:, 0, 2] + m[:, 2, 0], m[:, 1, 2] + m[:, 2, 1], 1 + 2 * m[:, 2, 2] - trace],
                -1,
            ),
        ],
        dim=1,
    )  # (B,4,4): row k is 4·q_k·q
    best = torch.stack([trace, m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]], 1).argmax(dim=1)  # largest of 1+tr, 1+2m_ii−tr
    q = candidates[torch.arange(len(m)), best]
    q = q / q.norm(dim=1, keepdim=True)
    q = torch.where(q[:, :1] < 0, -q, q)  # w ≥ 0: angle in [0, π]
    w, xyz = q[:, 0], q[:, 1:]
    s = xyz.norm(dim=1)
    angle = 2.0 * torch.atan2(s, w)
    scale = torch.where(s > 1e-12, angle / s.clamp_min(1e-12), 2.0 / w.clamp_min(1e-12))
    return xyz * scale.unsqueeze(1)


def swing(rest_dir: torch.Tensor, target_dir: torch.Tensor) -> torch.Tensor:
    """(...,3) axis-angle of the shortest rotation turning `rest_dir` towards `target_dir` (any lengths)."""
    a = rest_dir / rest_dir.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    b = target_dir / target_dir.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    axis = torch.linalg.cross(a, b, dim=-1)
    s = axis.norm(dim=-1, keepdim=True)
    angle = torch.atan2(s, (a * b).sum(-1, keepdim=True))
    return axis * torch.where(s > 1e-12, angle / s.clamp_min(1e-12), torch.ones_like(s))


def initial_guess(
    chain: KinematicChain,
    rest: tuple[torch.Tensor, torch.Tensor],
    landmarks: torch.Tensor,
    project: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """θ (B,45), global orientation (B,3), translation (B,3) from landmarks (B,21,3) in MANO order.

    `project(θ (B,45)) → θ` maps a pose onto the anatomical DOFs within their limits (the solver's prior).
    """
    joints, tips = rest
    n = landmarks.shape[0]
    root, trans = kabsch(joints[:, list(PALM)] - joints[:, :1], landmarks[:, list(PALM)])
    theta = torch.zeros(n, 45, dtype=landmarks.dtype)
    parent_r = root.unsqueeze(1).expand(n, 5, 3, 3)
    mcp_rest = joints[:, list(LEVELS[0])] - joints[:, :1]
    position = trans.unsqueeze(1) + (root.unsqueeze(1) @ mcp_rest.unsqueeze(-1)).squeeze(-1)
    for depth, lvl in enumerate(LEVELS):
        idx = list(lvl)
        if depth < 2:
            child_rest = joints[:, list(LEVELS[depth + 1])]
            child_obs = landmarks[:, list(LEVELS[depth + 1])]
        else:
            child_rest = tips[:, [t - 16 for t in LEVEL3_TIPS]]
            child_obs = landmarks[:, list(LEVEL3_TIPS)]
        bone = child_rest - joints[:, idx]
        target = (parent_r.transpose(-1, -2) @ (child_obs - position).unsqueeze(-1)).squeeze(-1)
        local = swing(bone, target) - chain.hands_mean[[j - 1 for j in idx]]
        cols = torch.as_tensor([3 * (j - 1) + c for j in idx for c in range(3)])
        theta[:, cols] = local.reshape(n, 15)
        theta = project(theta)
        local = theta[:, cols].reshape(n, 5, 3) + chain.hands_mean[[j - 1 for j in idx]]
        rot, _ = rodrigues_and_right_jacobian(local)
        parent_r = parent_r @ rot
        position = position + (parent_r @ bone.unsqueeze(-1)).squeeze(-1)
    return theta, matrix_to_axis_angle(root), trans
