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


def summary(predicted: np.ndarray, target: np.ndarray) -> dict[str, object]:
    errors = joint_errors_mm(predicted, target)
    frame = errors.mean(axis=1)
    return {
        "n_frames": len(frame),
        "mpjpe_mean_mm": float(frame.mean()),
        "mpjpe_median_mm": float(np.median(frame)),
        "pa_mpjpe_mean_mm": float(pa_mpjpe_mm(predicted, target).mean()),
        "per_finger_mm": per_finger_mm(errors),
        "per_joint_mm": per_joint_mm(errors),
    }
