"""The on-device loop: acquire → quality → infer → gate → actuate → publish, once per hop.

Each stage is a small object with its own state (EMG source, `SignalQuality`, an `InferenceEngine`,
`ConfidenceGate`, the hand config's mapping); side effects happen only at the two ends (the source, and
the serial link / run file / telemetry). The loop is paced by the data: a hop runs when `hop_samples`
new samples have arrived. If the stream stops, the loop keeps ticking on the host clock with the gate
closed (reason: stall), so the hand is told to hold and then go safe instead of waiting for the
firmware's watchdog. A live loop that falls behind skips to the newest hop and counts the missed ones;
an unpaced replay processes every hop (deterministic, for measurement).
"""

from __future__ import annotations

import math
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from firmware_bridge.emg_rows import hold_over_zero_rows, signal_onset
from runtime.controls import Controls, Outcome
from runtime.gate import ConfidenceGate, GateDecision, GateInput, GateState
from runtime.hand_config import HandConfig
from runtime.inference import InferenceEngine, Prediction
from runtime.ring_buffer import EmgRing
from runtime.run_file import HopRow, RunFileWriter

LONG_GAP_SAMPLES = 10  # a gap of more missing samples than this makes the window discontinuous
COMMAND_BURST = 2.0  # commands the host rate limit lets through back to back
STALL_S = 0.1  # no samples for this long (host clock) → stall ticks with the gate closed


class TimingRing:
    """The newest `capacity` values of one timing, preallocated: memory stays flat over any run length."""

    def __init__(self, capacity: int = 100_000) -> None:
        self._values = np.zeros(capacity)
        self._count = 0

    def append(self, value: float) -> None:
        self._values[self._count % len(self._values)] = value
        self._count += 1

    def values(self) -> np.ndarray:
        return self._values[: min(self._count, len(self._values))]

    def recent(self, n: int) -> np.ndarray:
        """The newest `n` values (fewer at the start), for per-hop statistics that must stay cheap."""
        count = min(self._count, len(self._values), n)
        end = self._count % len(self._values)
        return self._values[np.arange(end - count, end) % len(self._values)]

    def __len__(self) -> int:
        return min(self._count, len(self._values))


@dataclass
class LoopStats:
    hops: int = 0
    stall_ticks: int = 0
    missed_hops: int = 0
    active_hops: int = 0
    commands_sent: int = 0
    commands_unsent: int = 0
    estops: int = 0
    samples: int = 0
    zero_rows_repaired: int = 0
    infer_ms: TimingRing = field(default_factory=TimingRing)
    loop_ms: TimingRing = field(default_factory=TimingRing)
    latency_ms: TimingRing = field(default_factory=TimingRing)
    reasons: dict[str, int] = field(default_factory=dict)
    wall_started: float = 0.0
    wall_ended: float = 0.0


RECENT_HOPS = 200  # the telemetry's latency percentiles cover the last 10 s at 20 Hz
# the event that tells the signal checker's advisory (a flag up that does not close the gate) and its end
ADVISORY_EVENT, ADVISORY_CLEARED = "signal_advisory", "cleared"


def _recent_percentiles(values: TimingRing, *qs: float) -> list[float]:
    recent = values.recent(RECENT_HOPS)
    return [float(v) for v in np.percentile(recent, qs)] if len(recent) else [float("nan")] * len(qs)


def _outcome_kind(outcome: Outcome) -> str:
    """The event kind of a control outcome (docs/TELEMETRY.md): what changed, or `control_refused`."""
    if not outcome.ok:
        return "control_refused"
    command, detail = outcome.request.command, outcome.detail
    if command == "estop":
        return "estop_latched" if detail.startswith("e-stop latched") else "control"
    if command == "clear_estop":
        return "estop_cleared" if detail.startswith("e-stop cleared") else "control"
    return {"arm": "armed", "disarm": "disarmed", "set_threshold": "threshold"}.get(command, "control")


