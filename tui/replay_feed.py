"""Play a run file (`mode2 run --record run.h5`) as if it were the runtime's telemetry.

The whole `runtime/` group is read into memory when the feed opens (a 30-minute run is a few MB), the
file is closed, and hops are handed out paced by their EMG-clock time `t` divided by the speed.

Hop messages carry exactly the telemetry hop fields (docs/TELEMETRY.md). What the run file does not hold
is derived where that is honest and null where it is not:

- `duty` = (infer_ms + loop_ms) / hop period (hop_samples / rate), as the runtime computes it;
- `latency_ms_p50` / `latency_ms_p99` over the last 200 hops (`runtime.loop.RECENT_HOPS`), as the runtime;
- `quality_ok` = no flag on any channel; `quality_reason` is the gate's own words when the gate closed
  for the signal ("signal: …"), else the highest-priority flag and its channel;
- `wall`, `sent`, `rtt_ms`, `link_state`, `stream_stalls`, `drops`: not recorded → null.

Besides `hop`, the feed sends `hello` (built from the root attributes), `event` (from `runtime/events`, at
their EMG time), `status` and `position` (tui/feed.py). A `position`'s `t` is seconds since the first hop
of the file (`duration` is the last hop's), `index` the last hop handed out (-1 before the first). At the
end the replay pauses (it is not closed) and sends a `status` with `"ended": true`; resuming from there
starts again at the first hop.

Thread safety: `read()` runs in one worker thread, the controls in the UI thread; one Condition guards
the play head, and every control wakes a waiting `read()` at once.
"""

from __future__ import annotations

import bisect
import json
import math
import shlex
import threading
import time
import tomllib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from firmware_bridge.errors import UserError
from runtime.hand_config import JOINT_SUMMARY_FIELDS
from runtime.loop import ADVISORY_CLEARED, ADVISORY_EVENT, RECENT_HOPS
from runtime.run_file import COUNTER_COLUMNS, NOT_SENT, RUN_GROUP, TIMINGS_COLUMNS
from runtime.signal_quality import (  # the order a closed gate names its reason
    FLAG_PRIORITY,
    STREAM_FLAGS,
    QualityFlag,
    quality_bits,
)
from runtime.telemetry import GATE_STATES, TELEMETRY_VERSION
from tui.feed import REPLAY_SPEEDS, Feed, Message

REQUIRED = ("t", "hop", "state", "gate_reason", "active", "armed", "estop", "confidence", "threshold", "joints")
REQUIRED += ("targets", "command", "seq", "quality_flags", "emg_rms_uv", "timings_ms", "counters")


class RunFileError(UserError):
    """The file given to replay is not a readable run file; the message names it and what is wrong."""


@dataclass(frozen=True)
class RunData:
    """A run file's `runtime/` rows (one per hop, trimmed to the shortest dataset), events and attributes."""

    path: Path
    rows: dict[str, np.ndarray]
    event_wall: np.ndarray  # (k,) wall time of each event
    event_t: np.ndarray  # (k,) EMG time of each event
    event_text: list[str]  # "kind: detail"
    attrs: dict[str, Any]

    @property
    def hops(self) -> int:
        return len(self.rows["t"])


def load_run_file(path: str | Path) -> RunData:
    """Read a run file written by `mode2 run --record`, or raise RunFileError naming it."""
    import h5py

    path = Path(path)
    shown = f"run file {path}"
    if not path.exists():
        raise RunFileError(f"{shown}: no such file")
    if path.is_dir():
        raise RunFileError(f"{shown}: is a folder; give the .h5 file `mode2 run --record` wrote")
    if path.stat().st_size == 0:
        raise RunFileError(f"{shown}: is empty")
    if not h5py.is_hdf5(path):
        raise RunFileError(f"{shown}: is not an HDF5 file (expected one written by `mode2 run --record`)")
    try:
        with h5py.File(path, "r") as f:
            group = f.get(RUN_GROUP)
            if not isinstance(group, h5py.Group):
                raise RunFileError(
                    f"{shown}: has no '{RUN_GROUP}/' group — a session file, not a run file "
                    "(record one with `mode2 run --record run.h5`)"
                )
            missing = [name for name in REQUIRED if name not in group]
            if missing:
                raise RunFileError(
                    f"{shown}: '{RUN_GROUP}/' lacks {', '.join(missing)} (not a run file of this version)"
                )
            rows = {name: group[name][()] for name in REQUIRED}
            if "events" in group and "events_time" in group:
                texts, times = group["events"][()], group["events_time"][()]
            else:
                texts, times = np.zeros(0, "S1"), np.zeros((0, 2))
            attrs = {key: _plain(value) for key, value in f.attrs.items()}
    except OSError as error:
        raise RunFileError(f"{shown}: cannot be read ({error})") from error
    n = min(len(v) for v in rows.values())
    if n == 0:
        raise RunFileError(f"{shown}: has no hops recorded (the run stopped before its first hop)")
    rows = {name: v[:n] for name, v in rows.items()}
    k = min(len(texts), len(times))
    order = np.argsort(times[:k, 1], kind="stable")
    return RunData(
        path=path,
        rows=rows,
        event_wall=times[:k, 0][order],
        event_t=times[:k, 1][order],
        event_text=[texts[i].decode("utf-8", "replace") for i in order],
        attrs=attrs,
    )


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    return value


