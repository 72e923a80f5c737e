"""A user's MANO file (`MANO_RIGHT.pkl`) as `HandModelParams`: joints from MANO's regressor, fingertips
from five mesh vertices skinned with MANO's weights and pose correctives. The file itself is read by
`mano_loader.load_mano_arrays` (no chumpy, nothing executed)."""

from __future__ import annotations

import numpy as np

from training.hand.mano_loader import load_mano_arrays
from training.hand.params import HandModelParams

# mesh vertices at the tips of thumb, index, middle, ring, pinky (the usual MANO fingertip choice)
MANO_TIP_VERTICES = np.array([745, 317, 444, 556, 673], dtype=np.int64)


def load_mano(path: str, flat_hand_mean: bool = True) -> HandModelParams:
    """A user's MANO_RIGHT.pkl (original chumpy pickle or numpy-converted), loaded without chumpy.

    `flat_hand_mean=True` makes θ = 0 the flat hand; with False, MANO's `hands_mean` is added to every
    pose (MANO's own default, where θ = 0 is a relaxed, slightly curled hand).
    """
    arrays = load_mano_arrays(path)
    v_template = arrays["v_template"]
    regressor = arrays["J_regressor"]
    shapedirs = arrays["shapedirs"]
    return HandModelParams(
        kind="mano",
        joints_rest=regressor @ v_template,
        joints_shapedirs=np.einsum("jv,vcs->jcs", regressor, shapedirs),
        tips_rest=v_template[MANO_TIP_VERTICES],
        tips_shapedirs=shapedirs[MANO_TIP_VERTICES],
        tips_posedirs=arrays["posedirs"][MANO_TIP_VERTICES],
        tips_weights=arrays["weights"][MANO_TIP_VERTICES],
        hands_mean=np.zeros(45) if flat_hand_mean else arrays["hands_mean"].reshape(45),
        source=f"MANO file {path} (flat_hand_mean={flat_hand_mean})",
    )
