"""Inverse kinematics (training/recording/ik.py): accuracy on the synthetic world and speed on one thread.

The world: per subject (training/synth/subjects.py: its bone scale) a stretch of the recording protocol's
motion (training/synth/motion.py) at 30 fps, θ from emg2pose_angles_to_mano_pose, a slowly turning random
global orientation, landmarks = FK in MediaPipe order with the origin at the palm's centre (as MediaPipe's
world landmarks). Conditions:
- noise-free: the subject's hand is open_hand_model(bone_scale); β calibrated from the first 2 s.
- known shape: the same, with the IK given the subject's exact hand model (the solver alone).
- noisy: each bone's length off by N(0, 3 %) from the subject's scale (proportions no β can express) and
  N(0, 3 mm) on every landmark coordinate (MediaPipe-like); β calibrated from the first 2 s.
Errors compare IkResult.joints (canonical: wrist-relative, no global orientation) with the true canonical
joints, and the fitted emg2pose angles with the true ones. Speed: `fit_frame` (warm-started, frame by frame)
and `fit` (the whole clip as one batch, cold) with torch on one thread.
Run: `python benchmarks/bench_ik.py [--subjects 3] [--seconds 15]` (default well under a minute).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import cpu_model
from training.hand.angle_map import emg2pose_angles_to_mano_pose, mano_pose_to_emg2pose_angles
from training.hand.fk_numpy import forward_kinematics_np
from training.hand.open_hand import open_hand_model
from training.hand.skeleton import FINGERS, MANO_TO_MEDIAPIPE
from training.recording.ik import HandIK, IkResult
from training.synth.motion import FINGER_DIP, FINGER_MCP, FINGER_PIP, THUMB, generate_motion
from training.synth.subjects import make_subject

FPS = 30.0
CALIBRATION_S = 2.0
FLEXION = (*FINGER_MCP, *FINGER_PIP, *FINGER_DIP, THUMB[0], THUMB[2], THUMB[3])


@dataclass
class Clip:
    angles: np.ndarray  # (T,20) true emg2pose angles
    joints: np.ndarray  # (T,21,3) true canonical joints
    landmarks: np.ndarray  # (T,21,3) MediaPipe order, metres, origin at the palm's centre
    bone_scale: np.ndarray  # (16,)


def turning_orientation(frames: int, rng: np.random.Generator) -> np.ndarray:
    """(T,3) axis-angle: a random orientation that turns slowly (≈ 30°/s at most) as a forearm does."""
    start = rng.normal(size=3)
    start *= rng.uniform(0.0, np.pi) / np.linalg.norm(start)
    rate = np.cumsum(rng.normal(0.0, 0.004, (frames, 3)), axis=0)
    return start + np.clip(rate, -0.02, 0.02).cumsum(axis=0)


def make_clip(
    subject_index: int, seconds: float, seed: int, *, noise_mm: float = 0.0, proportion_sd: float = 0.0
) -> Clip:
    subject = make_subject(subject_index, seed)
    rng = np.random.default_rng([seed, subject_index, 14])
    motion = generate_motion(max(seconds, 5.0) / 60.0, rng)
    times = np.arange(0.0, min(seconds, motion.time[-1]), 1.0 / FPS)
    angles = np.stack([np.interp(times, motion.time, motion.angles[:, k]) for k in range(20)], axis=1)
    theta = emg2pose_angles_to_mano_pose(angles)
    scale = subject.bone_scale * (1.0 + rng.normal(0.0, proportion_sd, 16))
    hand = open_hand_model(scale)
    posed = forward_kinematics_np(hand, theta, turning_orientation(len(theta), rng))
    posed = posed - posed[:, [0, 1, 4, 7, 10, 13]].mean(axis=1, keepdims=True)
    posed = posed + rng.normal(0.0, noise_mm / 1000.0, posed.shape)
    return Clip(angles, forward_kinematics_np(hand, theta), posed[:, MANO_TO_MEDIAPIPE], scale)


def run_frames(ik: HandIK, landmarks: np.ndarray) -> tuple[IkResult, float]:
    """fit_frame over a clip; returns the stacked results and frames/s."""
    ik.reset()
    started = time.perf_counter()
    results = [ik.fit_frame(frame) for frame in landmarks]
    fps = len(landmarks) / (time.perf_counter() - started)
    stacked = IkResult(
        **{
            name: np.concatenate([getattr(r, name) for r in results])
            for name in ("theta", "global_orient", "joints", "fitted", "ik_error_mm", "translation", "iterations")
        },
        betas=ik.betas,
    )
    return stacked, fps


def summary(clips: list[Clip], results: list[IkResult]) -> dict[str, float]:
    joint_err = (
        np.concatenate([np.linalg.norm(r.joints - c.joints, axis=-1) for c, r in zip(clips, results, strict=True)])
        * 1e3
    )
    angle_err = np.degrees(
        np.concatenate(
            [np.abs(mano_pose_to_emg2pose_angles(r.theta) - c.angles) for c, r in zip(clips, results, strict=True)]
        )
    )
    per_frame = joint_err.mean(axis=1)
    out = {
        "joint mean mm": float(per_frame.mean()),
        "joint p95 mm": float(np.percentile(per_frame, 95)),
        "flexion mean deg": float(angle_err[:, list(FLEXION)].mean()),
        "flexion p95 deg": float(np.percentile(angle_err[:, list(FLEXION)], 95)),
        "all 20 angles mean deg": float(angle_err.mean()),
        "ik_error mean mm": float(np.concatenate([r.ik_error_mm for r in results]).mean()),
        "iterations mean": float(np.concatenate([r.iterations for r in results]).mean()),
    }
    for finger, joints in FINGERS.items():
        out[f"{finger} mm"] = float(joint_err[:, list(joints)].mean())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subjects", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--noise-mm", type=float, default=3.0)
    parser.add_argument("--proportion-sd", type=float, default=0.03)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(
        f"machine: {cpu_model()}, {os.cpu_count()} logical cores; torch {torch.__version__}, 1 thread; "
        f"plain CPU, no GPU. {args.subjects} subjects × {args.seconds:g} s at {FPS:g} fps"
    )
    conditions = {
        "noise-free": {"noise_mm": 0.0, "proportion_sd": 0.0},
        "known shape": {"noise_mm": 0.0, "proportion_sd": 0.0},
        f"noisy ({args.noise_mm:g} mm, {100 * args.proportion_sd:g} % bones)": {
            "noise_mm": args.noise_mm,
            "proportion_sd": args.proportion_sd,
        },
    }
    columns: dict[str, dict[str, float]] = {}
    for name, noise in conditions.items():
        clips = [make_clip(s, args.seconds, args.seed, **noise) for s in range(args.subjects)]
        frame_results, batch_results, frame_fps, batch_fps = [], [], [], []
        for clip in clips:
            ik = HandIK(open_hand_model(clip.bone_scale)) if name == "known shape" else HandIK()
            if name != "known shape":
                ik.calibrate_shape(clip.landmarks[: int(CALIBRATION_S * FPS)])
            result, fps = run_frames(ik, clip.landmarks)
            frame_results.append(result)
            frame_fps.append(fps)
            started = time.perf_counter()
            batch_results.append(ik.fit(clip.landmarks))
            batch_fps.append(len(clip.landmarks) / (time.perf_counter() - started))
        columns[name] = summary(clips, frame_results)
        columns[name]["fit_frame fps"] = float(np.median(frame_fps))
        columns[name]["batch fps (cold)"] = float(np.median(batch_fps))
        columns[name]["batch joint mean mm"] = summary(clips, batch_results)["joint mean mm"]
    names = list(columns)
    width = max(len(n) for n in names) + 2
    print(f"{'':24s}" + "".join(f"{n:>{width}s}" for n in names))
    for key in columns[names[0]]:
        print(f"{key:24s}" + "".join(f"{columns[n][key]:>{width}.2f}" for n in names))
    print(
        "joints: IkResult.joints (canonical) vs the true canonical joints, mean over 21 joints per frame; "
        "flexion: MCP/PIP/DIP of the 4 fingers + thumb CMC/MCP/IP flexion. fit_frame runs warm-started frame by "
        "frame; batch = the whole clip in one fit() call."
    )


if __name__ == "__main__":
    main()
