"""One clock for the EMG samples and the camera frames: the host's `time.monotonic()`.

Camera frames are stamped on it when they are read (`Frame.t_mono`). EMG samples come in chunks whose own
timestamps are on the source's clock (the SDK's are host arrival times of its packets, with the ring
buffer's and the WiFi's jitter in them); each chunk also carries `received_at` (monotonic). `EmgClock`
gives every sample a monotonic time from its **sample index** instead:

- the index counts samples at the nominal rate `fs`, and the holes the source reports (`gap` events, a
  discarded start-up `backlog`) advance it, so a lost packet does not pull later samples earlier;
- a chunk can only arrive late, never early, so `received_at − i_last / fs` (i_last the chunk's newest
  sample) is the sample clock's offset plus a delay ≥ the minimal transport delay: the **lower envelope** of
  these offsets, over `window_s`, anchors the index on the monotonic clock (pauses, bursts and a slow
  reader only raise points above the envelope);
- the envelope's slope is the sample clock's rate error against the host (crystal drift, tens of ppm; or a
  board whose real rate is not its nominal one): a least-squares line through per-block minima, refitted
  on the lower points, once `min_drift_span_s` of data exist. Time of sample i = c + (1 + k) · i / fs.

What the mapped time is: when the sample would have reached this process with the minimal delay seen, i.e.
the sampling instant plus the (unknowable from the host) constant minimal transport delay. The camera's
stamps likewise include its capture-to-read delay. Mapped times never go backwards: when the envelope drops
(an earlier-arriving chunk shows the anchor was late) the next samples are spaced at least `fs / 4` apart
until they are back on the line, so the correction is spread over a few samples instead of a step back.

File times: `FileClock` turns monotonic seconds into `start_unix + (t − start_mono)`, so the file carries
wall-clock times (like the seed recorder's) that are exactly the monotonic clock shifted by one constant.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

CLOCK_DESCRIPTION = (
    "time.monotonic() of this host shifted to unix seconds (start_unix + t_mono - start_mono); EMG samples "
    "timed from their index at the nominal rate, anchored on the lower envelope of chunk arrivals with a "
    "drift estimate (training/recording/clock.py); camera frames at the moment they were read"
)
INDEX_EVENTS = ("gap", "backlog")  # events whose `samples` are missing samples: the index skips them


@dataclass(frozen=True)
class FileClock:
    """Monotonic seconds ↔ the times stored in the session file (unix seconds)."""

    start_mono: float
    start_unix: float

    @classmethod
    def now(cls) -> FileClock:
        return cls(start_mono=time.monotonic(), start_unix=time.time())

    def to_file(self, t_mono: Any) -> Any:
        return self.start_unix + (np.asarray(t_mono, dtype=np.float64) - self.start_mono)

    def describe(self) -> dict[str, Any]:
        return {"clock": CLOCK_DESCRIPTION, "start_unix": self.start_unix, "start_mono": self.start_mono}


class EmgClock:
    """Sample index → monotonic time, chunk by chunk (see the module docstring)."""

    def __init__(
        self,
        rate_hz: float,
        *,
        block_s: float = 1.0,
        window_s: float = 60.0,
        min_drift_span_s: float = 6.0,
    ) -> None:
        if rate_hz <= 0:
            raise ValueError(f"EmgClock: rate {rate_hz} must be > 0")
        self.fs = float(rate_hz)
        self.block_s = float(block_s)
        self.min_drift_span_s = float(min_drift_span_s)
        self._blocks: deque[tuple[float, float]] = deque(maxlen=max(3, round(window_s / block_s)))
        self._block_key: int | None = None
        self._block_point: tuple[float, float] = (0.0, np.inf)  # (sample time i/fs, lowest offset) in the block
        self._next = 0  # index of the next sample
        self._k = 0.0  # rate error: mapped time advances (1 + k) / fs per sample
        self._c: float | None = None  # the anchor: offset at index 0 of the lower envelope
        self._last_out = -np.inf
        self._min_step = 0.25 / self.fs
        self.samples = 0
        self.delays: deque[float] = deque(maxlen=2000)  # each chunk's arrival above the envelope (s)

    # -- public ---------------------------------------------------------------------------------
    @property
    def drift_ppm(self) -> float:
        """The sample clock against the host's, in ppm (positive: more samples per host second than nominal,
        the sign `StreamHealth.clock_drift_ppm` uses)."""
        return -self._k * 1e6

    @property
    def measured_rate_hz(self) -> float:
        """The source's sample rate on the host clock (the nominal rate corrected for the drift)."""
        return self.fs / (1.0 + self._k)

    def map(self, n: int, received_at: float, events: Iterable[Any] = ()) -> np.ndarray:
        """Monotonic times (n,) of a chunk's `n` samples, which reached the host by `received_at`."""
        index = self._next + np.arange(n, dtype=np.float64)
        for event in events:
            if getattr(event, "kind", "") in INDEX_EVENTS and int(getattr(event, "samples", 0) or 0) > 0:
                skip = int(event.samples)
                at = min(max(int(getattr(event, "index", 0) or 0), 0), n)
                index[at:] += skip
                if at >= n:
                    self._next += skip
        if n == 0:
            return np.empty(0)
        self._next = int(index[-1]) + 1
        self.samples += n
        sample_t = float(index[-1]) / self.fs
        self._observe(sample_t, float(received_at) - sample_t)
        assert self._c is not None
        times = self._c + (1.0 + self._k) * index / self.fs
        self.delays.append(float(received_at) - float(times[-1]))
        floor = self._last_out + self._min_step * np.arange(1, n + 1)
        times = np.maximum(times, floor)
        self._last_out = float(times[-1])
        return times

    def summary(self) -> dict[str, Any]:
        """What the file's attrs say about the EMG timing."""
        delays = np.asarray(self.delays) * 1000.0
        return {
            "nominal_rate_hz": self.fs,
            "measured_rate_hz": self.measured_rate_hz,
            "drift_ppm": self.drift_ppm,
            "samples": self.samples,
            "arrival_above_envelope_ms_median": float(np.median(delays)) if len(delays) else None,
            "arrival_above_envelope_ms_p99": float(np.percentile(delays, 99)) if len(delays) else None,
        }

    # -- internals --------------------------------------------------------------------------------
    def _observe(self, sample_t: float, offset: float) -> None:
        key = int(sample_t // self.block_s)
        if self._block_key is None or key == self._block_key:
            if offset < self._block_point[1]:
                self._block_point = (sample_t, offset)
            self._block_key = key
        else:  # a new block: the finished one joins the envelope, the rate is refitted
            self._blocks.append(self._block_point)
            self._block_key, self._block_point = key, (sample_t, offset)
            self._fit_rate()
        self._c = min(o - self._k * t for t, o in (*self._blocks, self._block_point))

    def _fit_rate(self) -> None:
        if len(self._blocks) < 3:
            return
        t = np.array([b[0] for b in self._blocks])
        o = np.array([b[1] for b in self._blocks])
        if t[-1] - t[0] < self.min_drift_span_s:
            return
        keep = np.ones(len(t), dtype=bool)
        for _ in range(2):  # blocks that only saw late chunks (a pause) lie above the line: refit without them
            slope, intercept = np.polyfit(t[keep], o[keep], 1)
            residual = o - (intercept + slope * t)
            keep = residual <= np.median(residual[keep]) + 1e-3
            if keep.sum() < 3:
                return
        self._k = float(np.polyfit(t[keep], o[keep], 1)[0])
