"""Who wears the armband and how it sits: per-subject anatomy and per-session placement.

Ranges: forearm circumference at the armband 22–30 cm (radius ≈ 35–48 mm; Gordon et al. 1989 ANSUR),
hand size ±6 % between adults (Greiner 1991), muscle position scatter of several degrees and depth
±15 % between people; an armband put on again rotates by roughly ±10–15° and slides ±1–2 cm, which
changes electrode–muscle distances (Hargrove et al. 2006 quote 1 cm shifts as enough to degrade
pattern recognition); skin–electrode impedance changes the noise floor and gain per channel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.synth.muscles import MUSCLES


@dataclass(frozen=True)
class Subject:
    index: int
    bone_scale: float
    forearm_radius_mm: float
    muscle_angle_offset_deg: np.ndarray  # (n_muscles,)
    muscle_depth_scale: np.ndarray  # (n_muscles,)
    muscle_strength: np.ndarray  # (n_muscles,) relative force capacity
    noise_scale: float  # skin impedance → thermal noise level
    mains_hz: float
    seed: int

    @property
    def subject_id(self) -> str:
        return f"s{self.index:02d}"


@dataclass(frozen=True)
class Placement:
    """One donning of the armband(s) for one session."""

    rotation_deg: float
    shift_mm: float  # along the arm; changes spread and overall gain
    channel_gain: np.ndarray  # (8,) MindRove electrode contact quality
    ring_gain: np.ndarray  # (16,) the 16-ch band
    dc_offset_uv: np.ndarray  # (8,) hundreds of mV
    mains_uv: float


def make_subject(index: int, seed: int) -> Subject:
    rng = np.random.default_rng([seed, index, 1])
    n = len(MUSCLES)
    return Subject(
        index=index,
        bone_scale=float(np.clip(rng.normal(1.0, 0.06), 0.85, 1.15)),
        forearm_radius_mm=float(rng.uniform(36.0, 46.0)),
        muscle_angle_offset_deg=rng.normal(0.0, 6.0, n),
        muscle_depth_scale=rng.uniform(0.85, 1.15, n),
        muscle_strength=np.exp(rng.normal(0.0, 0.2, n)),
        noise_scale=float(rng.uniform(0.7, 1.6)),
        mains_hz=50.0 if rng.uniform() < 0.6 else 60.0,
        seed=seed,
    )


def make_placement(subject: Subject, session_index: int) -> Placement:
    rng = np.random.default_rng([subject.seed, subject.index, 2, session_index])
    return Placement(
        rotation_deg=float(rng.normal(0.0, 12.0)),
        shift_mm=float(rng.normal(0.0, 8.0)),
        channel_gain=rng.uniform(0.75, 1.15, 8),
        ring_gain=rng.uniform(0.85, 1.1, 16),
        dc_offset_uv=rng.choice([-1.0, 1.0], 8) * rng.uniform(50e3, 400e3, 8),
        mains_uv=float(rng.uniform(3.0, 25.0)),
    )
