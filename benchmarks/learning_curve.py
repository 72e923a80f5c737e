"""Calibration-time learning curves (issue 15): held-out MPJPE vs minutes of a new subject's data, per model.

For each subject of a world (new to the stand-in backbone, which was pretrained on other synthetic subjects),
train each of --arches (mode2, mode1 = the guide's diagnostic with the fixed angle map, direct = the
Conv1D+LSTM baseline) on the first k minutes of that subject's sessions except the held-out one, for every
--seeds, and evaluate on the held-out session: MPJPE, fingertip error, skill vs the mean pose of the
training labels used, flexion error. Prints a table (mean ± standard deviation over subjects × seeds),
writes learning_curve.json and learning_curve.png, and prints the answer line.

    .venv/bin/python benchmarks/learning_curve.py --data 'W/s*_r0?.h5' --out OUT \\
        --minutes 1 2 5 10 20 --seeds 1 2 3 --epochs 20

Windows never straddle sessions (they are cut per session) and the held-out session is never trained on nor
used to pick weights: there is **no model selection** — the weights after the last epoch are evaluated (the
trainer's per-epoch validation runs on the last training windows only for its log). The initial state
is the training windows' mean (the deployable `train_mean` policy). The "first k minutes" are the sessions in
name order, a window counting when it ends within k minutes of recording; k beyond what the subject has is
capped, and the output says so.

Every finished run is appended to `OUT/runs.jsonl` at once, so a long curve interrupted (or crashed) loses only
the runs under way: run the same command again and the runs already in `OUT/runs.jsonl` are kept, not re-run.
`--add-runs` brings in the runs of earlier curves (their `learning_curve.json` or `runs.jsonl`) — e.g. seed 1
measured last week beside seeds 2 and 3 today — where they fit the asked design (arches, subjects, seeds,
minutes), leaving out runs of another backbone (but the direct baseline's, which uses none) and refusing runs of
other epochs, batch size, Mode 2 settings or held-out session; `--no-training` trains nothing. With several seeds
the table also gives the seed-to-seed spread of one subject (what one training run can tell), and Mode 2 − direct
is paired per subject and seed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import multiprocessing
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.paired_variants import paired
from firmware_bridge.emg_filter import DEFAULT_HIGHPASS_HZ, InputFilter
from firmware_bridge.errors import UserError
from firmware_bridge.session import Session
from training.commands.train_command import PREFIXES, build_arch
from training.data.windows import (
    DEFAULT_NOTCH_HZ,
    WindowSet,
    build_windows,
    channel_std,
    load_sessions,
)
from training.fitting.recommend import CURVES_PATH, MODE2_SETTINGS, recommendation_entry, record_curve
from training.fitting.trainer import TrainConfig, train
from training.hand.fk_numpy import forward_kinematics_np
from training.hand.open_hand import open_hand_model
from training.models.backbone_io import load_backbone
from training.models.checkpoint_meta import CheckpointMeta, Normalisation
from training.models.mode2_model import MINDROVE_RATE, WINDOW
from training.scoring.evaluation import predict
from training.scoring.metrics import auroc, mpjpe_mm, summary

# Mode 2 as the guide has it and one change at a time (`mode2 train` options in brackets); "mode2" is today's
# default: the backbone's decoder fine-tuned and the adapter at the scaled lr (the two that won)
VARIANTS: dict[str, dict[str, Any]] = {
    # the guide's: backbone frozen, adapter at the plain lr (--finetune-backbone none --adapter-lr plain)
    "mode2-guide": {"backbone_finetune": "none", "scale_adapter_lr": False},
    "mode2-alr": {"backbone_finetune": "none", "scale_adapter_lr": True},  # (--finetune-backbone none)
    "mode2-ft": {"backbone_finetune": "decoder", "scale_adapter_lr": False},  # (--adapter-lr plain)
    # a 4× wider AngleConverter (--finetune-backbone none --adapter-lr plain --converter-hidden 512)
    "mode2-wide": {"backbone_finetune": "none", "scale_adapter_lr": False, "converter_hidden": 512},
    # today's Mode 2 with the guide's gradient-trained MLP confidence head (--confidence-head mlp)
    "mode2-mlphead": {"confidence_head": "mlp"},
}
TRAINING_OPTIONS = ("scale_adapter_lr",)  # TrainConfig's; the rest are the model's
ARCHES = ("mode2", "mode1", "direct", *VARIANTS)
DEFAULT_EPOCHS = 20  # one full cosine cycle (the trainer's T_0 = 20): the last epoch ends at the lowest LR
WINDOW_SECONDS = WINDOW / MINDROVE_RATE
VAL_FRACTION = 0.1  # the trainer's per-epoch log runs on this last part of the training windows
METRICS = ("mpjpe_mean_mm", "fingertip_mean_mm", "skill", "flexion_error_mean_deg", "confidence_auroc")


@dataclass
class SubjectData:
    """One subject's training sessions (in order, windowed) and held-out session."""

    subject: str
    train_sessions: list[Session]
    heldout: Session
    train_windows: WindowSet
    heldout_windows: WindowSet
    available_minutes: float


