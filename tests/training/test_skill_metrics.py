"""The metrics beside MPJPE (fingertip error, skill against the mean pose, per-finger flexion) on poses whose
answers are known by construction, and their place in the checkpoint's meta, old files included."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from training.hand.fk_numpy import forward_kinematics_np
from training.hand.open_hand import open_hand_model
from training.hand.skeleton import FINGERS
from training.models.checkpoint_meta import META_VERSION, CheckpointMeta, ValidationMetrics
from training.models.model_io import load_model_checkpoint, save_model_checkpoint
from training.scoring.metrics import (
    FINGER_NAMES,
    FINGERTIPS,
    fingertip_errors_mm,
    flexion_deg,
    flexion_metrics,
    mean_pose_verdict,
    mpjpe_mm,
    pearson,
    skill_score,
    summary,
)

HAND = open_hand_model()
RNG = np.random.default_rng(3)
THETA = RNG.normal(0, 0.3, (40, 45))
LABELS = forward_kinematics_np(HAND, THETA)  # a time series of varied poses
MEAN_POSE = forward_kinematics_np(HAND, THETA.mean(axis=0))[None].repeat(len(LABELS), 0)


def _bend(joints: np.ndarray, finger: str, joint: int, degrees: float) -> np.ndarray:
    """Rotate everything distal to `FINGERS[finger][joint]` about that joint by `degrees`, in the plane of its
    two bones and away from the incoming bone: the joint's angle grows by exactly `degrees`."""
    chain = (0, *FINGERS[finger])
    at, parent, child = chain[joint + 1], chain[joint], chain[joint + 2]
    out = joints.copy()
    for frame in out:
        incoming, outgoing = frame[at] - frame[parent], frame[child] - frame[at]
        normal = np.cross(incoming, outgoing)
        normal /= np.linalg.norm(normal)
        rotation = Rotation.from_rotvec(np.radians(degrees) * normal).as_matrix()
        distal = list(chain[joint + 2 :])
        frame[distal] = (frame[distal] - frame[at]) @ rotation.T + frame[at]
    return out


def test_a_perfect_prediction_scores_zero_error_skill_one_and_correlation_one() -> None:
    mean_pose_mm = float(mpjpe_mm(MEAN_POSE, LABELS).mean())
    s = summary(LABELS.copy(), LABELS, mean_pose_mm)
    assert s["mpjpe_mean_mm"] == 0 and s["fingertip_mean_mm"] == 0 and s["flexion_error_mean_deg"] == 0
    assert s["skill"] == 1.0
    for finger in FINGER_NAMES:
        assert s["per_finger_flexion"][finger]["error_deg"] == 0
        assert s["per_finger_flexion"][finger]["correlation"] == pytest.approx(1.0)
    assert mean_pose_verdict(s["mpjpe_mean_mm"], mean_pose_mm) is None


def test_the_mean_pose_has_skill_zero_and_no_correlation_and_is_called_out() -> None:
    mean_pose_mm = float(mpjpe_mm(MEAN_POSE, LABELS).mean())
    assert mean_pose_mm > 5, "the series must move for the test to mean anything"
    s = summary(MEAN_POSE, LABELS, mean_pose_mm)
    assert s["skill"] == 0.0
    assert all(math.isnan(s["per_finger_flexion"][f]["correlation"]) for f in FINGER_NAMES), "constant: no r"
    verdict = mean_pose_verdict(s["mpjpe_mean_mm"], mean_pose_mm)
    assert verdict is not None and verdict.startswith("does not beat the mean pose")
    assert summary(MEAN_POSE, LABELS)["skill"] is None, "no reference given: not scored"


def test_skill_is_negative_for_a_model_worse_than_the_mean_pose_and_positive_for_a_better_one() -> None:
    assert skill_score(30.0, 20.0) == pytest.approx(-0.5)
    assert skill_score(5.0, 20.0) == pytest.approx(0.75)
    assert skill_score(5.0, None) is None and skill_score(5.0, 0.0) is None
    assert mean_pose_verdict(30.0, 20.0) == "does not beat the mean pose: 30.0 mm vs 20.0 mm (skill -0.50)"
    assert mean_pose_verdict(19.9, 20.0) is None


def test_a_fingertip_only_displacement_shows_fully_in_fingertip_error_but_diluted_in_mpjpe() -> None:
    moved = LABELS.copy()
    moved[:, list(FINGERTIPS)] += np.array([0.0, 0.003, 0.004])  # 5 mm on each fingertip, nothing else
    assert np.allclose(fingertip_errors_mm(moved, LABELS), 5.0)
    assert np.allclose(mpjpe_mm(moved, LABELS), 5.0 * 5 / 21)
    s = summary(moved, LABELS)
    assert s["fingertip_mean_mm"] == pytest.approx(5.0) and s["mpjpe_mean_mm"] == pytest.approx(5.0 * 5 / 21)