class RuntimeLoop:
    _signal_seen = False  # a row not all zero has arrived (before it, the stream has had only zero rows)

    def __init__(
        self,
        *,
        source: Any,
        quality: Any,
        engine: InferenceEngine,
        gate: ConfidenceGate,
        hand: HandConfig,
        link: Any | None,
        controls: Controls,
        hop_samples: int,
        recorder: RunFileWriter | None = None,
        telemetry: Any | None = None,
        duration_s: float | None = None,
        catch_up: bool = False,
        stop: threading.Event | None = None,
        on_event=None,
        scorer: Any | None = None,
    ) -> None:
        self.source, self.quality, self.engine, self.gate, self.hand = source, quality, engine, gate, hand
        self.link, self.controls, self.recorder, self.telemetry = link, controls, recorder, telemetry
        self.hop_samples = hop_samples
        self.rate = float(source.sampling_rate_hz)
        self.hop_s = hop_samples / self.rate
        self.window = engine.window_samples
        self.duration_s = duration_s
        self.catch_up = catch_up
        self.stop = stop or threading.Event()
        self.on_event = on_event or (lambda kind, detail: None)
        self.scorer = scorer  # scores each hop against the replayed session's labels (replay only)
        self.ring = EmgRing(self.window + 8 * max(hop_samples, 64), source.channels)
        self.stats = LoopStats()
        self._next_hop_at = self.window  # absolute sample count at which the next hop is due
        self._clean_after = 0  # the window is discontinuous until the ring's total passes this
        self._report = None  # latest signal-quality report
        self._advisory = ""  # the signal checker's advisory last told (an event when it changes)
        self._last_pred: Prediction | None = None
        self._last_targets = hand.safe_pose.copy()
        self._last_send = -1.0
        self._send_tokens = COMMAND_BURST
        self._tokens_at = time.monotonic()
        self._last_kind = ""
        self._estop_sent = False
        self._estop_reconnects = 0
        self._last_data_wall = time.monotonic()
        self._last_hop_wall = time.monotonic()
        self._t_emg = float("nan")
        self._link_state = "connected"
        self._stalled = False
        self._seen_faults = 0
        self._hop_index = 0

    # -- one iteration ---------------------------------------------------------------------------
    def run(self) -> LoopStats:
        self.stats.wall_started = time.monotonic()
        self.source.start()
        ending = "stop requested"
        try:
            while not self.stop.is_set():
                self._apply_controls()
                chunk = self.source.read(timeout=min(0.02, self.hop_s / 2))
                if chunk is not None and (len(chunk.samples) or chunk.events):
                    self._ingest(chunk)
                elif getattr(self.source, "finished", False):
                    ending = "end of the recording reached"
                    self.on_event("end", ending)
                    break
                else:
                    self._maybe_stall_tick()
                if self.duration_s is not None and self._elapsed() >= self.duration_s:
                    ending = f"--duration {self.duration_s:g} s reached"
                    self.on_event("end", ending)
                    break
        finally:
            self.stats.wall_ended = time.monotonic()
            self._event("stopping", f"runtime stopping: {ending}; the hand is sent to its safe pose")
        return self.stats

    def _elapsed(self) -> float:
        return time.monotonic() - self.stats.wall_started

    def _apply_controls(self) -> None:
        if self.telemetry is not None:
            for request in self.telemetry.poll_control():
                origin = f"control channel ({request.client})" if request.client else "control channel"
                self.controls.submit(request.command, origin, request.value, reply=request)
        for outcome in self.controls.apply_pending(self.gate.set_threshold):
            self._log_outcome(outcome)

    def _log_outcome(self, outcome: Outcome) -> None:
        request = outcome.request
        detail = f"{request.command} from {request.origin}: {'ok' if outcome.ok else 'refused'} — {outcome.detail}"
        kind = _outcome_kind(outcome)
        data = {"value": self.gate.threshold} if kind == "threshold" else None
        self._event(kind, detail, data)
        if request.command == "estop" and outcome.ok:
            self.stats.estops += 1
            self._send_estop()
        elif request.command == "clear_estop" and outcome.ok and self.link is not None:
            self.link.clear_estop()
            self._estop_sent = False
            self.gate.reset()
        if request.reply is not None and self.telemetry is not None:
            self.telemetry.acknowledge(request.reply, outcome.ok, outcome.detail)

    def _event(self, kind: str, detail: str, data: dict[str, Any] | None = None) -> None:
        """One thing that happened between hops: the status line, the run file and telemetry (event kinds in
        docs/TELEMETRY.md)."""
        self.on_event(kind, detail)
        if self.recorder is not None:
            self.recorder.log_event(time.time(), self._t_emg, kind, detail)
        if self.telemetry is not None:
            self.telemetry.publish_event(kind, detail, data)

    def _send_estop(self) -> None:
        """E-stop reaches the device at once, not at the next hop; called again every hop while latched, it
        re-sends when the frame could not be written or the device has reconnected (a rebooted hand has
        forgotten its latch)."""
        if self.link is None:
            return
        reconnects = self.link.stats.reconnects
        if self._estop_sent and reconnects == self._estop_reconnects:
            return
        self._estop_sent = self.link.estop() is not None
        self._estop_reconnects = reconnects

    # -- acquire and quality ---------------------------------------------------------------------
    def _ingest(self, chunk: Any) -> None:
        self._last_data_wall = time.monotonic()
        self._stalled = False
        samples, stamps = chunk.samples, chunk.timestamps
        self.stats.samples += len(samples)
        if self.recorder is not None and len(samples):
            self.recorder.append_emg(samples, stamps)
        for event in chunk.events:
            missing = int(getattr(event, "samples", 0) or 0)
            if event.kind in ("stall", "backlog") or (event.kind == "gap" and missing > LONG_GAP_SAMPLES):
                # the window now spans a discontinuity: no inference on it until it has left the window, and
                # the engine's input filter and carried state start afresh at that sample
                self._clean_after = self.ring.total + int(event.index) + self.window
                self.engine.restart(int(event.index))
        self._report = self.quality.update(samples, stamps, list(chunk.events))
        if self._report.advisory != self._advisory:  # a flag that does not gate: told once, and when it clears
            self._advisory = self._report.advisory
            self._event(ADVISORY_EVENT, self._advisory or ADVISORY_CLEARED)
        if not len(samples):
            return
        repaired = self._repair_zero_rows(samples)
        self.ring.append(repaired, stamps)
        self.engine.feed(repaired)
        self._t_emg = float(stamps[-1])
        if self.ring.total < self._next_hop_at:
            return
        due = (self.ring.total - self._next_hop_at) // self.hop_samples + 1
        if self.catch_up:
            oldest_end = self.ring.total - (self.ring.capacity - self.window)  # older windows have left the ring
            ends = [self._next_hop_at + k * self.hop_samples for k in range(due)]
            self.stats.missed_hops += sum(e < oldest_end for e in ends)
            ends = [e for e in ends if e >= oldest_end]
        else:
            ends = [self._next_hop_at + (due - 1) * self.hop_samples]
            self.stats.missed_hops += due - 1
        self._next_hop_at += due * self.hop_samples
        for end in ends:
            self._hop(end, chunk.received_at)

    def _repair_zero_rows(self, samples: np.ndarray) -> np.ndarray:
        """All-zero rows (a real armband's dropped packets) would reach the model as z-scores in the
        thousands: the model sees the previous non-zero sample instead (the run file keeps the raw rows).
        The rule is training's (`filter_session`, firmware_bridge/emg_rows.py), so the engines' input is the
        same function of the raw stream as the windows the model was trained on: if the stream starts with
        zero rows they stay zero, and the engine's filter restarts at the first non-zero row."""
        if self._signal_seen and np.count_nonzero(samples) == samples.size:
            return samples  # the usual chunk: no exact zero anywhere, nothing to repair or restart
        last = self.ring.latest(1)[0][0] if self.ring.total else None
        repaired, zero = hold_over_zero_rows(samples, last)
        self._signal_seen = self._signal_seen or not zero.all()
        self.stats.zero_rows_repaired += int(np.count_nonzero(zero))
        onset = signal_onset(zero, last)
        if onset is not None:  # the signal starts here: no window is clean until it has left the zeros
            self._clean_after = max(self._clean_after, self.ring.total + onset + self.window)
            self.engine.restart(onset)
        return repaired

    def _maybe_stall_tick(self) -> None:
        now = time.monotonic()
        if self.catch_up or now - self._last_data_wall < STALL_S or now - self._last_hop_wall < self.hop_s:
            return
        self.stats.stall_ticks += 1
        self._last_hop_wall = now
        silent_ms = (now - self._last_data_wall) * 1000
        if not self._stalled:
            self._stalled = True
            self._event("stream_stall", f"no EMG samples for {silent_ms:.0f} ms: gate closed until they return")
        decision = self.gate.update(
            GateInput(
                0.0 if math.isnan(self._t_emg) else self._t_emg + (now - self._last_data_wall),
                False,
                f"stream: no samples for {silent_ms:.0f} ms",
                0.0,
                self.controls.armed,
                self.controls.estop,
            )
        )
        self._actuate(decision, None, now)

    # -- infer, gate, actuate, publish -----------------------------------------------------------
    def _hop(self, end: int, received_at: float) -> None:
        started = time.perf_counter()
        self._last_hop_wall = time.monotonic()
        t_first, t = self.ring.span(self.window, upto=end)
        prediction = self.engine.infer(end)
        self._last_pred = prediction
        report = self._report
        signal_ok, reason = bool(report.ok), str(report.reason)
        if end < self._clean_after:
            signal_ok = False
            reason = (
                f"stream: a gap or stall is inside the model's window for another "
                f"{(self._clean_after - end) / self.rate:.2f} s"
            )
        elif not prediction.ready:
            signal_ok, reason = False, prediction.note
        decision = self.gate.update(
            GateInput(t, signal_ok, reason, prediction.confidence, self.controls.armed, self.controls.estop)
        )
        seq, targets, kind = self._actuate(decision, prediction, time.monotonic())
        latency_ms = (time.monotonic() - received_at) * 1000.0
        loop_ms = (time.perf_counter() - started) * 1000.0 - prediction.call_ms
        if self.scorer is not None:
            self.scorer.add(t_first, t, end - self.window, prediction.joints, decision.active)
        self._account(t, decision, prediction, report, seq, targets, kind, latency_ms, loop_ms)
        self.engine.idle()  # an incremental engine's deferred work, now that the command is out

    def _actuate(
        self, decision: GateDecision, prediction: Prediction | None, now: float
    ) -> tuple[int | None, np.ndarray, str]:
        """Send what the gate decided; returns (seq, targets sent, kind)."""
        confidence = prediction.confidence if prediction is not None else 0.0
        if decision.state is GateState.ESTOP:
            self._send_estop()
            seq = self.link.heartbeat() if self.link is not None else None
            return seq, np.full(len(self.hand.joints), np.nan), "none"
        if decision.target == "pose" and prediction is not None:
            wanted = self.hand.map_angles(prediction.angles)
            targets = self.hand.slew_limit(
                self._last_targets, wanted, now - self._last_send if self._last_send > 0 else 0
            )
            kind = "pose"
        elif decision.target == "hold":
            targets, kind = self._last_targets, "hold"
        else:
            targets, kind = self.hand.safe_pose, "safe"
        # host rate limit, a token bucket: on average at most max_command_rate_hz commands of one kind, so a
        # data-paced hop that arrives a fraction of a millisecond early is not dropped (a plain "time since the
        # last send" test dropped a third of the commands at a 20-ms hop)
        rate = self.hand.max_command_rate_hz
        self._send_tokens = min(COMMAND_BURST, self._send_tokens + (now - self._tokens_at) * rate)
        self._tokens_at = now
        if kind == self._last_kind and self._send_tokens < 1.0:
            return None, np.full(len(self.hand.joints), np.nan), "none"
        self._send_tokens = max(0.0, self._send_tokens - 1.0)
        seq = None
        if self.link is not None:
            seq = self.link.send_command(targets, active=kind == "pose", confidence=confidence, safe=kind == "safe")
        if seq is None and self.link is not None:
            self.stats.commands_unsent += 1
        else:
            self.stats.commands_sent += 1
        targets = np.array(targets, float)  # one copy, shared by the hop row and the next slew step (never mutated)
        self._last_targets, self._last_send, self._last_kind = targets, now, kind
        return seq, targets, kind

    def _account(self, t, decision, prediction, report, seq, targets, kind, latency_ms, loop_ms) -> None:
        s = self.stats
        s.hops += 1
        self._hop_index += 1
        s.active_hops += int(decision.active)
        key = re.sub(r"\d+(\.\d+)?", "#", decision.reason) if decision.reason else "active"
        s.reasons[key] = s.reasons.get(key, 0) + 1
        s.infer_ms.append(prediction.infer_ms)
        s.loop_ms.append(loop_ms)
        s.latency_ms.append(latency_ms)
        link = self.link
        telemetry = link.latest if link is not None else None
        health = self.source.health
        self._check_device_faults()
        self._check_link_state()
        row = HopRow(
            t=t,
            hop=self._hop_index,
            active=decision.active and kind == "pose",
            state=decision.state.value,
            gate_reason=decision.reason,
            armed=self.controls.armed,
            estop=self.controls.estop,
            confidence=prediction.confidence,
            threshold=self.gate.threshold,
            joints=prediction.joints,
            theta=prediction.theta,
            angles=prediction.angles,
            targets=targets,
            command=kind,
            seq=-1 if seq is None else int(seq),
            quality_flags=np.asarray(report.flags),
            emg_rms_uv=np.asarray(report.rms_uv, float),
            infer_ms=prediction.infer_ms,
            loop_ms=loop_ms,
            latency_ms=latency_ms,
            device_state=-1 if telemetry is None else int(telemetry.state),
            device_faults=0 if telemetry is None else int(telemetry.faults),
            acked=0 if link is None else int(link.stats.acked),
            stream_gaps=int(getattr(health, "gaps", 0)),
            stream_duplicates=int(getattr(health, "duplicate_packets", 0)),
            missed_hops=s.missed_hops,
        )
        if self.recorder is not None:
            self.recorder.append_hop(row)
        if self.telemetry is not None and self.telemetry.wants_snapshot():
            self.telemetry.publish(self.snapshot(row, report))

    def _check_link_state(self) -> None:
        state = "none" if self.link is None else str(self.link.state)
        if state == self._link_state:
            return
        if state == "reconnecting":
            self._event("link_lost", "serial link lost: reconnecting (commands held until it is back)")
        elif state == "connected" and self._link_state == "reconnecting":
            self._event("link_restored", f"serial link restored (reconnect {self.link.stats.reconnects})")
        self._link_state = state

    def _check_device_faults(self) -> None:
        """Log every fault report received since the last hop (counted by the link, so none is missed
        once its bounded history is full)."""
        if self.link is None:
            return
        new = self.link.stats.faults - self._seen_faults
        if new <= 0:
            return
        recent = list(self.link.faults)[-new:]
        if new > len(recent):
            self._event("device_fault", f"{new - len(recent)} earlier fault reports not kept by the link")
        for fault in recent:
            self._event("device_fault", f"code {fault.code} detail {fault.detail}")
        self._seen_faults += new

    def snapshot(self, row: HopRow, report: Any) -> dict[str, Any]:
        """One telemetry hop message; the fields are documented in docs/TELEMETRY.md (keep them in step)."""
        link, s = self.link, self.stats
        health = self.source.health
        rtt = link.stats.rtt_ms[-1] if link is not None and link.stats.rtt_ms else None
        hop_ms = self.hop_s * 1000.0
        p50, p99 = _recent_percentiles(s.latency_ms, 50, 99)
        return {
            "t": row.t,
            "hop": row.hop,
            "wall": time.time(),
            "emg_rms_uv": [round(float(v), 2) for v in np.nan_to_num(row.emg_rms_uv)],
            "quality_flags": [int(f) for f in row.quality_flags],
            "quality_ok": bool(report.ok),
            "quality_reason": str(report.reason),
            "quality_advisory": str(report.advisory),
            "stream_gaps": row.stream_gaps,
            "stream_duplicates": row.stream_duplicates,
            "stream_stalls": int(getattr(health, "stalls", 0)),
            "joints": np.round(row.joints, 5).tolist(),
            "confidence": round(row.confidence, 4),
            "threshold": row.threshold,
            "state": row.state,
            "gate_reason": row.gate_reason,
            "active": row.active,
            "command": row.command,
            "targets": [None if v != v else round(float(v), 4) for v in row.targets],
            "seq": row.seq,
            "armed": row.armed,
            "estop": row.estop,
            "sent": link.stats.sent if link is not None else 0,
            "acked": link.stats.acked if link is not None else 0,
            "link_state": link.state if link is not None else "none",
            "device_state": row.device_state,
            "device_faults": row.device_faults,
            "rtt_ms": None if rtt is None else round(float(rtt), 3),
            "infer_ms": round(row.infer_ms, 3),
            "loop_ms": round(row.loop_ms, 3),
            "duty": round((row.infer_ms + row.loop_ms) / hop_ms, 4),
            "latency_ms": round(row.latency_ms, 3),
            "latency_ms_p50": round(p50, 3),
            "latency_ms_p99": round(p99, 3),
            "drops": int(getattr(health, "duplicate_samples", 0))
            + int(getattr(health, "backlog_discarded_samples", 0)),
            "missed_hops": s.missed_hops,
        }