@dataclass
class Run:
    subject: str
    arch: str
    seed: int
    minutes_asked: float
    minutes_used: float
    capped: bool
    train_files: list[str]
    heldout_file: str
    train_windows: int
    heldout_frames: int
    mean_pose_mpjpe_mm: float
    seconds: float
    metrics: dict[str, float | None] = field(default_factory=dict)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", nargs="+", required=True, help="session .h5 files or globs of the world")
    parser.add_argument("--out", type=Path, required=True, help="folder for learning_curve.json/.png")
    parser.add_argument("--subjects", nargs="*", default=None, help="subject ids (default: every subject)")
    parser.add_argument("--arches", nargs="+", choices=ARCHES, default=list(ARCHES))
    parser.add_argument("--minutes", nargs="+", type=float, default=[1.0, 2.0, 5.0, 10.0, 20.0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help=f"every run (default {DEFAULT_EPOCHS})")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--heldout-session", default=None, help="session id held out per subject, e.g. r05 (default: its last)"
    )
    parser.add_argument("--backbone", type=Path, default=None, help="default: the shipped stand-in")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per job (0 = default)")
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel (processes)")
    parser.add_argument(
        "--add-runs",
        nargs="+",
        type=Path,
        default=[],
        help="learning_curve.json or runs.jsonl of earlier curves of the same setting: their runs join this one's",
    )
    parser.add_argument(
        "--no-training",
        action="store_true",
        help="train nothing: the curve of the runs already there (--add-runs, OUT/runs.jsonl); what is missing is said",
    )
    parser.add_argument(
        "--record-curve",
        action="store_true",
        help="keep this curve in training/assets/learning_curves.json: `mode2 train` recommends from it",
    )
    args = parser.parse_args(argv)
    if any(m <= 0 for m in args.minutes) or args.epochs < 1 or args.jobs < 1:
        parser.error("--minutes must be > 0, --epochs and --jobs ≥ 1")
    return args


INPUT_FILTER = InputFilter.design(MINDROVE_RATE, DEFAULT_HIGHPASS_HZ, notch_hz=tuple(DEFAULT_NOTCH_HZ))


def subject_data(sessions: list[Session], subject: str, heldout_id: str | None) -> SubjectData:
    mine = sorted((s for s in sessions if s.subject_id == subject), key=lambda s: s.key)
    if heldout_id is None:
        heldout = mine[-1]
    else:
        named = [s for s in mine if s.session_id == heldout_id]
        if not named:
            raise UserError(f"--heldout-session {heldout_id}: subject {subject} has {[s.session_id for s in mine]}")
        heldout = named[0]
    train_sessions = [s for s in mine if s is not heldout]
    if not train_sessions:
        raise UserError(f"subject {subject}: only the held-out session {heldout.key}, nothing to train on")
    return SubjectData(
        subject,
        train_sessions,
        heldout,
        build_windows(train_sessions, input_filter=INPUT_FILTER),
        build_windows([heldout], input_filter=INPUT_FILTER),
        sum(s.duration for s in train_sessions) / 60.0,
    )


