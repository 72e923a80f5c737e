"""The run file (`mode2 run --record run.h5`): the raw EMG in the session schema plus one row per hop.

`emg/raw` and `emg/timestamps` are written by the session writer, so `mode2 inspect` and the `replay:`
source read a run file like any session. The `runtime/` group holds one row per hop (see `HOP_FIELDS`);
`runtime/events*` log control requests, e-stops and device faults. Root attributes name the model
(sha256 and metadata JSON), the hand config, the source, the engine and the software version.

Crash safety is the session writer's: appends flush at least once a second, so kill -9 loses at most
the last second (hop rows are written in blocks every 0.25 s, the file flushed every 0.75 s) and the
file still opens.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from firmware_bridge.errors import UserError
from firmware_bridge.session import SessionWriter

RUN_GROUP = "runtime"
REASON_BYTES = 160
NOT_SENT = -999.0  # `runtime/targets` value of a joint nothing was sent to (NaN in the HopRow)
HOP_BLOCK_S = 0.25  # hop rows wait at most this long before they are written...
FLUSH_S = 1.0 - HOP_BLOCK_S  # ...and the file is flushed this often, so kill -9 still loses at most 1 s


def fit_text(text: str) -> bytes:
    """`text` as UTF-8 in at most REASON_BYTES bytes, cut at a character boundary (a cut "µ" would read back as
    a replacement character)."""
    return text.encode()[:REASON_BYTES].decode("utf-8", "ignore").encode()


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
                flush_interval_s=FLUSH_S,
            )
        except OSError as error:
            raise UserError(f"--record {self.path}: cannot create it ({error.strerror or error})") from error
        self._last_t: float | None = None
        self.nudged_timestamps = 0
        self.rows = 0
        self._hops: list[HopRow] = []  # rows not yet in the file (see append_hop)
        self._hops_written_at = time.monotonic()

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
        """Queue one hop's row; rows reach the file in blocks (a block of ~20 dataset appends per hop
        would cost the loop about 2 ms per hop), at least every `HOP_BLOCK_S`, and on flush and close."""
        self._hops.append(row)
        self.rows += 1
        if time.monotonic() - self._hops_written_at >= HOP_BLOCK_S:
            self._write_hops()

    def _write_hops(self) -> None:
        rows, self._hops = self._hops, []
        self._hops_written_at = time.monotonic()
        if not rows:
            return
        w, g = self._writer, RUN_GROUP

        def column(field: str, dtype: Any) -> np.ndarray:
            return np.array([getattr(r, field) for r in rows], dtype)

        def stacked(field: str, dtype: Any, nan: float | None = None) -> np.ndarray:
            arrays = [getattr(r, field) for r in rows]
            return np.stack(arrays if nan is None else [np.nan_to_num(a, nan=nan) for a in arrays]).astype(dtype)

        w.append_extra(f"{g}/t", column("t", np.float64))
        w.append_extra(f"{g}/hop", column("hop", np.int64))
        w.append_extra(f"{g}/active", column("active", np.uint8))
        w.append_extra(f"{g}/state", np.array([r.state.encode() for r in rows], "S8"))
        reasons = [fit_text(r.gate_reason) for r in rows]
        w.append_extra(f"{g}/gate_reason", np.array(reasons, f"S{REASON_BYTES}"))
        w.append_extra(f"{g}/armed", column("armed", np.uint8))
        w.append_extra(f"{g}/estop", column("estop", np.uint8))
        w.append_extra(f"{g}/confidence", column("confidence", np.float32))
        w.append_extra(f"{g}/threshold", column("threshold", np.float32))
        w.append_extra(f"{g}/joints", stacked("joints", np.float32))
        w.append_extra(f"{g}/theta", stacked("theta", np.float32))
        w.append_extra(f"{g}/angles", stacked("angles", np.float32))
        w.append_extra(f"{g}/targets", stacked("targets", np.float32, nan=NOT_SENT))
        w.append_extra(f"{g}/command", np.array([r.command.encode() for r in rows], "S4"))
        w.append_extra(f"{g}/seq", column("seq", np.int32))
        w.append_extra(f"{g}/quality_flags", stacked("quality_flags", np.uint16))
        w.append_extra(f"{g}/emg_rms_uv", stacked("emg_rms_uv", np.float32, nan=0.0))
        timings = [[r.infer_ms, r.loop_ms, r.latency_ms] for r in rows]
        w.append_extra(f"{g}/timings_ms", np.array(timings, np.float32))
        counters = [
            [r.device_state, r.device_faults, r.acked, r.stream_gaps, r.stream_duplicates, r.missed_hops] for r in rows
        ]
        w.append_extra(f"{g}/counters", np.array(counters, np.int64))

    def log_event(self, wall_time: float, emg_time: float, kind: str, detail: str) -> None:
        self._write_hops()  # the hops before an event (a stall stops the hops) reach the file with it
        self._writer.append_extra(f"{RUN_GROUP}/events_time", np.array([[wall_time, emg_time]], np.float64))
        self._writer.append_extra(f"{RUN_GROUP}/events", np.array([fit_text(f"{kind}: {detail}")], f"S{REASON_BYTES}"))

    def set_attr(self, key: str, value: Any) -> None:
        self._writer.set_attr(key, value if isinstance(value, str | int | float | bool) else json.dumps(value))

    def flush(self) -> None:
        self._write_hops()
        self._writer.flush()

    def close(self) -> None:
        self._write_hops()
        self._writer.close()


# column names of the 2-D datasets, stored in docs/TELEMETRY.md as well
TIMINGS_COLUMNS = ("infer_ms", "loop_ms", "latency_ms")
COUNTER_COLUMNS = ("device_state", "device_faults", "acked", "stream_gaps", "stream_duplicates", "missed_hops")
