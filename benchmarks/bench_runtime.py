"""The on-device loop under real pacing: duty cycle, latency, missed hops, and a memory soak — one run.

Every row is `mode2 run` as a user starts it (replay of a synthetic session at 1× real time → model →
gate → the emulated hand on a pty), 20-Hz hops, one onnxruntime thread, the windowed engine, side by side:

- the official-size Mode 2 model (5.97 M-parameter vemg2pose, fixture weights) exported fp32 and int8,
- optionally `--model` (e.g. demo_out/model.onnx, the stand-in backbone the demo trains).

Then a soak: the int8 model on a long replay, the process's resident memory sampled every few seconds.

    python benchmarks/bench_runtime.py                       # 30-s rows, 30-min soak
    python benchmarks/bench_runtime.py --seconds 10 --soak-minutes 1   # what CI-sized runs use
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
FIXTURE = REPO.parent / "shared/fixtures/emg2pose/random_vemg2pose.ckpt"

from benchmarks.machine import cpu_model


def official_size_models(folder: Path, session: Path) -> tuple[Path, Path]:
    """Mode 2 around the official-size backbone, saved as a checkpoint and exported by `mode2 export-onnx`."""
    import torch

    from firmware_bridge.emg_filter import InputFilter
    from training.hand.open_hand import open_hand_model
    from training.models.backbone_io import load_backbone
    from training.models.checkpoint_meta import META_VERSION, CheckpointMeta
    from training.models.mode2_model import Mode2Model
    from training.models.model_io import hand_to_dict, save_model_checkpoint

    torch.manual_seed(0)
    backbone, info = load_backbone(FIXTURE)
    model = Mode2Model(backbone, open_hand_model(), backbone_input_scale=50.0).eval()
    model.preprocess.std.fill_(50.0)  # µV: a plausible training spread for the z-score
    meta_fields = {
        "format_version": META_VERSION,
        "kind": "mode2",
        "hand_model": hand_to_dict(open_hand_model()),
        "config": {"adapter_init": "geometry", "backbone_input_scale": 50.0},
        "backbone": {"kind": info.kind, "path": info.path, "sha256": info.sha256, "config": info.config.to_dict()},
        "initial_state_policy": "train_mean",
        "initial_state_mean": [0.0] * 20,
        "normalisation": {
            "method": "causal input filter on the stream, then divide by the training std",
            "std": [50.0] * 8,
            "units": "µV",
            "input_filter": InputFilter.design(500.0).to_dict(),
        },
        "training": {"command": "benchmarks/bench_runtime.py (random fixture weights)"},
        "metrics": {},
    }
    meta = CheckpointMeta.from_dict(meta_fields, "benchmarks/bench_runtime.py")
    checkpoint = save_model_checkpoint(folder / "official_size.pth", model, meta)
    out = folder / "official_size.onnx"
    export = ["export-onnx", "--checkpoint", str(checkpoint), "--out", str(out), "--data", str(session), "--int8"]
    subprocess.run([sys.executable, "-m", "runtime.cli", *export], check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return out, out.with_name("official_size.int8.onnx")


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def run_paced(model: Path, session: Path, seconds: float, summary: Path, sample_every: float = 0.0):
    """`mode2 run` at 1× on the replay; returns (summary dict, [(t, rss MB)])."""
    command = [
        sys.executable,
        "-m",
        "runtime.cli",
        "run",
        "--model",
        str(model),
        "--source",
        f"replay:{session}",
        "--speed",
        "1",
        "--port",
        "sim",
        "--armed",
        "--threshold",
        "0",
        "--threads",
        "1",
        "--engine",
        "windowed",  # the reference engine on both rows (the fp32 file's own default would be `exact`)
        "--quiet",
        "--duration",
        str(seconds),
        "--summary-json",
        str(summary),
    ]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    memory: list[tuple[float, float]] = []
    started = time.monotonic()
    while process.poll() is None:
        time.sleep(sample_every or 0.5)
        if sample_every:
            value = rss_mb(process.pid)
            if value is not None:
                memory.append((time.monotonic() - started, value))
    _, err = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"mode2 run failed ({process.returncode}):\n{err[-3000:]}")
    return json.loads(summary.read_text()), memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each paced row")
    parser.add_argument("--soak-minutes", type=float, default=30.0, help="soak length (0 = skip)")
    parser.add_argument("--model", type=Path, action="append", default=[], help="also measure this exported model")
    args = parser.parse_args()

    from training.synth import simulate

    print(f"CPU: {cpu_model()} · {os.cpu_count()} logical cores · onnxruntime intra-op threads 1, inter-op 1")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        minutes = max(args.seconds / 60.0 + 0.2, args.soak_minutes + 0.2, 1.0)
        print(f"simulating a {minutes:.1f}-min session to replay …", flush=True)
        session = simulate(
            folder / "world", sessions=1, subjects=1, minutes=minutes, seed=404, write_2k=False, progress=False
        )[0]
        print("exporting the official-size model (fp32 + int8) …", flush=True)
        fp32, int8 = official_size_models(folder, session)
        rows = [("official size, fp32", fp32), ("official size, int8", int8)]
        rows += [(str(m), m) for m in args.model]
        results = []
        for name, model in rows:
            print(f"running {name} for {args.seconds:g} s at 20 Hz …", flush=True)
            summary, _ = run_paced(model, session, args.seconds, folder / "summary.json")
            results.append((name, summary))
        print()
        print(
            "| model (1 thread, 20-Hz hop) | hops | missed | duty p50 / p99 | inference p50 / p99 (ms) "
            "| loop overhead p99 (ms) | latency p50 / p99 (ms) |"
        )
        print("|---|---|---|---|---|---|---|")
        for name, s in results:
            print(
                f"| {name} | {s['hops']} | {s['missed_hops']} | {s['duty_p50']:.2f} / {s['duty_p99']:.2f} | "
                f"{s['infer_ms_p50']:.1f} / {s['infer_ms_p99']:.1f} | {s['loop_overhead_ms_p99']:.2f} | "
                f"{s['latency_ms_p50']:.1f} / {s['latency_ms_p99']:.1f} |"
            )
        duty = {name: s["duty_p50"] for name, s in results}
        print(
            f"\nint8 / fp32 duty (p50), measured side by side: "
            f"{duty['official size, int8'] / duty['official size, fp32']:.2f}"
        )
        if args.soak_minutes > 0:
            print(f"\nsoak: official size int8, {args.soak_minutes:g} min at 1× …", flush=True)
            summary, memory = run_paced(int8, session, args.soak_minutes * 60, folder / "soak.json", sample_every=5)
            values = np.array([m for _, m in memory])
            settled = values[len(values) // 5 :] if len(values) > 5 else values
            slope = (
                np.polyfit([t for t, _ in memory][len(values) // 5 :], settled, 1)[0] * 60 if len(settled) > 2 else 0
            )
            print(
                f"soak: {summary['hops']} hops, missed {summary['missed_hops']}, stall ticks {summary['stall_ticks']},"
                f" duty p99 {summary['duty_p99']:.2f}, latency p99 {summary['latency_ms_p99']:.1f} ms; "
                f"RSS first {values[0]:.1f} MB, after warm-up {settled[0]:.1f} MB, last {values[-1]:.1f} MB, "
                f"max {values.max():.1f} MB, trend after warm-up {slope:+.3f} MB/min"
            )


if __name__ == "__main__":
    main()
