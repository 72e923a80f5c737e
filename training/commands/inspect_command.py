"""`mode2 inspect FILE...`: what is in a session file, and is it good enough to train on?

The presentation; the bad-data checks themselves (mains, drift, stale and zero rows, units, gaps …) are in
`training.data.emg_checks`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from firmware_bridge.atomic_write import check_writable_file
from firmware_bridge.errors import UserError
from firmware_bridge.session import Session, read_session
from training.data.emg2pose_format import Emg2PoseRecording, read_emg2pose_file
from training.data.emg_checks import Finding, check_emg, high_passed, without_zero_rows
from training.scoring.figures import save_figure


@dataclass
class SessionSummary:
    path: Path
    subject: str
    session: str
    duration_s: float
    emg_rate_nominal: float
    emg_rate_measured: float
    pose_rate_measured: float
    channel_rms_uv: np.ndarray
    valid_fraction: float
    ik_error_mean_mm: float | None  # None: the file has no pose frames
    confidence_mean: float | None
    dc_offset_mv: np.ndarray
    findings: list[Finding]  # bad data named by `emg_checks` (machine-readable: Finding.as_dict)


def _rate(stamps: np.ndarray) -> float:
    return float((len(stamps) - 1) / (stamps[-1] - stamps[0])) if len(stamps) > 1 else 0.0


def _mean_where_tracked(ik_error: np.ndarray, confidence: np.ndarray) -> float:
    """Mean IK error over the frames where the camera saw the hand (the recorder writes a frame without one
    as confidence 0, IK error 100 mm: averaging those in would hide how good the fits are); NaN if none."""
    tracked = confidence > 0
    return float(ik_error[tracked].mean()) if tracked.any() else float("nan")


def summarise(session: Session) -> SessionSummary:
    held = without_zero_rows(session.emg_raw)  # a zero row is a step of the whole DC: it would ring in the RMS
    signal = high_passed(held, session.emg_rate)
    has_pose = len(session.ik_error) > 0
    return SessionSummary(
        path=session.path,
        subject=session.subject_id,
        session=session.session_id,
        duration_s=session.duration,
        emg_rate_nominal=session.emg_rate,
        emg_rate_measured=_rate(session.emg_timestamps),
        pose_rate_measured=_rate(session.pose_timestamps),
        channel_rms_uv=np.sqrt(np.mean(signal**2, axis=0)),
        valid_fraction=float(session.valid_pose_mask().mean()) if has_pose else 0.0,
        ik_error_mean_mm=_mean_where_tracked(session.ik_error, session.mp_confidence) if has_pose else None,
        confidence_mean=float(session.mp_confidence.mean()) if has_pose else None,
        dc_offset_mv=held.astype(np.float64).mean(axis=0) / 1000.0,
        findings=check_emg(
            session.emg_raw, session.emg_timestamps, session.emg_rate, session.gestures, source=str(session.path)
        ),
    )


def format_summary(s: SessionSummary) -> str:
    rms = " ".join(f"{v:7.1f}" for v in s.channel_rms_uv)
    dc = " ".join(f"{v:7.1f}" for v in s.dc_offset_mv)
    warnings = []
    if s.valid_fraction < 0.7:
        warnings.append(f"only {100 * s.valid_fraction:.0f} % of pose frames pass the quality filter")
    if s.ik_error_mean_mm is None:
        warnings.append("no pose frames: nothing to train on (EMG only)")
    elif not np.isfinite(s.ik_error_mean_mm):
        warnings.append("the camera never saw the hand (every pose frame has confidence 0)")
    elif s.ik_error_mean_mm >= 15:
        warnings.append("mean IK error ≥ 15 mm (the guide's threshold)")
    if abs(s.emg_rate_measured - s.emg_rate_nominal) > 0.05 * s.emg_rate_nominal:
        warnings.append("measured EMG rate differs from the nominal rate by > 5 % (drops or stalls?)")
    lines = [
        f"{s.path}",
        f"  subject {s.subject}, session {s.session}, {s.duration_s:.1f} s",
        f"  EMG {s.emg_rate_nominal:.0f} Hz nominal, {s.emg_rate_measured:.1f} Hz measured; "
        f"pose {s.pose_rate_measured:.1f} Hz",
        f"  channel RMS (µV, 20 Hz high-pass): {rms}",
        f"  DC offset (mV):                    {dc}",
        f"  valid pose frames (ik_error < 15 mm, mp_confidence > 0.5): {100 * s.valid_fraction:.1f} %",
        f"  IK error mean {s.ik_error_mean_mm:.2f} mm (frames with a hand), "
        f"MediaPipe confidence mean {s.confidence_mean:.3f}"
        if s.ik_error_mean_mm is not None and s.confidence_mean is not None
        else "  no pose frames (no IK error, no MediaPipe confidence)",
    ]
    lines += [f"  ⚠ {w}" for w in warnings]
    lines += [f"  ⚠ {f.message}" for f in s.findings]
    return "\n".join(lines)


def plot_overview(session: Session, summary: SessionSummary, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    signal = high_passed(session.emg_raw, session.emg_rate)
    t = session.emg_timestamps - session.emg_timestamps[0]
    tp = session.pose_timestamps - session.emg_timestamps[0]
    fig, axes = plt.subplots(3, 1, figsize=(12, 9), gridspec_kw={"height_ratios": [3, 1, 1.2]})
    spacing = 4 * float(np.percentile(np.abs(signal), 99) or 1.0)
    for c in range(signal.shape[1]):
        axes[0].plot(t, signal[:, c] + c * spacing, lw=0.3)
    axes[0].set_yticks([c * spacing for c in range(signal.shape[1])], [f"ch{c}" for c in range(signal.shape[1])])
    axes[0].set_title(f"{session.key}: EMG (20 Hz high-pass)")
    axes[1].bar(range(len(summary.channel_rms_uv)), summary.channel_rms_uv)
    axes[1].set_ylabel("RMS µV")
    axes[1].set_xlabel("channel")
    axes[2].plot(tp, session.ik_error, lw=0.6, label="IK error (mm)")
    axes[2].axhline(15, color="r", lw=0.6, ls="--")
    twin = axes[2].twinx()
    twin.plot(tp, session.mp_confidence, lw=0.6, color="g", label="MediaPipe confidence")
    twin.axhline(0.5, color="g", lw=0.6, ls=":")
    axes[2].set_xlabel("time (s)")
    axes[2].set_ylabel("IK error (mm)")
    twin.set_ylabel("confidence")
    return save_figure(fig, out)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", type=Path, help="session .h5 files (or `*_2k.h5` 16-ch 2 kHz streams)")
    parser.add_argument(
        "--plot", type=Path, help="write a PNG overview of each session (one file: this path; several: suffixed)"
    )


def _plot_target(plot: Path, index: int, count: int) -> Path:
    return plot if count == 1 else plot.with_name(f"{plot.stem}_{index}{plot.suffix}")


def _inspect_one(path: Path, plot: Path | None) -> None:
    """Print one file's summary (and write its plot); UserError when the file cannot be used."""
    if is_emg2pose_file(path):
        print(format_recording_summary(summarise_recording(read_emg2pose_file(path))))
        if plot is not None:
            print(f"  (no overview plot for 2 kHz streams; {plot} not written)")
        return
    session = read_session(path)
    summary = summarise(session)
    print(format_summary(summary))
    if plot is not None:
        print(f"  overview plot: {plot_overview(session, summary, plot)}")


