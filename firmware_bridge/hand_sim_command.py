"""`mode2 hand-sim`: run the emulated hand (the C reference firmware) on a pseudo-terminal."""

from __future__ import annotations

import argparse
import time

from firmware_bridge.hand_sim import HandSimProcess


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--link", default="/tmp/mode2-hand", help="stable symlink to the pty (default /tmp/mode2-hand)")
    parser.add_argument("--watchdog-ms", type=int, default=150, help="no valid command for this long → safe pose")
    parser.add_argument("--print-every", type=float, default=0.5, help="seconds between printed status lines")
    parser.add_argument(
        "--duration", type=float, default=0.0, help="stop after this many seconds (0 = run until Ctrl-C)"
    )


def run(args: argparse.Namespace) -> int:
    names = ("thumb_flex", "thumb_rot", "index", "middle", "ring", "little")
    with HandSimProcess(args.link, watchdog_ms=args.watchdog_ms, status_every_ms=20) as hand:
        print(f"emulated hand on {hand.pty_path} (link: {hand.port}); connect with --port {hand.port}", flush=True)
        started = time.monotonic()
        try:
            while args.duration <= 0 or time.monotonic() - started < args.duration:
                time.sleep(args.print_every)
                status = hand.latest()
                if status is not None:
                    joints = "  ".join(
                        f"{n}={p / 1000:+.3f}" for n, p in zip(names, status.positions_mrad, strict=False)
                    )
                    print(f"{status.state.name:6s} faults=0x{status.faults:04x}  {joints} rad", flush=True)
        except KeyboardInterrupt:
            pass
    return 0
