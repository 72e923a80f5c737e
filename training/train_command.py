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
import os
import shlex
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from firmware_bridge.atomic_write import check_writable_dir
from firmware_bridge.cli_types import bounded_float, non_negative_int, positive_float, positive_int
from firmware_bridge.errors import UserError
from training.backbone_io import load_backbone
from training.checkpoint_io import CheckpointError, read_checkpoint_safely
from training.direct_model import DirectModel
from training.hand_model import load_mano, open_hand_model
from training.mano_loader import WHERE_TO_GET_MANO
from training.mode2_model import Mode2Model
from training.model_io import hand_to_dict
from training.trainer import TrainConfig, train
from training.windows import (
    build_windows,
    channel_std,
    emg_fingerprint,
    load_sessions,
    require_labelled,
    split_sessions,
)

INTERRUPTED_EXIT = 130  # the shell's convention for "stopped by Ctrl-C" (128 + SIGINT)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", nargs="+", required=True, help="session .h5 files or globs ('D/*.h5')")
    parser.add_argument("--out", type=Path, default=Path("checkpoints"), help="output folder (default checkpoints/)")
    parser.add_argument("--arch", choices=["mode2", "direct"], default="mode2")
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


def run(args: argparse.Namespace) -> int:
    prefix = "transfer_mode2" if args.arch == "mode2" else "direct"
    try:
        return _run(args, prefix)
    except KeyboardInterrupt:
        last = args.out / f"{prefix}_last.pth"
        if last.exists():
            hint = f"the checkpoints in {args.out} are intact; resume with: {_resume_command(args.out, prefix)}"
        else:
            hint = "no epoch had finished, nothing to resume: run the same command again"
        print(f"\nmode2 train: interrupted; {hint}", file=sys.stderr)
        return INTERRUPTED_EXIT


def _run(args: argparse.Namespace, prefix: str) -> int:
    check_writable_dir(args.out, what="--out")
    if args.mano is not None and not args.mano.is_file():
        raise UserError(f"--mano {args.mano}: no such file — {WHERE_TO_GET_MANO}")
    device = pick_device(args.device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    sessions = load_sessions(args.data, quiet=rank != 0)
    split = split_sessions(sessions, args.val_sessions, args.val_subject)
    train_windows = build_windows(split.train)
    val_windows = build_windows(split.val, with_chain=True)  # the policy choice runs `feedback` as a device does
    require_labelled(train_windows, split.train, "training")
    require_labelled(val_windows, split.val, "held-out")
    hand = load_mano(args.mano, flat_hand_mean=not args.mano_hands_mean) if args.mano else open_hand_model()
    meta: dict = {
        "hand_model": hand_to_dict(hand),
        "config": {"adapter_init": args.adapter_init},
        "training": {
            "command": "mode2 " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
            "seed": args.seed,
            "train_sessions": [s.key for s in split.train],
            "val_sessions": [s.key for s in split.val],
            # content fingerprints: `evaluate` refuses these recordings under any name or session_id
            "train_emg_sha256": {s.key: emg_fingerprint(s) for s in split.train},
            "train_windows": len(train_windows),
            "val_windows": len(val_windows),
            "train_minutes": sum(s.duration for s in split.train) / 60.0,
            "synthetic": all(bool(s.attrs.get("synthetic", False)) for s in sessions),
        },
    }
    now_ok = train_windows.mask[:, -1]
    meta["theta_mean"] = train_windows.theta[:, -1][now_ok].mean(dim=0).tolist()  # for the mean-pose baseline
    if args.arch == "mode2":
        backbone, info = load_backbone(args.backbone)
        scale = float(info.provenance.get("input_rms", 1.0))
        model = Mode2Model(backbone, hand, adapter_init=args.adapter_init, backbone_input_scale=scale)
        meta["backbone"] = {
            "kind": info.kind,
            "path": info.path,
            "sha256": info.sha256,
            "config": info.config.to_dict(),
        }
        meta["config"]["backbone_input_scale"] = scale
    else:
        model = DirectModel(hand)
    std = channel_std(train_windows, model.preprocess.detrend)
    if not bool(torch.isfinite(std).all()):
        raise UserError(
            f"the training EMG's per-channel spread is not finite ({std.tolist()}): extreme values in "
            f"{', '.join(str(s.path) for s in split.train)}"
        )
    model.preprocess.std.copy_(std)
    meta["normalisation"] = {
        "method": "per-window linear detrend, then divide by the training std",
        "std": model.preprocess.std.tolist(),
        "units": "µV",
    }
    resume = _check_resume(args.resume, prefix, model, args.epochs) if args.resume else None
    if rank == 0:
        trainable = sum(p.numel() for p in model.trainable_parameters())
        total = sum(p.numel() for p in model.parameters())
        print(
            f"{args.arch}: {trainable:,} trainable of {total:,} parameters on {device}; {len(train_windows)} "
            f"training windows from {len(split.train)} sessions, {len(val_windows)} held-out windows from "
            f"{[s.key for s in split.val]}"
        )
        print("loss = MSE(θ, rad²) + MSE(joints, dm²) + 0.1 × confidence-head loss; MPJPE in mm vs camera labels")
    config = TrainConfig(
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
    )
    result = train(model, train_windows, val_windows, config, meta, resume)
    if rank == 0:
        best = min(result["history"], key=lambda h: h["val"]["total"])["val"]["mpjpe_mean_mm"]
        print(f"Training complete! Best val MPJPE: {best:.2f}mm (held-out sessions, vs camera labels)")
        print(f"  best checkpoint: {result['best_path']}")
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    return 0
