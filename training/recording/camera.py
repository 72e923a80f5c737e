"""The recorder's camera: a webcam (`--camera 0`) or a video file standing in for one (`--camera clip.mp4`).

Both hand out `Frame`s stamped on `time.monotonic()`, the clock the EMG thread uses. A webcam is read by
a grabber thread that keeps only the newest picture (a slow consumer gets the latest frame, not a queue
of stale ones; the frames it never saw are counted in `dropped`). A video file is paced in real time at
its own frame rate from the first `read()`: frame k is due at start + k/fps and is stamped with that
time; a consumer that falls behind gets the newest due frame and the skipped ones count as dropped, the
way a real camera drops them. At its end the file loops (said once in `notes`) unless `loop_video=False`.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import cv2
import numpy as np

from firmware_bridge.errors import UserError

DEFAULT_FPS = 30.0  # when a file or a driver does not say its frame rate
WEBCAM_FAILURES_BEFORE_LOST = 60  # consecutive failed grabs (≈ 2 s at 30 fps) before a webcam counts as gone


@dataclass(frozen=True)
class Frame:
    """One picture: RGB uint8 (H,W,3), when it was taken on `time.monotonic()`'s clock, its number."""

    image_rgb: np.ndarray
    t_mono: float
    index: int  # 0, 1, 2, … in delivery order of the source (gaps where frames were dropped)


@dataclass(eq=False)
class Camera(ABC):
    """What the recorder reads from. `read(timeout)` returns the next frame, or None if none came in time."""

    name: str
    fps: float
    size: tuple[int, int]  # (height, width)
    notes: list[str] = field(default_factory=list)  # things worth telling the user (shown and stored)
    dropped: int = 0  # frames the source had but the consumer never received

    @abstractmethod
    def read(self, timeout: float | None = 1.0) -> Frame | None:
        """The next frame, or None if none came within `timeout` seconds."""

    @abstractmethod
    def close(self) -> None:
        """Release the device or file (safe to call twice)."""

    def __enter__(self) -> Camera:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _frame_rate(capture: cv2.VideoCapture) -> float | None:
    fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
    return fps if math.isfinite(fps) and 1.0 <= fps <= 1000.0 else None


class VideoFileCamera(Camera):
    """A video file played as if it were a live webcam (real-time pacing, drops, optional looping)."""

    def __init__(self, path: Path, *, loop_video: bool = True) -> None:
        self.path = path
        self.loop_video = loop_video
        self.loops = 0  # how many times the file has started again from the top
        self.ended = False  # the file ran out and does not loop
        self._capture = self._open()
        ok, first = self._capture.read()
        if not ok or first is None:
            self._capture.release()
            raise UserError(f"--camera {path}: no video frame could be read from it (empty or not a video file)")
        fps = _frame_rate(self._capture)
        notes = []
        if fps is None:
            notes.append(f"video file {path.name} does not state its frame rate; playing it at {DEFAULT_FPS:g} fps")
        super().__init__(name=str(path), fps=fps or DEFAULT_FPS, size=(first.shape[0], first.shape[1]), notes=notes)
        self._pending: np.ndarray | None = first  # the decoded frame the file position is just past
        self._frames_this_pass = 1
        self._start: float | None = None  # monotonic time of frame 0 (the first read)
        self._last = -1

    def _open(self) -> cv2.VideoCapture:
        capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            capture.release()
            raise UserError(f"--camera {self.path}: OpenCV cannot open this video file")
        return capture

    def _advance(self, decode: bool) -> np.ndarray | None:
        """Move to the file's next frame (looping at the end); its BGR picture when `decode`."""
        if self._pending is not None:
            image, self._pending = self._pending, None
            return image
        if not self._capture.grab():
            if not self.loop_video:
                self.ended = True
                return None
            if self.loops == 0:
                self.notes.append(
                    f"video file {self.path.name} ended after {self._frames_this_pass} frames; looping from the start"
                )
            self.loops += 1
            self._capture.release()
            self._capture = self._open()
            self._frames_this_pass = 0
            if not self._capture.grab():
                raise UserError(f"--camera {self.path}: the video file could not be read again from the start")
        self._frames_this_pass += 1
        if not decode:
            return None
        ok, image = self._capture.retrieve()
        if not ok:
            raise UserError(f"--camera {self.path}: frame {self._frames_this_pass} of the video file cannot be decoded")
        return image

    def read(self, timeout: float | None = 1.0) -> Frame | None:
        """The newest frame that is due, waiting (at most `timeout` s) for the next one if none is yet."""
        if self._capture is None:
            raise RuntimeError("Camera.read after close()")
        now = time.monotonic()
        if self._start is None:
            self._start = now
        if self.ended:
            time.sleep(max(0.0, timeout or 0.0))
            return None
        target = max(self._last + 1, int((now - self._start) * self.fps))
        due = self._start + target / self.fps
        if due > now:
            if timeout is not None and due - now > timeout:
                time.sleep(max(0.0, timeout))
                return None
            time.sleep(due - now)
        for _ in range(target - self._last - 1):  # frames the consumer was too slow for
            self._advance(decode=False)
            if self.ended:
                return None
            self.dropped += 1
        image = self._advance(decode=True)
        if image is None:
            return None
        self._last = target
        return Frame(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), due, target)

    def close(self) -> None:
        capture, self._capture = self._capture, None
        if capture is not None:
            capture.release()


