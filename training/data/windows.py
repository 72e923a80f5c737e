"""Session files → training windows, as the seed guide describes, with held-out sessions kept apart.

- 2-s windows of MindRove µV (1,000 samples at 500 Hz), hop 1 s (50 % overlap), cut from the session after the
  model's causal input filter has run over it the way the device runs it (restarting after long gaps).
- Labels: camera frames that pass the guide's filter (ik_error < 15 mm, mp_confidence > 0.5), linearly
  interpolated onto the times of the supervised backbone outputs (every 20 ms over the window's last
  0.5 s; the last one is "now"); a point is supervised only when both neighbouring frames are valid and
  at most 100 ms apart.
- The tracking initial state for backbone sample 1,790 comes from the label θ at that time, projected
  onto the 20 emg2pose angles (real data has no emg2pose angles).
- Splits are by session (`subject/session` keys) or by subject, never by window.
"""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from firmware_bridge.emg_filter import InputFilter, filter_session
from firmware_bridge.errors import UserError
from firmware_bridge.session import Session, SessionFormatError, read_session
from training.hand.angle_map import mano_pose_to_emg2pose_angles
from training.models.mode2_model import MINDROVE_RATE, N_OUTPUT, WINDOW, output_time_offsets

HOP = WINDOW // 2
SUPERVISED_POINTS = 25
SUPERVISED_SPACING = 40  # backbone outputs (2 kHz) = 20 ms
MAX_LABEL_GAP_S = 0.1
SUPERVISED_INDICES = np.arange(
    N_OUTPUT - 1 - SUPERVISED_SPACING * (SUPERVISED_POINTS - 1), N_OUTPUT, SUPERVISED_SPACING
)
INITIAL_STATE_INDEX = 0  # backbone output 0 ↔ 2-kHz sample 1,790: the initial state's time
# Mains notches at both 50- and 60-Hz families up to Nyquist: real armband files carry mains with all its
# harmonics at up to 97 % of a channel's 20–250 Hz power (issue 11), and a model is trained once for users
# anywhere. Q 30: each notch is f/30 wide (1.7–8 Hz), ~15 % of the 20–250 Hz band in all.
DEFAULT_NOTCH_HZ = (50.0, 60.0, 100.0, 120.0, 150.0, 180.0, 200.0, 240.0)
DEFAULT_INPUT_FILTER = InputFilter.design(MINDROVE_RATE, notch_hz=DEFAULT_NOTCH_HZ)  # `mode2 train`'s default


@dataclass
class WindowSet:
    emg: torch.Tensor  # (W,8,1000) float32 µV after the input filter
    theta: torch.Tensor  # (W,S,45)
    joints: torch.Tensor  # (W,S,21,3)
    mask: torch.Tensor  # (W,S) bool
    initial: torch.Tensor  # (W,20) label-derived emg2pose angles at sample 1,790
    session: torch.Tensor  # (W,) index into `keys`
    start_time: torch.Tensor  # (W,) float64 seconds
    keys: list[str] = field(default_factory=list)
    truth_joints: torch.Tensor | None = None  # (W,21,3) true joints at "now" (synthetic data only)
    truth_angles_initial: torch.Tensor | None = None  # (W,20) true emg2pose angles at sample 1,790
    # every contiguous window of the same sessions, labelled or not (`build_windows(..., with_chain=True)`):
    # the `feedback` policy carries its state through them, as a device does, instead of restarting from
    # the training mean wherever the camera labels have a hole
    chain_emg: torch.Tensor | None = None
    chain_session: torch.Tensor | None = None
    chain_start_time: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.emg.shape[0])


_GLOB_CHARS = set("*?[")
PRETRAINING_SUFFIX = "_2k.h5"
# Raw EMG in µV: an ADC input of 10 V is far beyond any armband; larger values are wrong units or garbage
# (and overflow float32 arithmetic inside the model).
MAX_PLAUSIBLE_EMG_UV = 1e7


@dataclass
class DataSelection:
    paths: list[Path]
    notes: list[str]


