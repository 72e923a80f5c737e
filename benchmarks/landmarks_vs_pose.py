"""How close the real MediaPipe landmarker (and our IK on its output) comes to a hand pose we know exactly.

Clips of the open hand model moving through the synthetic world's gestures are rendered
(`training/recording/render.py`), written as mp4 and read back (so the codec's losses are in), and run
through the real `HandTracker` (VIDEO mode). For each frame with a detection, MediaPipe's world landmarks
are aligned to the known joints by a similarity transform (rotation, translation and scale: Umeyama 1991)
and the remaining distance is reported per joint group:
wrist; MCP = the finger bases (thumb CMC, index/middle/ring/pinky MCP); PIP (thumb MCP); DIP (thumb IP);
tips. The fitted scale says how MediaPipe's metric hand size compares with ours. Then `HandIK` (shape
calibrated once on the clip, then `fit_frame` frame by frame, as the recorder does) turns the landmarks
into θ: its canonical joints are compared with the known canonical joints (no alignment: that is what the
session stores) and θ with the known θ (mean rotation angle over the 15 joints).

    python benchmarks/landmarks_vs_pose.py [--seconds 10] [--views default,palm-on,tilted] [--out table.md]

Needs the hand model file (`mode2 get-hand-model`, or $MODE2_HAND_MODEL).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from training.hand.skeleton import MANO_TO_MEDIAPIPE
from training.recording.render import HandView, gesture_clip, render_clip

# Joint groups in MediaPipe order.
GROUPS: dict[str, tuple[int, ...]] = {
    "wrist": (0,),
    "MCP": (1, 5, 9, 13, 17),
    "PIP": (2, 6, 10, 14, 18),
    "DIP": (3, 7, 11, 15, 19),
    "tips": (4, 8, 12, 16, 20),
}
VIEWS: dict[str, HandView] = {
    "default": HandView(),  # palm to the camera turned 20° about the vertical, 0.5 m
    "palm-on": HandView(yaw_deg=0.0, distance_m=0.42),  # straight at the camera, closer: the hardest here
    "tilted": HandView(yaw_deg=30.0, roll_deg=-15.0, pitch_deg=10.0, distance_m=0.45),
}
ORDER = ("rest", "fist", "pinch", "point", "open", "peace", "tripod", "thumbs_up")


def similarity_align(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, float]:
    """Align (N,3) `source` to `target` by rotation + translation + scale; returns (aligned source, scale)."""
    mu_s, mu_t = source.mean(axis=0), target.mean(axis=0)
    s, t = source - mu_s, target - mu_t
    u, sigma, vt = np.linalg.svd(t.T @ s)
    d = np.ones(3)
    d[2] = np.sign(np.linalg.det(u @ vt)) or 1.0  # a proper rotation, never a reflection
    rotation = u @ np.diag(d) @ vt
    scale = float((sigma * d).sum() / (s**2).sum())
    return scale * s @ rotation.T + mu_t, scale


def aligned_residuals_mm(world_mediapipe: np.ndarray, joints_mano: np.ndarray) -> tuple[np.ndarray, float]:
    """Aligned world landmarks − known joints, (21,3) mm in MediaPipe order and the known joints' (hand) frame."""
    known = np.asarray(joints_mano)[MANO_TO_MEDIAPIPE]
    aligned, scale = similarity_align(np.asarray(world_mediapipe, dtype=np.float64), known)
    return 1000.0 * (aligned - known), scale


def landmark_errors_mm(world_mediapipe: np.ndarray, joints_mano: np.ndarray) -> tuple[np.ndarray, float]:
    """Per-joint distance (21,) mm (MediaPipe order) between aligned world landmarks and known MANO joints."""
    residuals, scale = aligned_residuals_mm(world_mediapipe, joints_mano)
    return np.linalg.norm(residuals, axis=1), scale


def _rotation_angle_deg(theta_a: np.ndarray, theta_b: np.ndarray) -> float:
    """Mean over the 15 joints of the angle between the two local rotations (axis-angle θ, (45,))."""
    angles = []
    for a, b in zip(theta_a.reshape(15, 3), theta_b.reshape(15, 3), strict=True):
        ra, _ = cv2.Rodrigues(a)
        rb, _ = cv2.Rodrigues(b)
        cos = (np.trace(ra.T @ rb) - 1.0) / 2.0
        angles.append(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))
    return float(np.mean(angles))


