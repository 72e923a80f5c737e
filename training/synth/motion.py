"""Hand motion for one synthetic session, following the seed guide's 5-phase recording protocol.

Motion is produced as the 20 emg2pose angles (radians, UmeTrack order) at `MOTION_RATE` Hz plus a
grip-force signal (0…1, isometric effort while holding a gesture) and gesture labels. Movements are
minimum-jerk transitions (Flash & Hogan 1985) between targets; fingers are coupled the way real hands
are (DIP ≈ 0.7·PIP for the long fingers — Rijpkema & Girard 1991; neighbouring fingers are "enslaved"
by 10–30 % — Zatsiorsky et al. 2000) and every angle stays inside emg2pose's joint limits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from training.hand.angle_map import EMG2POSE_ANGLE_LIMITS

MOTION_RATE = 100.0  # Hz
PHASES: tuple[tuple[str, float], ...] = (
    ("rest", 30.0),
    ("dynamic", 120.0),
    ("gesture_holds", 30.0),
    ("exploration", 30.0),
    ("cool_down", 30.0),
)  # the seed guide's protocol: 4 minutes in all

# Index groups in the 20-angle vector
THUMB = (0, 1, 2, 3)
FINGER_AA = (4, 8, 12, 16)
FINGER_MCP = (5, 9, 13, 17)
FINGER_PIP = (6, 10, 14, 18)
FINGER_DIP = (7, 11, 15, 19)
LO, HI = EMG2POSE_ANGLE_LIMITS[:, 0].astype(np.float64), EMG2POSE_ANGLE_LIMITS[:, 1].astype(np.float64)

# Enslaving: how much a command to finger i flexes finger j (index, middle, ring, pinky).
ENSLAVING = np.array(
    [
        [1.00, 0.20, 0.08, 0.05],
        [0.15, 1.00, 0.30, 0.10],
        [0.06, 0.30, 1.00, 0.35],
        [0.04, 0.12, 0.40, 1.00],
    ]
)


def _pose(
    thumb: tuple[float, float, float, float], fingers: tuple[float, float, float, float], spread: float = 0.0
) -> np.ndarray:
    """A pose from thumb angles and one flexion level (0 open … 1 closed) per long finger."""
    angles = np.zeros(20)
    angles[list(THUMB)] = thumb
    for k, level in enumerate(fingers):
        angles[FINGER_MCP[k]] = level * 1.25
        angles[FINGER_PIP[k]] = level * 1.55
        angles[FINGER_DIP[k]] = 0.7 * level * 1.55
    angles[list(FINGER_AA)] = np.array([0.20, 0.0, -0.12, -0.30]) * spread
    return angles


GESTURES: dict[str, np.ndarray] = {
    "rest": _pose((0.20, 0.10, 0.15, 0.10), (0.25, 0.28, 0.30, 0.32)),
    "open": _pose((-0.30, 0.40, 0.0, 0.0), (0.0, 0.0, 0.0, 0.0), spread=1.0),
    "fist": _pose((0.90, 0.0, 0.80, 0.70), (0.95, 0.95, 0.95, 0.95)),
    "point": _pose((0.80, 0.0, 0.70, 0.60), (0.0, 0.92, 0.95, 0.95)),
    "pinch": _pose((0.75, 0.35, 0.45, 0.30), (0.50, 0.15, 0.12, 0.12)),
    "peace": _pose((0.85, 0.0, 0.70, 0.60), (0.0, 0.0, 0.95, 0.95), spread=0.8),
    "thumbs_up": _pose((-0.40, 0.50, 0.0, 0.0), (0.95, 0.95, 0.95, 0.95)),
    "tripod": _pose((0.70, 0.30, 0.45, 0.30), (0.50, 0.50, 0.15, 0.12)),
}


@dataclass
class Motion:
    time: np.ndarray  # (T,) s at MOTION_RATE
    angles: np.ndarray  # (T,20) rad
    grip: np.ndarray  # (T,) 0…1 isometric effort
    phases: list[tuple[str, float, float]] = field(default_factory=list)
    gestures: list[tuple[str, float, float]] = field(default_factory=list)


def _min_jerk(n: int) -> np.ndarray:
    s = np.linspace(0.0, 1.0, n)
    return 10 * s**3 - 15 * s**4 + 6 * s**5


def _couple(angles: np.ndarray) -> np.ndarray:
    """Apply finger enslaving and the DIP–PIP coupling, then clip to the joint limits."""
    out = angles.copy()
    mcp = angles[list(FINGER_MCP)]
    pip = angles[list(FINGER_PIP)]
    out[list(FINGER_MCP)] = ENSLAVING @ mcp / ENSLAVING.sum(axis=1)
    out[list(FINGER_PIP)] = ENSLAVING @ pip / ENSLAVING.sum(axis=1)
    out[list(FINGER_DIP)] = 0.7 * out[list(FINGER_PIP)] + 0.3 * angles[list(FINGER_DIP)] * 0.3
    return np.clip(out, LO, HI)


class _Composer:
    """Appends minimum-jerk segments and holds; keeps the current pose and the clock."""

    def __init__(self, start: np.ndarray, rng: np.random.Generator) -> None:
        self.rng = rng
        self.current = start.copy()
        self.chunks: list[np.ndarray] = []
        self.grips: list[np.ndarray] = []
        self.samples = 0

    @property
    def now(self) -> float:
        return self.samples / MOTION_RATE

    def move(self, target: np.ndarray, duration: float, grip: float = 0.0) -> None:
        n = max(2, round(duration * MOTION_RATE))
        target = _couple(target)
        profile = _min_jerk(n)[:, None]
        segment = self.current + (target - self.current) * profile
        self._push(segment, np.full(n, grip * 0.3))
        self.current = target

    def hold(self, duration: float, grip: float = 0.0, tremor: float = 0.004) -> None:
        n = max(1, round(duration * MOTION_RATE))
        wobble = self.rng.normal(0.0, tremor, (n, 20))
        wobble = np.cumsum(wobble, axis=0) * 0.05 + wobble * 0.3  # slow physiological sway + tremor
        grip_curve = np.full(n, grip)
        ramp = min(n, int(0.3 * MOTION_RATE))
        if ramp and grip:
            grip_curve[:ramp] = np.linspace(0.0, grip, ramp)
        self._push(np.clip(self.current + wobble, LO, HI), grip_curve)

    def _push(self, angles: np.ndarray, grip: np.ndarray) -> None:
        self.chunks.append(angles)
        self.grips.append(grip)
        self.samples += len(angles)


def _random_target(rng: np.random.Generator, wide: bool) -> np.ndarray:
    """A plausible target: mostly single-finger or synergy moves, sometimes anything in range."""
    kind = rng.choice(
        ["finger", "synergy", "thumb", "any"], p=[0.35, 0.3, 0.15, 0.2] if not wide else [0.2, 0.2, 0.1, 0.5]
    )
    base = GESTURES["rest"].copy()
    if kind == "finger":
        levels = np.full(4, rng.uniform(0.1, 0.35))
        levels[rng.integers(4)] = rng.uniform(0.0, 1.0)
        base = _pose(tuple(base[list(THUMB)]), tuple(levels), spread=rng.uniform(-0.3, 0.8))
    elif kind == "synergy":
        level = rng.uniform(0.0, 1.0)
        base = _pose(
            (0.2 + 0.6 * level, rng.uniform(-0.2, 0.4), 0.6 * level, 0.5 * level),
            tuple(np.clip(level + rng.normal(0, 0.1, 4), 0, 1)),
            spread=rng.uniform(0.0, 1.0) * (1 - level),
        )
    elif kind == "thumb":
        base[list(THUMB)] = rng.uniform(LO[list(THUMB)], HI[list(THUMB)])
    else:
        base = rng.uniform(LO, HI)
        base[list(FINGER_AA)] *= 0.6
    return base


def generate_motion(minutes: float, rng: np.random.Generator, speed: float = 1.0) -> Motion:
    """The 5-phase protocol scaled to `minutes` (4 minutes = the guide's durations)."""
    scale = minutes * 60.0 / sum(d for _, d in PHASES)
    comp = _Composer(GESTURES["rest"], rng)
    phases: list[tuple[str, float, float]] = []
    gestures: list[tuple[str, float, float]] = []
    for name, base_duration in PHASES:
        start = comp.now
        end = start + base_duration * scale
        if name == "rest":
            while comp.now < end:
                comp.hold(min(2.0, end - comp.now), tremor=0.002)
        elif name in ("dynamic", "exploration"):
            wide = name == "exploration"
            while comp.now < end:
                target = _random_target(rng, wide)
                distance = np.abs(target - comp.current).max()
                # peak angular speed of finger joints ~1.5–4 rad/s (faster when exploring)
                peak = rng.uniform(1.5, 4.0 if wide else 3.0) * speed
                duration = float(np.clip(1.875 * distance / peak, 0.25, 1.5))
                comp.move(target, duration)
                comp.hold(rng.uniform(0.05, 0.4 if wide else 0.6), grip=rng.uniform(0.0, 0.3))
        elif name == "gesture_holds":
            names = [g for g in GESTURES if g != "rest"]
            while comp.now < end - 1.0:
                label = names[rng.integers(len(names))]
                comp.move(GESTURES[label], rng.uniform(0.4, 0.8))
                hold_start = comp.now
                comp.hold(min(rng.uniform(2.5, 4.5), max(0.5, end - comp.now)), grip=rng.uniform(0.3, 0.9))
                gestures.append((label, hold_start, comp.now))
        else:  # cool_down
            comp.move(GESTURES["rest"], min(2.0, end - comp.now))
            while comp.now < end:
                comp.hold(min(2.0, end - comp.now), tremor=0.002)
        phases.append((name, start, comp.now))
    angles = np.concatenate(comp.chunks)
    grip = np.concatenate(comp.grips)
    time = np.arange(len(angles)) / MOTION_RATE
    return Motion(time=time, angles=angles.astype(np.float64), grip=grip, phases=phases, gestures=gestures)