def _json_attr(attrs: dict[str, Any], key: str) -> Any:
    try:
        return json.loads(attrs[key])
    except (KeyError, TypeError, ValueError):
        return None


def _command_option(command: str, option: str) -> str | None:
    """The value of `option` in the recorded command line (e.g. --port), or None."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    for i, word in enumerate(words):
        if word == option and i + 1 < len(words):
            return words[i + 1]
        if word.startswith(option + "="):
            return word.split("=", 1)[1]
    return None


def build_hello(run: RunData) -> Message:
    """The hello `mode2 run` would have sent for this run (runtime/run_command.py `_hello`), from the root
    attributes, plus `replay` (path, hops, duration) so the screen can say what it is showing."""
    attrs = run.attrs
    model = _model_summary(run)
    metadata = model["metadata"]
    hop_samples = int(attrs.get("hop_samples", 25))
    hand = _hand_from_toml(str(attrs.get("hand_config", "")))
    t = run.rows["t"]
    return {
        "v": TELEMETRY_VERSION,
        "type": "hello",
        "client": "replay",
        "max_queue": None,
        "commands": [],  # a recording takes no control requests
        "gate_states": list(GATE_STATES),
        "last_pub_seq": 0,
        "wall": None,
        "software": attrs.get("software_version"),
        "model": model,
        "hand": hand,
        "source": attrs.get("source"),
        "port": _command_option(str(attrs.get("command", "")), "--port"),
        "engine": attrs.get("engine"),
        "hop_ms": hop_samples / metadata["rate_hz"] * 1000.0,
        "channels": metadata["channel_order"],
        "joint_names": model.pop("joint_names"),
        "command_joints": [j["name"] for j in hand["joints"]],
        "quality_bits": quality_bits(),
        "replay": {"path": str(run.path), "hops": run.hops, "duration_s": float(t[-1] - t[0])},
    }


def _model_summary(run: RunData) -> dict[str, Any]:
    """The hello's `model` (+ `joint_names`, popped by the caller) from the recorded metadata JSON; a run
    file whose metadata does not parse still replays, with what the file itself says."""
    from runtime.model_contract import ModelMetadata

    attrs = run.attrs
    doc = _json_attr(attrs, "model_metadata")
    try:
        meta = ModelMetadata.parse(doc, f"run file {run.path} model_metadata")
    except UserError:
        meta = None
    channels = run.rows["emg_rms_uv"].shape[1]
    if meta is None:
        metadata: dict[str, Any] = {
            "kind": None,
            "rate_hz": float(attrs.get("emg_sampling_rate", 500.0)),
            "window": None,
            "channels": channels,
            "channel_order": [f"EMG {i + 1}" for i in range(channels)],
            "units": None,
            "quantization": None,
            "validation_mpjpe_mm": None,
            "confidence_calibrated": None,
        }
        joint_names: list[str] = []
    else:
        metadata = meta.summary()
        joint_names = list(meta.joint_names)
    return {
        "path": attrs.get("model_path"),
        "sha256": attrs.get("model_sha256"),
        "metadata": metadata,
        "joint_names": joint_names,
    }


def _hand_from_toml(text: str) -> dict[str, Any]:
    """The hello's `hand` from the hand config the run recorded (TOML text, runtime/hand_config.py keys)."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        doc = {}
    hand = doc.get("hand", {}) if isinstance(doc.get("hand"), dict) else {}
    joints = [j for j in doc.get("joint", []) if isinstance(j, dict)] if isinstance(doc.get("joint"), list) else []
    return {
        "name": hand.get("name"),
        "watchdog_ms": hand.get("watchdog_ms"),
        "joints": [
            {"name": str(j.get("name", f"joint{k + 1}")), **{key: j.get(key) for key in JOINT_SUMMARY_FIELDS}}
            for k, j in enumerate(joints)
        ],
    }