@dataclass
class ViewResult:
    view: str
    frames: int
    detected_by_label: dict[str, tuple[int, int]]  # gesture (or "moving") → (detected, frames)
    errors_mm: np.ndarray  # (D,21) aligned landmark error per detected frame
    residuals_mm: np.ndarray  # (D,21,3) aligned landmark − known joint, hand frame
    scales: np.ndarray  # (D,)
    ik_joint_mm: np.ndarray  # (D,) mean over 21 joints, canonical
    ik_theta_deg: np.ndarray  # (D,)
    ik_fit_mm: np.ndarray  # (D,) the IK's own residual (ik_error)
    seconds: float
    landmarker_ms: np.ndarray  # (frames,) wall time of each detect() call
    ik_ms: np.ndarray  # (D,) wall time of each fit_frame() call


def run_view(
    name: str,
    view: HandView,
    *,
    seconds: float,
    fps: float,
    seed: int,
    model: str | None,
    use_ik: bool,
    workdir: Path,
    progress: bool,
) -> ViewResult:
    from training.recording.landmarker import HandTracker

    clip = gesture_clip(seconds, fps, seed, gestures=ORDER)
    path = render_clip(clip.joints, workdir / f"{name}.mp4", fps=fps, seed=seed, **vars(view))
    started = time.perf_counter()
    capture = cv2.VideoCapture(str(path))
    detected: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    hits: list[tuple[int, np.ndarray]] = []
    landmarker_ms: list[float] = []
    ik_ms: list[float] = []
    with HandTracker(model) as tracker:
        for i in tqdm(range(len(clip.joints)), desc=f"landmarker ({name})", disable=not progress, leave=False):
            ok, bgr = capture.read()
            if not ok:
                raise RuntimeError(f"{path}: frame {i} missing on read-back")
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            tick = time.perf_counter()
            observation = tracker.detect(rgb, round(i * 1000 / fps))
            landmarker_ms.append(1000.0 * (time.perf_counter() - tick))
            label = clip.labels[i] if "→" not in clip.labels[i] else "moving"
            detected[label][1] += 1
            if observation is not None:
                detected[label][0] += 1
                hits.append((i, observation.world_landmarks))
    capture.release()
    residuals, scales = [], []
    for i, world in hits:
        residual, scale = aligned_residuals_mm(world, clip.joints[i])
        residuals.append(residual)
        scales.append(scale)
    residual_array = np.array(residuals).reshape(-1, 21, 3)
    ik_joint, ik_theta, ik_fit = [], [], []
    if use_ik and hits:
        from training.recording.ik import HandIK

        ik = HandIK()
        ik.calibrate_shape(np.stack([world for _, world in hits]))
        previous = -2
        for i, world in tqdm(hits, desc=f"IK ({name})", disable=not progress, leave=False):
            if i != previous + 1:
                ik.reset()  # the hand was lost in between: start afresh, as the recorder would
            previous = i
            tick = time.perf_counter()
            result = ik.fit_frame(world)
            ik_ms.append(1000.0 * (time.perf_counter() - tick))
            ik_joint.append(1000.0 * np.linalg.norm(result.joints[0] - clip.joints[i], axis=1).mean())
            ik_theta.append(_rotation_angle_deg(result.theta[0], clip.theta[i]))
            ik_fit.append(float(result.ik_error_mm[0]))
    return ViewResult(
        view=name,
        frames=len(clip.joints),
        detected_by_label={k: (v[0], v[1]) for k, v in detected.items()},
        errors_mm=np.linalg.norm(residual_array, axis=2),
        residuals_mm=residual_array,
        scales=np.array(scales),
        ik_joint_mm=np.array(ik_joint),
        ik_theta_deg=np.array(ik_theta),
        ik_fit_mm=np.array(ik_fit),
        seconds=time.perf_counter() - started,
        landmarker_ms=np.array(landmarker_ms),
        ik_ms=np.array(ik_ms),
    )


def _pct(hit: int, total: int) -> str:
    return f"{100.0 * hit / total:.0f} % ({hit}/{total})" if total else "–"


def _mm(values: np.ndarray) -> str:
    return f"{np.mean(values):.1f} (p90 {np.percentile(values, 90):.1f})" if len(values) else "–"


