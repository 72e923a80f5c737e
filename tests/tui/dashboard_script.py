"""Telemetry messages in the exact schema of docs/TELEMETRY.md, and feeds that hand them to the dashboard.

`ScriptedFeed` is a real `tui.feed.Feed`: the app reads it from its worker thread exactly as it reads a
live or replay feed. It records every `send()` so key → request mappings can be checked; a live one
answers each request with an `ack`, as the runtime does.
"""

from __future__ import annotations

import asyncio
import functools
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from tui.feed import Feed, FeedReadOnly, Message

WALL0 = 1_764_090_000.0  # 2025-11-25 17:00:00 UTC: every wall clock in these scripts counts from here
HOP_MS = 50

# a relaxed right hand (21 joints, m, MANO order), recorded by `mode2 demo`'s run
OPEN_HAND = [
    [0.0, 0.0, 0.0],
    [0.067, 0.0, -0.0238],
    [0.1151, -0.0131, -0.0303],
    [0.1374, -0.0283, -0.0335],
    [0.0706, 0.0, -0.0066],
    [0.1208, -0.0157, -0.0061],
    [0.145, -0.0371, -0.0056],
    [0.0498, 0.0, 0.0256],
    [0.0863, -0.0108, 0.0351],
    [0.1023, -0.0252, 0.0405],
    [0.063, 0.0, 0.0104],
    [0.1098, -0.0142, 0.016],
    [0.1333, -0.0346, 0.0196],
    [0.0086, -0.0028, -0.0209],
    [0.0485, -0.0167, -0.043],
    [0.0803, -0.0334, -0.0527],
    [0.1054, -0.0496, -0.0559],
    [0.1493, -0.0423, -0.0354],
    [0.155, -0.055, -0.0054],
    [0.1437, -0.0519, 0.0218],
    [0.1106, -0.0403, 0.0446],
]
HAND_JOINTS = [
    {"name": "thumb_flex", "min_rad": 0.0, "max_rad": 1.3, "safe_rad": 0.15, "max_slew_rad_s": 3.0},
    {"name": "thumb_rot", "min_rad": 0.0, "max_rad": 1.5, "safe_rad": 0.2, "max_slew_rad_s": 2.5},
    {"name": "index", "min_rad": 0.0, "max_rad": 1.6, "safe_rad": 0.15, "max_slew_rad_s": 3.5},
    {"name": "middle", "min_rad": 0.0, "max_rad": 1.6, "safe_rad": 0.15, "max_slew_rad_s": 3.5},
    {"name": "ring", "min_rad": 0.0, "max_rad": 1.6, "safe_rad": 0.15, "max_slew_rad_s": 3.5},
    {"name": "little", "min_rad": 0.0, "max_rad": 1.6, "safe_rad": 0.15, "max_slew_rad_s": 3.5},
]
QUALITY_BITS = {
    "flat": 1,
    "saturated": 2,
    "lift_off": 4,
    "mains": 8,
    "stall": 16,
    "gap": 32,
    "duplicate": 64,
    "warmup": 128,
}
CHANNELS = [f"MindRove EMG {i + 1} (SDK EMG row {i})" for i in range(8)]


def hello() -> Message:
    return {
        "v": 1,
        "type": "hello",
        "client": "client-1",
        "max_queue": 64,
        "commands": ["arm", "disarm", "estop", "clear_estop", "set_threshold"],
        "gate_states": ["ACTIVE", "HOLD", "SAFE", "ESTOP"],
        "last_pub_seq": 0,
        "wall": WALL0,
        "software": "0.1.0",
        "model": {"path": "model.onnx", "sha256": "0" * 64, "metadata": {"rate_hz": 500.0, "window": 1000}},
        "hand": {"name": "6-DOF reference hand (emulated firmware)", "watchdog_ms": 150, "joints": HAND_JOINTS},
        "source": "replay:s01_r04.h5",
        "port": "sim",
        "engine": "windowed",
        "hop_ms": HOP_MS,
        "channels": CHANNELS,
        "joint_names": ["wrist", *[f"j{i}" for i in range(1, 21)]],
        "command_joints": [j["name"] for j in HAND_JOINTS],
        "quality_bits": QUALITY_BITS,
    }