def resolve_data(patterns: list[str]) -> DataSelection:
    """`--data` entries → session files. A plain file name must exist and be a session; a glob that matches
    nothing, `*_2k.h5` pretraining streams and non-.h5 files a glob picked up are skipped with a note."""
    paths: set[Path] = set()
    notes: list[str] = []
    for pattern in patterns:
        if not _GLOB_CHARS & set(pattern):
            path = Path(pattern)
            if path.is_dir():
                raise UserError(f"--data {pattern}: is a folder; give its session files, e.g. '{path}/*.h5'")
            if not path.exists():
                raise UserError(f"--data {pattern}: no such file")
            if path.name.endswith(PRETRAINING_SUFFIX):
                raise UserError(
                    f"--data {pattern}: a 16-ch 2 kHz pretraining stream (emg2pose layout, for "
                    "`mode2 pretrain-backbone`), not an 8-ch session"
                )
            paths.add(path)
            continue
        matched = sorted(Path(p) for p in glob.glob(pattern))
        if not matched:
            notes.append(f"--data {pattern!r} matches no file")
            continue
        streams = [p for p in matched if p.name.endswith(PRETRAINING_SUFFIX)]
        others = [p for p in matched if p.suffix.lower() not in (".h5", ".hdf5") or p.is_dir()]
        if streams:
            notes.append(f"--data {pattern!r}: skipped {len(streams)} *{PRETRAINING_SUFFIX} pretraining stream(s)")
        if others:
            notes.append(f"--data {pattern!r}: skipped {len(others)} non-.h5 entr(ies), e.g. {others[0].name}")
        paths.update(p for p in matched if p not in streams and p not in others)
    return DataSelection(sorted(paths), notes)