def first_minutes(data: SubjectData, minutes: float) -> tuple[np.ndarray, float]:
    """Indices of the training windows that end within the first `minutes` of recording (sessions in
    order), and the minutes actually used (capped at what the subject has)."""
    used = min(minutes, data.available_minutes)
    offsets, total = {}, 0.0  # seconds of recording before each session's first sample (timestamps are absolute)
    for session in data.train_sessions:
        offsets[session.key] = total - float(session.emg_timestamps[0])
        total += session.duration
    keys = data.train_windows.keys
    origin = np.array([offsets[keys[int(s)]] for s in data.train_windows.session])
    ends = origin + data.train_windows.start_time.numpy() + WINDOW_SECONDS
    return np.flatnonzero(ends <= 60.0 * used + 1e-6), used


def subset(windows: WindowSet, index: np.ndarray) -> WindowSet:
    """The windows at `index` (no chain: only the `feedback` policy needs it, which this tool does not use)."""
    i = torch.as_tensor(index, dtype=torch.long)
    return WindowSet(
        emg=windows.emg[i],
        theta=windows.theta[i],
        joints=windows.joints[i],
        mask=windows.mask[i],
        initial=windows.initial[i],
        session=windows.session[i],
        start_time=windows.start_time[i],
        keys=windows.keys,
        truth_joints=None if windows.truth_joints is None else windows.truth_joints[i],
        truth_angles_initial=None if windows.truth_angles_initial is None else windows.truth_angles_initial[i],
    )


def _mean_theta(windows: WindowSet) -> np.ndarray:
    ok = windows.mask[:, -1]
    return windows.theta[:, -1][ok].mean(dim=0).numpy()


def run_one(data: SubjectData, arch: str, seed: int, minutes: float, args: argparse.Namespace) -> Run:
    started = time.monotonic()
    index, used = first_minutes(data, minutes)
    if len(index) < 2:
        raise UserError(f"subject {data.subject}: {minutes} min gives {len(index)} training windows")
    train_windows = subset(data.train_windows, index)
    n_val = max(1, round(VAL_FRACTION * len(index)))
    log_windows = subset(data.train_windows, index[-n_val:])  # training data: logging only, no selection
    hand = open_hand_model()
    torch.manual_seed(seed)
    options = dict(VARIANTS.get(arch, {}))
    training_options = {k: options.pop(k) for k in TRAINING_OPTIONS if k in options}
    base = "mode2" if arch in VARIANTS else arch
    built = build_arch(base, hand, args.backbone, "geometry", **options)
    model = built.model
    model.preprocess.std.copy_(channel_std(train_windows))
    theta_mean = _mean_theta(train_windows)
    meta = CheckpointMeta(
        kind=model.kind,
        hand_model=hand,
        config=built.config,
        backbone=built.backbone,
        normalisation=Normalisation(std=tuple(model.preprocess.std.tolist()), input_filter=INPUT_FILTER.to_dict()),
        theta_mean=tuple(theta_mean.tolist()),
    )
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
        config = TrainConfig(
            out=Path(tmp),
            epochs=args.epochs,
            batch_size=args.batch_size,
            seed=seed,
            checkpoint_every=0,
            initial_state="train_mean",
            prefix=PREFIXES[base],
            progress=False,
            **training_options,
        )
        train(model, train_windows, log_windows, config, meta)
    # `model` holds the last epoch's weights (no selection)
    heldout = data.heldout_windows
    ok = heldout.mask[:, -1].numpy()
    target = heldout.joints[:, -1].numpy()[ok]
    train_mean = train_windows.initial.mean(dim=0, keepdim=True)
    prediction = predict(model, heldout, "train_mean", train_mean)
    predicted = prediction["joints"][ok]
    mean_pose = forward_kinematics_np(hand, theta_mean)
    mean_pose_mm = float(mpjpe_mm(mean_pose[None], target).mean())
    scores = summary(predicted, target, mean_pose_mm)
    used_keys = sorted({train_windows.keys[int(s)] for s in train_windows.session})
    return Run(
        subject=data.subject,
        arch=arch,
        seed=seed,
        minutes_asked=minutes,
        minutes_used=used,
        capped=minutes > data.available_minutes,
        train_files=[str(s.path) for s in data.train_sessions if s.key in used_keys],
        heldout_file=str(data.heldout.path),
        train_windows=len(train_windows),
        heldout_frames=int(ok.sum()),
        mean_pose_mpjpe_mm=mean_pose_mm,
        seconds=time.monotonic() - started,
        metrics={
            **{k: scores[k] for k in METRICS if k in scores},
            # how well the raw confidence flags frames over 20 mm on the held-out session (rank-based)
            "confidence_auroc": auroc(1.0 - prediction["confidence"][ok], mpjpe_mm(predicted, target) > 20.0),
        },
    )