def hop(i: int, **fields: Any) -> Message:
    """Hop `i` of an armed, open gate (every field of docs/TELEMETRY.md), with `fields` overriding."""
    confidence = round(0.7 + 0.15 * math.sin(i / 4), 4)
    grip = 0.4 + 0.3 * math.sin(i / 6)
    message: Message = {
        "v": 1,
        "type": "hop",
        "pub_seq": i + 1,
        "t": 100.0 + i * HOP_MS / 1000,
        "hop": i,
        "wall": WALL0 + i * HOP_MS / 1000,
        "emg_rms_uv": [round(20.0 + 15 * ch + 10 * math.sin(i / 3 + ch), 2) for ch in range(8)],
        "quality_flags": [0] * 8,
        "quality_ok": True,
        "quality_reason": "",
        "quality_advisory": "",
        "stream_gaps": 0,
        "stream_duplicates": 0,
        "stream_stalls": 0,
        "joints": OPEN_HAND,
        "confidence": confidence,
        "threshold": 0.5,
        "state": "ACTIVE",
        "gate_reason": "",
        "active": True,
        "command": "pose",
        "targets": [round(grip * k / 3, 4) for k in (1, 2, 3, 3, 3, 3)],
        "seq": i,
        "armed": True,
        "estop": False,
        "sent": i + 1,
        "acked": i,
        "link_state": "connected",
        "device_state": 1,
        "device_faults": 0,
        "rtt_ms": 0.62,
        "infer_ms": 3.8,
        "loop_ms": 0.3,
        "duty": 0.082,
        "latency_ms": 4.6,
        "latency_ms_p50": 4.61,
        "latency_ms_p99": 5.31,
        "drops": 0,
        "missed_hops": 0,
    }
    message.update(fields)
    return message


def event(kind: str, detail: str, wall: float, **data: Any) -> Message:
    return {"v": 1, "type": "event", "kind": kind, "detail": detail, "wall": wall, "data": data}


def connected(detail: str = "connected to the runtime at /tmp/mode2.sock") -> Message:
    return {"type": "status", "connected": True, "detail": detail}


class ScriptedFeed(Feed):
    """Hands out `messages` in order, then nothing; `live` feeds ack every request like the runtime does."""

    def __init__(self, messages: list[Message], *, live: bool = True) -> None:
        self.live = live
        self._queue: deque[Message] = deque(messages)
        self._lock = threading.Condition()
        self.sent: list[tuple[str, float | None]] = []
        self.handed_out = 0
        self.closed = False

    def push(self, *messages: Message) -> None:
        with self._lock:
            self._queue.extend(messages)
            self._lock.notify_all()

    @property
    def drained(self) -> bool:
        with self._lock:
            return not self._queue

    def read(self, timeout: float) -> Message | None:
        with self._lock:
            if not self._queue:
                self._lock.wait(timeout)
            if not self._queue:
                return None
            self.handed_out += 1
            return self._queue.popleft()

    def send(self, command: str, value: float | None = None) -> int:
        if not self.live:
            raise FeedReadOnly(f"ScriptedFeed has no runtime to send '{command}' to")
        with self._lock:
            self.sent.append((command, value))
            request = len(self.sent)
            detail = {"estop": "e-stop latched", "arm": "armed", "disarm": "disarmed"}.get(command, command)
            self._queue.append({"v": 1, "type": "ack", "id": request, "command": command, "ok": True, "detail": detail})
            self._lock.notify_all()
        return request

    def close(self) -> None:
        self.closed = True


async def settle(pilot: Any, app: Any, feed: ScriptedFeed, hops: int, timeout: float = 10.0) -> None:
    """Wait (bounded) until the app has taken every scripted message and counted `hops` hops, then draw."""
    deadline = time.monotonic() + timeout
    while not (feed.drained and app.handled >= feed.handed_out and app.history.hops >= hops):
        if time.monotonic() > deadline:
            raise AssertionError(f"dashboard saw {app.history.hops} of {hops} hops within {timeout} s")
        await pilot.pause(0.02)
    app.render_latest(force=True)
    await pilot.pause()


def pilot_test(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async pilot test in its own event loop (no pytest async plugin needed)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run
