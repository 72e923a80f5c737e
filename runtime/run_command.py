"""`mode2 run`: MindRove stream → windowed ONNX → signal + confidence gate → serial hand.

    mode2 run --model model.onnx --source playback:s01_r04_mindrove.csv --port sim --record run.h5

Starts disarmed (inference, gate and telemetry run; only safe/hold commands go out) unless `--armed`.
Keys (when run in a terminal): a arm · d disarm · e or space e-stop · c then y clear e-stop ·
+/- threshold · q quit. SIGUSR1 = e-stop. SIGINT/SIGTERM: safe pose, bounded wait for its ack, close
the port, flush the run file, exit 0. If this process dies, the firmware's watchdog eases the hand to
its safe pose.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from firmware_bridge.atomic_write import atomic_path
from firmware_bridge.cli_types import bounded_float, positive_float, positive_int
from firmware_bridge.errors import UserError
from runtime.controls import Controls
from runtime.gate import ConfidenceGate, GateSettings
from runtime.hand_config import DEFAULT_HAND_CONFIG, HandConfig, load_hand_config
from runtime.inference import ENGINES, default_engine, make_engine
from runtime.keyboard import KeyboardControls
from runtime.loop import LoopStats, RuntimeLoop
from runtime.model_metadata import LoadedModel, load_model
from runtime.run_file import RunFileWriter, software_version

SAFE_ACK_TIMEOUT_S = 0.5
EXAMPLE = "mode2 run --model demo_out/model.onnx --source playback:demo_out/sessions/s01_r04_mindrove.csv --port sim"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.epilog = f"example: {EXAMPLE}"
    parser.add_argument("--model", type=Path, required=True, help="exported model (.onnx from `mode2 export-onnx`)")
    parser.add_argument(
        "--source",
        required=True,
        help="EMG source: mindrove[:IP] | playback:FILE.csv | sdk-synthetic | replay:SESSION.h5",
    )
    parser.add_argument(
        "--port", required=True, help="the hand: a serial device, any pyserial URL, or 'sim' (the emulated hand)"
    )
    parser.add_argument("--config", type=Path, default=DEFAULT_HAND_CONFIG, help="hand config (TOML)")
    parser.add_argument(
        "--hop-ms",
        type=positive_float,
        default=None,
        help="inference hop (ms); default 50 for windowed, 40 (25 Hz, one encoder phase) for exact and continuous",
    )
    parser.add_argument(
        "--threshold",
        type=bounded_float(0.0, 1.0),
        default=None,
        help="confidence gate threshold (default: the hand config's)",
    )
    parser.add_argument("--duration", type=positive_float, default=None, help="stop after this many seconds")
    parser.add_argument("--record", type=Path, default=None, help="write a run file (HDF5)")
    parser.add_argument(
        "--telemetry", default=None, help="publish telemetry + accept control: a Unix socket path or HOST:PORT"
    )
    parser.add_argument(
        "--speed",
        type=bounded_float(0.0, 1000.0),
        default=1.0,
        help="replay: × real time; 0 = as fast as possible, every hop processed",
    )
    parser.add_argument("--armed", action="store_true", help="start armed (unattended runs and tests)")
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default=None,
        help="windowed (recompute each 2-s window; the reference), exact (incremental, equal to windowed), "
        "continuous (cheapest, measured accuracy); default: the model's own (its metadata), else windowed",
    )
    parser.add_argument("--threads", type=positive_int, default=1, help="onnxruntime intra-op threads")
    parser.add_argument("--quiet", action="store_true", help="no status line every second")
    parser.add_argument("--summary-json", type=Path, default=None, help="also write the run summary as JSON here")


def _hop_samples(hop_ms: float, rate_hz: float) -> int:
    samples = hop_ms * rate_hz / 1000.0
    if abs(samples - round(samples)) > 1e-6 or round(samples) < 1:
        raise UserError(
            f"--hop-ms {hop_ms:g}: must be a whole number of samples at {rate_hz:g} Hz "
            f"(a multiple of {1000.0 / rate_hz:g} ms)"
        )
    return round(samples)


def _open_hand(port: str, hand: HandConfig, stack: contextlib.ExitStack) -> tuple[Any, Any | None]:
    """Open the link (starting the emulated hand for 'sim') and send the hand config as CONFIGURE."""
    from firmware_bridge.link import HandLink

    hand_sim = None
    if port == "sim":
        from firmware_bridge.hand_sim import HandSimProcess

        hand_sim = HandSimProcess(None, watchdog_ms=hand.watchdog_ms, status_every_ms=20).start()
        stack.callback(hand_sim.stop)
        port = hand_sim.port
    link = HandLink.open(port)
    stack.callback(link.close)
    ack = link.wait_ack(link.configure(hand.watchdog_ms, hand.firmware_limits()), timeout=1.0)
    if ack is None:
        faults = ", ".join(f"code {f.code} detail {f.detail}" for f in list(link.faults)[-3:])
        raise UserError(
            f"the hand on {port} did not accept the configuration from {hand.path} "
            f"({len(hand.joints)} joints, watchdog {hand.watchdog_ms} ms){': faults ' + faults if faults else ''}"
        )
    return link, hand_sim


def signal_quality_for(meta: Any) -> Any:
    """The signal checker for this model: MAINS on a mains family the model's input filter notches out is
    advisory (flagged, described, not gating), since that mains never reaches the model."""
    from firmware_bridge.emg_filter import InputFilter, notched_mains_families
    from runtime.signal_quality import QualityConfig, SignalQuality

    families: tuple[float, ...] = ()
    if meta.input_filter is not None:
        families = notched_mains_families(InputFilter.from_dict(meta.input_filter, "input.input_filter"))
    return SignalQuality(
        sampling_rate_hz=meta.sampling_rate_hz, channels=meta.channels, config=QualityConfig(mains_advisory_hz=families)
    )


def run(args: argparse.Namespace) -> int:
    from firmware_bridge.emg_sources import open_source

    model = load_model(args.model, threads=args.threads)
    meta = model.meta
    hand = load_hand_config(args.config, meta.angle_names)
    if args.engine is None:
        args.engine, note = default_engine(model)
        if note:
            print(f"note: {note}", file=sys.stderr)
    if args.hop_ms is None:
        args.hop_ms = 50.0 if args.engine == "windowed" else 40.0
    hop = _hop_samples(args.hop_ms, meta.sampling_rate_hz)
    engine = make_engine(args.engine, model, hop, threads=args.threads)
    settings = GateSettings(
        hand.threshold if args.threshold is None else args.threshold,
        hand.hysteresis,
        hand.open_dwell_s,
        hand.safe_after_hold_s,
    )
    stop = threading.Event()
    with contextlib.ExitStack() as stack:  # everything the run opens, closed in reverse order whatever happens
        source = open_source(args.source, speed=args.speed)
        stack.callback(source.close)
        _check_source(source, model)
        if args.armed and source.plumbing_only:
            raise UserError(f"--armed refused: {args.source} is not EMG (plumbing only); the hand would follow noise")
        link, _hand_sim = _open_hand(args.port, hand, stack)
        recorder = None
        if args.record is not None:
            recorder = RunFileWriter(
                args.record,
                channels=meta.channels,
                rate_hz=meta.sampling_rate_hz,
                attrs=_run_attrs(args, model, hand, hop),
            )
            stack.callback(recorder.close)
        telemetry = None
        if args.telemetry:
            from runtime.telemetry import TelemetryServer

            telemetry = TelemetryServer(args.telemetry)
            telemetry.set_hello(_hello(args, model, hand, hop))
            telemetry.start()
            stack.callback(telemetry.close)
            print(f"telemetry on {telemetry.address}", flush=True)
        controls = Controls(
            armed=args.armed,
            allow_arming=not source.plumbing_only,
            why_not=f"{args.source} is not EMG (plumbing only)",
        )
        status = _StatusPrinter(args.quiet)
        loop = RuntimeLoop(
            source=source,
            quality=signal_quality_for(meta),
            engine=engine,
            gate=ConfidenceGate(settings),
            hand=hand,
            link=link,
            controls=controls,
            hop_samples=hop,
            recorder=recorder,
            telemetry=_TelemetryTap(telemetry, status),
            duration_s=args.duration,
            catch_up=args.source.startswith("replay:") and args.speed == 0,
            stop=stop,
            on_event=status.event,
            scorer=_scorer(args.source, meta),
        )
        keyboard = KeyboardControls(controls, stop)
        stack.enter_context(keyboard)
        with _signals(stop, controls):
            print(
                f"mode2 run: {args.source} → {model.path.name} ({args.engine}, hop {args.hop_ms:g} ms) → "
                f"{link.port} · {'ARMED' if controls.armed else 'disarmed (press a to arm)'}"
                f"{' · keys: ' + keyboard.help if keyboard.active else ''}",
                flush=True,
            )
            stats = loop.run()
        _go_safe(link, hand)
        summary = _summary(stats, loop, link, source, args, hop, meta.sampling_rate_hz, meta.recommended_hop_samples)
        if recorder is not None:
            recorder.set_attr("summary", summary)
    _print_summary(summary, args)
    if args.summary_json is not None:
        with atomic_path(args.summary_json) as temporary:
            Path(temporary).write_text(json.dumps(summary, indent=2, default=str))
    return 0


def _scorer(source: str, meta: Any) -> Any | None:
    """On `replay:` of a labelled session, score every hop against its camera labels as the run goes."""
    if not source.startswith("replay:"):
        return None
    from runtime.run_score import RunScorer

    scorer = RunScorer(
        source.split(":", 1)[1],
        rate_hz=meta.sampling_rate_hz,
        window=meta.window_samples,
        grid=meta.recommended_hop_samples,
    )
    return scorer if len(scorer.stamps) >= 2 else None


def _check_source(source: Any, model: LoadedModel) -> None:
    meta = model.meta
    if source.channels != meta.channels or abs(source.sampling_rate_hz - meta.sampling_rate_hz) > 1e-6:
        raise UserError(
            f"{source.name} gives {source.channels} channels at {source.sampling_rate_hz:g} Hz; "
            f"{model.path} needs {meta.channels} at {meta.sampling_rate_hz:g} Hz"
        )


def _go_safe(link: Any, hand: HandConfig) -> None:
    """Leave the hand in its safe pose: one go-safe command, acknowledged within a bounded time."""
    seq = link.send_command(hand.safe_pose, active=False, confidence=0.0, safe=True)
    link.wait_ack(seq, timeout=SAFE_ACK_TIMEOUT_S)


def _run_attrs(args: argparse.Namespace, model: LoadedModel, hand: HandConfig, hop: int) -> dict[str, Any]:
    return {
        "model_path": str(model.path),
        "model_sha256": model.sha256,
        "model_metadata": json.dumps(dict(model.meta.raw)),
        "hand_config": hand.text,
        "hand_config_path": str(hand.path),
        "source": args.source,
        "engine": args.engine,
        "hop_samples": hop,
        "threshold": hand.threshold if args.threshold is None else args.threshold,
        "armed_at_start": bool(args.armed),
        "command": " ".join(["mode2", "run", *sys.argv[2:]]) if len(sys.argv) > 1 else "mode2 run",
        "software_version": software_version(),
    }


def _hello(args: argparse.Namespace, model: LoadedModel, hand: HandConfig, hop: int) -> dict[str, Any]:
    from runtime.signal_quality import quality_bits

    meta = model.meta
    return {
        "software": software_version(),
        "model": {
            "path": str(model.path),
            "sha256": model.sha256,
            "metadata": meta.summary(),
        },
        "hand": hand.summary(),
        "source": args.source,
        "port": args.port,
        "engine": args.engine,
        "hop_ms": args.hop_ms,
        "channels": list(meta.channel_order),
        "joint_names": list(meta.joint_names),
        "command_joints": [j.name for j in hand.joints],
        "quality_bits": quality_bits(),
    }


@contextlib.contextmanager
def _signals(stop: threading.Event, controls: Controls):
    """SIGINT/SIGTERM end the run cleanly; SIGUSR1 latches the e-stop (flag only: handlers take no locks)."""

    def end(signum: int, frame: object) -> None:
        stop.set()

    def estop(signum: int, frame: object) -> None:
        controls.estop_requested = True

    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)}
    signal.signal(signal.SIGINT, end)
    signal.signal(signal.SIGTERM, end)
    signal.signal(signal.SIGUSR1, estop)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


class _StatusPrinter:
    """One status line a second, and every event as it happens."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self._last = 0.0

    def event(self, kind: str, detail: str) -> None:
        print(f"[{kind}] {detail}", flush=True)

    def due(self) -> bool:
        return not self.quiet and time.monotonic() - self._last >= 1.0

    def hop(self, snapshot: dict[str, Any]) -> None:
        if not self.due():
            return
        self._last = time.monotonic()
        reason = f" ({snapshot['gate_reason']})" if snapshot["gate_reason"] else ""
        print(
            f"{snapshot['state']:6s}{reason}  conf {snapshot['confidence']:.2f}/{snapshot['threshold']:.2f}  "
            f"{'ARMED' if snapshot['armed'] else 'disarmed'}  sent {snapshot['sent']} acked {snapshot['acked']}  "
            f"infer {snapshot['infer_ms']:.1f} ms  duty {100 * snapshot['duty']:.0f}%  "
            f"missed {snapshot['missed_hops']}",
            flush=True,
        )


