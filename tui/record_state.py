"""What the recorder tells its guidance screen (and its headless printer), once per refresh.

Plain frozen dataclasses, no torch, no Textual: the recorder (`training/recording/recorder.py`) builds a
`GuidanceSnapshot` whenever it is asked, and the screen (`tui/record_screen.py`) or the `--headless`
progress printer only reads it. Neither side reaches into the other's objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class PhaseInfo:
    """One phase of the recording protocol (the seed guide's five), already scaled by `--phase-scale`."""

    name: str  # machine name stored in the file: rest, dynamic, gesture_holds, exploration, cool_down
    title: str  # what the screen shows: "Rest / calibration"
    instruction: str  # what the person is asked to do in this phase
    duration_s: float


@dataclass(frozen=True, slots=True)
class GuidanceSnapshot:
    """The recording as it stands now; every time is on the recorder's monotonic clock, in seconds."""

    phases: tuple[PhaseInfo, ...]
    phase_index: int  # index into `phases`; == len(phases) once the protocol is over
    elapsed_s: float  # since the protocol started
    phase_remaining_s: float  # countdown of the current phase
    instruction: str  # the current instruction (names the gesture to hold during gesture holds)
    gesture: str | None  # the gesture being held now, if any
    emg_rms_uv: tuple[float, ...]  # per channel, over the last 250 ms, after the display filter
    emg_flags: tuple[str, ...]  # signal-quality flags raised now (empty: the signal is sound)
    emg_rate_hz: float  # samples per second actually arriving (last 2 s)
    camera_fps: float  # frames per second actually processed (last 2 s)
    hand_detected: bool  # the last processed frame had the hand in it
    mp_confidence: float  # the last frame's detection confidence (0 when no hand)
    ik_error_mm: float | None  # running median IK error over the last second (None: no fit yet)
    seconds_without_hand: float  # how long the hand has been out of frame (0 while it is seen)
    emg_samples: int  # written so far
    pose_frames: int  # written so far
    finished: bool = False  # the protocol ran to its end (or was stopped) and the file is closed
    error: str | None = None  # a fatal problem (armband lost, camera gone): the screen shows it
    notes: tuple[str, ...] = field(default_factory=tuple)  # warnings worth showing (e.g. not-EMG source)

    @property
    def total_s(self) -> float:
        return sum(p.duration_s for p in self.phases)

    @property
    def phase(self) -> PhaseInfo | None:
        return self.phases[self.phase_index] if 0 <= self.phase_index < len(self.phases) else None

    @property
    def hand_out_of_frame(self) -> bool:
        """The warning the screen raises: no hand for more than half a second."""
        return self.seconds_without_hand > 0.5
