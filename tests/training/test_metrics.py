"""Metrics on cases whose answers are known by construction."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from training.fitting.confidence_calibration import apply, brier, isotonic_fit
from training.hand.fk_numpy import forward_kinematics_np
from training.hand.open_hand import open_hand_model
from training.scoring.metrics import auroc, by_confidence_decile, mpjpe_mm, pa_mpjpe_mm, summary

RNG = np.random.default_rng(0)
POSES = forward_kinematics_np(open_hand_model(), RNG.normal(0, 0.3, (20, 45)))


def test_mpjpe_of_a_known_offset() -> None:
    shifted = POSES.copy()
    shifted[:, 1:] += np.array([0.003, 0.004, 0.0])  # 5 mm on every joint but the wrist
    assert np.allclose(mpjpe_mm(shifted, POSES), 5.0 * 20 / 21)


def test_pa_mpjpe_ignores_rotation_translation_and_scale() -> None:
    rotation = Rotation.from_rotvec([0.3, -0.5, 0.2]).as_matrix()
    moved = 1.3 * POSES @ rotation.T + np.array([0.1, -0.2, 0.05])
    assert pa_mpjpe_mm(moved, POSES).max() < 1e-6
    assert mpjpe_mm(moved, POSES).min() > 10
    noisy = POSES + RNG.normal(0, 0.002, POSES.shape)
    assert 0 < pa_mpjpe_mm(noisy, POSES).mean() <= mpjpe_mm(noisy, POSES).mean()


def test_auroc_perfect_inverted_random_and_ties() -> None:
    positives = np.r_[np.ones(50, bool), np.zeros(50, bool)]
    scores = np.r_[np.linspace(1, 2, 50), np.linspace(0, 0.9, 50)]
    assert auroc(scores, positives) == 1.0
    assert auroc(-scores, positives) == 0.0
    assert auroc(RNG.random(20000), RNG.random(20000) < 0.3) == pytest.approx(0.5, abs=0.02)
    assert auroc(np.ones(10), np.r_[np.ones(5, bool), np.zeros(5, bool)]) == 0.5


def test_isotonic_calibration_is_monotone_and_helps() -> None:
    raw = RNG.random(4000)
    truth = RNG.random(4000) < raw**3  # raw confidence is badly over-confident
    table = isotonic_fit(raw, truth.astype(float))
    assert np.all(np.diff(table["y"]) >= 0) and np.all(np.diff(table["x"]) > 0)
    test_raw = RNG.random(4000)
    test_truth = RNG.random(4000) < test_raw**3
    assert brier(apply(table, test_raw), test_truth) < brier(test_raw, test_truth) - 0.02


def test_deciles_and_summary() -> None:
    confidence = np.linspace(0, 1, 100)
    errors = 40 - 30 * confidence
    rows = by_confidence_decile(confidence, errors)
    assert [r["n"] for r in rows] == [10] * 10
    assert rows[0]["mpjpe_mm"] > rows[-1]["mpjpe_mm"]
    s = summary(POSES + 0.001, POSES)
    assert set(s["per_finger_mm"]) == {"thumb", "index", "middle", "ring", "pinky"}
    assert len(s["per_joint_mm"]) == 21 and s["per_joint_mm"]["wrist"] == pytest.approx(np.sqrt(3))


def test_a_uniform_translation_moves_every_joint_but_no_flexion() -> None:
    """The summary's figures beside MPJPE: a rigid shift of the whole hand is √3 mm everywhere, fingertips
    included, and changes no finger's flexion (angles between bones ignore translation)."""
    s = summary(POSES + 0.001, POSES, mean_pose_mpjpe_mm=2 * np.sqrt(3))
    assert s["fingertip_mean_mm"] == pytest.approx(np.sqrt(3))
    assert s["skill"] == pytest.approx(0.5)
    assert s["flexion_error_mean_deg"] == pytest.approx(0.0, abs=1e-6)
    assert s["flexion_correlation_mean"] == pytest.approx(1.0)
