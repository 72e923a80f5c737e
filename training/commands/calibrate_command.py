"""`mode2 calibrate`: fit a checkpoint's confidence calibration on a labelled recording of this donning.

The confidence head's raw score ranks frames well, but what a given score means shifts between people and
between donnings of the band (measured: a table fitted on one session of a user did not carry to the
next), so the probability the device gates on is calibrated after each donning: record about a minute
that walks through every phase (`mode2 record … --phase-scale 0.25`), run this on it, then
`mode2 export-onnx` bakes the table into the model. (Not the first minute of a long session: that is
mostly rest, where errors are small, and the table comes out too confident.) Sessions the model trained
on are refused: its errors there are too small, and the table would be overconfident.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from firmware_bridge.cli_types import positive_float
from firmware_bridge.errors import UserError
from training.data.windows import load_sessions
from training.fitting import confidence_calibration as calib
from training.fitting.user_calibration import calibrate_checkpoint
from training.models.model_io import load_model_checkpoint
from training.scoring.held_out import training_overlap


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True, help="the model to calibrate (updated in place)")
    parser.add_argument(
        "--data", nargs="+", required=True, help="labelled session(s) of this donning the model did not train on"
    )
    parser.add_argument(
        "--minutes",
        type=positive_float,
        default=None,
        help="fit on the first MINUTES of each session only (default: all of it); the rest stays unseen, so "
        "`mode2 evaluate` can score the table on it",
    )
    parser.add_argument(
        "--method",
        choices=calib.METHODS,
        default="isotonic",
        help="isotonic (default: measured best on a minute spread over the phases) or platt (two parameters)",
    )


def run(args: argparse.Namespace) -> int:
    model, meta = load_model_checkpoint(args.checkpoint)
    sessions = load_sessions(args.data)
    overlap = training_overlap(sessions, meta, args.checkpoint)
    if overlap:
        raise UserError(
            f"{'; '.join(overlap)} trained {args.checkpoint}: calibrate on a session it did not train on "
            "(its errors on training data are too small, so the table would be overconfident)"
        )
    previous = meta.confidence_calibration
    fit = calibrate_checkpoint(
        args.checkpoint, sessions, "mode2 calibrate", args.minutes, args.method, loaded=(model, meta)
    )
    if fit.table is None:
        raise UserError(f"{args.checkpoint}: {fit.describe()}; the checkpoint is unchanged")
    print(fit.describe())
    if previous:
        where = ", ".join(previous.get("sessions", [])) or "sessions not recorded"
        print(f"replaced the table fitted by {previous.get('fitted_by', 'an earlier version')} on {where}")
    print(f"stored in {args.checkpoint}; export it again to put it on the device: mode2 export-onnx --checkpoint …")
    return 0
