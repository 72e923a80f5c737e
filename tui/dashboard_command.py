"""`mode2 dashboard`: watch (and stop) the runtime in a terminal — live, from a run file, or on the demo chain.

    mode2 dashboard --attach /tmp/mode2.sock      # a running `mode2 run --telemetry /tmp/mode2.sock`
    mode2 dashboard --replay run.h5 --speed 2     # a run file from `mode2 run --record run.h5`
    mode2 dashboard --demo                        # the whole chain on the built-in defaults

The dashboard runs in its own process and only reads the runtime's telemetry, whose server drops a slow
client's oldest snapshots: a frozen or killed dashboard never delays a command.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from firmware_bridge.cli_types import bounded_float
from firmware_bridge.errors import UserError
from tui.feed import REPLAY_SPEEDS, Feed

EXAMPLE = "mode2 dashboard --replay demo_out/run.h5 --speed 2"


class _DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show real defaults only (not "default: None" on the modes and flags)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False):
            return action.help
        return super()._get_help_string(action)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = _DefaultsFormatter
    parser.epilog = f"example: {EXAMPLE}"
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument(
        "--attach",
        metavar="ADDR",
        default=None,
        help="connect to `mode2 run --telemetry ADDR` (a Unix socket path or HOST:PORT); reconnects by itself",
    )
    mode.add_argument(
        "--replay", metavar="RUN.h5", type=Path, default=None, help="play a run file (`mode2 run --record`)"
    )
    mode.add_argument(
        "--demo",
        action="store_true",
        help="start the demo chain (replayed held-out session → demo model → emulated hand) and watch it; "
        "makes the demo model with `mode2 demo` first if --demo-dir has none",
    )
    parser.add_argument(
        "--speed",
        type=bounded_float(REPLAY_SPEEDS[0], REPLAY_SPEEDS[-1]),
        default=1.0,
        help=f"--replay: × real time, one of {', '.join(f'{s:g}' for s in REPLAY_SPEEDS)} (others are rounded)",
    )
    parser.add_argument("--paused", action="store_true", help="--replay: start paused on the first hop")
    parser.add_argument("--demo-dir", type=Path, default=Path("demo_out"), help="--demo: where `mode2 demo` writes")


def _nearest_speed(speed: float) -> float:
    return min(REPLAY_SPEEDS, key=lambda s: abs(s - speed))


def open_feed(args: argparse.Namespace) -> Feed:
    """The feed the options ask for; bad input is a UserError naming the option."""
    if args.replay is not None:
        from tui.replay_feed import ReplayFeed

        try:
            return ReplayFeed(args.replay, speed=_nearest_speed(args.speed), start_paused=args.paused)
        except UserError as error:
            raise UserError(f"--replay: {error}") from error
    if args.attach is not None:
        from tui.live_feed import LiveFeed

        try:
            return LiveFeed(args.attach)
        except UserError as error:
            raise UserError(f"--attach: {error}") from error
    from tui.demo_chain import DemoChain, DemoFeed

    if args.demo_dir.exists() and not args.demo_dir.is_dir():
        raise UserError(f"--demo-dir {args.demo_dir}: exists and is not a folder")
    chain = DemoChain(args.demo_dir)
    try:
        chain.prepare()
        chain.start()
        return DemoFeed(chain)
    except BaseException:
        chain.close()
        raise


def _title(args: argparse.Namespace) -> str:
    if args.replay is not None:
        return f"mode2 dashboard — replay {args.replay.name}"
    if args.attach is not None:
        return f"mode2 dashboard — {args.attach}"
    return "mode2 dashboard — demo"


def run(args: argparse.Namespace) -> int:
    feed = open_feed(args)
    try:
        from tui.app import DashboardApp  # lazy: textual loads only when the dashboard runs

        DashboardApp(feed, title=_title(args)).run()
    finally:
        feed.close()
    return 0
