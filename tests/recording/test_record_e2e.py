"""The recording station end to end, as a user meets it: the guidance screen (driven by Textual's pilot) over
the real recorder (the SDK playback board, a rendered clip as the camera, the real MediaPipe landmarker and
the real IK), then `mode2 inspect` and `mode2 train` on what it wrote, and train's refusal of a recording
made from the SDK's synthetic board (its signals are not EMG)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import shutil
import time
from pathlib import Path

import h5py
import pytest

from firmware_bridge.session import read_session
from runtime.cli import main

PHASE_SCALE = 0.03  # 7.2 s of protocol: every phase, every gesture, ≥ two 2-s training windows
SIZE = (80, 24)


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A playback CSV from the synthetic world and a rendered clip of a hand moving through the gestures."""
    from training.recording.render import gesture_clip_poses, render_clip
    from training.synth import simulate

    base = tmp_path_factory.mktemp("station")
    simulate(base / "world", sessions=1, minutes=0.3, seed=9, playback_csv=True, write_2k=False, progress=False)
    _, joints = gesture_clip_poses(4.0, 30.0, seed=2)
    clip = render_clip(joints, base / "clip.mp4", fps=30.0)
    return base, base / "world" / "s01_r01_mindrove.csv", Path(clip)


@pytest.fixture(scope="module")
def screen_recording(station: tuple[Path, Path, Path]) -> tuple[Path, list[str], object]:
    """One recording led by the guidance screen: the file, the phase titles the screen showed, the final snapshot."""
    from training.recording.recorder import RecordConfig, Recorder
    from tui.record_screen import RecordGuideApp

    base, csv, clip = station
    out = base / "sessions" / "P1_R1.h5"
    config = RecordConfig(f"playback:{csv}", str(clip), out, subject="P1", session="R1", phase_scale=PHASE_SCALE)
    recorder = Recorder(config)
    titles: list[str] = []

    async def drive() -> RecordGuideApp:
        app = RecordGuideApp(recorder.snapshot, on_stop=recorder.stop, refresh_s=0.05, summary_s=0.2)
        async with app.run_test(size=SIZE) as pilot:
            deadline = time.monotonic() + 60.0
            while app.return_value is None:
                assert time.monotonic() < deadline, "the screen did not finish within 60 s"
                title = app.phase_panel.border_title
                if title and (not titles or titles[-1] != title):
                    titles.append(str(title))
                await pilot.pause(0.05)
        return app

    recorder.start()
    try:
        app = asyncio.run(drive())
    finally:
        recorder.stop()
        recorder.wait(timeout=30)
    return out, titles, app.return_value


def test_the_screen_walks_the_five_phases_of_a_real_recording_and_leaves_when_it_ends(
    screen_recording: tuple[Path, list[str], object],
) -> None:
    out, titles, final = screen_recording
    assert final is not None and final.finished and final.error is None
    shown = " | ".join(titles)
    for k in range(1, 6):
        assert f"phase {k}/5" in shown, f"the screen never showed phase {k}: {shown}"
    session = read_session(out)
    assert [p[0] for p in json.loads(session.attrs["phases"])] == [
        "rest",
        "dynamic",
        "gesture_holds",
        "exploration",
        "cool_down",
    ]
    assert final.emg_samples == len(session.emg_timestamps) and final.pose_frames == len(session.pose_timestamps)


def test_the_recorded_session_is_read_by_inspect_and_labelled_by_the_real_landmarker(
    screen_recording: tuple[Path, list[str], object],
) -> None:
    out = screen_recording[0]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["inspect", str(out)]) == 0
    assert "500 Hz nominal" in printed.getvalue()
    session = read_session(out)
    seen = session.mp_confidence > 0
    assert seen.mean() > 0.5, f"the landmarker saw the rendered hand in only {100 * seen.mean():.0f} % of frames"
    assert session.valid_pose_mask().sum() > 30  # frames the guide's filter keeps for training
    assert float(session.ik_error[seen].mean()) < 15.0


def test_train_accepts_recorded_sessions(
    station: tuple[Path, Path, Path], screen_recording: tuple[Path, list[str], object]
) -> None:
    base, csv, clip = station
    sessions = screen_recording[0].parent
    headless = ["record", "--emg", f"playback:{csv}", "--camera", str(clip), "--out", str(sessions), "--headless"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main([*headless, "--phase-scale", str(PHASE_SCALE), "--subject", "P1", "--session", "R2"]) == 0
        code = main(
            [
                "train",
                "--data",
                str(sessions / "P1_R1.h5"),
                str(sessions / "P1_R2.h5"),
                "--out",
                str(base / "model"),
                "--epochs",
                "1",
                "--val-sessions",
                "P1/R2",
                "--initial-state",
                "train_mean",
                "--threads",
                "1",
            ]
        )
    assert code == 0
    assert (base / "model" / "transfer_mode2_best.pth").is_file()


def test_train_refuses_a_recording_from_the_sdk_synthetic_board(
    station: tuple[Path, Path, Path], screen_recording: tuple[Path, list[str], object], capsys
) -> None:
    base = station[0]
    plumbing = base / "plumbing" / "P1_R9.h5"
    plumbing.parent.mkdir(exist_ok=True)
    shutil.copy(screen_recording[0], plumbing)
    with h5py.File(plumbing, "a") as f:  # what the recorder marks on a session from `--emg sdk-synthetic`
        f.attrs["emg_plumbing_only"] = True
    code = main(["train", "--data", str(plumbing), "--out", str(base / "never"), "--epochs", "1"])
    assert code == 2
    error = capsys.readouterr().err
    assert "emg_plumbing_only" in error and "P1_R9.h5" in error and "not EMG" in error
    assert not (base / "never" / "transfer_mode2_best.pth").exists()


def test_record_calibrate_refuses_a_recording_too_short_to_fit_and_keeps_it(
    station: tuple[Path, Path, Path], trained_checkpoints: Path, tmp_path: Path, capsys
) -> None:
    """`mode2 record --calibrate`: the per-donning step after the recording. A 7-s recording gives too few
    windows: the session stays, the model is unchanged, and the error says why; a model that cannot be loaded
    is refused before anything is recorded."""
    _, csv, clip = station
    model = Path(shutil.copy(trained_checkpoints / "transfer_mode2_best.pth", tmp_path / "mode2.pth"))
    before = model.read_bytes()
    record = ["record", "--emg", f"playback:{csv}", "--camera", str(clip), "--out", str(tmp_path), "--headless"]
    record += ["--phase-scale", str(PHASE_SCALE), "--subject", "P1", "--session", "C1"]
    assert main([*record, "--calibrate", str(tmp_path / "missing.pth")]) == 2
    assert "missing.pth" in capsys.readouterr().err and not (tmp_path / "P1_C1.h5").exists()

    assert main([*record, "--calibrate", str(model)]) == 2
    error = capsys.readouterr().err
    assert f"{tmp_path / 'P1_C1.h5'} is recorded; {model} is unchanged" in error
    assert "labelled windows (at least 30 needed" in error
    assert (tmp_path / "P1_C1.h5").is_file() and model.read_bytes() == before
