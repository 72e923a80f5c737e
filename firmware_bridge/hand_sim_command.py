"""`mode2 hand-sim`: run the emulated hand (the C reference firmware) on a pseudo-terminal.

Ctrl-C or SIGTERM stops it the way a device is switched off: the firmware eases to the safe pose, the last
status line printed is that pose, and the link is removed. If this process is killed outright (SIGKILL),
the firmware notices it is orphaned and does the same by itself.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from types import FrameType

from firmware_bridge.cli_types import bounded_float, bounded_int, non_negative_float
from firmware_bridge.hand_sim import WATCHDOG_MAX_MS, WATCHDOG_MIN_MS, HandSimProcess, HandStatus

JOINT_NAMES = ("thumb_flex", "thumb_rot", "index", "middle", "ring", "little")
MAX_PRINT_EVERY_S = 3600.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--link",
        default="/tmp/mode2-hand",
        help="stable symlink to the pty (default /tmp/mode2-hand); only a stale link of a hand-sim is replaced",
    )
    parser.add_argument(
        "--watchdog-ms",
        type=bounded_int(WATCHDOG_MIN_MS, WATCHDOG_MAX_MS),
        default=150,
        help=f"no valid command for this long → safe pose ({WATCHDOG_MIN_MS}–{WATCHDOG_MAX_MS}, default 150)",
    )
    parser.add_argument(
        "--print-every",
        type=bounded_float(0.0, MAX_PRINT_EVERY_S, low_inclusive=False),
        default=0.5,
        help="seconds between printed status lines (default 0.5)",
    )
    parser.add_argument(
        "--duration",
        type=non_negative_float,
        default=0.0,
        help="stop after this many seconds (default 0 = run until Ctrl-C or SIGTERM)",
    )


def format_status(status: HandStatus) -> str:
    joints = "  ".join(f"{n}={p / 1000:+.3f}" for n, p in zip(JOINT_NAMES, status.positions_mrad, strict=False))
    return f"{status.state.name:6s} faults=0x{status.faults:04x}  {joints} rad"


def run(args: argparse.Namespace) -> int:
    hand = HandSimProcess(args.link, watchdog_ms=args.watchdog_ms, status_every_ms=20)
    stop = threading.Event()

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        with hand:
            print(
                f"emulated hand on {hand.pty_path} (link: {hand.port}); connect with: mode2 run --port {hand.port}",
                flush=True,
            )
            _print_until_stopped(hand, args, stop)
            if hand.running:
                print("stopping: easing to the safe pose", flush=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
    final = hand.latest()
    if final is not None:
        print(format_status(final), flush=True)
    if hand.process is not None and hand.process.returncode != 0:
        print(
            f"mode2 hand-sim: the emulated hand exited unexpectedly (status {hand.process.returncode})", file=sys.stderr
        )
        return 1
    print(f"emulated hand {hand.exit_message or 'stopped'}", flush=True)
    return 0


def _print_until_stopped(hand: HandSimProcess, args: argparse.Namespace, stop: threading.Event) -> None:
    started = time.monotonic()
    next_print = started + args.print_every
    try:
        while not stop.is_set() and hand.running:
            now = time.monotonic()
            if args.duration > 0 and now - started >= args.duration:
                return
            if now >= next_print:
                status = hand.latest()
                if status is not None:
                    print(format_status(status), flush=True)
                next_print += args.print_every
            stop.wait(min(0.05, max(0.0, next_print - now)))
    except KeyboardInterrupt:
        pass
