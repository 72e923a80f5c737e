"""`mode2 inspect-checkpoint PATH`: what a checkpoint file is and what it expects."""

from __future__ import annotations

import argparse
import json

from training.models.backbone_io import describe_checkpoint
from training.models.checkpoint_io import CheckpointError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="a .ckpt / .pth file")


def run(args: argparse.Namespace) -> int:
    try:
        info = describe_checkpoint(args.path)
    except CheckpointError as error:
        print(f"✗ {error}")
        return 1
    print(f"{info['path']}")
    print(f"  kind:       {info['kind']}")
    print(f"  parameters: {info['parameters']:,} in {info['tensors']} tensors ({info['bytes'] / 1e6:.1f} MB file)")
    print(f"  inputs:     {info['inputs']}")
    print(f"  outputs:    {info['outputs']}")
    if info.get("config"):
        print(f"  config:     {json.dumps(info['config'])}")
    if info.get("details"):
        print(f"  details:    {json.dumps(info['details'], default=str)[:400]}")
    print(f"  sha256:     {info['sha256']}")
    return 0
