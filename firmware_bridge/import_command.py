"""`mode2 import`: MindRove CSV recordings → session files (µV, one timestamp per sample, bad rows reported).

Every input is parsed and converted before anything is written, so a bad input refuses the whole command
and leaves no output behind; each output is written atomically (complete, or not at all).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from firmware_bridge.errors import UserError
from firmware_bridge.mindrove_import import FORMATS, UNITS, convert, parse_file, summary_lines, write_session

EXAMPLE = "mode2 import recordings/s01_r01.csv recordings/s01_r02.csv --out sessions/ --units auto"
H5_SUFFIXES = (".h5", ".hdf5")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = f"example: {EXAMPLE}"
    parser.add_argument("inputs", nargs="+", metavar="CSV", help="MindRove CSV recordings (SDK or recorder layout)")
    parser.add_argument(
        "--out",
        default=None,
        help="output folder (one NAME.h5 per input), or FILE.h5 for a single input; default: beside each input",
    )
    parser.add_argument(
        "--format",
        choices=("auto", *FORMATS),
        default="auto",
        help="sdk = DataFilter.write_file (tab-separated, no header); "
        "recorder = header Timestamp, CH1..CH8, … (default: auto)",
    )
    parser.add_argument(
        "--units",
        choices=UNITS,
        default="auto",
        help="the file's EMG units: counts (× 0.045 µV), uv, or auto: counts when whole numbers or beyond "
        "±377 mV (default: auto)",
    )
    parser.add_argument(
        "--drop-backlog",
        action="store_true",
        help="drop the start-up backlog (samples that arrived > 0.1 s late at the start); "
        "default: keep them and report",
    )
    parser.add_argument("--subject", default=None, help="subject id (default: the file name up to its first '_')")
    parser.add_argument("--session", default=None, help="session id, single input only (default: the file name)")


def _outputs(inputs: list[Path], out: str | None) -> list[Path]:
    if out is not None and Path(out).suffix.lower() in H5_SUFFIXES:
        if len(inputs) != 1:
            raise UserError(f"--out {out}: a single file name takes one input; give a folder for {len(inputs)}")
        return [Path(out)]
    folder = None if out is None else Path(out)
    if folder is not None and folder.exists() and not folder.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder (name a FILE.h5 or a folder)")
    outputs = [(folder or path.parent) / f"{path.stem}.h5" for path in inputs]
    clash = next((p for p in outputs if outputs.count(p) > 1), None)
    if clash is not None:
        raise UserError(f"--out: two inputs would both write {clash}; give them different names")
    return outputs


def run(args: argparse.Namespace) -> int:
    inputs = [Path(p) for p in args.inputs]
    if args.session is not None and len(inputs) != 1:
        raise UserError(f"--session names one session; {len(inputs)} inputs were given")
    outputs = _outputs(inputs, args.out)
    fmt = None if args.format == "auto" else args.format
    converted = [  # everything is read and checked before anything is written
        convert(parse_file(path, fmt), units=args.units, drop_backlog=args.drop_backlog) for path in inputs
    ]
    for path, out, imported in zip(inputs, outputs, converted, strict=True):
        subject = args.subject or path.stem.split("_")[0]
        session = args.session or path.stem
        write_session(imported, out, subject_id=subject, session_id=session)
        print(f"{path} → {out}  (subject {subject}, session {session}, no pose frames)")
        for line in summary_lines(imported):
            print(f"  {line}")
    return 0
