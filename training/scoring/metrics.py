"""Pose-error metrics (numpy): MPJPE, PA-MPJPE, per finger / joint, angle error, and confidence quality."""

from __future__ import annotations

import numpy as np

from training.hand.skeleton import FINGERS, MANO_JOINT_NAMES

ERROR_THRESHOLD_MM = 20.0


def joint_errors_mm(predicted: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(N,21,3) metres, wrist-relative → (N,21) Euclidean errors in mm."""
    return np.linalg.norm(predicted - target, axis=-1) * 1000.0


def mpjpe_mm(predicted: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per-frame mean per-joint position error (mm); joints are wrist-relative, so the wrist counts 0."""
    return joint_errors_mm(predicted, target).mean(axis=1)


def procrustes_align(predicted: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Per frame, the similarity transform (rotation, translation, scale) of `predicted` closest to `target`."""
    mu_p = predicted.mean(axis=1, keepdims=True)
    mu_t = target.mean(axis=1, keepdims=True)
    p, t = predicted - mu_p, target - mu_t
    cov = np.einsum("nji,njk->nik", p, t)
    u, s, vt = np.linalg.svd(cov)
    d = np.sign(np.linalg.det(np.einsum("nij,njk->nik", u, vt)))
    s[:, -1] *= d
    u[:, :, -1] *= d[:, None]
    rotation = np.einsum("nij,njk->nik", u, vt)
    scale = s.sum(axis=1) / np.maximum((p**2).sum(axis=(1, 2)), 1e-12)
    return scale[:, None, None] * np.einsum("nji,nik->njk", p, rotation) + mu_t


def pa_mpjpe_mm(predicted: np.ndarray, target: np.ndarray) -> np.ndarray:
    return mpjpe_mm(procrustes_align(predicted, target), target)


def per_finger_mm(errors: np.ndarray) -> dict[str, float]:
    """Mean error of each finger's four points (3 joints + tip) from (N,21) errors."""
    return {finger: float(errors[:, list(idx)].mean()) for finger, idx in FINGERS.items()}


def per_joint_mm(errors: np.ndarray) -> dict[str, float]:
    return {name: float(errors[:, i].mean()) for i, name in enumerate(MANO_JOINT_NAMES)}


def auroc(scores: np.ndarray, positives: np.ndarray) -> float:
    """Area under the ROC curve of `scores` for detecting `positives` (rank statistic, ties averaged)."""
    scores = np.asarray(scores, dtype=np.float64)
    positives = np.asarray(positives, dtype=bool)
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):  # average ranks over ties
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def by_confidence_decile(confidence: np.ndarray, errors_mm: np.ndarray) -> list[dict[str, float]]:
    """MPJPE per confidence decile (decile 1 = least confident)."""
    edges = np.quantile(confidence, np.linspace(0, 1, 11))
    bins = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, 9)
    rows = []
    for d in range(10):
        members = bins == d
        rows.append(
            {
                "decile": d + 1,
                "n": int(members.sum()),
                "confidence_mean": float(confidence[members].mean()) if members.any() else float("nan"),
                "mpjpe_mm": float(errors_mm[members].mean()) if members.any() else float("nan"),
                "fraction_over_threshold": float((errors_mm[members] > ERROR_THRESHOLD_MM).mean())
                if members.any()
                else float("nan"),
            }
        )
    return rows


# --- metrics that discriminate: a mean-pose guess already scores well on 21-joint MPJPE (the wrist counts
# 0 and the MCPs barely move), so the reports carry fingertip error, a skill score against the mean pose and
# per-finger flexion beside it ---

FINGER_NAMES: tuple[str, ...] = tuple(FINGERS)  # thumb, index, middle, ring, pinky
FINGERTIPS: tuple[int, ...] = tuple(chain[-1] for chain in FINGERS.values())