_JOB: dict[str, Any] = {}  # what forked workers inherit: the subjects' data and the arguments


def _job(task: tuple[str, str, int, float]) -> Run:
    subject, arch, seed, minutes = task
    if _JOB["args"].threads:
        torch.set_num_threads(_JOB["args"].threads)
    return run_one(_JOB["data"][subject], arch, seed, minutes, _JOB["args"])


RUNS_LOG = "runs.jsonl"
BACKBONE_FREE = ("direct",)  # arches that use no backbone: their runs join a curve of any backbone
RunKey = tuple[str, str, int, float]  # subject, arch, seed, minutes used


def setting_of(args: argparse.Namespace, backbone_sha256: str) -> dict[str, Any]:
    """What must match for runs of two invocations to belong to one curve (the held-out session is checked
    per run, against the data)."""
    return {
        "backbone_sha256": backbone_sha256,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "mode2_settings": dict(MODE2_SETTINGS),
    }


def key_of(run: Run) -> RunKey:
    return run.subject, run.arch, run.seed, round(run.minutes_used, 6)


def _setting_of_result(result: dict[str, Any], path: Path) -> dict[str, Any]:
    try:
        arguments = result["arguments"]
        return {
            "backbone_sha256": result["backbone"]["sha256"],
            "epochs": arguments["epochs"],
            "batch_size": arguments["batch_size"],
            "mode2_settings": result["recommendation_entry"]["mode2_settings"],
        }
    except (KeyError, TypeError) as error:
        raise UserError(f"{path}: not a learning_curve.json of this tool (no {error})") from error


def read_runs(path: Path) -> list[tuple[dict[str, Any], Run]]:
    """(setting, run) of every run in a learning_curve.json or a runs.jsonl."""
    if not path.is_file():
        raise UserError(f"{path}: no such file (a learning_curve.json or {RUNS_LOG} of an earlier curve)")
    text = path.read_text()
    try:
        if path.suffix == ".jsonl":
            lines = [json.loads(line) for line in text.splitlines() if line.strip()]
            return [(line["setting"], Run(**line["run"])) for line in lines]
        result = json.loads(text)
        setting = _setting_of_result(result, path)
        return [(setting, Run(**run)) for run in result["runs"]]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise UserError(f"{path}: cannot read its runs ({type(error).__name__}: {error})") from error


