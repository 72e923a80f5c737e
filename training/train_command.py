"""`mode2 train`: the Mode 2 transfer model (or, with --arch direct, the direct Conv1D+LSTM baseline).

Runs as is on one machine, or under torchrun for data parallelism:
    torchrun --nproc_per_node 2 -m runtime.cli train --data ... (gloo backend on CPU)
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from firmware_bridge.session_file import SessionFormatError
from training.backbone_io import load_backbone
from training.checkpoint_io import CheckpointError, read_checkpoint_safely
from training.direct_model import DirectModel
from training.hand_model import load_mano, open_hand_model
from training.mode2_model import Mode2Model
from training.model_io import hand_to_dict
from training.trainer import TrainConfig, train
from training.windows import build_windows, channel_std, load_sessions, split_sessions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", nargs="+", required=True, help="globs of session .h5 files")
    parser.add_argument("--out", type=Path, default=Path("checkpoints"), help="output folder (default checkpoints/)")
    parser.add_argument("--arch", choices=["mode2", "direct"], default="mode2")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
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
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", type=Path, default=None, help="a *_last.pth written by an earlier run")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto")
    parser.add_argument("--checkpoint-every", type=int, default=10)
    parser.add_argument("--max-minutes", type=float, default=None, help="stop after this much training time")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")


def pick_device(choice: str) -> torch.device:
    if choice == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here")
    return torch.device(choice)


def run(args: argparse.Namespace) -> int:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = pick_device(args.device)
    if device.type != "cpu" and rank == 0:
        print(f"note: device {device} selected; this build trains on CPU tensors (the windows stay in memory)")
    try:
        sessions = load_sessions(args.data)
        split = split_sessions(sessions, args.val_sessions, args.val_subject)
        train_windows = build_windows(split.train)
        val_windows = build_windows(split.val)
    except (SessionFormatError, FileNotFoundError, ValueError) as error:
        print(f"✗ {error}", file=sys.stderr)
        return 1
    hand = load_mano(args.mano, flat_hand_mean=not args.mano_hands_mean) if args.mano else open_hand_model()
    meta: dict = {
        "hand_model": hand_to_dict(hand),
        "config": {"adapter_init": args.adapter_init},
        "training": {
            "command": "mode2 " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
            "seed": args.seed,
            "train_sessions": [s.key for s in split.train],
            "val_sessions": [s.key for s in split.val],
            "train_windows": len(train_windows),
            "val_windows": len(val_windows),
            "train_minutes": sum(s.duration for s in split.train) / 60.0,
            "synthetic": all(bool(s.attrs.get("synthetic", False)) for s in sessions),
        },
    }
    now_ok = train_windows.mask[:, -1]
    meta["theta_mean"] = train_windows.theta[:, -1][now_ok].mean(dim=0).tolist()  # for the mean-pose baseline
    if args.arch == "mode2":
        try:
            backbone, info = load_backbone(args.backbone)
        except CheckpointError as error:
            print(f"✗ {error}", file=sys.stderr)
            return 1
        scale = float(info.provenance.get("input_rms", 1.0))
        model = Mode2Model(backbone, hand, adapter_init=args.adapter_init, backbone_input_scale=scale)
        meta["backbone"] = {
            "kind": info.kind,
            "path": info.path,
            "sha256": info.sha256,
            "config": info.config.to_dict(),
        }
        meta["config"]["backbone_input_scale"] = scale
        prefix = "transfer_mode2"
    else:
        model = DirectModel(hand)
        prefix = "direct"
    model.preprocess.std.copy_(channel_std(train_windows, model.preprocess.detrend))
    meta["normalisation"] = {
        "method": "per-window linear detrend, then divide by the training std",
        "std": model.preprocess.std.tolist(),
        "units": "µV",
    }
    resume = read_checkpoint_safely(args.resume) if args.resume else None
    if rank == 0:
        trainable = sum(p.numel() for p in model.trainable_parameters())
        total = sum(p.numel() for p in model.parameters())
        print(
            f"{args.arch}: {trainable:,} trainable of {total:,} parameters; {len(train_windows)} training windows "
            f"from {len(split.train)} sessions, {len(val_windows)} held-out windows from "
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
