"""Hand model: forward kinematics (torch and numpy), the angle map, MediaPipe order, ONNX export."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from training.hand.angle_map import EMG2POSE_ANGLE_LIMITS, emg2pose_angles_to_mano_pose, mano_pose_to_emg2pose_angles
from training.hand.fk_numpy import forward_kinematics_np
from training.hand.fk_torch import HandForward
from training.hand.open_hand import open_hand_model
from training.hand.skeleton import (
    FINGERS,
    MANO_JOINT_NAMES,
    MANO_PARENTS,
    MANO_TO_MEDIAPIPE,
    MEDIAPIPE_NAMES,
    MEDIAPIPE_TO_MANO,
)

HAND = open_hand_model()
REPO = Path(__file__).resolve().parents[2]


def _descendants(joint: int) -> set[int]:
    out = {joint}
    changed = True
    while changed:
        changed = False
        for j, parent in enumerate(MANO_PARENTS):
            if parent in out and j not in out:
                out.add(j)
                changed = True
    tips = {16 + i for i, p in enumerate((15, 3, 6, 12, 9)) if p in out}
    return out | tips


def test_flat_hand_is_anthropometric() -> None:
    joints = forward_kinematics_np(HAND, np.zeros(45))
    assert joints.shape == (21, 3)
    assert np.allclose(joints[0], 0)
    middle_tip = joints[MANO_JOINT_NAMES.index("middle_tip")]
    assert 0.15 < middle_tip[0] < 0.20, "wrist-to-middle-tip length of an adult hand, in metres"
    for finger, chain in FINGERS.items():
        lengths = np.linalg.norm(np.diff(joints[list(chain)], axis=0), axis=1)
        assert np.all((lengths > 0.012) & (lengths < 0.06)), finger


def test_rotating_one_joint_moves_only_its_descendants() -> None:
    rng = np.random.default_rng(1)
    base = rng.normal(0, 0.2, 45)
    for joint in (1, 5, 13):
        moved = base.copy()
        moved[3 * (joint - 1) : 3 * joint] += (0.3, -0.2, 0.5)
        delta = np.linalg.norm(forward_kinematics_np(HAND, moved) - forward_kinematics_np(HAND, base), axis=1)
        expected = _descendants(joint) - {joint}
        assert set(np.flatnonzero(delta > 1e-9)) == expected


def test_torch_matches_numpy_and_is_differentiable() -> None:
    rng = np.random.default_rng(2)
    pose = rng.normal(0, 0.4, (7, 45))
    pose[0] = 0.0  # exercise the small-angle branch
    orient = rng.normal(0, 0.5, (7, 3))
    betas = rng.normal(0, 1, (7, 10))
    model = HandForward(HAND)
    ref = forward_kinematics_np(HAND, pose, orient, betas)
    pose_t = torch.tensor(pose, dtype=torch.float64, requires_grad=True)
    out = model(pose_t, torch.tensor(orient), torch.tensor(betas))
    assert np.abs(out.detach().numpy() - ref).max() < 1e-6
    out[:, 17].sum().backward()  # index tip
    grad = pose_t.grad.numpy().reshape(7, 15, 3)
    assert np.all(np.isfinite(grad))
    assert np.abs(grad[:, 0:3]).sum() > 0, "index joints move the index tip"
    assert np.abs(grad[:, 3:]).sum() == 0, "other fingers do not"
    assert not any(p.requires_grad for p in model.parameters())


def test_shape_coefficient_zero_scales_the_hand() -> None:
    flat = forward_kinematics_np(HAND, np.zeros(45))
    bigger = forward_kinematics_np(HAND, np.zeros(45), betas=np.r_[1.0, np.zeros(9)])
    assert np.linalg.norm(bigger[18]) == pytest.approx(1.05 * np.linalg.norm(flat[18]), rel=1e-6)


def test_angle_map_fist_and_open_and_inverse() -> None:
    lo, hi = EMG2POSE_ANGLE_LIMITS.T
    fist = np.zeros(20)
    flex = [5, 6, 7, 9, 10, 11, 13, 14, 15, 17, 18, 19]
    fist[flex] = 0.9 * hi[flex]
    fist[[0, 2, 3]] = 0.7
    closed = forward_kinematics_np(HAND, emg2pose_angles_to_mano_pose(fist))
    opened = forward_kinematics_np(HAND, emg2pose_angles_to_mano_pose(np.zeros(20)))
    tips = [17, 18, 19, 20]
    assert np.all(np.linalg.norm(closed[tips], axis=1) < 0.75 * np.linalg.norm(opened[tips], axis=1))
    assert np.all(closed[tips, 1] < -0.015), "flexion curls the fingers towards the palm (−y)"
    rng = np.random.default_rng(3)
    angles = rng.uniform(lo, hi, (50, 20))
    assert np.abs(mano_pose_to_emg2pose_angles(emg2pose_angles_to_mano_pose(angles)) - angles).max() < 1e-9
    single = emg2pose_angles_to_mano_pose(angles.astype(np.float32))
    assert single.dtype == np.float32, "float32 in, float32 out (the windows are float32)"
    assert np.abs(single - emg2pose_angles_to_mano_pose(angles)).max() < 1e-5


def test_mediapipe_order() -> None:
    assert sorted(MANO_TO_MEDIAPIPE.tolist()) == list(range(21))
    assert np.array_equal(MANO_TO_MEDIAPIPE[MEDIAPIPE_TO_MANO], np.arange(21))
    named = {mp: MANO_JOINT_NAMES[i] for mp, i in zip(MEDIAPIPE_NAMES, MANO_TO_MEDIAPIPE, strict=True)}
    assert named["WRIST"] == "wrist"
    assert named["THUMB_TIP"] == "thumb_tip"
    assert named["INDEX_FINGER_MCP"] == "index1"
    assert named["PINKY_DIP"] == "pinky3"
    assert named["RING_FINGER_TIP"] == "ring_tip"


def test_hand_forward_exports_to_onnx(tmp_path: Path) -> None:
    model = HandForward(HAND).eval()
    pose = torch.randn(4, 45) * 0.4
    path = tmp_path / "hand.onnx"
    torch.onnx.export(
        model,
        (pose,),
        str(path),
        input_names=["pose"],
        output_names=["joints"],
        opset_version=17,
        dynamic_axes={"pose": {0: "batch"}},
        dynamo=False,
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    other = (torch.randn(3, 45) * 0.4).numpy()
    out = session.run(None, {"pose": other})[0]
    assert np.abs(out - forward_kinematics_np(HAND, other)).max() < 1e-6


def test_numpy_side_of_the_hand_model_never_loads_torch() -> None:
    """The synthetic world and evaluation use tables, angle map and numpy FK; torch stays unloaded."""
    probe = (
        "import sys\n"
        "import training.hand.skeleton, training.hand.open_hand, training.hand.angle_map\n"
        "import training.hand.fk_numpy, training.hand.mano_hand\n"
        "print('torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO)
    assert result.stdout.strip() == "False"