def earlier_runs(
    paths: list[Path], setting: dict[str, Any], data: dict[str, SubjectData], asked: set[RunKey]
) -> tuple[dict[RunKey, Run], dict[str, int]]:
    """The runs of `paths` that belong to this curve (later files win a repeated key) and how many were left out,
    by why: outside the `asked` design (arch, subject, seed, minutes), or another backbone — a curve is of one
    backbone, but the
    direct baseline uses none: its runs of another backbone's curve join (the same data, epochs, batch and
    settings make the same model). Any other difference (epochs, batch, Mode 2 settings, held-out session) is an
    error that names it."""
    runs: dict[RunKey, Run] = {}
    left_out = {"outside the arches, subjects, seeds and minutes asked for": 0, "of another backbone": 0}
    for path in paths:
        for their, run in read_runs(path):
            if key_of(run) not in asked:
                left_out["outside the arches, subjects, seeds and minutes asked for"] += 1
                continue
            if run.arch not in BACKBONE_FREE and their.get("backbone_sha256") != setting["backbone_sha256"]:
                left_out["of another backbone"] += 1
                continue
            shared = {k: v for k, v in setting.items() if k != "backbone_sha256"}
            differs = [f"{k} {their.get(k)!r} (here {v!r})" for k, v in shared.items() if their.get(k) != v]
            if differs:
                raise UserError(
                    f"{path}: {run.arch} measured with another setting — {'; '.join(differs)}; runs of one curve "
                    "must share them (use another --out)"
                )
            heldout = str(data[run.subject].heldout.path)
            if run.heldout_file != heldout:
                raise UserError(f"{path}: {run.subject} was evaluated on {run.heldout_file}, here on {heldout}")
            runs[key_of(run)] = run
    return runs, left_out


def drop_partial_line(log: Path) -> bool:
    """Cut a last line the interruption left half written (no newline at the end), so the runs appended next start
    on a line of their own; True when one was dropped (its run is trained again)."""
    text = log.read_text()
    if not text or text.endswith("\n"):
        return False
    log.write_text(text[: text.rfind("\n") + 1])
    return True


def log_run(out: Path, setting: dict[str, Any], run: Run) -> None:
    """Append one finished run to OUT/runs.jsonl (one line, flushed: an interruption keeps every line written)."""
    with (out / RUNS_LOG).open("a") as log:
        log.write(json.dumps({"setting": setting, "run": asdict(run)}) + "\n")
        log.flush()


def task_key(task: tuple, data: dict[str, SubjectData]) -> RunKey:
    """The key the task's run will have (its minutes capped as the run's will be)."""
    subject, arch, seed, minutes = task
    return subject, arch, seed, round(min(minutes, data[subject].available_minutes), 6)


def pending(tasks: list[tuple], data: dict[str, SubjectData], done: dict[RunKey, Run]) -> list[tuple]:
    """The tasks whose run is not in `done`."""
    return [task for task in tasks if task_key(task, data) not in done]


def tasks_of(data: dict[str, SubjectData], args: argparse.Namespace) -> tuple[list[tuple], list[str]]:
    """Every (subject, arch, seed, minutes) to run — one per distinct capped amount — and the capping notes."""
    tasks, notes = [], []
    for subject, d in data.items():
        seen: set[float] = set()
        for minutes in sorted(args.minutes):
            used = min(minutes, d.available_minutes)
            if minutes > d.available_minutes:
                notes.append(
                    f"{subject}: {minutes:g} min asked, {d.available_minutes:.2f} min of training data "
                    f"(sessions {', '.join(s.session_id for s in d.train_sessions)}): capped"
                )
            if round(used, 6) in seen:
                continue
            seen.add(round(used, 6))
            tasks += [(subject, arch, seed, minutes) for arch in args.arches for seed in args.seeds]
    return tasks, notes


