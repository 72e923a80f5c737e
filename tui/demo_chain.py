"""`mode2 dashboard --demo`: the whole chain started by the dashboard itself, so a newcomer sees the hand move.

1. If the demo model or its held-out session is missing, `mode2 demo --out DIR` makes them first (said on
   stdout, before the screen starts: it trains a small model, a few minutes on a laptop).
2. `mode2 run` replays the held-out session at real time through the model into the emulated hand, with
   telemetry on a Unix socket in a private temporary folder; the dashboard attaches to it (`DemoFeed`).
3. When the replay ends the runtime is started again, so the hand keeps moving. It is started `--armed`
   only while the operator has not stopped it: a run that ended disarmed or with the e-stop latched is
   followed by a disarmed one (read from the run's own run file) — the chain never re-arms by itself what
   the operator stopped.

Children never outlive the dashboard, even on kill -9: each `mode2 run` is started through a tiny
launcher that sets Linux's PR_SET_PDEATHSIG (SIGTERM, which `mode2 run` handles: safe pose, flush, exit)
before exec'ing it, and re-checks its parent after setting it (the parent may have died in between). The
signal fires when the *thread* that started the child ends — so every child is started by the one
supervisor thread, which lives exactly as long as the chain. The emulated hand under `mode2 run` watches
its own parent (firmware_bridge/hand_sim.py, getppid) and eases to safe when `mode2 run` goes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from firmware_bridge.errors import UserError
from runtime.demo_command import HELD_OUT, MODEL
from tui.feed import Message
from tui.live_feed import LiveFeed

FAST_FAILURES = 2  # the runtime exiting with an error this many times in a row (each within 10 s) stops the chain
STOP_TIMEOUT_S = 5.0

# Runs in the child before exec: die with the thread that started us (PR_SET_PDEATHSIG = 1), and if that
# parent is already gone (re-parented to init or a subreaper), do not start at all.
_LAUNCHER = (
    "import ctypes, os, signal, sys\n"
    "parent = int(sys.argv[1])\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)\n"
    "if os.getppid() != parent:\n"
    "    sys.exit(1)\n"
    "os.execv(sys.executable, [sys.executable, *sys.argv[2:]])\n"
)


def child_command(args: list[str]) -> list[str]:
    """`python -m runtime.cli ARGS…` wrapped so the child gets SIGTERM when this process dies (Linux)."""
    if sys.platform.startswith("linux"):
        return [sys.executable, "-c", _LAUNCHER, str(os.getpid()), "-m", "runtime.cli", *args]
    return [sys.executable, "-m", "runtime.cli", *args]


class DemoChain:
    """Prepare the demo model if needed (`prepare()`), then keep `mode2 run` replaying into the emulated
    hand (`start()`, `close()`); `address` is its telemetry socket."""

    def __init__(self, out_dir: Path = Path("demo_out"), *, record: Path | None = None, speed: float = 1.0) -> None:
        self.out_dir = Path(out_dir)
        self.model = self.out_dir / MODEL
        self.session = self.out_dir / HELD_OUT
        self.speed = speed
        self._tmp = Path(tempfile.mkdtemp(prefix="mode2-dashboard-"))  # mode 0700: the socket is ours alone
        self.address = str(self._tmp / "telemetry.sock")
        self.log_path = self._tmp / "runtime.log"
        self.record = record or (self._tmp / "run.h5")
        self.runs = 0  # runtimes started so far
        self.failure: str | None = None  # why the chain stopped restarting the runtime
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None

    # -- step 1: the model --------------------------------------------------------------------------------

    def missing(self) -> list[Path]:
        return [p for p in (self.model, self.session) if not p.is_file()]

    def prepare(self) -> float:
        """Run `mode2 demo --out DIR` when the model or the held-out session is missing; returns the
        seconds it took (0 when everything was there)."""
        missing = self.missing()
        if not missing:
            return 0.0
        print(
            f"mode2 dashboard --demo: {', '.join(map(str, missing))} not found — making the demo model first with "
            f"`mode2 demo --out {self.out_dir}` (synthetic sessions, a short training run, the ONNX export; "
            "a few minutes, once). The dashboard starts when it is done.",
            flush=True,
        )
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "runtime.cli", "demo", "--out", str(self.out_dir)], check=False)
        elapsed = time.monotonic() - started
        if result.returncode != 0:
            raise UserError(f"--demo: `mode2 demo --out {self.out_dir}` failed (exit {result.returncode}); see above")
        still = self.missing()
        if still:
            raise UserError(f"--demo: `mode2 demo --out {self.out_dir}` finished but {still[0]} is still missing")
        print(f"demo model ready in {elapsed:.0f} s: {self.model}", flush=True)
        return elapsed

    # -- step 2: the runtime ------------------------------------------------------------------------------

    def run_args(self, *, armed: bool) -> list[str]:
        args = ["run", "--model", str(self.model), "--source", f"replay:{self.session}", "--speed", f"{self.speed:g}"]
        args += ["--port", "sim", "--telemetry", self.address, "--record", str(self.record), "--quiet"]
        # the hand is the emulated one (`--port sim`), so starting armed moves nothing real
        return [*args, "--armed"] if armed else args

    def start(self) -> DemoChain:
        if self.missing():
            raise UserError(f"--demo: {self.missing()[0]} is missing; call prepare() first")
        self._thread = threading.Thread(target=self._supervise, name="demo-chain", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            process = self._process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=STOP_TIMEOUT_S + 2.0)
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT_S)
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> DemoChain:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _supervise(self) -> None:
        armed = True
        failures = 0
        while not self._stop.is_set():
            with contextlib.suppress(FileNotFoundError):
                self.record.unlink()
            started = time.monotonic()
            with open(self.log_path, "ab") as log:
                process = subprocess.Popen(
                    child_command(self.run_args(armed=armed)),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=dict(os.environ, MPLBACKEND="Agg"),
                )
            with self._lock:
                self._process = process
                self.runs += 1
            while process.poll() is None:
                if self._stop.wait(0.2):
                    with contextlib.suppress(ProcessLookupError):
                        process.send_signal(signal.SIGTERM)
                    try:
                        process.wait(timeout=STOP_TIMEOUT_S)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        process.wait()
                    return
            if process.returncode != 0:
                failures = failures + 1 if time.monotonic() - started < 10.0 else 1
                if failures >= FAST_FAILURES:
                    self.failure = f"`mode2 {' '.join(self.run_args(armed=armed))}` failed: {self._log_tail()}"
                    return
            else:
                failures = 0
                armed = _ended_armed(self.record)
            self._stop.wait(0.2)

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no output"
        return lines[-1] if lines else "no output"


def _ended_armed(record: Path) -> bool:
    """True when the run recorded in `record` ended armed and without a latched e-stop."""
    import h5py

    try:
        with h5py.File(record, "r") as f:
            armed, estop = f["runtime/armed"], f["runtime/estop"]
            return bool(len(armed) and armed[-1] and not estop[-1])
    except (OSError, KeyError):
        return False


class DemoFeed(LiveFeed):
    """The live feed of a `DemoChain`: closing it stops the chain, and a chain that stopped restarting its
    runtime says why in a `status` message."""

    def __init__(self, chain: DemoChain, *, reconnect_interval: float = 0.5) -> None:
        self.chain = chain
        self._told: str | None = None  # the failure already said
        super().__init__(chain.address, reconnect_interval=reconnect_interval)

    def read(self, timeout: float) -> Message | None:
        failure = self.chain.failure
        if failure is not None and failure != self._told:
            self._told = failure
            return {"type": "status", "connected": False, "detail": f"demo runtime stopped: {failure}"}
        return super().read(timeout)

    def close(self) -> None:
        super().close()
        self.chain.close()
