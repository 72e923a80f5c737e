"""The recording protocol `mode2 record` guides a person through: the seed guide's five phases.

rest 30 s · dynamic movements 2 min · gesture holds 30 s · free exploration 30 s · cool-down 30 s (4 min in
all; the names are the synthetic world's, `training.synth.motion.PHASES`). During the gesture holds the
screen names one gesture at a time (the synthetic world's `GESTURES` except rest): get ready, hold it
`HOLD_S`, release `RELEASE_S`, next. Each hold is stored as a gesture label (start/end of the hold).

`--phase-scale` multiplies every duration (phases, holds and releases alike), so a demo or a test runs
the whole protocol in seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from firmware_bridge.errors import UserError
from training.synth.motion import GESTURES, PHASES
from tui.record_state import PhaseInfo

LEAD_IN_S = 1.0  # "get ready" before the first hold of the gesture phase
HOLD_S = 3.0  # each gesture is held this long (the world holds 2.5–4.5 s)
RELEASE_S = 1.0  # relax between two holds
HOLD_GESTURES: tuple[str, ...] = tuple(name for name in GESTURES if name != "rest")

_TEXT: dict[str, tuple[str, str]] = {
    "rest": (
        "Rest / calibration",
        "Rest your forearm on the table, hand relaxed and open, palm towards the camera. Keep still: "
        "this measures your resting EMG and the size of your hand.",
    ),
    "dynamic": (
        "Dynamic movements",
        "Move your fingers, slowly at first, then faster: open and close the hand, bend each finger in turn, "
        "touch your thumb to each fingertip, spread and close the fingers. Keep the hand in view.",
    ),
    "gesture_holds": (
        "Gesture holds",
        "Make the gesture named on the screen and hold it firmly until it says release.",
    ),
    "exploration": (
        "Free exploration",
        "Move your hand any way you like: any finger combination, any speed, small and large movements. "
        "Stay in view of the camera.",
    ),
    "cool_down": (
        "Cool-down",
        "Relax your hand and rest it as at the start. Keep still until the end.",
    ),
}

_GESTURE_WORDS: dict[str, str] = {
    "open": "an OPEN hand, fingers spread",
    "fist": "a FIST",
    "point": "POINT with your index finger",
    "pinch": "a PINCH: thumb tip to index tip",
    "peace": "PEACE: index and middle finger up",
    "thumbs_up": "THUMBS UP",
    "tripod": "a TRIPOD: thumb, index and middle tips together",
}


@dataclass(frozen=True, slots=True)
class GestureSlot:
    """One hold of the gesture phase, in seconds from the start of that phase (already scaled)."""

    label: str
    start_s: float
    end_s: float

    @property
    def words(self) -> str:
        return _GESTURE_WORDS.get(self.label, self.label.replace("_", " ").upper())


def check_phase_scale(phase_scale: float) -> float:
    """The scale as a float; UserError unless it is a finite number > 0."""
    try:
        scale = float(phase_scale)
    except (TypeError, ValueError) as error:
        raise UserError(
            f"--phase-scale {phase_scale!r}: must be a number > 0 (1.0 = the full 4-minute protocol)"
        ) from error
    if not math.isfinite(scale) or scale <= 0:
        raise UserError(f"--phase-scale {phase_scale!r}: must be a number > 0 (1.0 = the full 4-minute protocol)")
    return scale


def protocol(phase_scale: float = 1.0) -> tuple[PhaseInfo, ...]:
    """The five phases, every duration multiplied by `phase_scale` (> 0, else UserError)."""
    scale = check_phase_scale(phase_scale)
    return tuple(PhaseInfo(name, *_TEXT[name], duration * scale) for name, duration in PHASES)


def gesture_schedule(phase_scale: float = 1.0) -> tuple[GestureSlot, ...]:
    """The holds of the gesture phase: each gesture once, in the world's order, as many as fit the phase."""
    scale = check_phase_scale(phase_scale)
    length = dict(PHASES)["gesture_holds"] * scale
    slots: list[GestureSlot] = []
    t = LEAD_IN_S * scale
    for label in HOLD_GESTURES:
        end = t + HOLD_S * scale
        if end > length + 1e-9:
            break
        slots.append(GestureSlot(label, t, end))
        t = end + RELEASE_S * scale
    return tuple(slots)


def phase_at(phases: tuple[PhaseInfo, ...], elapsed_s: float) -> tuple[int, float]:
    """(index of the phase running `elapsed_s` into the protocol, seconds left in it); index == len(phases)
    and 0 s left once the protocol is over."""
    start = 0.0
    for index, phase in enumerate(phases):
        end = start + phase.duration_s
        if elapsed_s < end:
            return index, end - elapsed_s
        start = end
    return len(phases), 0.0


def phase_start(phases: tuple[PhaseInfo, ...], index: int) -> float:
    """Seconds from the protocol start to the start of phase `index`."""
    return sum(p.duration_s for p in phases[:index])


def gesture_instruction(slots: tuple[GestureSlot, ...], into_phase_s: float) -> tuple[str, str | None]:
    """What the screen says `into_phase_s` into the gesture phase, and the gesture held then (None between)."""
    for i, slot in enumerate(slots):
        if into_phase_s < slot.start_s:
            what = "Get ready" if i == 0 else "Release and relax"
            return f"{what} — next: {slot.words} in {math.ceil(slot.start_s - into_phase_s)} s", None
        if into_phase_s < slot.end_s:
            return f"Hold {slot.words} — {math.ceil(slot.end_s - into_phase_s)} s", slot.label
    return "Release and relax — the gesture holds are done", None
