"""The `mode2` command: one entry point, one subcommand per job.

The dispatcher knows each subcommand only as a string ``"package.module"`` plus a one-line purpose,
and imports the module when that subcommand is chosen. So `mode2 --help` works on the device install
(no torch), and no package imports another against the layout in DESIGN.md: the training commands are
reached by name, never by an import statement here.

Each command module defines ``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass
from pathlib import Path

from firmware_bridge.errors import USER_ERROR_EXIT, UserError


@dataclass(frozen=True)
class Command:
    module: str
    purpose: str
    extra: str  # the pip extra that provides this command's dependencies


COMMANDS: dict[str, Command] = {
    "demo": Command("runtime.demo_command", "run the whole pipeline end to end on the built-in defaults", "train"),
    "simulate": Command(
        "training.synth.cli", "write synthetic sessions (EMG + hand labels) from the physiological world", "train"
    ),
    "import": Command(
        "firmware_bridge.import_command",
        "MindRove CSV recordings → session files (units, timestamps, bad rows reported)",
        "device",
    ),
    "get-hand-model": Command(
        "training.recording.get_hand_model_command",
        "build MediaPipe's hand_landmarker.task from the mediapipe 0.10.21 wheel (download only, sha256-checked)",
        "record",
    ),
    "record": Command(
        "training.recording.record_command",
        "record a session: MindRove EMG + webcam → MediaPipe → MANO IK, guided through the 5 phases",
        "record",
    ),
    "inspect": Command(
        "training.commands.inspect_command", "summarise session .h5 files (rates, RMS, label quality)", "train"
    ),
    "inspect-checkpoint": Command(
        "training.commands.inspect_checkpoint_command", "say what a checkpoint file is and what it expects", "train"
    ),
    "pretrain-backbone": Command(
        "training.commands.pretrain_command",
        "train the stand-in vemg2pose backbone on the synthetic 16-ch world",
        "train",
    ),
    "train": Command(
        "training.commands.train_command", "train the Mode 2 transfer model (or the direct baseline)", "train"
    ),
    "evaluate": Command(
        "training.commands.evaluate_command", "evaluate checkpoints on held-out sessions against baselines", "train"
    ),
    "calibrate": Command(
        "training.commands.calibrate_command",
        "fit the confidence calibration on a labelled recording of this donning (the export bakes it in)",
        "train",
    ),
    "export-onnx": Command(
        "export.export_command", "export a checkpoint to a self-contained, parity-checked ONNX", "train"
    ),
    "run": Command(
        "runtime.run_command", "drive the hand: EMG stream → ONNX model → confidence gate → serial", "device"
    ),
    "dashboard": Command(
        "tui.dashboard_command", "watch the hand: a live runtime, a recorded run file, or the demo chain", "device"
    ),
    "hand-sim": Command(
        "firmware_bridge.hand_sim_command", "run the emulated hand (C firmware) on a pseudo-terminal", "device"
    ),
}


def _available_commands() -> dict[str, Command]:
    """Commands whose module exists in this checkout (issues land one by one).

    Found by file, never by import: `importlib.util.find_spec("a.b.c")` imports the packages `a.b`, and
    a package `__init__` may pull in heavy or missing dependencies (scipy, h5py, the SDK) just for --help.
    """
    root = Path(__file__).resolve().parents[1]
    return {
        name: command
        for name, command in COMMANDS.items()
        if (root / Path(*command.module.split("."))).with_suffix(".py").is_file()
    }


def _load(name: str, command: Command):
    try:
        return importlib.import_module(command.module)
    except ModuleNotFoundError as error:
        missing = error.name or "a dependency"
        raise UserError(
            f"needs the Python package '{missing}', which is not installed. "
            f"Install the '{command.extra}' extra: pip install -e '.[{command.extra}]'"
        ) from error


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    commands = _available_commands()
    parser = argparse.ArgumentParser(
        prog="mode2",
        description="Forearm EMG → prosthetic hand: simulate, train, evaluate, export-onnx, run.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name, command in commands.items():
        sub = subparsers.add_parser(name, help=command.purpose, description=command.purpose)
        if name == selected:
            _load(name, command).add_arguments(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = _available_commands()
    selected = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(selected if selected in commands else None)
    if not argv:
        parser.print_help()
        return 0
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        module = _load(args.command, commands[args.command])
        return int(module.run(args) or 0)
    except UserError as error:
        # the one place a user error becomes a message: one line, exit status 2, no traceback
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"mode2 {args.command}: error: {message}", file=sys.stderr)
        return USER_ERROR_EXIT


if __name__ == "__main__":
    raise SystemExit(main())
