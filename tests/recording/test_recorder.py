"""The recorder engine: protocol schedule, display filter, live flags, and one real recording in-process
(`mode2 record --headless` with the SDK playback board, a rendered video as the camera, the real MediaPipe
landmarker and the real IK) whose file is checked against the session contract and the timing promises."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from firmware_bridge.emg_sources.base import StreamEvent
from firmware_bridge.errors import UserError
from training.recording.display_filter import DisplayFilter
from training.recording.phases import (
    HOLD_GESTURES,
    gesture_instruction,
    gesture_schedule,
    phase_at,
    protocol,
)
from training.recording.recorder import _flag_names
from training.synth.motion import PHASES
from training.synth.world import filter_like_recorder


def test_the_protocol_is_the_seed_guides_five_phases_scaled() -> None:
    full = protocol(1.0)
    assert [(p.name, p.duration_s) for p in full] == list(PHASES)
    assert sum(p.duration_s for p in full) == pytest.approx(240.0)
    assert all(p.title and len(p.instruction) > 20 for p in full)
    short = protocol(0.05)
    assert [p.duration_s for p in short] == pytest.approx([d * 0.05 for _, d in PHASES])


@pytest.mark.parametrize("scale", [0, -1.0, float("nan"), float("inf"), "fast"])
def test_a_phase_scale_that_is_not_a_positive_number_is_a_user_error(scale: object) -> None:
    with pytest.raises(UserError, match="--phase-scale"):
        protocol(scale)  # type: ignore[arg-type]


@pytest.mark.parametrize("scale", [1.0, 0.05])
def test_every_gesture_is_held_once_inside_the_gesture_phase_with_releases_between(scale: float) -> None:
    slots = gesture_schedule(scale)
    length = dict(PHASES)["gesture_holds"] * scale
    assert [s.label for s in slots] == list(HOLD_GESTURES)
    assert "rest" not in HOLD_GESTURES and len(HOLD_GESTURES) == 7
    assert slots[0].start_s > 0 and slots[-1].end_s <= length + 1e-9
    for a, b in itertools.pairwise(slots):
        assert b.start_s > a.end_s  # a release between two holds
    text, held = gesture_instruction(slots, (slots[2].start_s + slots[2].end_s) / 2)
    assert held == slots[2].label and slots[2].words in text
    assert gesture_instruction(slots, slots[2].end_s + 1e-6 * scale)[1] is None


def test_phase_at_walks_the_schedule_and_ends() -> None:
    phases = protocol(0.1)
    assert phase_at(phases, 0.0) == (0, pytest.approx(3.0))
    assert phase_at(phases, 3.5)[0] == 1
    assert phase_at(phases, 24.0) == (len(phases), 0.0)


def test_the_display_filter_run_chunk_by_chunk_is_the_synthetic_worlds_recorder_filter() -> None:
    rng = np.random.default_rng(3)
    raw = 2e5 + np.cumsum(rng.normal(0, 5, (3000, 8)), axis=0) + rng.normal(0, 30, (3000, 8))
    raw += 80 * np.sin(2 * np.pi * 50 * np.arange(3000) / 500.0)[:, None]
    whole = filter_like_recorder(raw, 500.0, 50.0)
    live = DisplayFilter(500.0, 50.0)
    cuts = np.sort(rng.choice(np.arange(1, 3000), 200, replace=False))
    pieces = [live(part) for part in np.split(raw, cuts)]
    np.testing.assert_allclose(np.concatenate(pieces), whole, rtol=0, atol=1e-3)
    assert np.abs(whole[500:]).max() < 200  # the 200-mV offset and the mains are gone


def test_the_display_filter_restarts_after_a_long_gap_without_ringing() -> None:
    live = DisplayFilter(500.0, 50.0)
    live(np.full((500, 8), 1000.0))
    after = live(np.full((100, 8), -50_000.0), [StreamEvent("gap", 0, 200, "lost")])
    assert np.abs(after).max() < 1.0  # a 51-mV step across the gap would ring for tens of mV


def test_live_flags_name_the_channels_and_the_stream_problems() -> None:
    from runtime.signal_quality import SignalQuality

    quality = SignalQuality(500.0, 8)
    rng = np.random.default_rng(0)
    x = rng.normal(0, 20, (1000, 8))
    x[:, 3] = 7.0  # a flat channel
    t = np.arange(1000) / 500.0
    report = quality.update(x, t)
    names = _flag_names(report)
    assert any(name.startswith("flat") and "ch3" in name for name in names), names
    assert _flag_names(quality.update(x[:10] * 0 + rng.normal(0, 20, (10, 8)), t[-1] + 1 + np.arange(10) / 500))


# -- one real recording -------------------------------------------------------------------------------------
PHASE_SCALE = 0.02  # 4.8 s of protocol


def _clip_with_hand_and_gaps(path: Path, seconds: float = 2.1, fps: float = 30.0) -> tuple[Path, np.ndarray]:
    """A rendered hand moving through the gestures, with the hand gone (empty scene) in the last third;
    returns the path and the per-frame "hand in view" mask."""
    import cv2

    from training.recording.render import gesture_clip_poses, render_hand

    _, joints = gesture_clip_poses(seconds, fps, seed=1)
    present = np.arange(len(joints)) < int(len(joints) * 2 / 3)
    size = (360, 480)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (size[1], size[0]))
    empty = np.full((*size, 3), (92, 104, 118), dtype=np.uint8)
    for frame_joints, shown in zip(joints, present, strict=True):
        image = render_hand(frame_joints, size=size) if shown else empty
        writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    writer.release()
    return path, present


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Path, Path]:
    """`mode2 record --headless` in-process: the session file, what it printed, the playback CSV, the clip."""
    import contextlib
    import io

    from runtime.cli import main
    from training.synth import simulate

    base = tmp_path_factory.mktemp("record")
    simulate(base / "world", sessions=1, minutes=0.25, seed=5, playback_csv=True, write_2k=False, progress=False)
    csv = base / "world" / "s01_r01_mindrove.csv"
    clip, _ = _clip_with_hand_and_gaps(base / "clip.mp4")
    out = io.StringIO()
    args = ["record", "--emg", f"playback:{csv}", "--camera", str(clip), "--out", str(base / "d"), "--headless"]
    with contextlib.redirect_stdout(out):
        assert main([*args, "--phase-scale", str(PHASE_SCALE), "--subject", "P7", "--session", "T1"]) == 0
    return base / "d" / "P7_T1.h5", out.getvalue(), csv, clip


def test_a_headless_recording_writes_a_session_inspect_accepts(recorded: tuple[Path, str, Path, Path]) -> None:
    from firmware_bridge.session import read_session
    from runtime.cli import main
    from training.commands.inspect_command import summarise

    path, printed, _, _ = recorded
    assert main(["inspect", str(path)]) == 0
    session = read_session(path)
    summary = summarise(session)
    assert session.subject_id == "P7" and session.session_id == "T1" and session.attrs["hand"] == "right"
    assert summary.emg_rate_measured == pytest.approx(500.0, rel=0.01)  # on the host's monotonic clock
    # never faster than the 30-fps clip (a stamping error would show); how fast frames are processed is
    # measured by benchmarks/landmarks_vs_pose.py, not asserted here
    assert 0 < summary.pose_rate_measured <= 30.0 * 1.05
    assert "EMG" in printed and "camera" in printed and "recorded" in printed.splitlines()[-1]
    assert session.duration == pytest.approx(240 * PHASE_SCALE, abs=1.0)


def test_pose_frames_lie_within_the_emg_span_on_the_same_clock(recorded: tuple[Path, str, Path, Path]) -> None:
    from firmware_bridge.session import read_session

    session = read_session(recorded[0])
    emg_t, pose_t = session.emg_timestamps, session.pose_timestamps
    assert pose_t[0] >= emg_t[0] and pose_t[-1] <= emg_t[-1] + 0.2
    assert abs(emg_t[0] - float(session.attrs["protocol_start_time"])) < 1.0  # unix seconds, one clock
    assert np.all(np.diff(emg_t) > 0) and np.all(np.diff(pose_t) > 0)
    clock = json.loads(session.attrs["emg_clock"])
    assert clock["measured_rate_hz"] == pytest.approx(500.0, rel=0.01)


def test_phases_gestures_and_provenance_are_stored(recorded: tuple[Path, str, Path, Path]) -> None:
    from firmware_bridge.session import read_session

    session = read_session(recorded[0])
    phases = json.loads(session.attrs["phases"])
    assert [p[0] for p in phases] == [name for name, _ in PHASES]
    for (name, start, stop), (_, duration) in zip(phases, PHASES, strict=True):
        assert stop - start == pytest.approx(duration * PHASE_SCALE, abs=0.15), name
    labels = [g[0] for g in session.gestures]
    assert labels == list(HOLD_GESTURES)
    holds_start = float(session.attrs["protocol_start_time"]) + phases[2][1]
    assert session.gestures[0][1] == pytest.approx(holds_start + gesture_schedule(PHASE_SCALE)[0].start_s, abs=0.15)
    attrs = session.attrs
    assert attrs["emg_source"].startswith("playback:") and not attrs["emg_plumbing_only"]
    assert len(attrs["hand_model_sha256"]) == 64 and attrs["stop_reason"] == "completed"
    assert np.asarray(attrs["hand_betas"]).shape == (10,)
    assert "monotonic" in attrs["clock"]


def test_frames_without_the_hand_are_kept_and_dropped_by_the_label_filter(
    recorded: tuple[Path, str, Path, Path],
) -> None:
    from firmware_bridge.session import read_session

    session = read_session(recorded[0])
    no_hand = session.mp_confidence == 0
    assert 0.2 < no_hand.mean() < 0.75  # the clip shows no hand for a third of each loop (+ missed detections)
    assert np.all(session.ik_error[no_hand] >= 99.0)
    valid = session.valid_pose_mask()
    assert not valid[no_hand].any()
    assert valid[~no_hand].mean() > 0.8  # the rendered hand is found and fitted within 15 mm
    # a no-hand frame holds the last fit: θ equal to the frame before it
    first = int(np.flatnonzero(no_hand[1:] & ~no_hand[:-1])[0]) + 1
    np.testing.assert_array_equal(session.mano_theta[first], session.mano_theta[first - 1])


def test_a_camera_that_stops_ends_the_recording_cleanly_with_the_data_so_far(
    recorded: tuple[Path, str, Path, Path], tmp_path: Path
) -> None:
    """A fatal error in a thread (here: the camera's video ends, no looping) stops everything, closes a valid
    file, shows the error in the snapshot and raises it from wait() as a UserError."""
    from firmware_bridge.session import read_session
    from training.recording.recorder import RecordConfig, Recorder

    _, _, csv, clip = recorded
    out = tmp_path / "x.h5"
    recorder = Recorder(RecordConfig(f"playback:{csv}", str(clip), out, phase_scale=0.05, loop_video=False))
    recorder.start()
    with pytest.raises(UserError, match="video file ended") as caught:
        assert recorder.wait(timeout=30), "the recording did not end within 30 s"
    assert str(out) in str(caught.value) and "keeps what was recorded" in str(caught.value)
    snapshot = recorder.snapshot()
    assert snapshot.finished and snapshot.error is not None and "ended" in snapshot.error
    session = read_session(out)
    assert 1.5 < session.duration < 6.0  # the 2.1-s clip, not the 12-s protocol
    assert session.attrs["stop_reason"].startswith("error") and len(session.pose_timestamps) > 10


def test_the_sdk_synthetic_board_is_recorded_as_a_plumbing_check_and_says_so(
    recorded: tuple[Path, str, Path, Path], tmp_path: Path
) -> None:
    from firmware_bridge.session import read_session
    from training.recording.recorder import PLUMBING_NOTE, RecordConfig, Recorder

    clip = recorded[3]
    recorder = Recorder(RecordConfig("sdk-synthetic", str(clip), tmp_path / "p.h5", phase_scale=0.01))
    assert recorder.plumbing_only and PLUMBING_NOTE in recorder.snapshot().notes  # on screen from the start
    recorder.start()
    assert recorder.wait(timeout=30)
    session = read_session(tmp_path / "p.h5")
    assert bool(session.attrs["emg_plumbing_only"]) and "not EMG" in session.attrs["emg_plumbing_note"]
    assert session.emg_raw.shape[1] == 8 and session.emg_rate == 500.0
    assert len(session.emg_timestamps) > 500
