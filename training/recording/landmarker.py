"""The camera's hand tracker: MediaPipe Tasks `HandLandmarker` in VIDEO mode, one frame at a time.

Handedness and chirality (measured with `mediapipe` 1.2.3 on rendered images of our right hand,
tests/recording/test_landmarker.py): given the picture as a camera delivers it (not mirrored), the Tasks
API's handedness label names the hand actually shown, and its world landmarks have that hand's chirality
(a right hand's world landmarks match the known right hand better by a proper rotation than by a
reflection, 30/30 frames; the left-right mirrored picture is labelled "Left" and matches better by a
reflection, 30/30). The documented "assumes mirrored selfie input" does not describe this label.
So the tracker always feeds MediaPipe the unmirrored picture: with `mirrored_input=True` (a selfie-style
camera that flips its frames) it flips the frame back first, and maps the image landmarks' x back to the
frame it was given. `handedness` is then the person's real hand.

World landmarks are returned as observed, in the real hand's chirality: a right hand's for `hand="right"`,
a left hand's for `hand="left"` (the caller mirrors x before the right-hand IK, and stores them as
observed).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np

from firmware_bridge.errors import UserError
from training.recording.hand_model_file import resolve_hand_model

HANDS = ("right", "left")


@dataclass(frozen=True)
class HandObservation:
    """One tracked hand in one frame."""

    world_landmarks: np.ndarray  # (21,3) float64 metres, MediaPipe order, origin near the hand's centre,
    # in the real hand's chirality (a left hand's for a left hand: mirror x before a right-hand IK)
    image_landmarks: np.ndarray  # (21,3) float64: x, y in [0,1] of the frame as given, z relative depth
    handedness: str  # "Right" / "Left": the person's real hand
    score: float  # MediaPipe's handedness confidence for this hand (stored as mp_confidence)


@contextmanager
def _native_stderr_captured(sink: list[str]) -> Iterator[None]:
    """Send what native code writes to file descriptor 2 into `sink` for the duration.

    MediaPipe's C++ logs (LiteRT/XNNPACK banners, alignment warnings) go straight to fd 2 when the
    landmarker is created, runs its first frame and closes; on a Textual screen that would scribble over
    the display. Anything else written to fd 2 in that window lands in `sink` too (kept, not lost)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2 (embedded interpreters): nothing to capture
        yield
        return
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            log.seek(0)
            text = log.read().decode("utf-8", errors="replace")
            if text:
                sink.append(text)


