"""`replay:FILE.h5` — a session file or a run file, streamed like the armband, deterministically.

Reads `emg/raw` (N,C) and `emg/timestamps` (N,) — the part of the session schema a run file
(`mode2 run --record`) also carries, so both replay; pose data is not needed. Delivery imitates the
armband's arrival: fixed chunks of `chunk_samples` (2) samples, each released when the EMG time of its
last sample has passed, at `speed` × real time (a hole in the timestamps becomes a pause of the same
EMG length). `speed=0` (or inf) is unpaced: every read returns the next chunk at once. The chunk
boundaries depend only on the file, so every run delivers the same chunks.

There is no package counter in a session file: one is derived from the timestamps (a jump of k sample
periods = k − 1 missing samples, reported as a gap; more than `stall_ms` = a stall), and chunks carry
`counters=None`. Units: see units.py (an explicit `units`/`emg_units` attribute, else the values decide
by `counts_evidence`, the rule `mode2 import --units auto` uses too).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import h5py
import numpy as np

from firmware_bridge.emg_sources.base import ARMBAND_RATE_HZ, EmgSource, SourceError
from firmware_bridge.emg_sources.checks import StreamChecker
from firmware_bridge.emg_sources.units import UV_PER_COUNT, looks_like_counts, parse_units

EMG_RAW = "emg/raw"
EMG_TIMESTAMPS = "emg/timestamps"
CHUNK_SAMPLES = 2  # the armband hands over about 2 samples every 4 ms


def _load(path: Path, spec: str) -> tuple[np.ndarray, np.ndarray, float, bool]:
    """(raw µV (N,C) float64, timestamps (N,), rate, converted_from_counts) or SourceError."""
    if not path.is_file():
        raise SourceError(f"{spec}: no such file")
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise SourceError(f"{spec}: not a readable HDF5 file ({error})") from error
    with handle as f:
        for name in (EMG_RAW, EMG_TIMESTAMPS):
            if name not in f or not isinstance(f[name], h5py.Dataset):
                raise SourceError(f"{spec}: {name}: missing — a session or run file carries emg/raw and emg/timestamps")
        raw = np.asarray(f[EMG_RAW][()], dtype=np.float64)
        stamps = np.asarray(f[EMG_TIMESTAMPS][()], dtype=np.float64)
        declared = f[EMG_RAW].attrs.get("units", f.attrs.get("emg_units"))
        rate = float(f.attrs.get("emg_sampling_rate", ARMBAND_RATE_HZ))
    if raw.ndim != 2 or raw.shape[1] < 1:
        raise SourceError(f"{spec}: {EMG_RAW}: expected shape (N, channels), got {raw.shape}")
    if stamps.ndim != 1 or len(stamps) != len(raw):
        raise SourceError(f"{spec}: {EMG_TIMESTAMPS}: shape {stamps.shape} does not match {EMG_RAW} {raw.shape}")
    if len(raw) == 0:
        raise SourceError(f"{spec}: {EMG_RAW}: the file has no EMG samples")
    if not (np.all(np.isfinite(raw)) and np.all(np.isfinite(stamps))):
        raise SourceError(f"{spec}: emg: contains NaN or inf")
    steps = np.diff(stamps)
    if np.any(steps <= 0):
        i = int(np.argmax(steps <= 0)) + 1
        raise SourceError(f"{spec}: {EMG_TIMESTAMPS}: not strictly increasing at index {i}")
    if not rate > 0:
        raise SourceError(f"{spec}: attr emg_sampling_rate = {rate} is not a rate")
    if declared is None:
        counts = looks_like_counts(raw)
    else:
        units = parse_units(declared)
        if units is None:
            raise SourceError(f"{spec}: {EMG_RAW}: unknown units '{declared}' (expected uV or counts)")
        counts = units == "counts"
    if counts:
        raw *= UV_PER_COUNT
    return raw, stamps, rate, counts


class ReplaySource(EmgSource):
    def __init__(
        self, path: str | Path, *, speed: float = 1.0, chunk_samples: int = CHUNK_SAMPLES, stall_ms: float = 50.0
    ) -> None:
        path = Path(path)
        spec = f"replay:{path}"
        if not (speed >= 0):
            raise SourceError(f"{spec}: speed {speed} must be ≥ 0 (0 = as fast as read)")
        if chunk_samples < 1:
            raise SourceError(f"{spec}: chunk_samples {chunk_samples} must be ≥ 1")
        raw, stamps, rate, counts = _load(path, spec)
        checker = StreamChecker(
            rate_hz=rate, channels=raw.shape[1], counter_modulus=None, stall_ms=stall_ms, backlog_keep_s=None
        )
        super().__init__(checker)
        self.name = spec
        self.path = path
        self.speed = float(speed)
        self.paced = 0 < self.speed < math.inf
        self.chunk_samples = int(chunk_samples)
        self.sampling_rate_hz = rate
        self.channels = raw.shape[1]
        self.converted_from_counts = counts
        self._raw, self._t = raw, stamps
        self._pos = 0
        self._host0 = 0.0
        self._live_stall_s = checker.stall_s / self.speed if self.paced else math.inf

    _deliver_counters = False

    @property
    def total_samples(self) -> int:
        return len(self._t)

    def _start(self) -> None:
        self._pos = 0
        self._host0 = time.monotonic()

    def _due(self, now: float) -> int:
        """End (exclusive) of the samples whose chunk is due at host time `now`."""
        n = len(self._t)
        if not self.paced:
            return min(n, self._pos + self.chunk_samples)
        emg_now = self._t[0] + (now - self._host0) * self.speed
        arrived = int(np.searchsorted(self._t, emg_now, side="right"))
        return n if arrived >= n else (arrived // self.chunk_samples) * self.chunk_samples

    def _poll(self, now: float) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
        stop = self._due(now)
        if stop <= self._pos:
            return None
        start, self._pos = self._pos, stop
        return self._raw[start:stop], self._t[start:stop], None

    def _next_wait(self, now: float) -> float:
        if not self.paced or self._pos >= len(self._t):
            return 0.0
        last = min(len(self._t), self._pos + self.chunk_samples) - 1
        return max(0.0, self._host0 + (self._t[last] - self._t[0]) / self.speed - now)

    @property
    def _exhausted(self) -> bool:
        return self._pos >= len(self._t)

    def _close(self) -> None:
        self._raw = self._raw[:0]
