"""`mode2 inspect FILE...`: what is in a session file, and is it good enough to train on?"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.signal import butter, sosfiltfilt

from firmware_bridge.session_file import Session, SessionFormatError, read_session


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
    ik_error_mean_mm: float
    confidence_mean: float
    dc_offset_mv: np.ndarray


def _high_passed(session: Session) -> np.ndarray:
    """Channel signal without DC and drift: the high-passed raw stream (the stored filtered one may be
    a seed file's own processing, so RMS is always computed the same way here)."""
    sos = butter(4, 20.0, btype="high", fs=session.emg_rate, output="sos")
    raw = session.emg_raw.astype(np.float64)
    if len(raw) <= 30:
        return raw - raw.mean(axis=0)
    return sosfiltfilt(sos, raw - raw.mean(axis=0), axis=0)


def _rate(stamps: np.ndarray) -> float:
    return float((len(stamps) - 1) / (stamps[-1] - stamps[0])) if len(stamps) > 1 else 0.0


def summarise(session: Session) -> SessionSummary:
    signal = _high_passed(session)
    return SessionSummary(
        path=session.path,
        subject=session.subject_id,
        session=session.session_id,
        duration_s=session.duration,
        emg_rate_nominal=session.emg_rate,
        emg_rate_measured=_rate(session.emg_timestamps),
        pose_rate_measured=_rate(session.pose_timestamps),
        channel_rms_uv=np.sqrt(np.mean(signal**2, axis=0)),
        valid_fraction=float(session.valid_pose_mask().mean()) if len(session.ik_error) else 0.0,
        ik_error_mean_mm=float(session.ik_error.mean()) if len(session.ik_error) else float("nan"),
        confidence_mean=float(session.mp_confidence.mean()) if len(session.mp_confidence) else float("nan"),
        dc_offset_mv=session.emg_raw.mean(axis=0) / 1000.0,
    )


def format_summary(s: SessionSummary) -> str:
    rms = " ".join(f"{v:7.1f}" for v in s.channel_rms_uv)
    dc = " ".join(f"{v:7.1f}" for v in s.dc_offset_mv)
    warnings = []
    if s.valid_fraction < 0.7:
        warnings.append(f"only {100 * s.valid_fraction:.0f} % of pose frames pass the quality filter")
    if s.ik_error_mean_mm >= 15:
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
        f"  IK error mean {s.ik_error_mean_mm:.2f} mm, MediaPipe confidence mean {s.confidence_mean:.3f}",
    ]
    lines += [f"  ⚠ {w}" for w in warnings]
    return "\n".join(lines)


def plot_overview(session: Session, summary: SessionSummary, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    signal = _high_passed(session)
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
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", type=Path, help="session .h5 files")
    parser.add_argument("--plot", type=Path, help="write a PNG overview (one file: this path; several: suffixed)")


def run(args: argparse.Namespace) -> int:
    failures = 0
    for i, path in enumerate(args.files):
        try:
            session = read_session(path)
        except SessionFormatError as error:
            print(f"✗ {error}")
            failures += 1
            continue
        summary = summarise(session)
        print(format_summary(summary))
        if args.plot:
            target = (
                args.plot if len(args.files) == 1 else args.plot.with_name(f"{args.plot.stem}_{i}{args.plot.suffix}")
            )
            print(f"  overview plot: {plot_overview(session, summary, target)}")
    return 1 if failures else 0
