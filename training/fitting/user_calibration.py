"""Per-donning confidence calibration: fit the table (raw confidence → P(error ≤ 20 mm)) on a short
labelled recording made after the band was put on, and store it in the checkpoint; the export bakes it
into the graph, so the device's gate reads a probability for this person and this donning.

Why per donning and not once per user: measured on the synthetic world (README, "Confidence"), a table
fitted on one session of a user left the next session of the same user no better (or worse) calibrated
than the raw score: what a given score means shifts with the band's placement. Why a recording that
walks through every phase (`mode2 record --phase-scale 0.25`, about a minute) and not the first minute
of a long session: that minute is mostly the rest phase, where errors are small, so a table fitted on it
is too confident for the movement that follows (measured: it made the worst subject's Brier score worse).

`mode2 train` and `mode2 evaluate` estimate what the step gives on their held-out sessions: a table fitted
on a quarter of each session spread over all of it (every 4th 15-s block, ≈ 1 minute of a 4-minute
session) and scored on the windows that share no sample with those blocks.

Tables record where they came from (`sessions`, `minutes`, `subjects`, `fitted_by`, `windows`) so
`mode2 evaluate` scores a stored table only on frames it was not fitted on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from firmware_bridge.session import Session
from training.data.windows import HOP, WindowSet, build_windows, input_filter_of
from training.fitting import confidence_calibration as calib
from training.models.checkpoint_meta import CheckpointMeta
from training.models.mode2_model import MINDROVE_RATE, WINDOW
from training.models.model_io import load_model_checkpoint, save_model_checkpoint
from training.scoring.evaluation import deployed_policy, predict
from training.scoring.metrics import ERROR_THRESHOLD_MM, auroc, mpjpe_mm

CALIBRATION_HOP = HOP // 4  # 0.25 s: a minute gives ~240 windows (correlated, but a smoother fit)
WINDOW_S = WINDOW / MINDROVE_RATE
DONNING_BLOCK_S = 15.0  # the per-donning estimate fits on every 4th 15-s block of a held-out session
DONNING_EVERY = 4
MIN_WINDOWS = 30  # fewer labelled windows than this cannot support a fit
MIN_EACH_OUTCOME = 5  # frames within and over 20 mm: with one outcome only there is nothing to rank


@dataclass
class Frames:
    """Raw confidence, MPJPE vs camera labels (mm), end time within its session (s) and session key of every
    labelled window, the model run as deployed."""

    confidence: np.ndarray
    errors: np.ndarray
    end_s: np.ndarray
    session: np.ndarray

    def select(self, keep: np.ndarray) -> Frames:
        return Frames(self.confidence[keep], self.errors[keep], self.end_s[keep], self.session[keep])


def frames_of(windows: WindowSet, prediction: dict[str, np.ndarray], sessions: list[Session]) -> Frames:
    """The labelled windows of `windows` with the model's `predict` output on them."""
    ok = windows.mask[:, -1].numpy()
    keys = np.array(windows.keys)[windows.session.numpy()]
    starts = {s.key: float(s.emg_timestamps[0]) for s in sessions}
    end_s = windows.start_time.numpy() + WINDOW_S - np.array([starts[k] for k in keys])
    errors = mpjpe_mm(prediction["joints"][ok], windows.joints[:, -1].numpy()[ok])
    return Frames(np.asarray(prediction["confidence"])[ok], errors, end_s[ok], keys[ok])


def model_frames(
    model: torch.nn.Module, meta: CheckpointMeta, sessions: list[Session], source: object, hop: int = HOP
) -> Frames:
    windows = build_windows(sessions, hop=hop, with_chain=True, input_filter=input_filter_of(meta, source))
    policy, mean = deployed_policy(meta)
    return frames_of(windows, predict(model, windows, policy, mean), sessions)


def fitted_frames(frames: Frames, table: dict[str, Any]) -> np.ndarray:
    """The frames a stored table was fitted on (by its recorded sessions and minutes)."""
    in_sessions = np.isin(frames.session, list(table.get("sessions", [])))
    minutes = table.get("minutes")
    return in_sessions if minutes is None else in_sessions & ~after_minutes(frames, float(minutes))


def first_minutes(frames: Frames, minutes: float | None) -> np.ndarray:
    """Windows that end within the first `minutes` of their session (all when None)."""
    return np.ones(len(frames.errors), bool) if minutes is None else frames.end_s <= 60.0 * minutes


def after_minutes(frames: Frames, minutes: float) -> np.ndarray:
    """Windows that share no sample with the first `minutes` of their session."""
    return frames.end_s - WINDOW_S >= 60.0 * minutes


@dataclass
class CalibrationFit:
    """A fitted table (None when refused, with the reason) and how the raw and calibrated confidence do on
    the calibration frames themselves (AUROC is rank-based: calibration does not change it)."""

    table: dict[str, Any] | None
    reason: str | None
    windows: int
    within: int  # frames with error ≤ 20 mm
    auroc: float
    brier_raw: float
    brier_calibrated: float
    ece_raw: float
    ece_calibrated: float
    subjects: list[str] = field(default_factory=list)

    def describe(self) -> str:
        if self.table is None:
            return f"confidence not calibrated: {self.reason}"
        span = "" if self.table.get("minutes") is None else f"first {self.table['minutes']:g} min of "
        return (
            f"confidence calibrated on {span}{', '.join(self.table['sessions'])} ({self.windows} windows, "
            f"{100 * self.within / self.windows:.0f} % within {ERROR_THRESHOLD_MM:g} mm): AUROC {self.auroc:.3f}, "
            f"Brier {self.brier_raw:.3f} → {self.brier_calibrated:.3f}, ECE {self.ece_raw:.3f} → "
            f"{self.ece_calibrated:.3f} (on those frames)"
        )