class HandTracker:
    """MediaPipe's HandLandmarker over a stream of frames (VIDEO mode: it tracks between frames).

    Use as a context manager or call `close()`: the native graph holds threads and memory.

    `num_hands=1` (default) tracks one hand and is the fast path (measured 640×480: ≈ 12 ms a frame while
    tracking); with `num_hands=2` MediaPipe runs its palm detector on every frame in which fewer than two
    hands are tracked (≈ 27 ms a frame with one hand in view) but finds the chosen hand when both are in
    the picture (with 1 it may lock onto the other hand, and `detect` then returns None until it leaves).

        with HandTracker(None) as tracker:  # None: the default model location
            obs = tracker.detect(frame_rgb, timestamp_ms)
    """

    def __init__(
        self,
        model_path: str | Path | None,
        *,
        hand: str = "right",
        mirrored_input: bool = False,
        min_detection_confidence: float = 0.5,
        min_presence_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        num_hands: int = 1,
        quiet_native_logs: bool = True,
    ) -> None:
        self._landmarker = None
        if hand not in HANDS:
            raise UserError(f"--hand {hand!r}: expected one of {', '.join(HANDS)}")
        self.model_path = resolve_hand_model(model_path)
        self.hand = hand
        self.mirrored_input = mirrored_input
        self.native_log: list[str] = []  # what MediaPipe's native code printed (see _native_stderr_captured)
        self._quiet = quiet_native_logs
        self._last_timestamp_ms: int | None = None
        self._frames = 0

        from mediapipe.tasks.python import BaseOptions, vision  # heavy: only when a tracker is made

        options = vision.HandLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(self.model_path)),
            running_mode=vision.RunningMode.VIDEO,
            num_hands=num_hands,
            min_hand_detection_confidence=min_detection_confidence,
            min_hand_presence_confidence=min_presence_confidence,
            min_tracking_confidence=min_tracking_confidence,
        )
        try:
            with self._quietly():
                self._landmarker = vision.HandLandmarker.create_from_options(options)
        except (RuntimeError, ValueError) as error:  # a zip with the right names but networks it cannot run
            raise UserError(
                f"hand model {self.model_path}: MediaPipe cannot load it ({' '.join(str(error).split())[:300]}); "
                "rebuild it with `mode2 get-hand-model --force`"
            ) from error

    @contextmanager
    def _quietly(self) -> Iterator[None]:
        if self._quiet:
            with _native_stderr_captured(self.native_log):
                yield
        else:
            yield

    @property
    def last_timestamp_ms(self) -> int | None:
        return self._last_timestamp_ms

    @property
    def closed(self) -> bool:
        return self._landmarker is None

    def detect(self, image_rgb: np.ndarray, timestamp_ms: int) -> HandObservation | None:
        """Track the hand in one RGB frame (H,W,3) uint8 taken at `timestamp_ms` (strictly increasing
        integers, e.g. milliseconds of the recorder's monotonic clock). None when the chosen hand is not
        seen."""
        if self._landmarker is None:
            raise RuntimeError("HandTracker.detect after close()")
        image = np.asarray(image_rgb)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"detect needs an (H,W,3) uint8 RGB image, got shape {image.shape} dtype {image.dtype}")
        stamp = int(timestamp_ms)
        if stamp != timestamp_ms:
            raise ValueError(f"timestamp_ms must be a whole number of milliseconds, got {timestamp_ms!r}")
        if self._last_timestamp_ms is not None and stamp <= self._last_timestamp_ms:
            raise ValueError(
                f"frame timestamps must increase: {stamp} ms after {self._last_timestamp_ms} ms "
                "(MediaPipe's VIDEO mode tracks through time and refuses a frame that is not newer)"
            )
        if self.mirrored_input:
            image = image[:, ::-1]
        import mediapipe as mp

        frame = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image))
        if self._frames == 0:
            with self._quietly():  # the first frame prints LiteRT's one-off warnings
                result = self._landmarker.detect_for_video(frame, stamp)
        else:
            result = self._landmarker.detect_for_video(frame, stamp)
        self._last_timestamp_ms = stamp
        self._frames += 1
        return self._pick(result)

    def _pick(self, result) -> HandObservation | None:
        """The detected hand that is the person's `self.hand`, the most confident if two claim to be."""
        best: HandObservation | None = None
        for world, landmarks, categories in zip(
            result.hand_world_landmarks, result.hand_landmarks, result.handedness, strict=True
        ):
            top = max(categories, key=lambda category: category.score)
            # unmirrored picture in, so the label is the real hand (see the module docstring)
            label = str(top.category_name)
            if label.lower() != self.hand:
                continue
            world_xyz = np.array([[p.x, p.y, p.z] for p in world], dtype=np.float64)
            image_xyz = np.array([[p.x, p.y, p.z] for p in landmarks], dtype=np.float64)
            if self.mirrored_input:
                image_xyz[:, 0] = 1.0 - image_xyz[:, 0]  # back into the frame as it was given
            observation = HandObservation(world_xyz, image_xyz, label, float(top.score))
            if best is None or observation.score > best.score:
                best = observation
        return best

    def close(self) -> None:
        """Release the native graph; safe to call twice."""
        landmarker, self._landmarker = self._landmarker, None
        if landmarker is not None:
            with self._quietly():
                landmarker.close()

    def __enter__(self) -> HandTracker:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
