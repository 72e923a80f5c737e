"""Link reliability figures over a real pseudo-terminal with the C firmware in the loop.

- command round-trip latency (command → device ack), p50/p99, at 50 Hz;
- host silent after its last command (as if killed) → watchdog → SAFE state, and → safe pose reached
  (the hand starts gripping at 1.5 rad); timed from the moment the last command was sent;
- device unplugged and plugged back → first acknowledged command, timed from the moment the new pty is
  up (so it includes the link's reopen backoff, 20 → 250 ms).
Run: `python benchmarks/bench_link.py [--repeats 5]`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from firmware_bridge.hand_sim import HandSimProcess
from firmware_bridge.link import HandLink
from firmware_bridge.protocol import DeviceState, JointLimit

SAFE = (150, 200, 150, 150, 150, 150)
GRIP = [1.2, 1.0, 1.5, 1.5, 1.5, 1.5]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--watchdog-ms", type=int, default=150)
    parser.add_argument(
        "--slew",
        type=int,
        default=0,
        help="mrad/s for every joint via CONFIGURE (0 = the firmware's defaults, 2.5–3.5 rad/s)",
    )
    args = parser.parse_args()
    rtts, to_safe, to_pose, reconnect = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        hand = HandSimProcess(Path(tmp) / "hand", watchdog_ms=args.watchdog_ms, status_every_ms=1).start()
        link = HandLink.open(hand.port)

        def configure() -> None:
            if args.slew:
                limits = [JointLimit(0, 1600, args.slew, s) for s in SAFE]
                assert link.wait_ack(link.configure(args.watchdog_ms, limits), 1.0) is not None

        configure()
        for _ in range(args.repeats):
            link.stats.rtt_ms.clear()
            for _ in range(100):  # 2 s at 50 Hz
                last_command_at = time.monotonic()
                link.wait_ack(link.send_command(GRIP, active=True, confidence=1.0), 1.0)
                time.sleep(0.02)
            rtts += list(link.stats.rtt_ms)
            # from here on the host says nothing, as if it had died right after its last command
            silent_from = last_command_at
            assert hand.latest().positions_mrad[2] == 1500, "the hand was not gripping when the host fell silent"
            safe = hand.wait_for(lambda s: s.state == DeviceState.SAFE, 2.0)
            pose = hand.wait_for(lambda s: s.positions_mrad == SAFE, 2.0)
            to_safe.append(safe.received_at - silent_from)
            to_pose.append(pose.received_at - silent_from)
            hand.unplug()
            time.sleep(0.2)
            hand.start()
            back = time.monotonic()
            while link.wait_ack(link.send_command(SAFE_RAD, active=False, confidence=0.0), 0.05) is None:
                pass
            reconnect.append(time.monotonic() - back)
            configure()  # a restarted device boots with its defaults
        link.close()
        hand.stop()
    p50, p99 = np.percentile(rtts, [50, 99])
    print(f"pty link, C firmware in the loop, {args.repeats} repeats, watchdog {args.watchdog_ms} ms")
    print(f"  command round trip:          p50 {p50:.2f} ms   p99 {p99:.2f} ms   ({len(rtts)} commands)")

    def ms(values: list[float]) -> str:
        return f"median {statistics.median(values) * 1000:.0f} ms   max {max(values) * 1000:.0f} ms"

    print(f"  last command → SAFE state:   {ms(to_safe)}   (the device's watchdog)")
    slew = f"{args.slew / 1000:g} rad/s" if args.slew else "3.5 rad/s (firmware default)"
    print(f"  last command → safe pose:    {ms(to_pose)}   (index from 1.5 rad, slew {slew})")
    print(f"  device back → link restored: {ms(reconnect)}")


SAFE_RAD = [p / 1000 for p in SAFE]

if __name__ == "__main__":
    main()
