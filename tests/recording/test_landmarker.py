"""The real MediaPipe HandLandmarker on rendered images of a known right hand (and its mirror image).

Handedness and chirality are established here, not assumed: the rendered right hand (palm to the camera,
as an unmirrored webcam sees it) must come out as "Right" with world landmarks that match the known
right hand by a proper rotation; its left-right mirror image is a left hand and must come out as "Left".
The model file is the one `mode2 get-hand-model` writes (CI builds it before the tests; locally
$MODE2_HAND_MODEL may point at one): a missing file fails with the error that says what to run.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from training.hand.angle_map import emg2pose_angles_to_mano_pose
from training.hand.fk_numpy import forward_kinematics_np
from training.hand.open_hand import open_hand_model
from training.hand.skeleton import MANO_TO_MEDIAPIPE
from training.recording.hand_model_file import resolve_hand_model
from training.recording.landmarker import HandObservation, HandTracker
from training.recording.render import HandView, render_hand
from training.synth.motion import GESTURES

FRAMES = 16


@pytest.fixture(scope="module")
def hand_model() -> Path:
    return resolve_hand_model(None)  # the default location (or $MODE2_HAND_MODEL); no skip when missing


@pytest.fixture(scope="module")
def right_hand() -> np.ndarray:
    """The open hand model (a right hand), open pose, MANO order."""
    return forward_kinematics_np(open_hand_model(), emg2pose_angles_to_mano_pose(GESTURES["open"]))


@pytest.fixture(scope="module")
def clip(right_hand: np.ndarray) -> list[np.ndarray]:
    """A short clip of the right hand wobbling a little, 640×480, as an unmirrored webcam sees it."""
    rng = np.random.default_rng(11)
    return [render_hand(right_hand, view=HandView(roll_deg=4.0 * np.sin(i / 3.0)), rng=rng) for i in range(FRAMES)]


def _track(model: Path, frames: list[np.ndarray], **options: object) -> list[HandObservation | None]:
    with HandTracker(model, **options) as tracker:  # type: ignore[arg-type]
        return [tracker.detect(frame, 33 * i) for i, frame in enumerate(frames)]


def _fit_error_mm(landmarks: np.ndarray, known: np.ndarray, *, reflected: bool) -> float:
    """Mean joint distance after the best similarity transform that is a proper rotation, or a reflection."""
    a = landmarks - landmarks.mean(axis=0)
    b = known - known.mean(axis=0)
    u, s, vt = np.linalg.svd(a.T @ b)
    sign = np.sign(np.linalg.det(u @ vt))
    d = np.diag([1.0, 1.0, -sign if reflected else sign])
    rotation = u @ d @ vt
    scale = np.trace(np.diag(s) @ d) / np.sum(a * a)
    return float(1000.0 * np.linalg.norm(scale * a @ rotation - b, axis=1).mean())


def _matches_a_right_hand(observation: HandObservation, known_right_mano: np.ndarray) -> bool:
    """The world landmarks fit the known right hand better by a rotation than by a reflection."""
    known = known_right_mano[MANO_TO_MEDIAPIPE]
    proper = _fit_error_mm(observation.world_landmarks, known, reflected=False)
    mirrored = _fit_error_mm(observation.world_landmarks, known, reflected=True)
    return proper < mirrored


def test_a_right_hand_is_reported_as_right_with_a_right_hands_landmarks(
    hand_model: Path, clip: list[np.ndarray], right_hand: np.ndarray
) -> None:
    seen = [obs for obs in _track(hand_model, clip) if obs is not None]
    assert len(seen) >= 0.75 * FRAMES, f"tracked in {len(seen)}/{FRAMES} frames"
    assert {obs.handedness for obs in seen} == {"Right"}
    assert all(_matches_a_right_hand(obs, right_hand) for obs in seen)
    for obs in seen:
        assert obs.world_landmarks.shape == (21, 3) and obs.world_landmarks.dtype == np.float64
        assert 0.5 < obs.score <= 1.0
        # metres: wrist to middle fingertip of an adult hand, 12-25 cm
        assert 0.12 < np.linalg.norm(obs.world_landmarks[12] - obs.world_landmarks[0]) < 0.25
        # image landmarks in the frame as given: palm to the camera, a right hand's thumb is on the image's right
        assert obs.image_landmarks[4, 0] > obs.image_landmarks[20, 0]
        assert np.all((obs.image_landmarks[:, :2] > 0.0) & (obs.image_landmarks[:, :2] < 1.0))


def test_tracking_the_left_hand_ignores_a_right_hand(hand_model: Path, clip: list[np.ndarray]) -> None:
    assert all(obs is None for obs in _track(hand_model, clip, hand="left"))


def test_the_mirror_image_is_a_left_hand_with_a_left_hands_landmarks(
    hand_model: Path, clip: list[np.ndarray], right_hand: np.ndarray
) -> None:
    mirrored = [np.ascontiguousarray(frame[:, ::-1]) for frame in clip]
    seen = [obs for obs in _track(hand_model, mirrored, hand="left") if obs is not None]
    assert len(seen) >= 0.75 * FRAMES, f"tracked in {len(seen)}/{FRAMES} frames"
    assert {obs.handedness for obs in seen} == {"Left"}
    # as observed: a left hand, the known right hand's mirror image (the recorder mirrors x for the IK)
    assert not any(_matches_a_right_hand(obs, right_hand) for obs in seen)
    flipped = [replace(obs, world_landmarks=obs.world_landmarks * np.array([-1.0, 1.0, 1.0])) for obs in seen]
    assert all(_matches_a_right_hand(obs, right_hand) for obs in flipped)


def test_a_selfie_camera_s_mirrored_frames_still_give_the_real_right_hand(
    hand_model: Path, clip: list[np.ndarray], right_hand: np.ndarray
) -> None:
    """A camera that flips its frames shows a right hand as a left one; `mirrored_input` undoes that."""
    mirrored = [np.ascontiguousarray(frame[:, ::-1]) for frame in clip]
    seen = [obs for obs in _track(hand_model, mirrored, mirrored_input=True) if obs is not None]
    assert len(seen) >= 0.75 * FRAMES
    assert {obs.handedness for obs in seen} == {"Right"}
    assert all(_matches_a_right_hand(obs, right_hand) for obs in seen)
    # image landmarks refer to the mirrored frame that was passed in: the thumb is now on the left
    assert all(obs.image_landmarks[4, 0] < obs.image_landmarks[20, 0] for obs in seen)


def test_with_both_hands_in_the_picture_the_chosen_one_is_returned(hand_model: Path, right_hand: np.ndarray) -> None:
    rng = np.random.default_rng(5)
    frames = []
    for i in range(FRAMES // 2):
        view = HandView(roll_deg=4.0 * np.sin(i / 3.0), center=(0.2, 0.5), distance_m=0.6)
        both = render_hand(right_hand, view=view, rng=rng)  # the right hand on the image's left
        both[:, 320:] = render_hand(right_hand, view=view, rng=rng, mirror=True)[:, 320:]  # a left hand beside it
        frames.append(both)
    for hand, side in (("right", -1.0), ("left", 1.0)):
        seen = [obs for obs in _track(hand_model, frames, hand=hand, num_hands=2) if obs is not None]
        assert len(seen) >= 0.75 * len(frames), f"{hand}: tracked in {len(seen)}/{len(frames)} frames"
        assert {obs.handedness for obs in seen} == {hand.capitalize()}
        assert all(side * (obs.image_landmarks[0, 0] - 0.5) > 0.15 for obs in seen)


def test_frame_timestamps_must_increase(hand_model: Path, clip: list[np.ndarray]) -> None:
    with HandTracker(hand_model) as tracker:
        tracker.detect(clip[0], 100)
        with pytest.raises(ValueError, match="must increase: 100 ms after 100 ms"):
            tracker.detect(clip[1], 100)
        with pytest.raises(ValueError, match="must increase"):
            tracker.detect(clip[1], 50)
        tracker.detect(clip[1], 101)  # the refused frames did not disturb the stream
        assert tracker.last_timestamp_ms == 101
        with pytest.raises(ValueError, match="uint8"):
            tracker.detect(clip[2].astype(np.float32), 200)
    assert tracker.closed
    with pytest.raises(RuntimeError, match="after close"):
        tracker.detect(clip[2], 300)
    tracker.close()  # a second close is harmless


def test_mediapipe_s_native_log_does_not_reach_the_terminal(
    hand_model: Path, clip: list[np.ndarray], capfd: pytest.CaptureFixture[str]
) -> None:
    """Its C++ banners would scribble over the recording screen; they are kept in `native_log` instead."""
    with HandTracker(hand_model) as tracker:
        tracker.detect(clip[0], 0)
    captured = capfd.readouterr()
    assert "XNNPACK" not in captured.err and "LiteRT" not in captured.err
    assert "XNNPACK" in "".join(tracker.native_log)


def test_an_unknown_hand_is_a_user_error(hand_model: Path) -> None:
    from firmware_bridge.errors import UserError

    with pytest.raises(UserError, match="--hand 'both'"):
        HandTracker(hand_model, hand="both")
