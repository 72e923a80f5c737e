"""The camera side of a recording: is the hand seen and how surely, frames per second, the running IK
error against the training filter's limit, and how much has been written."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

# The seed guide's label filter, as `mode2 train` applies it (firmware_bridge/session/schema.py
# `Session.valid_pose_mask` defaults; tests/tui/test_record_screen.py keeps the two equal): pose frames
# with an IK error at or above 15 mm, or a detection confidence at or below 0.5, are not used as labels.
IK_ERROR_LIMIT_MM = 15.0
MIN_CONFIDENCE = 0.5


class CameraPanel(Widget):
    """A few labelled lines; what would spoil the labels is red."""

    hand_detected: reactive[bool] = reactive(False)
    """The last processed frame had the hand in it."""
    confidence: reactive[float] = reactive(0.0)
    """The last frame's detection confidence (0 when no hand)."""
    seconds_without_hand: reactive[float] = reactive(0.0)
    """How long the hand has been out of frame (0 while it is seen)."""
    out_of_frame: reactive[bool] = reactive(False)
    """Long enough without the hand for the screen's warning (`GuidanceSnapshot.hand_out_of_frame`)."""
    camera_fps: reactive[float] = reactive(0.0)
    """Frames per second actually processed."""
    ik_error_mm: reactive[float | None] = reactive(None)
    """Running median IK error (None: no fit yet)."""
    emg_samples: reactive[int] = reactive(0)
    """EMG samples written so far."""
    pose_frames: reactive[int] = reactive(0)
    """Pose frames written so far."""

    def render(self) -> Text:
        out = Text(no_wrap=True, overflow="ellipsis")
        out.append("hand    ")
        if self.hand_detected:
            good = self.confidence > MIN_CONFIDENCE
            out.append("seen", style="bold green" if good else "bold yellow")
            out.append(f"  conf {self.confidence:.2f}", style="" if good else "bold yellow")
        else:
            # a blink (a frame or two without the hand) is yellow; red once the screen warns
            out.append(
                f"NOT SEEN {self.seconds_without_hand:.1f} s", style="bold red" if self.out_of_frame else "yellow"
            )
        out.append(f"\ncamera  {self.camera_fps:.1f} fps", style="bold red" if self.camera_fps <= 0 else "")
        out.append("\nIK err  ")
        if self.ik_error_mm is None:
            out.append("— (no fit yet)", style="dim")
        elif self.ik_error_mm < IK_ERROR_LIMIT_MM:
            out.append(f"{self.ik_error_mm:.1f} mm", style="bold green")
            out.append(f" < {IK_ERROR_LIMIT_MM:g} ok", style="dim")
        else:
            out.append(f"{self.ik_error_mm:.1f} mm", style="bold red")
            out.append(f" ≥ {IK_ERROR_LIMIT_MM:g} unused", style="red")
        out.append(f"\nwritten EMG  {self.emg_samples:,}")
        out.append(f"\n        pose {self.pose_frames:,}")
        return out
