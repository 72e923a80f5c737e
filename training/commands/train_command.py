"""`mode2 train`: the Mode 2 transfer model (or, with --arch direct, the direct Conv1D+LSTM baseline).

Runs as is on one machine, or under torchrun for data parallelism:
    torchrun --nproc_per_node 2 -m runtime.cli train --data ... (gloo backend on CPU)

Bad input is refused before any training (exit 2, one line): bad numbers by argparse, unusable files,
sessions without valid labels, EMG of implausible size, a --resume file of another architecture. A loss
that becomes NaN/inf stops the run with the likely cause. Ctrl-C ends with exit 130 and the command that
resumes; every file is written atomically, so the checkpoints on disk are always complete.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from firmware_bridge.atomic_write import check_writable_dir
from firmware_bridge.cli_types import bounded_float, non_negative_int, positive_float, positive_int
from firmware_bridge.emg_filter import DEFAULT_HIGHPASS_HZ, FilterSpecError, InputFilter
from firmware_bridge.errors import UserError
from firmware_bridge.session import Session
from training.data.windows import (
    DEFAULT_NOTCH_HZ,
    Split,
    WindowSet,
    build_windows,
    channel_std,
    emg_fingerprint,
    load_sessions,
    require_labelled,
    split_sessions,
)
from training.fitting.confidence_head_fit import fits_closed_form, learns_by_gradient
from training.fitting.recommend import MODE2_SETTINGS, curve_settings, recommend
from training.fitting.trainer import TrainConfig, train
from training.fitting.user_calibration import model_frames, per_donning
from training.hand.mano_hand import load_mano
from training.hand.mano_loader import WHERE_TO_GET_MANO
from training.hand.open_hand import open_hand_model
from training.hand.params import HandModelParams
from training.models.backbone import default_backbone_path
from training.models.backbone_io import load_backbone
from training.models.checkpoint_io import CheckpointError, read_checkpoint_safely, sha256_of
from training.models.checkpoint_meta import (
    BackboneRecord,
    CheckpointMeta,
    ModelConfig,
    Normalisation,
    TrainingRecord,
)
from training.models.direct_model import DirectModel
from training.models.mode2_model import (
    CONFIDENCE_HEADS,
    CONVERTER_HIDDEN,
    DEFAULT_BACKBONE_FINETUNE,
    DEFAULT_CONFIDENCE_HEAD,
    MINDROVE_RATE,
)
from training.models.model_io import load_model_checkpoint, mode2_model
from training.scoring.metrics import ERROR_THRESHOLD_MM, auroc, mean_pose_verdict, skill_score

INTERRUPTED_EXIT = 130  # the shell's convention for "stopped by Ctrl-C" (128 + SIGINT)
PREFIXES = {"mode2": "transfer_mode2", "mode1": "transfer_mode1", "direct": "direct"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", nargs="+", required=True, help="session .h5 files or globs ('D/*.h5')")
    parser.add_argument("--out", type=Path, default=Path("checkpoints"), help="output folder (default checkpoints/)")
    parser.add_argument(
        "--arch",
        choices=["mode2", "mode1", "direct"],
        default="mode2",
        help="mode1: the guide's diagnostic (adapter only, fixed angle map; cannot be exported)",
    )
    parser.add_argument("--epochs", type=positive_int, default=100)
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--lr", type=bounded_float(0.0, 10.0, low_inclusive=False), default=1e-3)
    parser.add_argument(
        "--backbone",
        type=Path,
        default=None,
        help="emg2pose tracking_vemg2pose.ckpt or a stand-in (default: the shipped stand-in)",
    )
    parser.add_argument("--mano", type=Path, default=None, help="MANO_RIGHT.pkl (default: the open hand model)")
    parser.add_argument("--mano-hands-mean", action="store_true", help="use MANO's hands_mean (flat_hand_mean=False)")
    parser.add_argument("--adapter-init", choices=["geometry", "random"], default="geometry")
    parser.add_argument(
        "--converter-hidden",
        type=positive_int,
        default=None,
        help=f"width of the AngleConverter's residual MLP (default {CONVERTER_HIDDEN}; the guide's wider: 512)",
    )
    parser.add_argument(
        "--adapter-lr",
        choices=["plain", "scaled"],
        default=None,
        help="scaled (default): the ChannelAdapter learns at --lr × its weights' scale; plain: at --lr, where it "
        "barely moves (the guide's setting)",
    )
    parser.add_argument(
        "--finetune-backbone",
        choices=["none", "decoder"],
        default=None,
        help="decoder (Mode 2's default): the backbone's LSTM decoder trains too, at 0.1× the learning rate; "
        "none: the whole backbone frozen (the guide's setting; Mode 1's only one)",
    )
    parser.add_argument(
        "--confidence-head",
        choices=list(CONFIDENCE_HEADS),
        default=None,
        help="ridge (default): a linear head fitted in closed form on the training windows' errors after training "
        "(ranks held-out errors better); mlp: the guide's small MLP trained with the pose loss",
    )
    parser.add_argument(
        "--highpass-hz",
        type=positive_float,
        default=DEFAULT_HIGHPASS_HZ,
        help=f"corner of the causal input high-pass (order 4 Butterworth; default {DEFAULT_HIGHPASS_HZ:g})",
    )
    parser.add_argument(
        "--notch-hz",
        type=positive_float,
        nargs="*",
        default=list(DEFAULT_NOTCH_HZ),
        help="mains notches in the input filter (default: "
        + " ".join(f"{hz:g}" for hz in DEFAULT_NOTCH_HZ)
        + ", the 50- and 60-Hz families; give the option with no value for none)",
    )
    parser.add_argument(
        "--initial-state",
        choices=["auto", "neutral", "train_mean", "feedback"],
        default="auto",
        help="tracking initial-state policy recorded for the device; auto = best on held-out sessions",
    )
    parser.add_argument(
        "--val-sessions",
        nargs="+",
        default=None,
        help="held-out session keys 'subject/session' (globs ok); default: each subject's last",
    )
    parser.add_argument("--val-subject", default=None, help="hold out a whole subject instead")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--resume", type=Path, default=None, help="a *_last.pth written by an earlier run")
    parser.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda", "mps"],
        default="auto",
        help="auto = CUDA, else Apple MPS, else CPU; naming an absent device is an error",
    )
    parser.add_argument("--checkpoint-every", type=non_negative_int, default=10, help="epochs (0 = never)")
    parser.add_argument("--max-minutes", type=positive_float, default=None, help="stop after this much training time")
    parser.add_argument("--threads", type=non_negative_int, default=0, help="torch CPU threads (0 = default)")


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def pick_device(choice: str) -> torch.device:
    if choice == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available to this PyTorch build (use auto or cpu)")
    if choice == "mps" and not _mps_available():
        raise UserError("--device mps: Apple's MPS is not available here (use auto or cpu)")
    return torch.device(choice)


def _check_resume(path: Path, prefix: str, model: torch.nn.Module, epochs: int) -> dict:
    """The --resume file must be a *_last.pth of this architecture whose weights fit this model."""
    content = read_checkpoint_safely(path)
    if content.get("kind") != "resume":
        raise CheckpointError(
            f"--resume {path}: not a resume file (kind={content.get('kind')!r}); pass the {prefix}_last.pth "
            "that an earlier run wrote"
        )
    stored_arch = content.get("arch")
    if stored_arch is not None and stored_arch != prefix:
        raise CheckpointError(f"--resume {path}: written by a {stored_arch} run, this run trains {prefix}")
    for key in ("state_dict", "optimizer", "scheduler", "epoch", "best_val_loss", "history"):
        if key not in content:
            raise CheckpointError(f"--resume {path}: incomplete resume file (no {key!r})")
    probe = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        model.load_state_dict(content["state_dict"], strict=True)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise CheckpointError(
            f"--resume {path}: its weights do not fit this model (another --arch, --backbone or --mano?): {first}"
        ) from error
    finally:
        model.load_state_dict(probe)
    if int(content["epoch"]) >= epochs:
        raise UserError(f"--resume {path}: already trained {content['epoch']} epochs; --epochs must be larger")
    return content


def _resume_command(out: Path, prefix: str) -> str:
    """The command line that continues this run: the same arguments with --resume pointing at *_last.pth."""
    argv = sys.argv[1:]
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--resume":
            skip = True
            continue
        if arg.startswith("--resume="):
            continue
        kept.append(arg)
    kept += ["--resume", str(out / f"{prefix}_last.pth")]
    return "mode2 " + " ".join(shlex.quote(a) for a in kept)


def _interrupted_hint(out: Path, prefix: str) -> str:
    if (out / f"{prefix}_last.pth").exists():
        return f"the checkpoints in {out} are intact; resume with: {_resume_command(out, prefix)}"
    return "no epoch had finished, nothing to resume: run the same command again"


@contextlib.contextmanager
def _ctrl_c_as_stop_request(stop: threading.Event) -> Iterator[None]:
    """During training, Ctrl-C only sets `stop`; the trainer raises KeyboardInterrupt at its next batch. Python
    installs no KeyboardInterrupt handler in a process started with SIGINT ignored — what `mode2 train … &` in a
    script does — and such a run trained on through Ctrl-C; this handler is installed whatever the start. Main
    thread only (signal handlers can only be set there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run(args: argparse.Namespace) -> int:
    prefix = PREFIXES[args.arch]
    try:
        return _run(args, prefix)
    except KeyboardInterrupt:
        print(f"\nmode2 train: interrupted; {_interrupted_hint(args.out, prefix)}", file=sys.stderr)
        return INTERRUPTED_EXIT


@dataclass
class _Data:
    """The sessions of this run, split, and their 2-s windows."""

    sessions: list[Session]
    split: Split
    train_windows: WindowSet
    val_windows: WindowSet


def _check_arguments(args: argparse.Namespace) -> torch.device:
    """What can be refused before reading any data: the output folder, the MANO file, the device."""
    check_writable_dir(args.out, what="--out")
    if args.mano is not None and not args.mano.is_file():
        raise UserError(f"--mano {args.mano}: no such file — {WHERE_TO_GET_MANO}")
    _refuse_options_that_do_not_apply(args)
    return pick_device(args.device)


def _refuse_options_that_do_not_apply(args: argparse.Namespace) -> None:
    """The Mode 2 variants' options name parts the other architectures do not have."""
    given = {
        "--converter-hidden": args.converter_hidden is not None,
        "--adapter-lr": args.adapter_lr is not None,
        "--finetune-backbone": args.finetune_backbone not in (None, "none"),
        "--confidence-head": args.confidence_head is not None,
    }
    lacking = {
        "direct": ("--converter-hidden", "--adapter-lr", "--finetune-backbone"),
        "mode1": ("--converter-hidden", "--finetune-backbone", "--confidence-head"),  # its head stays unfitted
        "mode2": (),
    }
    wrong = [option for option in lacking[args.arch] if given[option]]
    if wrong:
        raise UserError(f"{', '.join(wrong)}: not for --arch {args.arch} (options of Mode 2's parts)")


def _join_ranks() -> int:
    """This process's rank: 0 alone, or its place in a torchrun group (gloo)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    return dist.get_rank() if dist.is_initialized() else 0


def _leave_ranks() -> None:
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _load_data(args: argparse.Namespace, rank: int) -> _Data:
    """Load, split and window the sessions; refuse splits without valid labels."""
    sessions = load_sessions(args.data, quiet=rank != 0)
    split = split_sessions(sessions, args.val_sessions, args.val_subject)
    spec = input_filter_from_args(args)
    train_windows = build_windows(split.train, input_filter=spec)
    # the policy choice runs `feedback` as a device does
    val_windows = build_windows(split.val, with_chain=True, input_filter=spec)
    require_labelled(train_windows, split.train, "training")
    require_labelled(val_windows, split.val, "held-out")
    return _Data(sessions, split, train_windows, val_windows)


@dataclass
class _Built:
    """The model to train, its configuration and, for Mode 2, the frozen backbone it is built around."""

    model: torch.nn.Module
    config: ModelConfig
    backbone: BackboneRecord | None = None


def build_arch(
    arch: str,
    hand: HandModelParams,
    backbone_path: Path | None,
    adapter_init: str,
    *,
    converter_hidden: int | None = None,
    backbone_finetune: str | None = None,
    confidence_head: str = DEFAULT_CONFIDENCE_HEAD,
) -> _Built:
    """The untrained model of `arch` ("mode2", "mode1" or "direct") around the given (or shipped) backbone;
    None = the arch's default (Mode 2: DEFAULT_BACKBONE_FINETUNE, Mode 1: frozen)."""
    converter_hidden = converter_hidden or CONVERTER_HIDDEN
    if backbone_finetune is None:
        backbone_finetune = DEFAULT_BACKBONE_FINETUNE if arch == "mode2" else "none"
    if arch == "direct":
        return _Built(
            DirectModel(hand, confidence_head=confidence_head),
            ModelConfig(adapter_init=adapter_init, arch=arch, confidence_head=confidence_head),
        )
    backbone, info = load_backbone(backbone_path)
    config = ModelConfig(
        adapter_init=adapter_init,
        backbone_input_scale=float(info.provenance.get("input_rms", 1.0)),
        arch=arch,
        converter_hidden=converter_hidden if arch == "mode2" else CONVERTER_HIDDEN,
        backbone_finetune=backbone_finetune,
        confidence_head=confidence_head,
    )
    try:
        model = mode2_model(backbone, hand, config)
    except ValueError as error:
        raise UserError(f"--arch {arch}: {error}") from error
    record = BackboneRecord(kind=info.kind, path=info.path, sha256=info.sha256, config=info.config.to_dict())
    return _Built(model, config, record)


def _build_model(args: argparse.Namespace, hand: HandModelParams) -> _Built:
    return build_arch(
        args.arch,
        hand,
        args.backbone,
        args.adapter_init,
        converter_hidden=args.converter_hidden,
        backbone_finetune=args.finetune_backbone,
        confidence_head=args.confidence_head or DEFAULT_CONFIDENCE_HEAD,
    )


def input_filter_from_args(args: argparse.Namespace) -> InputFilter:
    try:
        return InputFilter.design(MINDROVE_RATE, args.highpass_hz, notch_hz=tuple(args.notch_hz or ()))
    except FilterSpecError as exc:
        raise UserError(f"--highpass-hz/--notch-hz: {exc}") from exc


def _set_normalisation(model: torch.nn.Module, data: _Data) -> None:
    """The in-graph z-score uses the training EMG's per-channel spread (after the same input filter)."""
    std = channel_std(data.train_windows)
    if not bool(torch.isfinite(std).all()):
        raise UserError(
            f"the training EMG's per-channel spread is not finite ({std.tolist()}): extreme values in "
            f"{', '.join(str(s.path) for s in data.split.train)}"
        )
    model.preprocess.std.copy_(std)


def _checkpoint_meta(args: argparse.Namespace, data: _Data, hand: HandModelParams, built: _Built) -> CheckpointMeta:
    """What every checkpoint of this run records besides its weights (the trainer adds the rest)."""
    split, train_windows = data.split, data.train_windows
    now_ok = train_windows.mask[:, -1]
    training = TrainingRecord(
        command="mode2 " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        seed=args.seed,
        train_sessions=tuple(s.key for s in split.train),
        val_sessions=tuple(s.key for s in split.val),
        # content fingerprints: `evaluate` refuses these recordings under any name or session_id
        train_emg_sha256={s.key: emg_fingerprint(s) for s in split.train},
        train_windows=len(train_windows),
        val_windows=len(data.val_windows),
        train_minutes=sum(s.duration for s in split.train) / 60.0,
        synthetic=all(bool(s.attrs.get("synthetic", False)) for s in data.sessions),
    )
    return CheckpointMeta(
        kind=built.model.kind,
        hand_model=hand,
        config=built.config,
        backbone=built.backbone,
        normalisation=Normalisation(
            std=tuple(built.model.preprocess.std.tolist()), input_filter=input_filter_from_args(args).to_dict()
        ),
        training=training,
        theta_mean=tuple(train_windows.theta[:, -1][now_ok].mean(dim=0).tolist()),  # for the mean-pose baseline
    )


def _announce(args: argparse.Namespace, model: torch.nn.Module, data: _Data, device: torch.device) -> None:
    trainable = sum(p.numel() for p in model.trainable_parameters())
    total = sum(p.numel() for p in model.parameters())
    print(
        f"{args.arch}: {trainable:,} trainable of {total:,} parameters on {device}; {len(data.train_windows)} "
        f"training windows from {len(data.split.train)} sessions, {len(data.val_windows)} held-out windows from "
        f"{[s.key for s in data.split.val]}"
    )
    if fits_closed_form(model):
        confidence = " (the confidence head is fitted in closed form after each epoch and at the end)"
    elif learns_by_gradient(model):
        confidence = " + 0.1 × confidence-head loss"
    else:
        confidence = " (the confidence head is not trained)"
    print(f"loss = MSE(θ, rad²) + MSE(joints, dm²){confidence}; MPJPE in mm vs camera labels")


def _recommend(args: argparse.Namespace, data: _Data, built: _Built) -> None:
    """Say which architecture the measured learning curve of this backbone expects to win with this much data."""
    path = Path(args.backbone) if args.backbone else default_backbone_path()
    sha = built.backbone.sha256 if built.backbone else sha256_of(path)
    subjects = {s.subject_id for s in data.split.train}
    minutes = sum(s.duration for s in data.split.train) / 60.0 / max(1, len(subjects))
    advice = recommend(sha, minutes)
    if advice is None:
        other = curve_settings(sha)
        measured = (
            f"the learning curve of backbone {path.name} ({sha[:12]}…) was measured with other Mode 2 settings "
            f"({other[-1] or 'the guide’s: frozen backbone, plain adapter lr'}; today's: {MODE2_SETTINGS})"
            if other
            else f"no learning curve measured for backbone {path.name} ({sha[:12]}…)"
        )
        print(
            f"{measured}: `python benchmarks/learning_curve.py … --record-curve` measures one, and then this run "
            "says which model wins for the amount of data"
        )
        return
    own = args.arch == "mode2" and (
        args.adapter_lr == "plain"
        or args.finetune_backbone == "none"
        or args.converter_hidden is not None
        or args.confidence_head == "mlp"
    )
    note = " (the curve is for Mode 2's default settings, not the options given here)" if own else ""
    print(advice.describe(args.arch) + (" per subject" if len(subjects) > 1 else "") + note)


def _train_config(args: argparse.Namespace, prefix: str, device: torch.device) -> TrainConfig:
    return TrainConfig(
        out=args.out,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
        max_minutes=args.max_minutes,
        initial_state=args.initial_state,
        prefix=prefix,
        device=str(device),
        scale_adapter_lr=args.adapter_lr != "plain",
    )


def _confidence_report(best: Path, data: _Data) -> None:
    """What the per-donning calibration step gives on the validation sessions (a table fitted on every 4th
    15-s block of each, scored on the windows beside them), and the command that stores one for a donning."""
    model, meta = load_model_checkpoint(best)
    frames = model_frames(model, meta, data.split.val, best)
    donning = per_donning(model, meta, data.split.val, best, frames)
    over = frames.errors > ERROR_THRESHOLD_MM
    line = f"  confidence on the validation sessions: AUROC {auroc(1.0 - frames.confidence, over):.3f}"
    if donning["frames"]:
        raw, calibrated = donning["raw"], donning["calibrated"]
        line += (
            f"; calibrated per donning (estimate on {donning['frames']} frames beside the fitted blocks): "
            f"Brier {raw['brier']:.3f} → {calibrated['brier']:.3f}, ECE {raw['ece']:.3f} → {calibrated['ece']:.3f}"
        )
    print(line)
    for key, reason in donning["skipped"].items():
        print(f"  per-donning estimate: {key} left out ({reason})")
    print(
        "  the confidence is not calibrated yet: after putting the band on, record about a minute through every "
        f"phase (`mode2 record … --phase-scale 0.25`) and run `mode2 calibrate --checkpoint {best} --data <it>`"
    )


def _run(args: argparse.Namespace, prefix: str) -> int:
    device = _check_arguments(args)
    rank = _join_ranks()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)  # before any model is built: the adapter's and direct model's initial weights
    data = _load_data(args, rank)
    hand = load_mano(args.mano, flat_hand_mean=not args.mano_hands_mean) if args.mano else open_hand_model()
    built = _build_model(args, hand)
    model = built.model
    _set_normalisation(model, data)
    meta = _checkpoint_meta(args, data, hand, built)
    resume = _check_resume(args.resume, prefix, model, args.epochs) if args.resume else None
    if rank == 0:
        _announce(args, model, data, device)
        _recommend(args, data, built)
    config = _train_config(args, prefix, device)
    with _ctrl_c_as_stop_request(config.stop):
        result = train(model, data.train_windows, data.val_windows, config, meta, resume)
    if rank == 0:
        best_val = min(result["history"], key=lambda h: h["val"]["total"])["val"]
        best, mean_pose = best_val["mpjpe_mean_mm"], result.get("mean_pose_mpjpe_mm")
        print(
            f"Training complete! Best val MPJPE: {best:.2f}mm, fingertips "
            f"{best_val.get('fingertip_mean_mm', float('nan')):.2f}mm, flexion error "
            f"{best_val.get('flexion_error_mean_deg', float('nan')):.1f}° (held-out sessions, vs camera labels)"
        )
        if mean_pose is not None:
            verdict = mean_pose_verdict(best, mean_pose)
            skill = skill_score(best, mean_pose)
            print(f"  mean pose: {mean_pose:.2f}mm → skill {skill:+.3f}" + (f"; {verdict}" if verdict else ""))
        print(f"  best checkpoint: {result['best_path']}")
        if args.arch != "mode1":  # Mode 1's confidence head gets no gradient: its confidence means nothing
            _confidence_report(Path(result["best_path"]), data)
    _leave_ranks()
    return 0