def run(args: argparse.Namespace) -> int:
    if args.plot is not None:
        if args.plot.suffix.lower() not in (".png", ".pdf", ".svg", ".jpg", ".jpeg"):
            raise UserError(f"--plot {args.plot}: give a picture file name (.png, .pdf, .svg or .jpg)")
        for i in range(len(args.files)):
            check_writable_file(_plot_target(args.plot, i, len(args.files)), what="--plot")
    failures: list[str] = []
    for i, path in enumerate(args.files):
        plot = _plot_target(args.plot, i, len(args.files)) if args.plot is not None else None
        try:
            _inspect_one(path, plot)
        except UserError as error:
            if len(args.files) == 1:
                raise
            print(f"✗ {error}")
            failures.append(str(path))
    if failures:
        raise UserError(f"{len(failures)} of {len(args.files)} files could not be read: {', '.join(failures)}")
    return 0


# -- 16-ch 2 kHz streams (emg2pose layout, what `mode2 simulate` writes as *_2k.h5) ----------------------
@dataclass
class RecordingSummary:
    path: Path
    user: str
    session: str
    duration_s: float
    rate_nominal: float
    rate_measured: float
    channel_rms_uv: np.ndarray
    ik_failure_fraction: float


def is_emg2pose_file(path: Path) -> bool:
    """True for a readable HDF5 file in emg2pose's layout (group `emg2pose`, dataset `timeseries`)."""
    try:
        with h5py.File(path, "r") as f:
            return "emg2pose/timeseries" in f and "emg/raw" not in f
    except OSError:
        return False  # read_session names the problem


def summarise_recording(rec: Emg2PoseRecording) -> RecordingSummary:
    signal = high_passed(rec.emg, rec.sample_rate)
    return RecordingSummary(
        path=rec.path,
        user=str(rec.attrs.get("user", "?")),
        session=str(rec.attrs.get("session", "?")),
        duration_s=float(rec.time[-1] - rec.time[0]),
        rate_nominal=rec.sample_rate,
        rate_measured=_rate(rec.time),
        channel_rms_uv=np.sqrt(np.mean(signal**2, axis=0)),
        ik_failure_fraction=float(1.0 - rec.no_ik_failure.mean()),
    )


def format_recording_summary(s: RecordingSummary) -> str:
    rms = " ".join(f"{v:6.1f}" for v in s.channel_rms_uv)
    return "\n".join(
        [
            f"{s.path}",
            f"  emg2pose layout (16-ch band for `mode2 pretrain-backbone`): user {s.user}, session {s.session}, "
            f"{s.duration_s:.1f} s",
            f"  EMG {s.rate_nominal:.0f} Hz nominal, {s.rate_measured:.1f} Hz measured, "
            f"{len(s.channel_rms_uv)} channels",
            f"  channel RMS (µV, 20 Hz high-pass): {rms}",
            f"  frames with an IK failure (all 20 angles 0): {100 * s.ik_failure_fraction:.1f} %",
        ]
    )