class WebcamCamera(Camera):
    """A live camera through OpenCV, read by a grabber thread that keeps only the newest frame."""

    def __init__(self, index: int) -> None:
        self.index = index
        backend = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
        previous = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # our error says it better
        try:
            capture = cv2.VideoCapture(index, backend)
            opened = capture.isOpened()
        finally:
            cv2.utils.logging.setLogLevel(previous)
        if not opened:
            capture.release()
            where = f"/dev/video{index}" if sys.platform.startswith("linux") else f"camera index {index}"
            raise UserError(
                f"--camera {index}: no camera could be opened at index {index} ({where}); check that it is "
                "plugged in (`ls /dev/video*`) and that you may read it (the `video` group), or pass a video file"
            )
        fps = _frame_rate(capture)
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        notes = [] if fps else [f"camera {index} does not report its frame rate; assuming {DEFAULT_FPS:g} fps"]
        super().__init__(name=f"camera {index}", fps=fps or DEFAULT_FPS, size=(height, width), notes=notes)
        self._capture = capture
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._taken = -1
        self._stop = threading.Event()
        self.lost = False
        self._thread = threading.Thread(target=self._grab_loop, name=f"camera-{index}", daemon=True)
        self._thread.start()

    def _grab_loop(self) -> None:
        failures, index = 0, 0
        while not self._stop.is_set():
            ok, image = self._capture.read()
            stamp = time.monotonic()  # when the driver handed it over (≈ capture time + transfer latency)
            if not ok or image is None:
                failures += 1
                if failures >= WEBCAM_FAILURES_BEFORE_LOST:
                    with self._cond:
                        self.lost = True
                        self.notes.append(f"camera {self.index} stopped delivering frames")
                        self._cond.notify_all()
                    return
                self._stop.wait(0.03)
                continue
            failures = 0
            frame = Frame(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), stamp, index)
            index += 1
            with self._cond:
                if self._latest is not None and self._latest.index > self._taken:
                    self.dropped += 1  # replaced before anyone read it
                self._latest = frame
                self._cond.notify_all()

    def read(self, timeout: float | None = 1.0) -> Frame | None:
        """The newest frame not yet returned, waiting at most `timeout` s; None if none came (or the camera is lost)."""
        with self._cond:
            self._cond.wait_for(
                lambda: self.lost or (self._latest is not None and self._latest.index > self._taken), timeout
            )
            frame = self._latest
            if frame is None or frame.index <= self._taken:
                return None
            self._taken = frame.index
            return frame

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        self._capture.release()


def open_camera(spec: str | int | Path, *, loop_video: bool = True) -> Camera:
    """`--camera` → a Camera: an integer (or a string of digits) is a webcam index, anything else a video file."""
    if isinstance(spec, bool):
        raise UserError(f"--camera {spec!r}: expected a camera index or a video file")
    if isinstance(spec, int):
        return WebcamCamera(spec)
    text = str(spec).strip()
    if text.isdigit():
        return WebcamCamera(int(text))
    path = Path(text).expanduser()
    if not path.is_file():
        raise UserError(
            f"--camera {text}: no such video file (and not a camera index such as 0)"
            if not path.exists()
            else f"--camera {text}: not a file"
        )
    return VideoFileCamera(path, loop_video=loop_video)
