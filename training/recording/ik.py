"""Inverse kinematics: MANO pose θ (45) + global orientation from MediaPipe's 21 world landmarks.

`HandIK.fit` fits a batch, `HandIK.fit_frame` one camera frame warm-started from the previous one,
`HandIK.calibrate_shape` the hand's shape β once per session. The solver is Levenberg–Marquardt on
[θ (45), global orientation (3), translation (3)] per frame, batched in torch (float64), with the
closed-form Jacobian of `ik_chain` and the closed-form first guess of `ik_init`.

Residuals (all in millimetre-equivalents, so the weights read as "mm per radian"):
- data: fitted joint − landmark, 63 per frame. MediaPipe's world origin sits near the hand's centre, so a
  translation is fitted with the orientation; `ik_error_mm` is what remains after both.
- anatomical-axes prior (`off_axis_mm_per_rad`): every emg2pose DOF is a rotation about a fixed axis of one
  joint (training/hand/angle_map.py), spanning 20 of θ's 45 directions. The other 25 — twist of each
  joint about its bone, sideways bending of the PIP/DIP/thumb-MCP/IP hinges — are pulled to zero. This is
  what resolves what the joints cannot see: a DIP's twist moves no landmark at all (the fingertip lies on
  its axis); the twist of a straight finger's MCP or PIP neither; a bent finger's MCP twist trades against
  sideways bending of the joints below. θ of the synthetic world (emg2pose_angles_to_mano_pose) lies
  exactly in the 20-D span, so the prior costs nothing there.
- joint limits (`limit_mm_per_rad`): a hinge on each emg2pose angle outside EMG2POSE_ANGLE_LIMITS; after
  the solve, θ's angles are clipped into the limits (the rest of θ untouched), so results never leave them.
- temporal (`temporal_mm_per_rad`): θ pulled towards the warm start (the previous frame) — only for frames
  that start from it; a frame whose closed-form guess fits better (the pose jumped) has no temporal prior.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np
import torch

from firmware_bridge.errors import UserError
from training.hand.angle_map import ANGLES_TO_POSE, EMG2POSE_ANGLE_LIMITS
from training.hand.open_hand import open_hand_model
from training.hand.params import HandModelParams
from training.hand.skeleton import MEDIAPIPE_TO_MANO
from training.recording.ik_chain import ChainState, KinematicChain
from training.recording.ik_init import initial_guess

RELATIVE_TOLERANCE = 1e-3  # stop when a step gains less than 0.1 % of the cost (+ 0.001 mm²)
MM = 1000.0  # residuals in millimetres
N_BETAS = 10
FIT_CHUNK = 256  # `fit` solves at most this many frames at once (≈ 0.1 MB each); larger is no faster
WARM_GOOD_MM = 15.0  # a warm start this close needs no closed-form guess beside it
MAX_ABS_BETA = 5.0  # a calibrated shape stays within ±5 units (±25 % size): garbage frames cannot wreck it
MAX_HAND_EXTENT_M = 0.5  # no landmark of a hand lies further than this from the landmarks' centroid


class IkInputError(UserError, ValueError):
    """Landmarks the solver cannot use (wrong shape, NaN/inf, not metres): the message names the array."""


@dataclass(frozen=True)
class IkPriors:
    """Prior weights, in mm of joint error per radian (see the module docstring)."""

    off_axis_mm_per_rad: float = 30.0
    limit_mm_per_rad: float = 100.0
    temporal_mm_per_rad: float = 15.0
    shape_mm_per_unit: float = 1.0  # ridge on β in `calibrate_shape` (one β unit ≈ 5 % size: several mm)


@dataclass
class IkResult:
    """A batch of fits. Arrays are float64 numpy; B frames."""

    theta: np.ndarray  # (B,45) rad, the θ convention of angle_map (HandForward adds hands_mean)
    global_orient: np.ndarray  # (B,3) axis-angle of the hand in the landmarks' frame
    joints: np.ndarray  # (B,21,3) FK(θ, β) canonical: wrist-relative, no global orientation, MANO order, metres
    fitted: np.ndarray  # (B,21,3) FK(θ, orientation, β) + translation: MANO order, in the landmarks' frame
    ik_error_mm: np.ndarray  # (B,) mean |fitted − landmarks| over the 21 joints, mm
    betas: np.ndarray  # (10,) the shape used
    translation: np.ndarray  # (B,3) where the wrist sits in the landmarks' frame, metres
    iterations: np.ndarray  # (B,) Levenberg–Marquardt iterations until converged (int)

    def __len__(self) -> int:
        return len(self.theta)

    def frame(self, index: int) -> IkResult:
        """Frame `index` as a batch of one."""
        sl = slice(index, index + 1 if index != -1 else None)
        return replace(self, **{f.name: getattr(self, f.name)[sl] for f in fields(self) if f.name != "betas"})


def _angle_tables() -> tuple[np.ndarray, np.ndarray]:
    """ANGLES_TO_POSE (20,45; orthonormal rows) and an orthonormal basis of the other 25 directions."""
    axes = np.asarray(ANGLES_TO_POSE, dtype=np.float64)
    _, _, vt = np.linalg.svd(axes)
    return axes, vt[axes.shape[0] :]


@dataclass
class _Anchor:
    """The temporal prior of a batch: θ to stay near, and its weight per frame (0: none)."""

    theta: torch.Tensor  # (B,45)
    weight: torch.Tensor  # (B,) mm per rad


class HandIK:
    """Fits θ + global orientation (+ shape once) to MediaPipe world landmarks (metres, MediaPipe order).

    `hand`: the hand model (default: the open anthropometric hand). `fit_shape`: whether `calibrate_shape`
    may change β (False keeps the model's own shape, e.g. a MANO file already fitted to the person).
    `threads`: torch's intra-op threads, set process-wide (None leaves them alone); one is fastest here.
    Landmarks must have a right hand's chirality (mirror x for a left hand).
    """

    def __init__(
        self,
        hand: HandModelParams | None = None,
        *,
        fit_shape: bool = True,
        threads: int | None = 1,
        priors: IkPriors | None = None,
        max_iterations: int = 10,
        warm_start_max_error_mm: float = 20.0,
    ) -> None:
        if threads is not None and torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        self.hand = hand if hand is not None else open_hand_model()
        self.chain = KinematicChain(self.hand)
        self.fit_shape = fit_shape
        self.priors = priors or IkPriors()
        self.max_iterations = max_iterations
        self.warm_start_max_error_mm = warm_start_max_error_mm
        axes, null = _angle_tables()
        self._axes = torch.as_tensor(axes)
        self._null = torch.as_tensor(null)
        self._lo = torch.as_tensor(EMG2POSE_ANGLE_LIMITS[:, 0], dtype=torch.float64)
        self._hi = torch.as_tensor(EMG2POSE_ANGLE_LIMITS[:, 1], dtype=torch.float64)
        off = self.priors.off_axis_mm_per_rad
        self._hessian_off = off**2 * (self._null.T @ self._null)
        self._betas = torch.zeros(N_BETAS, dtype=torch.float64)
        self._previous: IkResult | None = None

    # ------------------------------------------------------------------ public API
    @property
    def betas(self) -> np.ndarray:
        """The shape in use (10,): zeros until `calibrate_shape` (or assignment, e.g. from a stored session)."""
        return self._betas.numpy().copy()

    @betas.setter
    def betas(self, value: np.ndarray) -> None:
        value = np.asarray(value, dtype=np.float64)
        if value.shape != (N_BETAS,) or not np.all(np.isfinite(value)):
            raise IkInputError(f"betas: expected {N_BETAS} finite shape coefficients, got shape {value.shape}")
        self._betas = torch.as_tensor(value.copy())
        self._previous = None

    def reset(self) -> None:
        """Forget the previous frame (call when tracking is lost): the next `fit_frame` starts cold."""
        self._previous = None

    def fit(self, landmarks: np.ndarray, *, warm_start: IkResult | None = None) -> IkResult:
        """Fit a batch of frames (B,21,3), MediaPipe order, metres. `warm_start`: B results (or one for all)."""
        observed = _check_landmarks(landmarks, batched=True)
        warm = None
        if warm_start is not None:
            warm = _warm_tensors(warm_start, len(observed))
        if len(observed) <= FIT_CHUNK:
            return self._fit(observed, warm)
        parts = []
        for start in range(0, len(observed), FIT_CHUNK):
            rows = slice(start, start + FIT_CHUNK)
            parts.append(self._fit(observed[rows], None if warm is None else (warm[0][rows], warm[1][rows])))
        return IkResult(
            **{
                f.name: getattr(parts[0], f.name)
                if f.name == "betas"
                else np.concatenate([getattr(r, f.name) for r in parts])
                for f in fields(IkResult)
            }
        )

    def fit_frame(self, landmarks: np.ndarray) -> IkResult:
        """Fit one frame (21,3), warm-started from the previous `fit_frame` result (B=1 result).

        A frame that raises (bad shape, NaN) leaves the warm start untouched; a fit whose error exceeds
        `warm_start_max_error_mm` is not used as a warm start (the next frame starts cold).
        """
        observed = _check_landmarks(landmarks, batched=False)
        warm = None if self._previous is None else _warm_tensors(self._previous, 1)
        result = self._fit(observed, warm)
        good = bool(result.ik_error_mm[0] <= self.warm_start_max_error_mm)
        self._previous = result if good else None
        return result

    def calibrate_shape(self, landmarks: np.ndarray, *, rounds: int = 3, max_frames: int = 120) -> np.ndarray:
        """Fit β (10,) to N frames (N,21,3) of one person (poses fitted along); fixes β for later fits.

        Alternates pose fits with a linear least-squares solve for β (joints are linear in β for a fixed
        pose; each frame's translation is eliminated by centring), ridge `priors.shape_mm_per_unit`, each β
        within ±MAX_ABS_BETA. Any poses will do (the rest phase's relaxed hand: 0.2 s for 60 frames). Frames
        beyond `max_frames` are subsampled evenly. With `fit_shape=False` β stays as it is and is returned unchanged.
        """
        observed = _check_landmarks(landmarks, batched=True)
        if not self.fit_shape:
            return self.betas
        if len(observed) > max_frames:
            observed = observed[np.linspace(0, len(observed) - 1, max_frames).round().astype(int)]
        components = self.chain.shape_components
        if len(components) == 0:
            return self.betas
        target = torch.as_tensor(observed[:, MEDIAPIPE_TO_MANO])
        betas = torch.zeros(N_BETAS, dtype=torch.float64)
        n = len(target)
        for _ in range(rounds):
            self._betas = betas
            result = self._fit(observed, None)
            theta = torch.as_tensor(result.theta)
            orient = torch.as_tensor(result.global_orient)
            basis = torch.zeros(len(components) + 1, N_BETAS, dtype=torch.float64)
            basis[torch.arange(1, len(components) + 1), torch.as_tensor(components)] = 1.0
            points = []
            for b in basis:
                points.append(self.chain.forward(theta, orient, self.chain.rest(b, n)).points)
            base = points[0]
            design = torch.stack([p - base for p in points[1:]], dim=-1)  # (n,21,3,K) per unit β
            design = (design - design.mean(dim=1, keepdim=True)).reshape(n * 63, -1) * MM
            resid = target - base
            resid = (resid - resid.mean(dim=1, keepdim=True)).reshape(n * 63) * MM
            ridge = n * self.priors.shape_mm_per_unit**2 * torch.eye(len(components), dtype=torch.float64)
            solution = torch.linalg.solve(design.T @ design + ridge, design.T @ resid)
            betas = torch.zeros(N_BETAS, dtype=torch.float64)
            betas[torch.as_tensor(components)] = solution.clamp(-MAX_ABS_BETA, MAX_ABS_BETA)
        self._betas = betas
        self._previous = None
        return self.betas

    # ------------------------------------------------------------------ solver
    def _project(self, theta: torch.Tensor) -> torch.Tensor:
        """θ → its anatomical-axes part with the angles clipped to their limits (used by the first guess)."""
        angles = theta @ self._axes.T
        return torch.minimum(torch.maximum(angles, self._lo), self._hi) @ self._axes

    def _clip_to_limits(self, theta: torch.Tensor) -> torch.Tensor:
        angles = theta @ self._axes.T
        clipped = torch.minimum(torch.maximum(angles, self._lo), self._hi)
        return theta + (clipped - angles) @ self._axes

    def _prior_cost(self, theta: torch.Tensor, anchor: _Anchor) -> torch.Tensor:
        p = self.priors
        angles = theta @ self._axes.T
        excess = angles - torch.minimum(torch.maximum(angles, self._lo), self._hi)
        cost = (p.off_axis_mm_per_rad * (theta @ self._null.T)).pow(2).sum(1)
        cost = cost + (p.limit_mm_per_rad * excess).pow(2).sum(1)
        return cost + anchor.weight.pow(2) * (theta - anchor.theta).pow(2).sum(1)

    def _data_residual(self, state: ChainState, trans: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ((state.points + trans.unsqueeze(1) - target) * MM).reshape(len(target), 63)

    def _fit(self, observed: np.ndarray, warm: tuple[torch.Tensor, torch.Tensor] | None) -> IkResult:
        target = torch.as_tensor(observed[:, MEDIAPIPE_TO_MANO])
        n = len(target)
        rest = self.chain.rest(self._betas, n)
        theta, orient, trans, state, anchor = self._starting_point(target, rest, warm)
        theta, orient, trans, state, iterations = self._levenberg_marquardt(
            target, rest, theta, orient, trans, state, anchor
        )
        clipped = self._clip_to_limits(theta)
        if not torch.equal(clipped, theta):
            theta = clipped
            state = self.chain.forward(theta, orient, rest)
        canonical = self.chain.forward(theta, torch.zeros_like(orient), rest).points
        fitted = state.points + trans.unsqueeze(1)
        error = (fitted - target).norm(dim=-1).mean(dim=1) * MM
        return IkResult(
            theta=theta.numpy(),
            global_orient=orient.numpy(),
            joints=canonical.numpy(),
            fitted=fitted.numpy(),
            ik_error_mm=error.numpy(),
            betas=self.betas,
            translation=trans.numpy(),
            iterations=iterations.numpy(),
        )

    def _starting_point(
        self,
        target: torch.Tensor,
        rest: tuple[torch.Tensor, torch.Tensor],
        warm: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, ChainState, _Anchor]:
        """Where each frame's solve starts, and its temporal anchor.

        The warm start when it explains the landmarks to within `WARM_GOOD_MM` (then the closed-form guess is
        not even computed); otherwise also the closed-form guess, keeping per frame whichever fits the
        landmarks better. A frame that starts cold has no temporal prior: the pose jumped (tracking lost and
        found again), and pulling towards the old pose would only bias it.
        """
        n = len(target)
        if warm is not None:
            warm_theta, warm_orient = warm
            warm_state = self.chain.forward(warm_theta, warm_orient, rest)
            warm_trans = (target - warm_state.points).mean(dim=1)
            warm_error = (warm_state.points + warm_trans.unsqueeze(1) - target).norm(dim=-1).mean(dim=1) * MM
            anchor = _Anchor(warm_theta, torch.full((n,), self.priors.temporal_mm_per_rad, dtype=torch.float64))
            if bool((warm_error <= WARM_GOOD_MM).all()):
                return warm_theta, warm_orient, warm_trans, warm_state, anchor
        theta, orient, trans = initial_guess(self.chain, rest, target, self._project)
        state = self.chain.forward(theta, orient, rest)
        if warm is None:
            return theta, orient, trans, state, _Anchor(theta, torch.zeros(n, dtype=torch.float64))
        cold_cost = self._data_residual(state, trans, target).pow(2).sum(1)
        warm_cost = self._data_residual(warm_state, warm_trans, target).pow(2).sum(1)
        use_warm = (warm_error <= WARM_GOOD_MM) | (warm_cost <= cold_cost)  # per frame, whatever the batch holds
        keep = use_warm.unsqueeze(1)
        return (
            torch.where(keep, warm_theta, theta),
            torch.where(keep, warm_orient, orient),
            torch.where(keep, warm_trans, trans),
            _merge(use_warm, warm_state, state),
            _Anchor(warm_theta, torch.where(use_warm, anchor.weight, 0.0)),
        )

    def _levenberg_marquardt(
        self,
        target: torch.Tensor,
        rest: tuple[torch.Tensor, torch.Tensor],
        theta: torch.Tensor,
        orient: torch.Tensor,
        trans: torch.Tensor,
        state: ChainState,
        anchor: _Anchor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, ChainState, torch.Tensor]:
        """Damped Gauss–Newton per frame; each iteration works on the frames not yet converged only, so a
        batch costs the sum of its frames' iterations, not its slowest frame's count times B."""
        n = len(target)
        cost = self._data_residual(state, trans, target).pow(2).sum(1) + self._prior_cost(theta, anchor)
        damping = torch.full((n,), 1e-4, dtype=torch.float64)
        active = torch.ones(n, dtype=torch.bool)
        iterations = torch.zeros(n, dtype=torch.int64)
        for _ in range(self.max_iterations):
            rows = torch.nonzero(active).squeeze(1)
            everyone = len(rows) == n

            def pick(t: torch.Tensor, rows: torch.Tensor = rows, everyone: bool = everyone) -> torch.Tensor:
                return t if everyone else t[rows]

            sub_state = state if everyone else _take(state, rows)
            sub_anchor = _Anchor(pick(anchor.theta), pick(anchor.weight))
            step, promised = self._step(pick(target), sub_state, pick(theta), pick(trans), sub_anchor, pick(damping))
            sub_theta, sub_orient, sub_trans = pick(theta), pick(orient), pick(trans)
            new_theta, new_orient, new_trans = (
                sub_theta + step[:, :45],
                sub_orient + step[:, 45:48],
                sub_trans + step[:, 48:],
            )
            new_state = self.chain.forward(new_theta, new_orient, (pick(rest[0]), pick(rest[1])))
            new_cost = self._data_residual(new_state, new_trans, pick(target)).pow(2).sum(1)
            new_cost = new_cost + self._prior_cost(new_theta, sub_anchor)
            old_cost = pick(cost)
            accept = new_cost < old_cost
            decrease = old_cost - new_cost
            tolerance = RELATIVE_TOLERANCE * old_cost + 1e-3
            # done: nothing left to gain (as promised, or as measured either way — a step that lands on the far
            # side of a joint limit's kink changes the cost by a hair), or the damping gave up
            small = (decrease.abs() <= tolerance) | (step.abs().amax(dim=1) < 1e-5) | (promised <= tolerance)
            keep = accept.unsqueeze(1)
            new_damping = torch.where(accept, pick(damping) * 0.3, pick(damping) * 10.0).clamp(1e-7, 1e7)
            stuck = ~accept & (new_damping >= 1e7)
            merged = _merge(accept, new_state, sub_state)
            updates = (
                torch.where(keep, new_theta, sub_theta),
                torch.where(keep, new_orient, sub_orient),
                torch.where(keep, new_trans, sub_trans),
                torch.where(accept, new_cost, old_cost),
                new_damping,
            )
            if everyone:
                theta, orient, trans, cost, damping = updates
                state = merged
            else:
                theta, orient, trans, cost, damping = (
                    full.index_copy(0, rows, u)
                    for full, u in zip((theta, orient, trans, cost, damping), updates, strict=True)
                )
                state = ChainState(
                    **{
                        f.name: getattr(state, f.name).index_copy(0, rows, getattr(merged, f.name))
                        for f in fields(state)
                    }
                )
            iterations[rows] += 1
            active[rows] = ~(small | stuck)
            if not bool(active.any()):
                break
        return theta, orient, trans, state, iterations

    def _step(
        self,
        target: torch.Tensor,
        state: ChainState,
        theta: torch.Tensor,
        trans: torch.Tensor,
        anchor: _Anchor,
        damping: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One Levenberg–Marquardt step (m,51) for m frames, and the cost decrease it promises (m,)."""
        m = len(target)
        residual = self._data_residual(state, trans, target)
        eye3 = torch.eye(3, dtype=torch.float64).repeat(21, 1).expand(m, 63, 3) * MM
        jac = torch.cat([self.chain.jacobian(state) * MM, eye3], dim=2)  # (m,63,51)
        hessian = jac.transpose(1, 2) @ jac
        grad = (jac.transpose(1, 2) @ residual.unsqueeze(-1)).squeeze(-1)
        temporal2 = anchor.weight.pow(2).unsqueeze(1)
        limit2 = self.priors.limit_mm_per_rad**2
        angles = theta @ self._axes.T
        excess = angles - torch.minimum(torch.maximum(angles, self._lo), self._hi)
        # at or beyond a limit (the first guess starts exactly on it): the hinge is curvature there
        outside = ((angles <= self._lo) | (angles >= self._hi)).to(torch.float64)
        prior_grad = theta @ self._hessian_off + limit2 * excess @ self._axes + temporal2 * (theta - anchor.theta)
        prior_h = self._hessian_off + torch.diag_embed(temporal2.expand(m, 45))
        hessian[:, :45, :45] += prior_h + limit2 * torch.einsum("ka,nk,kc->nac", self._axes, outside, self._axes)
        grad[:, :45] += prior_grad
        diag = torch.diagonal(hessian, dim1=1, dim2=2)
        lhs = hessian + torch.diag_embed(damping.unsqueeze(1) * diag + 1e-9)
        step = -torch.linalg.solve(lhs, grad.unsqueeze(-1)).squeeze(-1)
        # what the linearised problem promises: |r + Jδ|² − |r|² = 2gᵀδ + δᵀHδ
        promised = -(2.0 * (grad * step).sum(1) + (step.unsqueeze(1) @ hessian @ step.unsqueeze(-1)).reshape(m))
        return step, promised


def _take(state: ChainState, rows: torch.Tensor) -> ChainState:
    return ChainState(**{f.name: getattr(state, f.name)[rows] for f in fields(state)})


def _merge(mask: torch.Tensor, new: ChainState, old: ChainState) -> ChainState:
    def pick(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.where(mask.reshape(-1, *([1] * (a.dim() - 1))), a, b)

    return ChainState(**{f.name: pick(getattr(new, f.name), getattr(old, f.name)) for f in fields(new)})


def _warm_tensors(result: IkResult, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    theta = np.asarray(result.theta, dtype=np.float64)
    orient = np.asarray(result.global_orient, dtype=np.float64)
    if theta.ndim != 2 or theta.shape[1] != 45 or orient.shape != (len(theta), 3) or len(theta) not in (1, n):
        raise IkInputError(
            f"warm_start: expected a result of {n} frame(s) (or 1) with theta (B,45) and global_orient (B,3), got "
            f"theta {theta.shape} and global_orient {orient.shape}"
        )
    return (
        torch.as_tensor(np.broadcast_to(theta, (n, 45)).copy()),
        torch.as_tensor(np.broadcast_to(orient, (n, 3)).copy()),
    )


def _check_landmarks(landmarks: np.ndarray, *, batched: bool) -> np.ndarray:
    """Validate at the edge: shape, finiteness and metres; returns (B,21,3) float64."""
    try:
        array = np.asarray(landmarks, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise IkInputError(f"landmarks: not a numeric array ({exc})") from exc
    expected = "(B, 21, 3)" if batched else "(21, 3)"
    if array.shape[-2:] != (21, 3) or array.ndim != (3 if batched else 2) or (batched and len(array) == 0):
        raise IkInputError(
            f"landmarks: expected shape {expected} (21 MediaPipe world landmarks, x/y/z in metres), got {array.shape}"
        )
    array = array.reshape(-1, 21, 3)
    finite = np.isfinite(array).all(axis=(1, 2))
    if not finite.all():
        bad = np.flatnonzero(~finite)
        listed = ", ".join(str(i) for i in bad[:10]) + (" …" if len(bad) > 10 else "")
        raise IkInputError(
            f"landmarks: shape {array.shape if batched else array.shape[1:]}: NaN or inf values in frame(s) {listed}"
        )
    extent = np.linalg.norm(array - array.mean(axis=1, keepdims=True), axis=-1).max(axis=1)
    if (extent > MAX_HAND_EXTENT_M).any():
        worst = int(extent.argmax())
        raise IkInputError(
            f"landmarks: frame {worst} spans {extent[worst]:.3g} from its centre; world landmarks must be in "
            f"metres (a hand is < {MAX_HAND_EXTENT_M} m) — millimetres or pixel coordinates given?"
        )
    return array