def fit_user_calibration(
    confidence: np.ndarray,
    errors_mm: np.ndarray,
    sessions: list[Session],
    fitted_by: str,
    minutes: float | None = None,
    method: str = "isotonic",
) -> CalibrationFit:
    """The table with its provenance, or a refusal when the frames cannot support one."""
    within = errors_mm <= ERROR_THRESHOLD_MM
    n, n_within = len(errors_mm), int(within.sum())
    subjects = sorted({s.subject_id for s in sessions})
    raw_scores = {
        "auroc": auroc(1.0 - confidence, ~within) if n else float("nan"),
        "brier_raw": calib.brier(confidence, within) if n else float("nan"),
        "ece_raw": calib.expected_calibration_error(confidence, within),
    }
    reason = None
    if n < MIN_WINDOWS:
        reason = f"{n} labelled windows (at least {MIN_WINDOWS} needed: record a longer calibration session)"
    elif min(n_within, n - n_within) < MIN_EACH_OUTCOME:
        reason = (
            f"{n_within} of {n} windows are within {ERROR_THRESHOLD_MM:g} mm: the fit needs at least "
            f"{MIN_EACH_OUTCOME} windows on each side to tell good frames from bad (a session with more varied "
            "movement gives both)"
        )
    if reason is not None:
        nan = float("nan")
        return CalibrationFit(
            None, reason, n, n_within, **raw_scores, brier_calibrated=nan, ece_calibrated=nan, subjects=subjects
        )
    table = calib.fit_from_errors(confidence, errors_mm, method)
    calibrated = calib.apply(table, confidence)
    table.update(
        {"fitted_by": fitted_by, "sessions": [s.key for s in sessions], "minutes": minutes, "subjects": subjects}
    )
    table["windows"] = n
    return CalibrationFit(
        table,
        None,
        n,
        n_within,
        **raw_scores,
        brier_calibrated=calib.brier(calibrated, within),
        ece_calibrated=calib.expected_calibration_error(calibrated, within),
        subjects=subjects,
    )


def calibrate_checkpoint(
    path: Path,
    sessions: list[Session],
    fitted_by: str,
    minutes: float | None = None,
    method: str = "isotonic",
    loaded: tuple[torch.nn.Module, CheckpointMeta] | None = None,
) -> CalibrationFit:
    """Fit on the first `minutes` (all when None) of `sessions` and, unless refused, store the table in the
    checkpoint at `path` (atomically). `loaded`: the checkpoint's model and meta when the caller has them."""
    model, meta = loaded or load_model_checkpoint(path)
    frames = model_frames(model, meta, sessions, path, hop=CALIBRATION_HOP)
    fit_on = frames.select(first_minutes(frames, minutes))
    fit = fit_user_calibration(fit_on.confidence, fit_on.errors, sessions, fitted_by, minutes, method)
    if fit.table is not None:
        save_model_checkpoint(path, model, meta.with_(confidence_calibration=fit.table))
    return fit


def in_blocks(frames: Frames, block_s: float, every: int) -> tuple[np.ndarray, np.ndarray]:
    """(fit, score) masks: windows lying inside every `every`-th block of `block_s` seconds (counted from
    each session's start), and windows sharing no sample with any of those blocks."""
    first = np.floor((frames.end_s - WINDOW_S) / block_s).astype(int)
    last = np.floor((frames.end_s - 1e-9) / block_s).astype(int)
    fit = (first == last) & (first % every == 0)
    # a window spans at most two blocks (WINDOW_S < block_s): score it when neither is a fit block
    score = (first % every != 0) & (last % every != 0)
    return fit, score


def per_donning(
    model: torch.nn.Module, meta: CheckpointMeta, sessions: list[Session], source: object, scored: Frames,
    block_s: float = DONNING_BLOCK_S, every: int = DONNING_EVERY,
) -> dict[str, Any]:  # fmt: skip
    """What the per-donning step gives: for each session, a table fitted on its every `every`-th block of
    `block_s` seconds (at the calibration hop) applied to `scored`'s frames of that session that share no
    sample with those blocks. Sessions too short or too one-sided for a fit are listed and left out."""
    fit_frames = model_frames(model, meta, sessions, source, hop=CALIBRATION_HOP)
    fit_mask, _ = in_blocks(fit_frames, block_s, every)
    _, score_mask = in_blocks(scored, block_s, every)
    raw, calibrated, outcome, skipped = [], [], [], {}
    for session in sessions:
        mine = fit_frames.select((fit_frames.session == session.key) & fit_mask)
        fit = fit_user_calibration(mine.confidence, mine.errors, [session], "per-donning estimate")
        rest = scored.select((scored.session == session.key) & score_mask)
        if fit.table is None or not len(rest.errors):
            skipped[session.key] = fit.reason or "nothing left to score beside the fitted blocks"
            continue
        raw.append(rest.confidence)
        calibrated.append(calib.apply(fit.table, rest.confidence))
        outcome.append(rest.errors <= ERROR_THRESHOLD_MM)
    result: dict[str, Any] = {"block_s": block_s, "every": every, "skipped": skipped, "frames": 0}
    if raw:
        within = np.concatenate(outcome)
        result["frames"] = len(within)
        result["raw"] = calib.calibration_figures(np.concatenate(raw), within)
        result["calibrated"] = calib.calibration_figures(np.concatenate(calibrated), within)
    return result