def aggregate(runs: list[Run]) -> list[dict[str, Any]]:
    """Per arch × minutes used: mean and standard deviation over subjects × seeds of every metric, and — where a
    subject has several seeds — the seed-to-seed standard deviation within a subject (pooled over subjects)."""
    rows = []
    for arch in dict.fromkeys(r.arch for r in runs):
        for used in sorted({round(r.minutes_used, 6) for r in runs if r.arch == arch}):
            group = [r for r in runs if r.arch == arch and round(r.minutes_used, 6) == used]
            row: dict[str, Any] = {
                "arch": arch,
                "minutes": used,
                "n": len(group),
                "subjects": len({r.subject for r in group}),
                "seeds": sorted({r.seed for r in group}),
            }
            for key in (*METRICS, "mean_pose_mpjpe_mm"):
                finite = np.array([v for v in (_value(r, key) for r in group) if v is not None], dtype=float)
                row[key] = float(finite.mean()) if len(finite) else None
                row[key + "_std"] = float(finite.std()) if len(finite) else None
            for key in METRICS:
                row[key + "_seed_sd"] = seed_sd(group, key)
            rows.append(row)
    return rows


def _value(run: Run, key: str) -> float | None:
    value = run.mean_pose_mpjpe_mm if key == "mean_pose_mpjpe_mm" else run.metrics.get(key)
    return None if value is None or not np.isfinite(value) else float(value)


def seed_sd(group: list[Run], key: str) -> float | None:
    """Root of the mean over subjects of the variance across one subject's seeds (ddof 1): how far two trainings
    of the same subject and data land apart. None without a subject of ≥ 2 seeds."""
    variances = []
    for subject in dict.fromkeys(r.subject for r in group):
        values = [v for v in (_value(r, key) for r in group if r.subject == subject) if v is not None]
        if len(values) >= 2:
            variances.append(float(np.var(values, ddof=1)))
    return float(np.sqrt(np.mean(variances))) if variances else None


def paired_margins(runs: list[Run], a: str = "mode2", b: str = "direct") -> list[dict[str, Any]]:
    """MPJPE of `a` − `b` per amount, paired on subject and seed by paired_variants.paired (same data, same seed),
    then averaged over a subject's seeds: the subject is the unit a new user is drawn from, so the standard error
    is over subjects (None with one subject)."""
    by_arch: dict[str, dict[tuple, dict[str, Any]]] = {a: {}, b: {}}
    for run in runs:
        if run.arch in by_arch:
            by_arch[run.arch][(run.subject, run.seed, round(run.minutes_used, 6))] = asdict(run)
    if not by_arch[a] or not by_arch[b]:
        return []
    rows = []
    for row in paired(by_arch, b):
        delta, subjects = np.array(row["delta"]), np.array(row["subjects"])
        per_subject = np.array([delta[subjects == s].mean() for s in dict.fromkeys(row["subjects"])])
        rows.append(
            {
                "minutes": row["minutes"],
                "mean_mm": float(per_subject.mean()),
                "se_mm": float(per_subject.std(ddof=1) / np.sqrt(len(per_subject))) if len(per_subject) > 1 else None,
                "subjects": len(per_subject),
                "pairs": len(delta),
                "wins": row["wins"],
            }
        )
    return rows


def paired_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| minutes | Mode 2 − direct, paired (mm) | ± 1 se over subjects | subjects | pairs | Mode 2 better in |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        se = "—" if r["se_mm"] is None else f"{r['se_mm']:.2f}"
        lines.append(
            f"| {r['minutes']:.3g} | {r['mean_mm']:+.2f} | {se} | {r['subjects']} | {r['pairs']} | "
            f"{r['wins']}/{r['pairs']} |"
        )
    return "\n".join(lines)