def _number(value: Any, digits: int) -> float | None:
    value = float(value)
    return round(value, digits) if math.isfinite(value) else None


def _advisories(run: RunData, hop_t: np.ndarray) -> list[str]:
    """Per hop, the signal checker's advisory in force (its last `signal_advisory` event at or before the hop;
    "" before any or after one saying it cleared)."""
    told = [
        (t, detail)
        for t, text in zip(run.event_t.tolist(), run.event_text, strict=True)
        for kind, _, detail in [text.partition(": ")]
        if kind == ADVISORY_EVENT
    ]
    times = [t for t, _ in told]
    out = []
    for t in hop_t.tolist():
        k = bisect.bisect_right(times, t) - 1
        detail = told[k][1] if k >= 0 else ""
        out.append("" if detail == ADVISORY_CLEARED else detail)
    return out


def _quality_reason(flags: np.ndarray, gate_reason: str) -> str:
    if not flags.any():
        return ""
    if gate_reason.startswith("signal: "):  # the signal-quality verdict in its own words
        return gate_reason[len("signal: ") :]
    union = int(np.bitwise_or.reduce(flags))
    for flag in FLAG_PRIORITY:
        if union & flag:
            where = "stream" if flag & STREAM_FLAGS else f"channel {int(np.flatnonzero(flags & int(flag))[0])}"
            return f"{where}: {str(flag.name).lower().replace('_', '-')}"
    return "unknown"