def table(results: list[ViewResult], *, seconds: float, fps: float, seed: int) -> str:
    lines = [
        f"Landmarks vs known pose — rendered open hand, {seconds:g} s per view at {fps:g} fps (mp4 round trip), "
        f"seed {seed}, `python benchmarks/landmarks_vs_pose.py`",
        "",
        "Detection rate (frames in which the landmarker returned the right hand):",
        "",
        "| view | " + " | ".join((*ORDER, "moving", "all")) + " |",
        "|---" * (len(ORDER) + 3) + "|",
    ]
    for r in results:
        cells = [_pct(*r.detected_by_label.get(g, (0, 0))) for g in (*ORDER, "moving")]
        total = sum(v[0] for v in r.detected_by_label.values())
        lines.append(f"| {r.view} | " + " | ".join(cells) + f" | {_pct(total, r.frames)} |")
    lines += [
        "",
        "World landmarks vs known joints after similarity alignment, mm (mean, p90), and MediaPipe's scale "
        "(×, known / MediaPipe); then IK on those landmarks: canonical joints vs known (mm), θ error (° per joint), "
        "the IK's own residual (mm):",
        "",
        "| view | " + " | ".join(GROUPS) + " | all joints | scale | IK joints | IK θ | IK residual |",
        "|---" * (len(GROUPS) + 6) + "|",
    ]
    for r in results:
        groups = [_mm(r.errors_mm[:, list(ids)].mean(axis=1)) if len(r.errors_mm) else "–" for ids in GROUPS.values()]
        overall = _mm(r.errors_mm.mean(axis=1)) if len(r.errors_mm) else "–"
        scale = f"{np.median(r.scales):.2f}" if len(r.scales) else "–"
        theta = f"{np.mean(r.ik_theta_deg):.1f}" if len(r.ik_theta_deg) else "–"
        lines.append(
            f"| {r.view} | "
            + " | ".join(groups)
            + f" | {overall} | {scale} | {_mm(r.ik_joint_mm)} | {theta} | {_mm(r.ik_fit_mm)} |"
        )
    lines += [
        "",
        "Where MediaPipe puts each joint group relative to the known joints (mean signed aligned residual, mm, hand "
        "frame: x towards the fingers, y out of the back of the hand, z towards the little finger):",
        "",
        "| view | " + " | ".join(GROUPS) + " |",
        "|---" * (len(GROUPS) + 1) + "|",
    ]
    for r in results:
        cells = []
        for ids in GROUPS.values():
            if len(r.residuals_mm):
                x, y, z = r.residuals_mm[:, list(ids)].mean(axis=(0, 1))
                cells.append(f"{x:+.0f}, {y:+.0f}, {z:+.0f}")
            else:
                cells.append("–")
        lines.append(f"| {r.view} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Cost per frame on this machine (median, p90 ms; HandTracker.detect on a 640×480 frame, IK fit_frame on one "
        "thread), measured side by side in this run:",
        "",
        "| view | landmarker | IK | both → frames/s |",
        "|---|---|---|---|",
    ]
    for r in results:
        lm = np.median(r.landmarker_ms) if len(r.landmarker_ms) else float("nan")
        ik = np.median(r.ik_ms) if len(r.ik_ms) else 0.0
        lm90 = np.percentile(r.landmarker_ms, 90) if len(r.landmarker_ms) else float("nan")
        ik90 = np.percentile(r.ik_ms, 90) if len(r.ik_ms) else 0.0
        lines.append(f"| {r.view} | {lm:.1f} ({lm90:.1f}) | {ik:.1f} ({ik90:.1f}) | {1000.0 / (lm + ik):.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=11.0, help="clip length per view (all 8 gestures need ≈ 10 s)")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--views", default=",".join(VIEWS), help=f"comma-separated, from {', '.join(VIEWS)}")
    parser.add_argument(
        "--hand-model", default=None, help="the .task file (default: the `mode2 get-hand-model` location)"
    )
    parser.add_argument("--no-ik", action="store_true", help="landmarks only")
    parser.add_argument("--out", type=Path, default=None, help="also write the table (markdown) here")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    names = [v.strip() for v in args.views.split(",") if v.strip()]
    unknown = [v for v in names if v not in VIEWS]
    if unknown:
        parser.error(f"--views: unknown {', '.join(unknown)} (known: {', '.join(VIEWS)})")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            results.append(
                run_view(
                    name,
                    VIEWS[name],
                    seconds=args.seconds,
                    fps=args.fps,
                    seed=args.seed,
                    model=args.hand_model,
                    use_ik=not args.no_ik,
                    workdir=Path(tmp),
                    progress=not args.quiet,
                )
            )
    text = table(results, seconds=args.seconds, fps=args.fps, seed=args.seed)
    print(text)
    if args.out is not None:
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