def answer(rows: list[dict[str, Any]]) -> str:
    """'below N minutes Mode 2 beats direct by X mm', or that it does not, from the mean MPJPE per amount."""
    by = {(r["arch"], r["minutes"]): r["mpjpe_mean_mm"] for r in rows}
    amounts = sorted({m for a, m in by if a == "mode2"} & {m for a, m in by if a == "direct"})
    if not amounts:
        return "no answer: the curve needs both --arches mode2 and direct"
    margins = [(m, by[("direct", m)] - by[("mode2", m)]) for m in amounts]
    if all(margin <= 0 for _, margin in margins):
        return "Mode 2 does not beat direct at any amount of data measured"
    leading = []
    for m, margin in margins:
        if margin <= 0:
            break
        leading.append((m, margin))
    if not leading:
        wins = ", ".join(f"{m:g} min by {margin:.2f} mm" for m, margin in margins if margin > 0)
        return f"Mode 2 does not beat direct at the smallest amount; it beats it at {wins}"
    text = " to ".join(dict.fromkeys(f"{margin:.2f}" for _, margin in (leading[0], leading[-1])))
    if len(leading) == len(margins):
        return f"Mode 2 beats direct at every amount measured (up to {amounts[-1]:.3g} minutes) by {text} mm"
    return f"below {margins[len(leading)][0]:.3g} minutes Mode 2 beats direct by {text} mm"


NAMES = {
    "mode2": "Mode 2",
    "mode1": "Mode 1 (fixed map)",
    "direct": "direct Conv1D+LSTM",
    "mode2-guide": "Mode 2 as in the guide (frozen, plain lr)",
    "mode2-alr": "Mode 2 as in the guide + adapter at scaled lr",
    "mode2-ft": "Mode 2 as in the guide + decoder fine-tuned",
    "mode2-wide": "Mode 2 as in the guide + converter 512 wide",
    "mode2-mlphead": "Mode 2 with the guide's MLP confidence head",
}