def _interpolate(
    times: np.ndarray, stamps: np.ndarray, values: np.ndarray, valid: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Linear interpolation of per-frame `values` at `times`; ok where both neighbours are valid and close."""
    right = np.clip(np.searchsorted(stamps, times), 1, len(stamps) - 1)
    left = right - 1
    span = stamps[right] - stamps[left]
    weight = np.clip((times - stamps[left]) / np.where(span > 0, span, 1.0), 0.0, 1.0)
    shape = (-1,) + (1,) * (values.ndim - 1)
    out = values[left] * (1 - weight).reshape(shape) + values[right] * weight.reshape(shape)
    ok = valid[left] & valid[right] & (span <= MAX_LABEL_GAP_S) & (times >= stamps[0]) & (times <= stamps[-1])
    return out.astype(np.float32), ok


def session_windows(
    session: Session, hop: int = HOP, input_filter: InputFilter = DEFAULT_INPUT_FILTER
) -> dict[str, np.ndarray]:
    check_trainable(session)
    emg = filter_session(session.emg_raw, session.emg_timestamps, input_filter)
    n = len(session.emg_timestamps)
    starts = np.arange(0, n - WINDOW + 1, hop)
    t0 = session.emg_timestamps[starts]
    # a window whose samples are not contiguous in time (stalled stream) is not used
    contiguous = (session.emg_timestamps[starts + WINDOW - 1] - t0) < (WINDOW - 1) / MINDROVE_RATE * 1.05
    starts, t0 = starts[contiguous], t0[contiguous]
    valid = session.valid_pose_mask()
    offsets = output_time_offsets(SUPERVISED_INDICES)
    times = t0[:, None] + offsets[None, :]
    theta, ok = _interpolate(times.ravel(), session.pose_timestamps, session.mano_theta, valid)
    joints, _ = _interpolate(times.ravel(), session.pose_timestamps, session.joints_3d, valid)
    init_times = t0 + output_time_offsets([INITIAL_STATE_INDEX])[0]
    init_theta, init_ok = _interpolate(init_times, session.pose_timestamps, session.mano_theta, valid)
    out = {
        "emg": np.stack([emg[s : s + WINDOW].T for s in starts]).astype(np.float32)
        if len(starts)
        else np.zeros((0, 8, WINDOW), np.float32),
        "theta": theta.reshape(len(starts), -1, 45),
        "joints": joints.reshape(len(starts), -1, 21, 3),
        "mask": ok.reshape(len(starts), -1),
        "initial": mano_pose_to_emg2pose_angles(init_theta).astype(np.float32),
        "initial_ok": init_ok,
        "start_time": t0,
    }
    if "truth/joints_3d" in session.extras:
        all_valid = np.ones(len(session.pose_timestamps), dtype=bool)
        now_times = t0 + offsets[-1]
        out["truth_joints"], _ = _interpolate(
            now_times, session.pose_timestamps, session.extras["truth/joints_3d"], all_valid
        )
        out["truth_angles_initial"], _ = _interpolate(
            init_times, session.pose_timestamps, session.extras["truth/emg2pose_angles"], all_valid
        )
    return out


def build_windows(
    sessions: list[Session],
    hop: int = HOP,
    *,
    with_chain: bool = False,
    input_filter: InputFilter = DEFAULT_INPUT_FILTER,
) -> WindowSet:
    """Windows with at least one supervised point; a session whose labels never pass the filter adds none
    (callers check that enough is left: `require_labelled`). `with_chain` also keeps every contiguous
    window (labelled or not) for evaluating the `feedback` policy the way the device runs it. A trained
    model's windows use its own `input_filter` (`meta.normalisation.filter`)."""
    if not sessions:
        raise ValueError("build_windows: no sessions")
    parts = [session_windows(s, hop, input_filter) for s in sessions]
    keys = [s.key for s in sessions]
    keep = [p["initial_ok"] & p["mask"].any(axis=1) for p in parts]

    def cat(name: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.as_tensor(np.concatenate([p[name][k] for p, k in zip(parts, keep, strict=True)]), dtype=dtype)

    has_truth = all("truth_joints" in p for p in parts)
    return WindowSet(
        emg=cat("emg"),
        theta=cat("theta"),
        joints=cat("joints"),
        mask=cat("mask", torch.bool),
        initial=cat("initial"),
        session=torch.as_tensor(
            np.concatenate([np.full(int(k.sum()), i) for i, k in enumerate(keep)]), dtype=torch.long
        ),
        start_time=cat("start_time", torch.float64),
        keys=keys,
        truth_joints=cat("truth_joints") if has_truth else None,
        truth_angles_initial=cat("truth_angles_initial") if has_truth else None,
        chain_emg=torch.as_tensor(np.concatenate([p["emg"] for p in parts])) if with_chain else None,
        chain_session=torch.as_tensor(np.concatenate([np.full(len(p["emg"]), i) for i, p in enumerate(parts)]))
        if with_chain
        else None,
        chain_start_time=torch.as_tensor(np.concatenate([p["start_time"] for p in parts]), dtype=torch.float64)
        if with_chain
        else None,
    )


@dataclass
class Split:
    train: list[Session]
    val: list[Session]


def split_sessions(sessions: list[Session], val_sessions: list[str] | None, val_subject: str | None) -> Split:
    """Held-out sessions by `subject/session` key patterns (e.g. 's01/r03', '*/r03') or a whole subject."""
    if val_subject:
        val = [s for s in sessions if s.subject_id == val_subject]
    elif val_sessions:
        val = [s for s in sessions if any(fnmatch.fnmatch(s.key, pattern) for pattern in val_sessions)]
    else:  # default: each subject's last session
        last: dict[str, Session] = {}
        for s in sorted(sessions, key=lambda s: s.key):
            last[s.subject_id] = s
        val = list(last.values())
    train = [s for s in sessions if s not in val]
    if not val or not train:
        raise UserError(
            f"the split (--val-sessions/--val-subject) leaves {len(train)} training and {len(val)} held-out "
            f"sessions; both need at least one. Sessions: {[s.key for s in sessions]}"
        )
    return Split(train, val)


def load_sessions(patterns: list[str], *, quiet: bool = False) -> list[Session]:
    """Every session `--data` names (notes on stderr for what was skipped); UserError for an unusable one."""
    selection = resolve_data(patterns)
    if not quiet:
        for note in selection.notes:
            print(f"note: {note}", file=sys.stderr)
    if not selection.paths:
        raise UserError(f"--data {' '.join(patterns)}: no session files match")
    sessions = [read_session(p) for p in selection.paths]
    unlabelled = [s for s in sessions if not len(s.pose_timestamps)]
    if unlabelled:  # all of them at once: an import of several label-less recordings is refused in one go
        raise UserError(f"{', '.join(str(s.path) for s in unlabelled)}: {NO_LABELS}")
    for session in sessions:
        check_trainable(session)
    return sessions


NO_LABELS = "has no camera labels (0 pose frames): it can be inspected and replayed, not trained on"


def check_trainable(session: Session) -> None:
    """What Mode 2 needs of a session beyond the file contract: 8 channels at 500 Hz, ≥ one 2-s window,
    EMG values of a plausible size, and camera labels."""
    if bool(session.attrs.get("emg_plumbing_only", False)):
        raise UserError(
            f"{session.path}: recorded from the SDK's synthetic test board (attr emg_plumbing_only): its "
            "signals are not EMG; the file checks the recording pipeline only and cannot be trained on"
        )
    if not len(session.pose_timestamps):
        raise UserError(f"{session.path}: {NO_LABELS}")
    channels = session.emg_raw.shape[1]
    if channels != 8:
        raise SessionFormatError(
            session.path, "emg/raw", f"Mode 2 needs the 8 MindRove channels, this file has {channels}"
        )
    if abs(session.emg_rate - MINDROVE_RATE) > 1e-6:
        raise SessionFormatError(
            session.path, "attrs/emg_sampling_rate", f"is {session.emg_rate:g} Hz, Mode 2 needs {MINDROVE_RATE:g}"
        )
    if len(session.emg_timestamps) < WINDOW:
        raise SessionFormatError(
            session.path,
            "emg/raw",
            f"{len(session.emg_timestamps)} samples ({session.duration:.1f} s): shorter than one "
            f"{WINDOW / MINDROVE_RATE:g}-s window",
        )
    peak = float(np.abs(session.emg_raw).max())
    if peak > MAX_PLAUSIBLE_EMG_UV:
        raise SessionFormatError(
            session.path,
            "emg/raw",
            f"values up to {peak:.3g} µV; EMG is below {MAX_PLAUSIBLE_EMG_UV:.0e} µV (10 V): wrong units or a "
            "corrupted recording",
        )


def emg_fingerprint(session: Session) -> str:
    """sha256 of the raw EMG as float32 (its channel count in front): the same recording under another
    name or session_id has the same fingerprint."""
    raw = np.ascontiguousarray(session.emg_raw, dtype=np.float32)
    digest = hashlib.sha256(f"{raw.shape[1]}:".encode())
    digest.update(raw.tobytes())
    return digest.hexdigest()


def require_labelled(windows: WindowSet, sessions: list[Session], role: str) -> None:
    """UserError unless some window has a valid label at its last sample ("now"): training, validation and
    evaluation all measure there."""
    if len(windows) and bool(windows.mask[:, -1].any()):
        return
    frames = sum(len(s.ik_error) for s in sessions)
    valid = sum(int(s.valid_pose_mask().sum()) for s in sessions)
    names = ", ".join(str(s.path) for s in sessions)
    raise UserError(
        f"{role} sessions ({names}) give no usable window: {valid} of {frames} pose frames pass the label "
        "filter (ik_error < 15 mm, mp_confidence > 0.5), and a window needs valid labels 2 s in"
    )


def input_filter_of(meta, source: object) -> InputFilter:
    """A trained model's input filter (`CheckpointMeta.normalisation`), or a UserError naming the checkpoint."""
    if meta.normalisation is None:
        raise UserError(f"{source}: the checkpoint records no normalisation / input filter; retrain it")
    return meta.normalisation.filter


def channel_std(windows: WindowSet) -> torch.Tensor:
    """Per-channel standard deviation of the (filtered) training windows: the z-score statistics."""
    sample = windows.emg[:: max(1, len(windows) // 400)]
    return sample.transpose(0, 1).reshape(8, -1).std(dim=1).clamp_min(1e-3)
