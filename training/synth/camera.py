"""Simulated camera labels: what MediaPipe + MANO inverse kinematics would hand the recorder.

At `camera_fps` the true pose is observed with an IK residual (θ noise ≈ 0.03 rad → joint errors of a
few mm), MediaPipe-like confidence that drops with self-occlusion (closed hand) and motion blur (fast
movement), dropout episodes (hand lost for ~0.3–1.5 s: low confidence, wrong pose, large IK error)
and isolated outlier frames. `ik_error` is the mean joint distance between the fitted pose and the
(noisy) landmarks, in mm — so the guide's filter (ik_error < 15 mm, confidence > 0.5) removes the
bad frames as it does on real data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.hand.angle_map import emg2pose_angles_to_mano_pose
from training.hand.fk_numpy import forward_kinematics_np
from training.hand.params import HandModelParams
from training.hand.skeleton import MANO_TO_MEDIAPIPE
from training.synth.motion import FINGER_MCP, FINGER_PIP, Motion

IK_THETA_NOISE = 0.03
LANDMARK_NOISE_M = 0.002


@dataclass
class CameraLabels:
    time: np.ndarray  # (M,) s, relative to the session start
    true_angles: np.ndarray  # (M,20)
    true_theta: np.ndarray  # (M,45)
    true_joints: np.ndarray  # (M,21,3)
    theta: np.ndarray  # (M,45) IK label
    joints: np.ndarray  # (M,21,3) FK of the IK label, metres
    landmarks: np.ndarray  # (M,21,3) MediaPipe order, metres
    ik_error: np.ndarray  # (M,) mm
    confidence: np.ndarray  # (M,)


def observe(motion: Motion, hand: HandModelParams, fps: float, rng: np.random.Generator) -> CameraLabels:
    duration = motion.time[-1]
    nominal = np.arange(0.0, duration, 1.0 / fps)
    times = np.clip(nominal + rng.uniform(-0.002, 0.002, len(nominal)), 0.0, duration)  # frame jitter ±2 ms
    angles = np.stack([np.interp(times, motion.time, motion.angles[:, k]) for k in range(20)], axis=1)
    true_theta = emg2pose_angles_to_mano_pose(angles)
    true_joints = forward_kinematics_np(hand, true_theta)
    m = len(times)

    closure = np.clip((angles[:, list(FINGER_MCP)] + angles[:, list(FINGER_PIP)]).mean(axis=1) / 2.8, 0, 1)
    speed = np.abs(np.gradient(angles, times, axis=0)).sum(axis=1) if m > 1 else np.zeros(m)
    confidence = 0.95 - 0.25 * closure - 0.02 * np.clip(speed - 5.0, 0, None) + rng.normal(0, 0.03, m)

    theta = true_theta + rng.normal(0.0, IK_THETA_NOISE, true_theta.shape)
    bad = np.zeros(m, dtype=bool)
    episodes = rng.poisson(duration / 20.0)
    for _ in range(episodes):  # hand lost / mistracked for a while
        start = rng.integers(0, max(1, m))
        stop = min(m, start + int(rng.uniform(0.3, 1.5) * fps))
        bad[start:stop] = True
    bad |= rng.uniform(size=m) < 0.01  # isolated outliers
    theta[bad] += rng.normal(0.0, 0.35, (int(bad.sum()), 45))
    confidence[bad] = rng.uniform(0.1, 0.55, int(bad.sum()))
    confidence = np.clip(confidence, 0.0, 1.0)

    joints = forward_kinematics_np(hand, theta)
    landmarks_mano = true_joints + rng.normal(0.0, LANDMARK_NOISE_M, true_joints.shape)
    landmarks_mano[bad] += rng.normal(0.0, 0.02, landmarks_mano[bad].shape)
    ik_error = np.linalg.norm(joints - landmarks_mano, axis=-1).mean(axis=1) * 1000.0
    return CameraLabels(
        time=times,
        true_angles=angles,
        true_theta=true_theta,
        true_joints=true_joints,
        theta=theta,
        joints=joints,
        landmarks=landmarks_mano[:, MANO_TO_MEDIAPIPE],
        ik_error=ik_error,
        confidence=confidence,
    )