def table(rows: list[dict[str, Any]]) -> str:
    def cell(row: dict[str, Any], key: str, digits: int) -> str:
        if row.get(key) is None:
            return "—"
        return f"{row[key]:.{digits}f} ± {row[key + '_std']:.{digits}f}"

    def spread(row: dict[str, Any]) -> str:
        value = row.get("mpjpe_mean_mm_seed_sd")
        return "—" if value is None else f"{value:.2f}"

    lines = [
        "| model | minutes | runs | MPJPE (mm) | seed sd (mm) | fingertips (mm) | skill | flexion error (°) "
        "| confidence AUROC | mean pose (mm) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {NAMES[r['arch']]} | {r['minutes']:.3g} | {r['n']} | {cell(r, 'mpjpe_mean_mm', 2)} | {spread(r)} | "
            f"{cell(r, 'fingertip_mean_mm', 2)} | {cell(r, 'skill', 3)} | {cell(r, 'flexion_error_mean_deg', 1)} | "
            f"{cell(r, 'confidence_auroc', 3)} | {cell(r, 'mean_pose_mpjpe_mm', 2)} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path, epochs: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for arch in dict.fromkeys(r["arch"] for r in rows):
        mine = [r for r in rows if r["arch"] == arch]
        x = np.array([r["minutes"] for r in mine])
        y = np.array([r["mpjpe_mean_mm"] for r in mine])
        s = np.array([r["mpjpe_mean_mm_std"] for r in mine])
        (line,) = ax.plot(x, y, "o-", label=NAMES[arch])
        ax.fill_between(x, y - s, y + s, color=line.get_color(), alpha=0.2)
    amounts = sorted({r["minutes"] for r in rows})
    level = [np.mean([r["mean_pose_mpjpe_mm"] for r in rows if r["minutes"] == m]) for m in amounts]
    ax.plot(amounts, level, "k--", label="mean pose of the training data")
    ax.set_xscale("log")
    ax.set_xticks(amounts, [f"{m:.3g}" for m in amounts])
    ax.minorticks_off()
    ax.set_xlabel("minutes of the new subject's data")
    ax.set_ylabel("held-out MPJPE (mm, vs camera labels)")
    ax.set_title(f"calibration-time learning curve ({epochs} epochs; band: ± 1 sd over subjects × seeds)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    sessions = load_sessions(args.data, quiet=True)
    subjects = args.subjects or sorted({s.subject_id for s in sessions})
    data = {subject: subject_data(sessions, subject, args.heldout_session) for subject in subjects}
    tasks, notes = tasks_of(data, args)
    backbone = load_backbone(args.backbone)[1].to_dict()
    setting = setting_of(args, backbone["sha256"])
    print(
        f"{len(subjects)} subjects, arches {' '.join(args.arches)}, seeds {' '.join(map(str, args.seeds))}, "
        f"{args.epochs} epochs per run (the same for every amount), batch {args.batch_size}; no model selection "
        "(last epoch's weights); held out: " + ", ".join(d.heldout.key for d in data.values())
    )
    for note in notes:
        print(f"note: {note}")
    args.out.mkdir(parents=True, exist_ok=True)
    logged = args.out / RUNS_LOG
    if logged.is_file() and drop_partial_line(logged):
        print(f"note: {logged}: its last line was cut off by the interruption: that run is trained again")
    sources = [*args.add_runs, *([logged] if logged.is_file() else [])]
    done, left_out = earlier_runs(sources, setting, data, {task_key(task, data) for task in tasks})
    todo = pending(tasks, data, done)
    if sources:
        print(
            f"{len(done)} runs kept from {', '.join(map(str, sources))}"
            + (
                f" ({'; '.join(f'{n} {why}' for why, n in left_out.items() if n)} left out)"
                if any(left_out.values())
                else ""
            )
            + f"; {len(todo)} of the {len(tasks)} asked for still to run"
        )
    if args.no_training and todo:
        missing = ", ".join(f"{s}/{a}/seed {seed}/{m:g} min" for s, a, seed, m in todo[:6])
        more = ", …" if len(todo) > 6 else ""
        print(f"note: --no-training: {len(todo)} asked for have no run and are left out ({missing}{more})")
        todo = []
    if not done and not todo:
        raise UserError("no runs: nothing was asked for, or --no-training without --add-runs or OUT/runs.jsonl")
    _JOB.update(data=data, args=args)
    runs = list(done.values())
    if args.jobs > 1 and len(todo) > 1:
        with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
            for run in tqdm(pool.imap_unordered(_job, todo), total=len(todo), desc="runs"):
                log_run(args.out, setting, run)
                runs.append(run)
    else:
        for task in tqdm(todo, desc="runs"):
            run = _job(task)
            log_run(args.out, setting, run)
            runs.append(run)
    order = {arch: i for i, arch in enumerate(ARCHES)}
    runs.sort(key=lambda r: (order[r.arch], r.subject, r.seed, r.minutes_used))
    rows = aggregate(runs)
    margins = paired_margins(runs)
    verdict = answer(rows)
    print(table(rows))
    if margins:
        print(paired_table(margins))
    print(verdict)
    result = {
        "arguments": {k: _plain(v) for k, v in vars(args).items()},
        "model_selection": "none: the last epoch's weights are evaluated",
        "notes": notes,
        "rows": rows,
        "paired_mode2_minus_direct": margins,
        "answer": verdict,
        "runs": [asdict(r) for r in runs],
        "cpu_seconds_total": sum(r.seconds for r in runs),
    }
    result["backbone"] = {k: backbone[k] for k in ("kind", "path", "sha256")}
    synthetic = all(bool(s.attrs.get("synthetic", False)) for s in sessions)
    result["recommendation_entry"] = recommendation_entry(result, backbone, synthetic)
    if args.record_curve:
        record_curve(result["recommendation_entry"])
        print(f"recorded in {CURVES_PATH}: `mode2 train` now recommends from this curve for this backbone")
    (args.out / "learning_curve.json").write_text(json.dumps(result, indent=1))
    plot(rows, args.out / "learning_curve.png", args.epochs)
    print(f"wrote {args.out / 'learning_curve.json'} and {args.out / 'learning_curve.png'}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as error:
        print(f"learning_curve: error: {error}", file=sys.stderr)
        sys.exit(2)
