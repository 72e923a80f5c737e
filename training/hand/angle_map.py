"""emg2pose's 20 finger angles (names, limits) and the linear map between them and MANO's 45-D pose θ.

Every emg2pose DOF is a rotation about a fixed axis of one MANO joint, in the open skeleton's hand frame
(docs/HAND_MODEL.md). Numpy only; torch users take `ANGLES_TO_POSE` as a weight (training/models).
"""

from __future__ import annotations

import numpy as np

from training.hand.open_hand import THUMB_AXIS

# emg2pose's 20 outputs (UmeTrack order) and their joint limits in radians (emg2pose-facts.md a.2).
EMG2POSE_ANGLE_NAMES: tuple[str, ...] = (
    "THUMB_CMC_FE",
    "THUMB_CMC_AA",
    "THUMB_MCP_FE",
    "THUMB_IP_FE",
    "INDEX_MCP_AA",
    "INDEX_MCP_FE",
    "INDEX_PIP_FE",
    "INDEX_DIP_FE",
    "MIDDLE_MCP_AA",
    "MIDDLE_MCP_FE",
    "MIDDLE_PIP_FE",
    "MIDDLE_DIP_FE",
    "RING_MCP_AA",
    "RING_MCP_FE",
    "RING_PIP_FE",
    "RING_DIP_FE",
    "PINKY_MCP_AA",
    "PINKY_MCP_FE",
    "PINKY_PIP_FE",
    "PINKY_DIP_FE",
)
EMG2POSE_ANGLE_LIMITS = np.array(
    [
        [-0.787, 1.287],
        [-0.612, 0.612],
        [0.0, 1.287],
        [-0.259, 1.087],
        [-0.337, 0.487],
        [-0.287, 1.337],
        [0.0, 1.882],
        [0.0, 1.434],
        [-0.487, 0.287],
        [-0.287, 1.437],
        [0.0, 1.882],
        [0.0, 1.434],
        [-0.287, 0.287],
        [-0.287, 1.537],
        [0.0, 1.882],
        [0.0, 1.434],
        [-0.687, 0.487],
        [-0.487, 1.637],
        [0.0, 1.882],
        [0.0, 1.434],
    ],
    dtype=np.float32,
)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _motion_axis(direction: np.ndarray, towards: np.ndarray) -> np.ndarray:
    """Rotation axis that swings a bone pointing along `direction` towards `towards`."""
    return _unit(np.cross(direction, towards))


def _angle_axes() -> np.ndarray:
    """(20, 45) matrix A with θ = A·angles: each emg2pose DOF is a rotation about a fixed axis of a
    MANO joint. Flexion swings a bone towards the palm (−y); finger ab/adduction (positive) swings it
    towards the thumb side (−z); thumb CMC flexion swings the thumb across the palm (towards +z) and
    CMC ab/adduction lifts it out of the palm plane (towards −y)."""
    matrix = np.zeros((20, 45))
    palm = np.array([0.0, -1.0, 0.0])
    radial = np.array([0.0, 0.0, -1.0])

    def put(angle: int, joint: int, axis: np.ndarray) -> None:
        matrix[angle, 3 * (joint - 1) : 3 * joint] = axis

    thumb = THUMB_AXIS
    across = _unit(np.array([-thumb[2], 0.0, thumb[0]]))  # normal to the thumb in the palm plane, towards +z
    lift = _unit(palm - np.dot(palm, thumb) * thumb - np.dot(palm, across) * across)
    put(0, 13, _motion_axis(thumb, across))  # THUMB_CMC_FE
    put(1, 13, _motion_axis(thumb, lift))  # THUMB_CMC_AA
    curl = _unit(across + lift)
    put(2, 14, _motion_axis(thumb, curl))  # THUMB_MCP_FE
    put(3, 15, _motion_axis(thumb, curl))  # THUMB_IP_FE
    forward = np.array([1.0, 0.0, 0.0])
    for first, (mcp, pip, dip) in zip((4, 8, 12, 16), ((1, 2, 3), (4, 5, 6), (10, 11, 12), (7, 8, 9)), strict=True):
        put(first, mcp, _motion_axis(forward, radial))  # MCP_AA
        put(first + 1, mcp, _motion_axis(forward, palm))  # MCP_FE
        put(first + 2, pip, _motion_axis(forward, palm))  # PIP_FE
        put(first + 3, dip, _motion_axis(forward, palm))  # DIP_FE
    return matrix


ANGLES_TO_POSE = _angle_axes()
POSE_TO_ANGLES = np.linalg.pinv(ANGLES_TO_POSE)  # least-squares inverse (45 → 20)


def emg2pose_angles_to_mano_pose(angles: np.ndarray) -> np.ndarray:
    """(...,20) emg2pose angles (rad) → (...,45) MANO axis-angle θ of the open skeleton's convention."""
    return _matmul_last(angles, ANGLES_TO_POSE)


def mano_pose_to_emg2pose_angles(pose: np.ndarray) -> np.ndarray:
    """(...,45) θ → (...,20): least-squares projection onto the 20 DOF axes (exact on their span)."""
    return _matmul_last(pose, POSE_TO_ANGLES)


def _matmul_last(values: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """`values @ matrix`, keeping a floating dtype of `values` (float32 in, float32 out)."""
    values = np.asarray(values)
    return values @ matrix.astype(values.dtype if values.dtype.kind == "f" else np.float64)