@pytest.mark.parametrize("finger", FINGER_NAMES)
def test_bending_one_fingers_middle_joint_by_20_degrees_is_a_20_degree_flexion_error_on_that_finger_only(
    finger: str,
) -> None:
    bent = _bend(LABELS, finger, 1, 20.0)  # index…pinky: the PIP; thumb: its MCP
    assert np.allclose(flexion_deg(bent) - flexion_deg(LABELS), np.eye(5)[FINGER_NAMES.index(finger)] * 20.0)
    errors = {f: v["error_deg"] for f, v in flexion_metrics(bent, LABELS).items()}
    assert errors[finger] == pytest.approx(20.0)
    assert all(errors[f] < 1e-6 for f in FINGER_NAMES if f != finger)


def test_flexion_is_zero_for_a_finger_in_line_with_its_metacarpal_and_adds_up_its_joints() -> None:
    straight = np.zeros((1, 21, 3))
    for f, chain in enumerate(FINGERS.values()):
        direction = np.array([np.cos(0.2 * f), np.sin(0.2 * f), 0.0])
        for k, j in enumerate(chain):
            straight[0, j] = (k + 1) * 0.03 * direction
    assert np.allclose(flexion_deg(straight), 0.0, atol=1e-4)
    # three bends in the same plane: 30° at the MCP, 40° at the PIP, 10° at the DIP → 80° of curl
    curled = straight.copy()
    index = (0, *FINGERS["index"])
    for joint, degrees in ((0, 30.0), (1, 40.0), (2, 10.0)):
        at = index[joint + 1]
        rotation = Rotation.from_rotvec(np.radians(degrees) * np.array([0.0, 0.0, 1.0])).as_matrix()
        distal = list(index[joint + 2 :])
        curled[0, distal] = (curled[0, distal] - curled[0, at]) @ rotation.T + curled[0, at]
    assert flexion_deg(curled)[0, FINGER_NAMES.index("index")] == pytest.approx(80.0)


def test_validation_metrics_with_the_new_figures_survive_a_save_and_load(tmp_path: Path) -> None:
    from training.models.direct_model import DirectModel

    metrics = ValidationMetrics(
        val_mpjpe_mm=18.0,
        val_mpjpe_median_mm=17.0,
        val_loss=0.1,
        epoch=4,
        val_fingertip_mm=30.0,
        val_flexion_error_deg=12.5,
        val_mean_pose_mpjpe_mm=16.0,
        val_skill=-0.125,
    )
    meta = CheckpointMeta(kind="direct", hand_model=HAND, metrics=metrics, initial_state_policy="none")
    model = DirectModel(HAND)
    save_model_checkpoint(tmp_path / "m.pth", model, meta)
    _, loaded = load_model_checkpoint(tmp_path / "m.pth")
    assert loaded.metrics == metrics and loaded.version == META_VERSION


def test_a_version_2_checkpoint_without_the_new_figures_still_loads(tmp_path: Path) -> None:
    metrics = ValidationMetrics(val_mpjpe_mm=18.0, val_mpjpe_median_mm=17.0, val_loss=0.1, epoch=4)
    content = CheckpointMeta(kind="direct", hand_model=HAND, metrics=metrics).to_dict()
    assert set(content["metrics"]) == {"val_mpjpe_mm", "val_mpjpe_median_mm", "val_loss", "epoch", "ground_truth"}
    content["format_version"] = 2
    loaded = CheckpointMeta.from_dict(content, tmp_path / "old.pth")
    assert loaded.metrics is not None and loaded.metrics.val_skill is None and loaded.metrics.val_mpjpe_mm == 18.0


def test_the_demo_summary_says_when_mode2_does_not_beat_the_mean_pose(tmp_path: Path) -> None:
    from runtime.demo_command import _skill_lines

    metrics = {
        "mode2": {"camera": {"mpjpe_mean_mm": 18.0, "fingertip_mean_mm": 25.0, "flexion_error_mean_deg": 14.0}},
        "mean_pose": {"camera": {"mpjpe_mean_mm": 16.1}},
    }
    lines = _skill_lines(metrics, tmp_path / "model.onnx")
    assert lines[0].startswith("Mode 2 (mode2 evaluate on the held-out session): MPJPE 18.0 mm, fingertips 25.0 mm")
    assert "mean pose 16.1 mm; skill -0.12" in lines[0]
    assert "Mode 2 does not beat the mean pose: 18.0 mm vs 16.1 mm" in lines[1]
    metrics["mode2"]["camera"]["mpjpe_mean_mm"] = 12.0
    assert len(_skill_lines(metrics, tmp_path / "model.onnx")) == 1, "no warning for a model that beats it"
    assert _skill_lines({}, tmp_path / "model.onnx") == [], "nothing measured, nothing claimed"


def test_a_constant_series_has_no_correlation_even_when_its_mean_rounds() -> None:
    constant = np.full(53, 43.819452932098805)  # x − mean(x) is ±1e-14, not 0, for such a value
    assert np.any(constant - constant.mean() != 0)
    assert math.isnan(pearson(constant, np.arange(53.0)))
    assert pearson(np.arange(53.0), 3 * np.arange(53.0) + 1) == pytest.approx(1.0)
    assert pearson(np.arange(53.0), -np.arange(53.0)) == pytest.approx(-1.0)