class ReplayFeed(Feed):
    """A run file as a feed: `hello`, then hops paced at `speed` × the recorded rate, with events and
    positions. Controls: pause/resume/toggle_pause, seek (relative seconds), seek_to (hop index),
    set_speed/speed_up/speed_down (speeds from `REPLAY_SPEEDS`). `clock` is injectable for tests."""

    live = False

    def __init__(
        self,
        path: str | Path,
        *,
        speed: float = 1.0,
        start_paused: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.run = load_run_file(path)
        self.path = self.run.path
        self.hello = build_hello(self.run)
        rows = self.run.rows
        self._t = rows["t"].astype(np.float64)
        self._t_list = self._t.tolist()
        self._event_t = self.run.event_t.tolist()
        self._advisory = _advisories(self.run, self._t)
        rate = float(self.hello["model"]["metadata"]["rate_hz"])
        self._hop_ms = int(self.run.attrs.get("hop_samples", 25)) / rate * 1000.0
        self._latency = rows["timings_ms"][:, TIMINGS_COLUMNS.index("latency_ms")].astype(np.float64)
        self._clock = clock
        self._cond = threading.Condition()
        self._pending: deque[Message] = deque()
        self._speed = self._clamp(speed)
        self._paused = start_paused
        self._anchor_t = float(self._t[0])  # the play head (EMG time) at `_anchor_clock`
        self._anchor_clock = clock()
        self._next = 0  # next hop to hand out
        self._last = -1  # last hop handed out
        self._next_event = 0
        self._ended = False
        self._closed = False
        self._reading = False
        duration = float(self._t[-1] - self._t[0])
        self._pending.append(
            {
                "type": "status",
                "connected": True,
                "detail": f"replaying {self.path.name}: {self.run.hops} hops, {duration:.1f} s",
            }
        )
        self._pending.append(self.hello)
        self._pending.append(self._position())

    # -- Feed -------------------------------------------------------------------------------------------

    def read(self, timeout: float) -> Message | None:
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            if not self._reading:  # the play clock starts with the first read, not when the file opened
                self._reading = True
                self._anchor_clock = self._clock()
            while not self._closed:
                if self._pending:
                    return self._pending.popleft()
                message, wait = self._step()
                if message is not None:
                    return message
                if self._pending:  # the end of the file was reached: its status is due now
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(min(remaining, wait))
            return None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._pending.clear()
            self._cond.notify_all()

    # -- controls (UI thread) ---------------------------------------------------------------------------

    @property
    def total(self) -> int:
        return self.run.hops

    @property
    def speed(self) -> float:
        with self._cond:
            return self._speed

    @property
    def paused(self) -> bool:
        with self._cond:
            return self._paused

    @property
    def index(self) -> int:
        """The last hop handed out (-1 before the first)."""
        with self._cond:
            return self._last

    def pause(self) -> None:
        with self._cond:
            if not self._paused:
                self._anchor_t = self._playhead()
                self._paused = True
            self._notify_position()

    def resume(self) -> None:
        with self._cond:
            if self._ended or self._next >= self.total:
                self._seek_locked(0, show=False)
            if self._paused:
                self._anchor_clock = self._clock()
                self._paused = False
            self._notify_position()

    def toggle_pause(self) -> None:
        with self._cond:
            paused = self._paused
        self.resume() if paused else self.pause()

    def seek(self, seconds: float) -> None:
        """Move the play head by `seconds` of recording (negative: back) and show the hop there at once."""
        with self._cond:
            base = self._t_list[self._last] if self._last >= 0 else self._t_list[0]
            index = bisect.bisect_left(self._t_list, base + seconds - 1e-9)
            self._seek_locked(min(max(index, 0), self.total - 1), show=True)

    def seek_to(self, index: int) -> None:
        """Jump to hop `index` (clamped to the file; negative counts from the end) and show it at once."""
        with self._cond:
            if index < 0:
                index += self.total
            self._seek_locked(min(max(index, 0), self.total - 1), show=True)

    def set_speed(self, speed: float) -> None:
        with self._cond:
            self._anchor_t = self._playhead()
            self._anchor_clock = self._clock()
            self._speed = self._clamp(speed)
            self._notify_position()

    def speed_up(self) -> None:
        with self._cond:
            current = self._speed
        faster = [s for s in REPLAY_SPEEDS if s > current]
        self.set_speed(faster[0] if faster else REPLAY_SPEEDS[-1])

    def speed_down(self) -> None:
        with self._cond:
            current = self._speed
        slower = [s for s in REPLAY_SPEEDS if s < current]
        self.set_speed(slower[-1] if slower else REPLAY_SPEEDS[0])

    # -- internals (hold self._cond) --------------------------------------------------------------------

    @staticmethod
    def _clamp(speed: float) -> float:
        if not math.isfinite(speed):
            return 1.0
        return min(max(float(speed), REPLAY_SPEEDS[0]), REPLAY_SPEEDS[-1])

    def _playhead(self) -> float:
        if self._paused:
            return self._anchor_t
        return self._anchor_t + (self._clock() - self._anchor_clock) * self._speed

    def _step(self) -> tuple[Message | None, float]:
        """The next due message (an event or a hop, whose position is queued behind it), or None and how
        long (s of real time) until something is due."""
        if self._paused:
            return None, math.inf
        hop_t = self._t_list[self._next] if self._next < self.total else math.inf
        event_t = self._event_t[self._next_event] if self._next_event < len(self._event_t) else math.inf
        if hop_t == math.inf and event_t == math.inf:
            self._finish()
            return None, math.inf
        is_event = event_t <= hop_t  # an event logged while a hop was computed comes before its row
        due = event_t if is_event else hop_t
        playhead = self._playhead()
        if due > playhead:
            return None, (due - playhead) / self._speed
        if is_event:
            self._next_event += 1
            return self._event(self._next_event - 1), 0.0
        index = self._next
        self._last, self._next = index, index + 1
        self._pending.append(self._position())
        return self.hop_message(index), 0.0

    def _finish(self) -> None:
        self._anchor_t = self._t_list[-1]
        self._paused = True
        self._ended = True
        self._pending.append(
            {
                "type": "status",
                "connected": True,
                "ended": True,
                "detail": f"end of {self.path.name} ({self.total} hops) — paused; resume to play it again",
            }
        )
        self._pending.append(self._position())

    def _seek_locked(self, index: int, *, show: bool) -> None:
        t = self._t_list[index]
        self._ended = False
        self._anchor_t = t
        self._anchor_clock = self._clock()
        # events logged at or before this hop's time count as passed (they precede its row)
        self._next_event = bisect.bisect_right(self._event_t, t) if index > 0 else 0
        if show:
            self._last, self._next = index, index + 1
            self._pending.append(self.hop_message(index))
            self._pending.append(self._position())
        else:
            self._last, self._next = index - 1, index
        self._cond.notify_all()

    def _notify_position(self) -> None:
        self._pending.append(self._position())
        self._cond.notify_all()

    def _position(self) -> Message:
        t0 = self._t_list[0]
        return {
            "type": "position",
            "index": self._last,
            "total": self.total,
            "t": (self._t_list[self._last] - t0) if self._last >= 0 else 0.0,
            "duration": self._t_list[-1] - t0,
            "speed": self._speed,
            "paused": self._paused,
        }

    def _event(self, k: int) -> Message:
        kind, sep, detail = self.run.event_text[k].partition(": ")
        if not sep:
            kind, detail = "event", self.run.event_text[k]
        return {
            "v": TELEMETRY_VERSION,
            "type": "event",
            "kind": kind,
            "detail": detail,
            "wall": float(self.run.event_wall[k]),
            "t": self._event_t[k],
        }

    # -- one hop ----------------------------------------------------------------------------------------

    def hop_message(self, i: int) -> Message:
        """Row `i` of the run file as a telemetry `hop` message (docs/TELEMETRY.md), rounded as the runtime
        rounds its snapshot; `pub_seq` is i + 1."""
        r = self.run.rows
        timings = dict(zip(TIMINGS_COLUMNS, (float(v) for v in r["timings_ms"][i]), strict=True))
        infer_ms, loop_ms = timings["infer_ms"], timings["loop_ms"]
        counters = dict(zip(COUNTER_COLUMNS, (int(v) for v in r["counters"][i]), strict=True))
        recent = self._latency[max(0, i + 1 - RECENT_HOPS) : i + 1]
        p50, p99 = np.percentile(recent, (50, 99))
        flags = r["quality_flags"][i].astype(np.int64)
        advisory = self._advisory[i]
        # under an advisory the MAINS bit is up but does not gate: the verdict is on the other flags
        gating = flags & ~int(QualityFlag.MAINS) if advisory else flags
        gate_reason = r["gate_reason"][i].decode("utf-8", "replace")
        targets = r["targets"][i]
        return {
            "v": TELEMETRY_VERSION,
            "type": "hop",
            "pub_seq": i + 1,
            "t": float(r["t"][i]),
            "hop": int(r["hop"][i]),
            "wall": None,  # not recorded
            "emg_rms_uv": [round(float(v), 2) for v in r["emg_rms_uv"][i]],
            "quality_flags": [int(f) for f in flags],
            "quality_ok": not gating.any(),
            "quality_reason": _quality_reason(gating, gate_reason),
            "quality_advisory": advisory,
            "stream_gaps": counters["stream_gaps"],
            "stream_duplicates": counters["stream_duplicates"],
            "stream_stalls": None,  # not recorded
            "joints": np.round(r["joints"][i].astype(np.float64), 5).tolist(),
            "confidence": _number(r["confidence"][i], 4),
            "threshold": _number(r["threshold"][i], 4),
            "state": r["state"][i].decode("ascii", "replace"),
            "gate_reason": gate_reason,
            "active": bool(r["active"][i]),
            "command": r["command"][i].decode("ascii", "replace"),
            "targets": [None if v == NOT_SENT else round(float(v), 4) for v in targets],
            "seq": int(r["seq"][i]),
            "armed": bool(r["armed"][i]),
            "estop": bool(r["estop"][i]),
            "sent": None,  # not recorded (the link's counter includes frames other than hop commands)
            "acked": counters["acked"],
            "link_state": None,  # not recorded
            "device_state": counters["device_state"],
            "device_faults": counters["device_faults"],
            "rtt_ms": None,  # not recorded
            "infer_ms": round(infer_ms, 3),
            "loop_ms": round(loop_ms, 3),
            "duty": round((infer_ms + loop_ms) / self._hop_ms, 4),
            "latency_ms": round(timings["latency_ms"], 3),
            "latency_ms_p50": round(float(p50), 3),
            "latency_ms_p99": round(float(p99), 3),
            "drops": None,  # not recorded
            "missed_hops": counters["missed_hops"],
        }


__all__ = ["ReplayFeed", "RunData", "RunFileError", "build_hello", "load_run_file"]