class _TelemetryTap:
    """Feeds each hop snapshot to the status line, and to the telemetry server when there is one."""

    def __init__(self, server: Any | None, status: _StatusPrinter) -> None:
        self.server, self.status = server, status

    @property
    def stats(self) -> dict[str, Any]:
        return self.server.stats if self.server is not None else {}

    def wants_snapshot(self) -> bool:
        """Build the hop snapshot only when a telemetry server or the once-a-second status line takes it."""
        return self.server is not None or self.status.due()

    def publish(self, snapshot: dict[str, Any]) -> None:
        if self.server is not None:
            self.server.publish(snapshot)
        self.status.hop(snapshot)

    def publish_event(self, kind: str, detail: str, data: dict[str, Any] | None = None) -> None:
        if self.server is not None:
            self.server.publish_event(kind, detail, data)

    def poll_control(self) -> list[Any]:
        return self.server.poll_control() if self.server is not None else []

    def acknowledge(self, request: Any, ok: bool, detail: str) -> None:
        if self.server is not None:
            self.server.acknowledge(request, ok, detail)


def _summary(
    stats: LoopStats,
    loop: RuntimeLoop,
    link: Any,
    source: Any,
    args: argparse.Namespace,
    hop: int,
    rate: float,
    grid: int,
) -> dict[str, Any]:
    def pct(values: Any, q: float) -> float | None:
        return round(float(np.percentile(np.asarray(values), q)), 3) if len(values) else None

    hop_ms = hop / rate * 1000.0
    compute = stats.infer_ms.values() + stats.loop_ms.values() if stats.hops else np.zeros(0)
    health = source.health
    summary: dict[str, Any] = {
        "engine": args.engine,
        "hop_ms": round(hop_ms, 3),
        "hops": stats.hops,
        "stall_ticks": stats.stall_ticks,
        "zero_rows_repaired": stats.zero_rows_repaired,
        "missed_hops": stats.missed_hops,
        "gate_open_percent": round(100.0 * stats.active_hops / stats.hops, 1) if stats.hops else 0.0,
        "closed_reasons": stats.reasons,
        "commands_sent": link.stats.sent,
        "commands_acked": link.stats.acked,
        "commands_unsent": link.stats.unsent,
        "estops": stats.estops,
        "infer_ms_p50": pct(stats.infer_ms.values(), 50),
        "infer_ms_p99": pct(stats.infer_ms.values(), 99),
        "loop_overhead_ms_p99": pct(stats.loop_ms.values(), 99),
        "duty_p50": pct(compute / hop_ms, 50),
        "duty_p99": pct(compute / hop_ms, 99),
        "latency_ms_p50": pct(stats.latency_ms.values(), 50),
        "latency_ms_p99": pct(stats.latency_ms.values(), 99),
        "rtt_ms_p50": pct(list(link.stats.rtt_ms), 50),
        "stream": health.as_dict() if hasattr(health, "as_dict") else {},
        "telemetry": loop.telemetry.stats if loop.telemetry is not None else {},
        "seconds": round(stats.wall_ended - stats.wall_started, 2),
    }
    if loop.scorer is not None:
        score = loop.scorer.result()
        if score is not None:
            summary["mpjpe_vs_labels_mm"] = round(score.mpjpe_mm, 3)
            summary["median_vs_labels_mm"] = round(score.median_mm, 3)
            summary["scored_hops"] = score.scored_hops
            summary["mpjpe_active_hops_mm"] = None if score.active_mpjpe_mm is None else round(score.active_mpjpe_mm, 3)
            summary["active_scored_hops"] = score.active_hops
            summary["mpjpe_evaluate_windows_mm"] = (
                None if score.evaluate_windows_mpjpe_mm is None else round(score.evaluate_windows_mpjpe_mm, 3)
            )
            summary["evaluate_windows"] = score.evaluate_windows
    return summary