def fingertip_errors_mm(predicted: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(N,21,3) metres → (N,) mean Euclidean error (mm) over the five fingertips."""
    return joint_errors_mm(predicted, target)[:, list(FINGERTIPS)].mean(axis=1)


def skill_score(mpjpe: float, mean_pose_mpjpe: float | None) -> float | None:
    """1 − MPJPE / MPJPE(mean pose): 1 is perfect, 0 is no better than always predicting the training labels'
    mean pose, negative is worse than it. None when the mean pose's error is unknown or zero."""
    if mean_pose_mpjpe is None or not np.isfinite(mean_pose_mpjpe) or mean_pose_mpjpe <= 0:
        return None
    return float(1.0 - mpjpe / mean_pose_mpjpe)


def flexion_deg(joints: np.ndarray) -> np.ndarray:
    """(…,21,3) joint positions → (…,5) flexion of each finger in degrees, computed from geometry alone.

    For a finger whose chain is wrist → J1 → J2 → J3 → tip (index…pinky: MCP, PIP, DIP; thumb: CMC, MCP, IP,
    MANO's thumb1–3), the flexion is the sum, over J1, J2 and J3, of the angle between the incoming bone
    (parent → joint) and the outgoing bone (joint → child): 0° for a finger in line with its metacarpal,
    growing as it curls. Each joint's angle is unsigned and 3-D (at the MCP it includes abduction), so a pure
    bend of one joint by δ in the finger's plane, towards the side it is already bent to, adds exactly δ. Order
    of fingers: FINGER_NAMES. Works the same for predictions, labels and any model, since it needs only the
    21 joints."""
    joints = np.asarray(joints, dtype=np.float64)
    out = np.zeros((*joints.shape[:-2], len(FINGERS)))
    for f, chain in enumerate(FINGERS.values()):
        points = joints[..., [0, *chain], :]  # wrist, J1, J2, J3, tip
        bones = np.diff(points, axis=-2)  # 4 bones
        unit = bones / np.maximum(np.linalg.norm(bones, axis=-1, keepdims=True), 1e-12)
        cosine = np.clip((unit[..., :-1, :] * unit[..., 1:, :]).sum(axis=-1), -1.0, 1.0)
        out[..., f] = np.degrees(np.arccos(cosine)).sum(axis=-1)
    return out


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of two series; NaN when either is constant (e.g. the mean pose) or has < 2 samples."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < 2:
        return float("nan")
    if np.ptp(x) <= 1e-9 * max(1.0, float(np.abs(x).max())) or np.ptp(y) <= 1e-9 * max(1.0, float(np.abs(y).max())):
        return float("nan")  # constant up to rounding: a correlation would be rounding noise
    dx, dy = x - x.mean(), y - y.mean()
    return float((dx * dy).sum() / np.sqrt((dx**2).sum() * (dy**2).sum()))


def flexion_metrics(predicted: np.ndarray, target: np.ndarray) -> dict[str, dict[str, float]]:
    """Per finger: mean |Δ flexion| (degrees, `flexion_deg`) and the Pearson correlation of predicted and
    labelled flexion over the frames (in the order given, i.e. over time)."""
    p, t = flexion_deg(predicted), flexion_deg(target)
    return {
        name: {"error_deg": float(np.abs(p[:, f] - t[:, f]).mean()), "correlation": pearson(p[:, f], t[:, f])}
        for f, name in enumerate(FINGER_NAMES)
    }


def summary(predicted: np.ndarray, target: np.ndarray, mean_pose_mpjpe_mm: float | None = None) -> dict[str, object]:
    """Every figure of one model against one ground truth (frames in time order, for the correlations).
    `mean_pose_mpjpe_mm`: the mean pose's MPJPE on the same frames, for the skill score (None: not scored)."""
    errors = joint_errors_mm(predicted, target)
    frame = errors.mean(axis=1)
    flexion = flexion_metrics(predicted, target)
    correlations = [v["correlation"] for v in flexion.values() if np.isfinite(v["correlation"])]
    return {
        "n_frames": len(frame),
        "mpjpe_mean_mm": float(frame.mean()),
        "mpjpe_median_mm": float(np.median(frame)),
        "pa_mpjpe_mean_mm": float(pa_mpjpe_mm(predicted, target).mean()),
        "fingertip_mean_mm": float(errors[:, list(FINGERTIPS)].mean()),
        "skill": skill_score(float(frame.mean()), mean_pose_mpjpe_mm),
        "flexion_error_mean_deg": float(np.mean([v["error_deg"] for v in flexion.values()])),
        "flexion_correlation_mean": float(np.mean(correlations)) if correlations else float("nan"),
        "per_finger_flexion": flexion,
        "per_finger_mm": per_finger_mm(errors),
        "per_joint_mm": per_joint_mm(errors),
    }


def mean_pose_verdict(mpjpe: float, mean_pose_mpjpe: float | None) -> str | None:
    """The sentence the reports print when a model does not beat the mean pose (skill ≤ 0), else None."""
    skill = skill_score(mpjpe, mean_pose_mpjpe)
    if skill is None or skill > 0:
        return None
    return f"does not beat the mean pose: {mpjpe:.1f} mm vs {mean_pose_mpjpe:.1f} mm (skill {skill:+.2f})"
