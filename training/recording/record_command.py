"""`mode2 record`: MindRove EMG + a webcam → MediaPipe → MANO IK → one session file, guided through the
seed guide's five phases (the Textual screen, or `--headless` progress lines).

    mode2 record --emg mindrove[:IP] | playback:FILE.csv | sdk-synthetic --camera 0 | VIDEO_FILE --out DIR
                 [--subject S01] [--session R01] [--hand right|left] [--phase-scale 1.0] [--headless]
                 [--hand-model PATH] [--mains 50|60] [--force]

Writes DIR/{subject}_{session}.h5 (refuses to overwrite it without --force). Checks, in this order and before
the EMG source starts: the options, the output file, the hand model file, the camera, the landmarker and the
EMG source spec; so a missing model or camera fails at once with one line and no file. An unreachable armband
fails when the source starts (after --connect-timeout), also with no file.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import TextIO

from firmware_bridge.atomic_write import check_writable_file
from firmware_bridge.cli_types import bounded_float
from firmware_bridge.errors import UserError
from training.recording.phases import check_phase_scale
from tui.record_state import GuidanceSnapshot

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
PROGRESS_EVERY_S = 1.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--emg", required=True, help="EMG source: mindrove[:IP] | playback:FILE.csv | sdk-synthetic | replay:FILE.h5"
    )
    parser.add_argument("--camera", required=True, help="webcam index (0) or a video file (played in real time)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the session file {subject}_{session}.h5")
    parser.add_argument("--subject", default="S01", help="subject id (file name and attrs), default S01")
    parser.add_argument("--session", default="R01", help="session id (file name and attrs), default R01")
    parser.add_argument("--hand", choices=("right", "left"), default="right", help="the hand wearing the armband")
    parser.add_argument(
        "--phase-scale",
        type=float,
        default=1.0,
        help="multiply every phase's duration (1.0 = the 4-minute protocol; tests and demos use 0.05)",
    )
    parser.add_argument("--headless", action="store_true", help="no screen: print progress once a second")
    parser.add_argument(
        "--hand-model",
        default=None,
        help="MediaPipe hand_landmarker.task (default: where `mode2 get-hand-model` puts it)",
    )
    parser.add_argument(
        "--mains", type=float, choices=(50.0, 60.0), default=50.0, help="mains frequency for the display filter"
    )
    parser.add_argument(
        "--connect-timeout",
        type=bounded_float(0.0, 60.0, low_inclusive=False),
        default=5.0,
        help="seconds to wait for a MindRove armband's first data (default 5)",
    )
    parser.add_argument("--force", action="store_true", help="overwrite an existing session file")
    parser.add_argument(
        "--calibrate",
        type=Path,
        default=None,
        metavar="CHECKPOINT",
        help="after a completed recording, fit this model's confidence calibration on it (the per-donning step; "
        "record about a minute through every phase: --phase-scale 0.25)",
    )


def output_path(out: Path, subject: str, session: str, *, force: bool) -> Path:
    """DIR/{subject}_{session}.h5, checked writable and (without `force`) not already there."""
    for option, value in (("--subject", subject), ("--session", session)):
        if not NAME.match(value):
            raise UserError(f"{option} {value!r}: use letters, digits, '_', '-' or '.' (it names the file)")
    path = check_writable_file(Path(out) / f"{subject}_{session}.h5", what="--out")
    if path.exists() and not force:
        raise UserError(f"{path}: already exists; choose another --session or --out, or pass --force to replace it")
    return path


def run(args: argparse.Namespace) -> int:
    from training.recording.recorder import RecordConfig, Recorder

    scale = check_phase_scale(args.phase_scale)
    path = output_path(args.out, args.subject, args.session, force=args.force)
    if args.calibrate is not None:  # a model that cannot be loaded is refused before anything is recorded
        from training.models.model_io import load_model_checkpoint

        load_model_checkpoint(args.calibrate)
    config = RecordConfig(
        emg=args.emg,
        camera=str(args.camera),
        out=path,
        subject=args.subject,
        session=args.session,
        hand=args.hand,
        phase_scale=scale,
        hand_model=args.hand_model,
        mains_hz=args.mains,
        connect_timeout_s=args.connect_timeout,
    )
    recorder = Recorder(config)  # model, camera, landmarker, IK, source spec: all checked here
    for note in recorder.snapshot().notes:
        print(f"note: {note}", file=sys.stderr)
    recorder.start()  # an unreachable armband fails here, before any file exists
    interrupted = False
    try:
        if args.headless:
            interrupted = _headless(recorder, sys.stdout)
        else:
            from tui.record_screen import RecordGuideApp

            RecordGuideApp(recorder.snapshot, on_stop=recorder.stop).run()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if not recorder.finished:  # the screen was left early, Ctrl-C, or a bug in the screen
            recorder.stop()
        while not recorder.wait(timeout=1.0):  # raises the recording's fatal error, if any
            pass
    _print_summary(recorder, sys.stdout)
    if interrupted:
        return 130
    if args.calibrate is not None:
        _calibrate(args.calibrate, path, plumbing_only=recorder.plumbing_only)
    return 0


def _calibrate(checkpoint: Path, path: Path, *, plumbing_only: bool) -> None:
    """The per-donning calibration step on the session just recorded (which stays, whatever happens here)."""
    from training.data.windows import load_sessions
    from training.fitting.user_calibration import calibrate_checkpoint

    unchanged = f"{path} is recorded; {checkpoint} is unchanged"
    if plumbing_only:
        raise UserError(f"{unchanged}: sdk-synthetic is not EMG, so it cannot calibrate a model's confidence")
    fit = calibrate_checkpoint(checkpoint, load_sessions([str(path)], quiet=True), "mode2 record --calibrate")
    if fit.table is None:
        raise UserError(f"{unchanged}: {fit.describe()}")
    print(fit.describe())
    print(f"stored in {checkpoint}; export it again to put it on the device: mode2 export-onnx --checkpoint …")


def _headless(recorder: object, out: TextIO) -> bool:
    """Progress once a second until the recorder finishes; True when interrupted (Ctrl-C)."""
    from training.recording.recorder import Recorder

    assert isinstance(recorder, Recorder)
    try:
        while not recorder.finished:
            print(progress_line(recorder.snapshot()), file=out, flush=True)
            recorder.wait(timeout=PROGRESS_EVERY_S)
    except KeyboardInterrupt:
        recorder.stop()
        return True
    return False


def progress_line(s: GuidanceSnapshot) -> str:
    """One line: phase, countdown, EMG rate, camera fps, detection, IK error, counts, flags."""
    phase = s.phase.name if s.phase is not None else "done"
    ik = f"{s.ik_error_mm:.1f} mm" if s.ik_error_mm is not None else "-"
    hand = f"hand {s.mp_confidence:.2f}" if s.hand_detected else f"NO HAND {s.seconds_without_hand:.1f} s"
    flags = f" flags: {'; '.join(s.emg_flags)}" if s.emg_flags else ""
    gesture = f" [{s.gesture}]" if s.gesture else ""
    return (
        f"{s.elapsed_s:6.1f}/{s.total_s:.0f} s {phase}{gesture} {s.phase_remaining_s:4.1f} s left | "
        f"EMG {s.emg_rate_hz:5.0f} Hz {s.emg_samples} samples | camera {s.camera_fps:4.1f} fps {s.pose_frames} frames "
        f"| {hand} | IK {ik}{flags}"
    )


def _print_summary(recorder: object, out: TextIO) -> None:
    from training.recording.recorder import Recorder

    assert isinstance(recorder, Recorder)
    summary = recorder.summary()
    clock = summary["emg_clock"]
    print(
        f"recorded {summary['path']}: {summary['emg_samples']} EMG samples "
        f"({clock['measured_rate_hz']:.2f} Hz on the host clock, drift {clock['drift_ppm']:+.0f} ppm), "
        f"{summary['pose_frames']} camera frames, hand seen in {100 * summary['detected_fraction']:.0f} % "
        f"({summary['end_reason'] or 'stopped'})",
        file=out,
    )
    if recorder.plumbing_only:
        print("note: sdk-synthetic is not EMG: the file checks the pipeline only; mode2 train refuses it", file=out)
