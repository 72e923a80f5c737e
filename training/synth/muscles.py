"""Forearm muscles: where they lie and how finger motion turns into their activation.

Each muscle (or compartment of a multi-tendon muscle) has a position on the forearm cross-section
(angle around the arm, depth under the skin, about a third of the way down from the elbow, where
armbands sit) and a signed weight on each of the 20 emg2pose degrees of freedom: positive = it moves
the joint towards flexion/positive angle, negative = extension. Positions follow standard
cross-sectional anatomy (e.g. Gray's Anatomy, 41st ed., forearm sections; Brand & Hollister, "Clinical
Mechanics of the Hand"): flexors volar (FDS superficial, FDP deep), extensors dorsal, thumb muscles
radial. Intrinsic hand muscles (interossei, lumbricals, thenar) are not in the forearm, so
ab/adduction and thumb opposition are only weakly visible — as on a real armband.

Angle convention: 0° = volar midline, +90° = radial (thumb) side, 180° = dorsal midline, 270° = ulnar.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from training.synth.motion import MOTION_RATE


@dataclass(frozen=True)
class Muscle:
    name: str
    angle_deg: float
    depth_mm: float
    dof_weights: dict[int, float]  # emg2pose angle index → signed weight
    grip: float  # share of isometric grip effort (co-contraction while holding)


def _flexor(dofs: tuple[int, ...], w: float = 1.0) -> dict[int, float]:
    return {d: w for d in dofs}


def _extensor(dofs: tuple[int, ...], w: float = 1.0) -> dict[int, float]:
    return {d: -w for d in dofs}


MUSCLES: tuple[Muscle, ...] = (
    # Flexor digitorum superficialis (MCP + PIP), one compartment per finger
    Muscle("FDS_index", 20, 7, _flexor((5, 6)), 0.6),
    Muscle("FDS_middle", 2, 6, _flexor((9, 10)), 0.6),
    Muscle("FDS_ring", -14, 7, _flexor((13, 14)), 0.6),
    Muscle("FDS_pinky", -30, 9, _flexor((17, 18)), 0.5),
    # Flexor digitorum profundus (DIP, also PIP/MCP), deep
    Muscle("FDP_index", 30, 17, {7: 1.0, 6: 0.5, 5: 0.3}, 0.8),
    Muscle("FDP_middle", 12, 18, {11: 1.0, 10: 0.5, 9: 0.3}, 0.8),
    Muscle("FDP_ring", -6, 18, {15: 1.0, 14: 0.5, 13: 0.3}, 0.8),
    Muscle("FDP_pinky", -24, 17, {19: 1.0, 18: 0.5, 17: 0.3}, 0.7),
    # Thumb flexor
    Muscle("FPL", 58, 15, {2: 0.8, 3: 1.0, 0: 0.3}, 0.6),
    # Wrist flexors and palmaris: no finger DOF, active in grip (co-contraction)
    Muscle("FCR", 38, 5, {}, 0.5),
    Muscle("PL", 8, 3, {0: 0.1}, 0.3),
    Muscle("FCU", -62, 6, {}, 0.5),
    # Extensor digitorum communis compartments (MCP extension)
    Muscle("EDC_index", 165, 6, _extensor((5, 6), 1.0), 0.3),
    Muscle("EDC_middle", 180, 6, _extensor((9, 10), 1.0), 0.3),
    Muscle("EDC_ring", 194, 6, _extensor((13, 14), 1.0), 0.3),
    Muscle("EDC_pinky", 206, 7, _extensor((17, 18), 0.8), 0.2),
    Muscle("EIP", 150, 13, _extensor((5,), 1.0), 0.1),
    Muscle("EDM", 218, 8, _extensor((17, 18), 1.0), 0.1),
    # Thumb extensors / abductor (radial-dorsal)
    Muscle("EPL", 140, 11, {3: -1.0, 2: -0.6, 1: -0.3}, 0.1),
    Muscle("EPB_APL", 112, 7, {0: -1.0, 1: 0.8, 2: -0.4}, 0.2),
    # Wrist extensors, strongly co-active in grip (they stabilise the wrist)
    Muscle("ECR", 105, 5, {}, 0.7),
    Muscle("ECU", 238, 6, {}, 0.5),
)

NEUTRAL = np.array(
    [0.2, 0.1, 0.15, 0.1, 0.0, 0.3, 0.35, 0.25, 0.0, 0.3, 0.35, 0.25, 0.0, 0.3, 0.35, 0.25, 0.0, 0.3, 0.35, 0.25]
)  # relaxed posture: passive tension balanced, no activation needed

# Scales: activation per rad/s of joint speed, per rad of held excursion, per unit grip effort.
VELOCITY_GAIN = 0.12
POSITION_GAIN = 0.14
GRIP_GAIN = 0.75
TONE = 0.02
ACTIVATION_TAU_S = 0.04  # first-order activation dynamics (Zajac 1989: 10–50 ms)


def weight_matrix(muscles: tuple[Muscle, ...] = MUSCLES) -> np.ndarray:
    """(n_muscles, 20) signed weights."""
    matrix = np.zeros((len(muscles), 20))
    for m, muscle in enumerate(muscles):
        for dof, weight in muscle.dof_weights.items():
            matrix[m, dof] = weight
    return matrix


def activations(
    angles: np.ndarray, grip: np.ndarray, strength: np.ndarray | None = None, muscles: tuple[Muscle, ...] = MUSCLES
) -> np.ndarray:
    """(T,20) angles at MOTION_RATE and (T,) grip → (T, n_muscles) activation in [0,1].

    Agonists drive motion (concentric, velocity term) and hold excursions against passive tension
    (position term); grip effort co-activates flexors and extensors; the antagonist of a fast
    movement brakes it (a fraction of the opposite drive, Gottlieb's triphasic pattern, simplified).
    """
    weights = weight_matrix(muscles)
    velocity = np.gradient(angles, 1.0 / MOTION_RATE, axis=0)
    excursion = angles - NEUTRAL
    positive = np.clip(weights, 0, None)
    negative = np.clip(-weights, 0, None)
    agonist = VELOCITY_GAIN * (
        np.clip(velocity, 0, None) @ positive.T + np.clip(-velocity, 0, None) @ negative.T
    ) + POSITION_GAIN * (np.clip(excursion, 0, None) @ positive.T + np.clip(-excursion, 0, None) @ negative.T)
    antagonist = (
        0.25 * VELOCITY_GAIN * (np.clip(-velocity, 0, None) @ positive.T + np.clip(velocity, 0, None) @ negative.T)
    )
    grip_share = np.array([m.grip for m in muscles])
    drive = agonist + antagonist + GRIP_GAIN * grip[:, None] * grip_share[None, :] + TONE
    if strength is not None:
        drive = drive / strength[None, :]  # a weaker muscle needs more activation for the same task
    alpha = 1.0 / (ACTIVATION_TAU_S * MOTION_RATE)
    smoothed = lfilter([alpha], [1.0, alpha - 1.0], drive, axis=0)
    return np.clip(smoothed, 0.0, 1.0)
