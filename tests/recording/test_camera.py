"""The recorder's camera: a real mp4 clip (written by render_clip) played as a webcam; a missing webcam's error."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from firmware_bridge.errors import UserError
from training.recording.camera import Frame, open_camera
from training.recording.render import gesture_clip, render_clip

FPS = 20.0
SIZE = (96, 128)


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-s clip (20 frames at 20 fps, 128×96) of the hand moving."""
    clip = gesture_clip(1.0, FPS, seed=2)
    return render_clip(clip.joints, tmp_path_factory.mktemp("camera") / "hand.mp4", fps=FPS, size=SIZE, seed=2)


def test_video_file_is_paced_at_its_frame_rate(clip_path: Path) -> None:
    with open_camera(str(clip_path)) as camera:
        assert camera.fps == pytest.approx(FPS) and camera.size == SIZE
        started = time.monotonic()
        frames = [camera.read(timeout=1.0) for _ in range(10)]
        elapsed = time.monotonic() - started
    assert all(isinstance(f, Frame) for f in frames)
    assert [f.index for f in frames] == list(range(10))
    assert frames[0].image_rgb.shape == (*SIZE, 3) and frames[0].image_rgb.dtype == np.uint8
    stamps = np.array([f.t_mono for f in frames])
    assert np.allclose(np.diff(stamps), 1.0 / FPS)  # each frame stamped when it was due
    assert 9 / FPS - 0.01 <= elapsed < 9 / FPS + 1.0  # not faster than real time (and not stuck)
    assert camera.dropped == 0


def test_a_slow_consumer_gets_the_newest_frame_and_the_rest_count_as_dropped(clip_path: Path) -> None:
    with open_camera(clip_path) as camera:
        first = camera.read(timeout=1.0)
        assert first is not None and first.index == 0
        busy_until = first.t_mono + 0.3  # the consumer is busy for 0.3 s (6 frame periods)
        while time.monotonic() < busy_until:
            time.sleep(0.01)
        frame = camera.read(timeout=1.0)
        assert frame is not None
        assert frame.index >= 6
        assert camera.dropped == frame.index - 1
        assert time.monotonic() - 1.0 / FPS - 0.01 <= frame.t_mono <= time.monotonic()


def test_read_gives_up_after_its_timeout_when_no_frame_is_due(clip_path: Path) -> None:
    with open_camera(clip_path) as camera:
        assert camera.read(timeout=1.0) is not None
        # the next frame is 50 ms away: None (not that frame) proves it did not wait for it
        assert camera.read(timeout=0.0) is None
        following = camera.read(timeout=1.0)
        assert following is not None and following.index == 1  # and nothing was skipped by giving up


def test_video_file_loops_at_its_end_and_says_so(clip_path: Path) -> None:
    with open_camera(clip_path) as camera:
        frames = [camera.read(timeout=1.0) for _ in range(23)]
        assert all(f is not None for f in frames)
        assert [f.index for f in frames] == list(range(23))  # indices keep counting across the loop
        assert camera.loops == 1
        assert any("looping" in note and clip_path.name in note for note in camera.notes)
        assert np.array_equal(frames[20].image_rgb, frames[0].image_rgb)  # the file started again


def test_video_file_without_looping_ends(clip_path: Path) -> None:
    with open_camera(clip_path, loop_video=False) as camera:
        frames = [camera.read(timeout=1.0) for _ in range(20)]
        assert all(f is not None for f in frames)
        assert camera.read(timeout=0.2) is None
        assert camera.ended and camera.loops == 0


def test_a_missing_video_file_is_a_user_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.mp4"
    with pytest.raises(UserError, match=r"nowhere\.mp4.*no such video file"):
        open_camera(str(missing))


def test_a_file_that_is_not_a_video_is_a_user_error_naming_it(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 100)
    with pytest.raises(UserError, match=r"junk\.mp4"):
        open_camera(junk)


def test_a_webcam_index_that_does_not_exist_says_what_to_check() -> None:
    index = 63
    assert not Path(f"/dev/video{index}").exists()
    with pytest.raises(UserError) as caught:
        open_camera(str(index))
    message = str(caught.value)
    assert f"--camera {index}" in message and "ls /dev/video*" in message and "video file" in message