def _print_summary(summary: dict[str, Any], args: argparse.Namespace) -> None:
    def fmt(value: Any, unit: str = "") -> str:
        return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value}{unit}"

    lines = [
        f"run summary ({summary['seconds']} s): {summary['hops']} hops, missed {summary['missed_hops']}, "
        f"stall ticks {summary['stall_ticks']}",
        f"  gate open {summary['gate_open_percent']} % of hops; closed: {summary['closed_reasons']}",
        f"  commands sent {summary['commands_sent']}, acked {summary['commands_acked']}, "
        f"unsent {summary['commands_unsent']}, e-stops {summary['estops']}",
        f"  inference p50 {fmt(summary['infer_ms_p50'], ' ms')}, p99 {fmt(summary['infer_ms_p99'], ' ms')}; "
        f"duty p50 {fmt(summary['duty_p50'])}, p99 {fmt(summary['duty_p99'])}; "
        f"loop overhead p99 {fmt(summary['loop_overhead_ms_p99'], ' ms')}",
        f"  latency last sample → frame written p50 {fmt(summary['latency_ms_p50'], ' ms')}, "
        f"p99 {fmt(summary['latency_ms_p99'], ' ms')}; link round trip p50 {fmt(summary['rtt_ms_p50'], ' ms')}",
    ]
    if "mpjpe_vs_labels_mm" in summary:
        lines.append(
            f"  MPJPE vs camera labels {summary['mpjpe_vs_labels_mm']} mm (median {summary['median_vs_labels_mm']}, "
            f"{summary['scored_hops']} hops with valid labels)"
        )
        if summary.get("mpjpe_evaluate_windows_mm") is not None:
            lines.append(
                f"  on the {summary['evaluate_windows']} windows `mode2 evaluate` scores: "
                f"{summary['mpjpe_evaluate_windows_mm']} mm"
            )
    if args.record is not None:
        lines.append(f"  run file: {args.record}")
    print("\n".join(lines), flush=True)
