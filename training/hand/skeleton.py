"""The hand's joint layout: MANO's 21 joints (names, parents, fingers) and MediaPipe's landmark order.

Conventions (docs/HAND_MODEL.md has the sources): 21 joints in MANO order (`MANO_JOINT_NAMES`) — 0 wrist,
1–15 the finger joints (proximal → distal per finger), 16–20 the fingertips of thumb, index, middle,
ring and pinky; metres, wrist at the origin. Plain tables, numpy only.
"""

from __future__ import annotations

import numpy as np

MANO_JOINT_NAMES: tuple[str, ...] = (
    "wrist",
    "index1",
    "index2",
    "index3",
    "middle1",
    "middle2",
    "middle3",
    "pinky1",
    "pinky2",
    "pinky3",
    "ring1",
    "ring2",
    "ring3",
    "thumb1",
    "thumb2",
    "thumb3",
    "thumb_tip",
    "index_tip",
    "middle_tip",
    "ring_tip",
    "pinky_tip",
)
# parent of each of MANO's 16 articulated joints (the wrist has none)
MANO_PARENTS = np.array([-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14], dtype=np.int64)
TIP_PARENTS = np.array([15, 3, 6, 12, 9], dtype=np.int64)  # distal joint of thumb, index, middle, ring, pinky
FINGERS: dict[str, tuple[int, ...]] = {
    "thumb": (13, 14, 15, 16),
    "index": (1, 2, 3, 17),
    "middle": (4, 5, 6, 18),
    "ring": (10, 11, 12, 19),
    "pinky": (7, 8, 9, 20),
}

MEDIAPIPE_NAMES: tuple[str, ...] = (
    "WRIST",
    "THUMB_CMC",
    "THUMB_MCP",
    "THUMB_IP",
    "THUMB_TIP",
    "INDEX_FINGER_MCP",
    "INDEX_FINGER_PIP",
    "INDEX_FINGER_DIP",
    "INDEX_FINGER_TIP",
    "MIDDLE_FINGER_MCP",
    "MIDDLE_FINGER_PIP",
    "MIDDLE_FINGER_DIP",
    "MIDDLE_FINGER_TIP",
    "RING_FINGER_MCP",
    "RING_FINGER_PIP",
    "RING_FINGER_DIP",
    "RING_FINGER_TIP",
    "PINKY_MCP",
    "PINKY_PIP",
    "PINKY_DIP",
    "PINKY_TIP",
)
# mediapipe_order = mano_joints[..., MANO_TO_MEDIAPIPE, :]
MANO_TO_MEDIAPIPE = np.array([0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20])
MEDIAPIPE_TO_MANO = np.argsort(MANO_TO_MEDIAPIPE)
