"""Volume conduction from muscles to electrode rings around the forearm.

The forearm section is a disc; muscle m is a line source at depth d_m under the skin at angle φ_m.
A bipolar electrode pair (aligned with the fibres) at angle ψ on the skin sees a source with a gain
that falls off with the source–electrode distance: g = 1 / (1 + (r / λ)²)^{3/2}, the dipole-like decay
of a differential recording, λ ≈ 10 mm (Farina & Merletti 2001 give detection volumes of ~10–20 mm
for bipolar surface electrodes). Moving the band along the arm (shift) widens or narrows the spread
and changes overall gain because muscles thin towards the wrist.

Both rings start at the same angle (electrode 0 of the 8-ch band and electrode 0 of the 16-ch band
over the volar midline, going radially), so MindRove electrode i sits over 16-ring position 2i at
nominal placement — the geometry that `ChannelAdapter(init="geometry")` assumes.
"""

from __future__ import annotations

import numpy as np

from training.synth.muscles import MUSCLES
from training.synth.subjects import Placement, Subject

SPREAD_MM = 10.0


def electrode_angles(n: int, rotation_deg: float) -> np.ndarray:
    return (np.arange(n) * 360.0 / n + rotation_deg) % 360.0


def gain_matrix(
    subject: Subject, placement: Placement, n_electrodes: int, extra_rotation_deg: float = 0.0
) -> np.ndarray:
    """(n_electrodes, n_muscles) gains from each muscle source to each bipolar channel."""
    radius = subject.forearm_radius_mm
    muscle_angle = np.radians([m.angle_deg for m in MUSCLES] + subject.muscle_angle_offset_deg)
    depth = np.array([m.depth_mm for m in MUSCLES]) * subject.muscle_depth_scale
    source = np.stack([(radius - depth) * np.cos(muscle_angle), (radius - depth) * np.sin(muscle_angle)], axis=1)
    angles = np.radians(electrode_angles(n_electrodes, placement.rotation_deg + extra_rotation_deg))
    electrodes = np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1)
    distance = np.linalg.norm(electrodes[:, None, :] - source[None, :, :], axis=-1)
    spread = SPREAD_MM * (1.0 + 0.01 * placement.shift_mm)
    gains = 1.0 / (1.0 + (distance / spread) ** 2) ** 1.5
    return gains * (1.0 - 0.008 * placement.shift_mm)
