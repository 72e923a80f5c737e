"""The run file (`mode2 run --record run.h5`): the raw EMG in the session schema plus one row per hop.

`emg/raw` and `emg/timestamps` are written by the session writer, so `mode2 inspect` and the `replay:`
source read a run file like any session. The `runtime/` group holds one row per hop (see `HOP_FIELDS`);
`runtime/events*` log control requests, e-stops and device faults. Root attributes name the model
(sha256 and metadata JSON), the hand config, the source, the engine and the software version.

Crash safety is the session writer's: appends flush at least once a second, so kill -9 loses at most
the last second and the file still opens.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from firmware_bridge.errors import UserError
from firmware_bridge.session import SessionWriter

RUN_GROUP = "runtime"
REASON_BYTES = 160


def software_version() -> str:
    try:
        return version("mode2-edge")
    except PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class HopRow:
    """What one hop decided and did; one row of every `runtime/*` dataset."""

    t: float  # the hop's last sample time on the EMG clock (s)
    hop: int
    active: bool  # an active command was sent
    state: str  # ACTIVE / HOLD / SAFE / ESTOP
    gate_reason: str
    armed: bool
    estop: bool
    confidence: float
    threshold: float
    joints: np.ndarray  # (21,3) m
    theta: np.ndarray  # (45,)
    angles: np.ndarray  # (20,)
    targets: np.ndarray  # (n_joints,) rad as sent (NaN when nothing was sent)
    command: str  # pose / hold / safe / none
    seq: int  # frame sequence number (-1: not sent)
    quality_flags: np.ndarray  # (channels,) bitmask
    emg_rms_uv: np.ndarray  # (channels,)
    infer_ms: float
    loop_ms: float  # everything but inference
    latency_ms: float  # last sample read → frame written
    device_state: int  # last telemetry state (-1 unknown)
    device_faults: int
    acked: int  # commands acknowledged so far
    stream_gaps: int
    stream_duplicates: int
    missed_hops: int


class RunFileWriter:
    def __init__(self, path: str | Path, *, channels: int, rate_hz: float, attrs: dict[str, Any]) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise UserError(f"--record {self.path}: is a folder; give a file name such as run.h5")
        if not self.path.parent.is_dir():
            raise UserError(f"--record {self.path}: folder {self.path.parent} does not exist")
        plain = {k: (v if isinstance(v, str | int | float | bool) else json.dumps(v)) for k, v in attrs.items()}
        plain.setdefault("software_version", software_version())
        plain["kind"] = "mode2 run file"
        try:
            self._writer = SessionWriter(
                self.path,
                subject_id=str(attrs.get("subject_id", "device")),
                session_id=str(attrs.get("session_id", "run")),
                emg_channels=channels,
                emg_sampling_rate=rate_hz,
                attrs=plain,
            )
        except OSError as error:
            raise UserError(f"--record {self.path}: cannot create it ({error.strerror or error})") from error
        self._last_t: float | None = None
        self.nudged_timestamps = 0
        self.rows = 0

    def append_emg(self, samples: np.ndarray, timestamps: np.ndarray) -> None:
        """Raw µV as it arrived. Sources hand out strictly increasing timestamps; should one not (a device
        stamping a whole packet with one arrival time), the repeats are nudged forward by 1 µs, not refused."""
        stamps = np.asarray(timestamps, np.float64)
        if not len(stamps):
            return
        floor = -np.inf if self._last_t is None else self._last_t
        if stamps[0] <= floor or np.any(np.diff(stamps) <= 0):
            stamps = stamps.copy()
            for i in range(len(stamps)):
                if stamps[i] <= floor:
                    stamps[i] = floor + 1e-6
                    self.nudged_timestamps += 1
                floor = stamps[i]
        self._last_t = float(stamps[-1])
        self._writer.append_emg(np.asarray(samples, np.float32), stamps)

    def append_hop(self, row: HopRow) -> None:
        w, g = self._writer, RUN_GROUP
        w.append_extra(f"{g}/t", np.array([row.t], np.float64))
        w.append_extra(f"{g}/hop", np.array([row.hop], np.int64))
        w.append_extra(f"{g}/active", np.array([row.active], np.uint8))
        w.append_extra(f"{g}/state", np.array([row.state.encode()], "S8"))
        w.append_extra(f"{g}/gate_reason", np.array([row.gate_reason.encode()[:REASON_BYTES]], f"S{REASON_BYTES}"))
        w.append_extra(f"{g}/armed", np.array([row.armed], np.uint8))
        w.append_extra(f"{g}/estop", np.array([row.estop], np.uint8))
        w.append_extra(f"{g}/confidence", np.array([row.confidence], np.float32))
        w.append_extra(f"{g}/threshold", np.array([row.threshold], np.float32))
        w.append_extra(f"{g}/joints", row.joints[None].astype(np.float32))
        w.append_extra(f"{g}/theta", row.theta[None].astype(np.float32))
        w.append_extra(f"{g}/angles", row.angles[None].astype(np.float32))
        w.append_extra(f"{g}/targets", np.nan_to_num(row.targets, nan=-999.0)[None].astype(np.float32))
        w.append_extra(f"{g}/command", np.array([row.command.encode()], "S4"))
        w.append_extra(f"{g}/seq", np.array([row.seq], np.int32))
        w.append_extra(f"{g}/quality_flags", row.quality_flags[None].astype(np.uint16))
        w.append_extra(f"{g}/emg_rms_uv", np.nan_to_num(row.emg_rms_uv)[None].astype(np.float32))
        timings = [row.infer_ms, row.loop_ms, row.latency_ms]
        w.append_extra(f"{g}/timings_ms", np.array([timings], np.float32))
        counters = [row.device_state, row.device_faults, row.acked, row.stream_gaps, row.stream_duplicates]
        w.append_extra(f"{g}/counters", np.array([[*counters, row.missed_hops]], np.int64))
        self.rows += 1

    def log_event(self, wall_time: float, emg_time: float, kind: str, detail: str) -> None:
        self._writer.append_extra(f"{RUN_GROUP}/events_time", np.array([[wall_time, emg_time]], np.float64))
        self._writer.append_extra(
            f"{RUN_GROUP}/events", np.array([f"{kind}: {detail}".encode()[:REASON_BYTES]], f"S{REASON_BYTES}")
        )

    def set_attr(self, key: str, value: Any) -> None:
        self._writer.set_attr(key, value if isinstance(value, str | int | float | bool) else json.dumps(value))

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


# column names of the 2-D datasets, stored in docs/TELEMETRY.md as well
TIMINGS_COLUMNS = ("infer_ms", "loop_ms", "latency_ms")
COUNTER_COLUMNS = ("device_state", "device_faults", "acked", "stream_gaps", "stream_duplicates", "missed_hops")
