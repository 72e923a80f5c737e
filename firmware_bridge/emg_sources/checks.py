"""The checks every source runs on what arrives: package counters, timestamps, backlog and clock drift.

Counters. Each sample carries the device's package number, which steps by one per sample and wraps
(the SDK's synthetic board and our playback files wrap at 256; a counter seen above the modulus grows it
to 2**16, then 2**32, so a wider device counter still works). Between the last accepted sample and the
next one, the step `s` (taken modulo the counter width, as a signed value) says:

- ``s == 1``: in order.
- ``s > 1``: `s - 1` samples never arrived → a *gap* (counted in `missing_samples`).
- ``s <= 0``: the counter went back. If the sample is identical to the one accepted earlier with that
  counter, it is a re-sent packet → a *duplicate*, dropped from the chunk. If not, the counter restarted
  (device reset, or a device that numbers packets rather than samples): the sample is kept and the hole
  is measured on the timestamps instead.

An 8-bit counter cannot tell a 300-ms stall from a re-sent packet, so when the timestamps say more than
half a counter period went by, the step is unwrapped with the timestamps (a stall of k sample periods
that skipped k counter values is a gap of k, not a duplicate). Where a source has no counter (replay),
one is derived from the timestamps (a jump of k sample periods = k - 1 missing samples).

Stalls. A jump of more than `stall_ms` between consecutive sample timestamps is a *stall* (on the SDK
boards the timestamps are host arrival times, so this is "no data for that long"). The source's read loop
also counts a stall the moment the host has waited that long for data (`EmgSource.stalled`); the event
then rides on the first chunk after it and is not counted twice.

Backlog. A real armband hands over a ~5-s backlog within the first reads. During the first
`backlog_window_s` after the first data, anything beyond `backlog_keep_s` of samples plus what real time
allows since that first data is stale: it is discarded (oldest first), counted and reported, so
inference never starts on it.

Clock drift. The offset `timestamp - sequence / rate` (sequence counts missing samples too) drifts at the
rate the sample clock runs against the timestamp clock; arrival delays only ever add to it, so the
per-second minimum tracks the clocks. A least-squares slope over those minima (from 20 s of data on)
gives `clock_drift_ppm` (positive: the device delivers more samples per second than it should).
"""

from __future__ import annotations

from collections import deque

import numpy as np

from firmware_bridge.emg_sources.base import StreamEvent, StreamHealth

HISTORY = 256  # accepted samples remembered to recognise a re-sent packet
NUDGE_S = 1e-6  # how far a repeated timestamp is moved forward
SMALL = 32  # arrivals up to this size are checked with Python scalars (cheaper than numpy calls)
_WIDER = (1 << 16, 1 << 32)


def _duplicate(index: int, samples: int) -> StreamEvent:
    return StreamEvent("duplicate", index, samples, f"dropped {samples} repeated samples (re-sent packet)")


class DriftEstimator:
    """Sample clock vs timestamp clock, from the lower envelope of the per-sample offset."""

    def __init__(self, rate_hz: float, *, block_s: float = 1.0, min_span_s: float = 20.0, max_blocks: int = 600):
        self.rate_hz = rate_hz
        self.block_s = block_s
        self.min_span_s = min_span_s
        self._blocks: deque[tuple[float, float]] = deque(maxlen=max_blocks)
        self._origin: tuple[float, int] | None = None
        self._block: int | None = None
        self._block_min = np.inf

    def add(self, stamps: np.ndarray, seq: np.ndarray) -> tuple[float, float] | None:
        """Feed accepted samples; returns (ppm, span_s) when a new estimate is available."""
        if len(stamps) == 0:
            return None
        if self._origin is None:
            self._origin = (float(stamps[0]), int(seq[0]))
        t = stamps - self._origin[0]
        offsets = t - (seq - self._origin[1]) / self.rate_hz
        if self._block is not None and int(t[-1] // self.block_s) == self._block:  # still in the current block
            self._block_min = min(self._block_min, float(offsets.min()))
            return None
        blocks = np.floor(t / self.block_s).astype(np.int64)
        updated = False
        for block in np.unique(blocks):
            low = float(offsets[blocks == block].min())
            if self._block is None or block > self._block:
                if self._block is not None and np.isfinite(self._block_min):
                    self._blocks.append(((self._block + 0.5) * self.block_s, self._block_min))
                    updated = True
                self._block, self._block_min = int(block), low
            elif block == self._block:
                self._block_min = min(self._block_min, low)
        if not updated or len(self._blocks) < 3:
            return None
        centres = np.array([b[0] for b in self._blocks])
        lows = np.array([b[1] for b in self._blocks])
        span = float(centres[-1] - centres[0])
        if span < self.min_span_s:
            return None
        slope = float(np.polyfit(centres - centres.mean(), lows, 1)[0])
        return -slope * 1e6, span


class StreamChecker:
    """Counter/timestamp checks, duplicate removal, backlog discard and drift for one stream."""

    def __init__(
        self,
        *,
        rate_hz: float,
        channels: int,
        counter_modulus: int | None,
        grow_modulus: bool = True,
        stall_ms: float = 50.0,
        backlog_keep_s: float | None = 0.1,
        backlog_slack_s: float = 0.1,
        backlog_window_s: float = 1.0,
    ) -> None:
        self.rate_hz = float(rate_hz)
        self.channels = channels
        self.modulus = counter_modulus
        self.grow_modulus = grow_modulus
        self.stall_ms = float(stall_ms)
        self.backlog_keep_s = backlog_keep_s
        self.backlog_slack_s = backlog_slack_s
        self.backlog_window_s = backlog_window_s
        self.health = StreamHealth()
        self._drift = DriftEstimator(self.rate_hz)
        self._last_c: int | None = None
        self._last_t: float | None = None
        self._seq = 0
        self._hist_c = np.zeros(HISTORY, dtype=np.int64)  # ring buffer of the last accepted samples
        self._hist_v = np.zeros((HISTORY, channels))
        self._hist_at = 0
        self._hist_len = 0
        self._dup_run_open = False
        self._derived = False
        self._last_out_t: float | None = None
        self._first_data_at: float | None = None
        self._kept_in_window = 0

    @property
    def stall_s(self) -> float:
        return self.stall_ms / 1000.0

    # -- public ---------------------------------------------------------------------------------
    def process(
        self,
        samples: np.ndarray,
        stamps: np.ndarray,
        counters: np.ndarray | None,
        *,
        now: float,
        stall_already_counted: bool = False,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[StreamEvent]]:
        """Check one arrival; returns (samples, timestamps, counters, events) to deliver.

        Delivered timestamps always increase strictly: a device that stamps several samples of a packet
        with one arrival time gets the repeats nudged forward by 1 µs each (consumers such as the run-file
        writer rely on it; the checks themselves use the timestamps as they came).
        """
        samples, stamps, counts, events = self._process(samples, stamps, counters, now, stall_already_counted)
        return samples, self._increasing(stamps), counts, events

    def _increasing(self, stamps: np.ndarray) -> np.ndarray:
        if len(stamps) == 0:
            return stamps
        previous = self._last_out_t
        if previous is not None and stamps[0] > previous and (len(stamps) < 2 or np.all(np.diff(stamps) > 0)):
            self._last_out_t = float(stamps[-1])
            return stamps
        out = stamps.tolist()
        for i, t in enumerate(out):
            if previous is not None and t <= previous:
                out[i] = t = previous + NUDGE_S
            previous = t
        self._last_out_t = previous
        return np.asarray(out, dtype=np.float64)

    def _process(
        self,
        samples: np.ndarray,
        stamps: np.ndarray,
        counters: np.ndarray | None,
        now: float,
        stall_already_counted: bool,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[StreamEvent]]:
        samples = np.asarray(samples, dtype=np.float64).reshape(-1, self.channels)
        stamps = np.asarray(stamps, dtype=np.float64)
        self._derived = counters is None
        counts = self._derive(stamps) if self._derived else np.rint(np.asarray(counters)).astype(np.int64)
        events: list[StreamEvent] = []
        in_window = self._in_backlog_window(now)
        drop = self._backlog_excess(len(stamps), now) if in_window else 0
        if drop:
            self._remember(counts[:drop], samples[:drop], stamps[drop - 1], int(counts[drop - 1]))
            self._seq += drop
            self.health.backlog_discarded_samples += drop
            seconds = drop / self.rate_hz
            events.append(StreamEvent("backlog", 0, drop, f"discarded {drop} stale start-up samples ({seconds:.2f} s)"))
            samples, stamps, counts = samples[drop:], stamps[drop:], counts[drop:]
        if len(stamps) == 0:
            return samples, stamps, counts, events
        longest = self._in_order(stamps, counts)
        if longest is not None:
            seq = self._seq + np.arange(1, len(stamps) + 1)
            self.health.longest_gap_ms = max(self.health.longest_gap_ms, longest * 1000.0)
            self._dup_run_open = False
            self._accept_state(counts, samples, stamps, seq)
            if not in_window:
                self._track_drift(stamps, seq)
            return samples, stamps, counts, events
        keep, seq, more = self._check_each(samples, stamps, counts, stall_already_counted)
        events.extend(more)
        samples, stamps, counts = samples[keep], stamps[keep], counts[keep]
        if len(stamps):
            self._accept_state(counts, samples, stamps, seq)
            if not in_window:
                self._track_drift(stamps, seq)
        return samples, stamps, counts, events

    # -- backlog --------------------------------------------------------------------------------
    def _in_backlog_window(self, now: float) -> bool:
        if self.backlog_keep_s is None:
            return False
        if self._first_data_at is None:
            self._first_data_at = now
        return now - self._first_data_at <= self.backlog_window_s

    def _backlog_excess(self, n: int, now: float) -> int:
        assert self._first_data_at is not None and self.backlog_keep_s is not None
        allowed = self.backlog_keep_s * self.rate_hz + self.rate_hz * (now - self._first_data_at)
        if self._kept_in_window + n <= allowed + self.backlog_slack_s * self.rate_hz:
            self._kept_in_window += n
            return 0
        target = max(0, int(allowed) - self._kept_in_window)
        drop = n - min(n, target)
        self._kept_in_window += n - drop
        return drop

    # -- counters -------------------------------------------------------------------------------
    def _derive(self, stamps: np.ndarray) -> np.ndarray:
        """Counters from timestamps for sources without one: a jump of k periods skips k - 1 values."""
        if len(stamps) == 0:
            return np.empty(0, dtype=np.int64)
        if len(stamps) <= SMALL:
            out, c = [], self._last_c
            previous = stamps[0] if self._last_t is None else self._last_t
            for t in stamps.tolist():
                c = 0 if c is None else c + max(1, round((t - previous) * self.rate_hz))
                out.append(c)
                previous = t
            return np.asarray(out, dtype=np.int64)
        previous = stamps[0] if self._last_t is None else self._last_t
        dt = np.diff(np.concatenate([[previous], stamps]))
        steps = np.maximum(1, np.rint(dt * self.rate_hz)).astype(np.int64)
        if self._last_c is None:
            steps[0] = 0
        return (0 if self._last_c is None else self._last_c) + np.cumsum(steps)

    def _step(self, c: int) -> int:
        assert self._last_c is not None
        if self.modulus is None:
            return c - self._last_c
        step = (c - self._last_c) % self.modulus
        return step - self.modulus if step > self.modulus // 2 else step

    def _in_order(self, stamps: np.ndarray, counts: np.ndarray) -> float | None:
        """The longest interval (s) if every sample follows the previous one in order, else None."""
        modulus, limit = self.modulus, self.stall_s
        if len(counts) <= SMALL:  # the usual arrival (a few samples): plain Python is cheapest
            cs, ts = counts.tolist(), stamps.tolist()
            previous_c = cs[0] - 1 if self._last_c is None else self._last_c
            previous_t = ts[0] if self._last_t is None else self._last_t
            longest = 0.0
            for c, t in zip(cs, ts, strict=True):
                step = c - previous_c if modulus is None else (c - previous_c) % modulus
                dt = t - previous_t
                if step != 1 or dt > limit or (modulus is not None and c >= modulus):
                    return None
                longest = max(longest, dt)
                previous_c, previous_t = c, t
            return longest
        if modulus is not None and int(counts.max()) >= modulus:
            return None
        first_c = counts[0] - 1 if self._last_c is None else self._last_c
        first_t = stamps[0] if self._last_t is None else self._last_t
        steps = np.diff(counts, prepend=first_c)
        if modulus is not None:
            steps %= modulus
        dt = np.diff(stamps, prepend=first_t)
        if np.any(steps != 1) or float(dt.max()) > limit:
            return None
        return float(dt.max())

    def _check_each(
        self, samples: np.ndarray, stamps: np.ndarray, counts: np.ndarray, stall_already_counted: bool
    ) -> tuple[np.ndarray, np.ndarray, list[StreamEvent]]:
        """The slow path, sample by sample: something in this arrival is out of order."""
        health = self.health
        keep = np.zeros(len(stamps), dtype=bool)
        seq_out: list[int] = []
        events: list[StreamEvent] = []
        ring = (self._hist_at - self._hist_len + np.arange(self._hist_len)) % HISTORY
        recent: deque[tuple[int, np.ndarray]] = deque(
            zip(self._hist_c[ring].tolist(), self._hist_v[ring], strict=True), HISTORY
        )
        kept = 0
        dup_run = 0
        continuing = self._dup_run_open
        for i in range(len(stamps)):
            c, t = int(counts[i]), float(stamps[i])
            if self._last_c is None or self._last_t is None:
                self._accept_one(c, t, samples[i], recent)
                keep[i] = True
                seq_out.append(self._seq)
                kept += 1
                continue
            if self.modulus is not None and self.grow_modulus and c >= self.modulus:
                self.modulus = next((w for w in _WIDER if c < w), None)
            dt = t - self._last_t
            periods = dt * self.rate_hz
            step = self._step(c)
            if step != 1 and self.modulus is not None and periods > self.modulus / 2:
                step += self.modulus * round((periods - step) / self.modulus)
            if step <= 0:
                earlier = next((v for rc, v in reversed(recent) if rc == c), None)
                if earlier is not None and np.array_equal(earlier, samples[i]):
                    if dup_run == 0 and not continuing:
                        health.duplicate_packets += 1
                    dup_run += 1
                    health.duplicate_samples += 1
                    continue
                missing = max(0, round(periods) - 1)
                health.gaps += 1
                health.missing_samples += missing
                events.append(
                    StreamEvent(
                        "gap",
                        kept,
                        missing,
                        f"package counter went back from {self._last_c} to {c} with new data: "
                        f"counting restarts ({missing} samples missing by the timestamps)",
                    )
                )
                self._seq += missing + 1
            elif step > 1:
                health.gaps += 1
                health.missing_samples += step - 1
                what = "timestamps skip" if self._derived else "package counter skipped"
                events.append(StreamEvent("gap", kept, step - 1, f"{what} {step - 1} samples ({self._last_c} → {c})"))
                self._seq += step
            else:
                self._seq += 1
            if dup_run:
                events.insert(len(events) - (1 if step != 1 else 0), _duplicate(kept, dup_run))
                dup_run = 0
            continuing = False
            if dt * 1000.0 > self.stall_ms:
                if not (stall_already_counted and kept == 0):
                    health.stalls += 1
                events.append(
                    StreamEvent("stall", kept, max(0, round(periods) - 1), f"no data for {dt * 1000.0:.0f} ms")
                )
            stall_already_counted = False
            health.longest_gap_ms = max(health.longest_gap_ms, dt * 1000.0)
            self._accept_one(c, t, samples[i], recent)
            keep[i] = True
            seq_out.append(self._seq)
            kept += 1
        if dup_run:
            events.append(_duplicate(kept, dup_run))
        self._dup_run_open = dup_run > 0 or (continuing and kept == 0)
        return keep, np.asarray(seq_out, dtype=np.int64), events

    def _accept_one(self, c: int, t: float, values: np.ndarray, recent: deque[tuple[int, np.ndarray]]) -> None:
        self._last_c, self._last_t = c, t
        recent.append((c, values))

    # -- state ----------------------------------------------------------------------------------
    def _accept_state(self, counts: np.ndarray, samples: np.ndarray, stamps: np.ndarray, seq: np.ndarray) -> None:
        self._remember(counts, samples, stamps[-1], int(counts[-1]))
        self._seq = int(seq[-1])

    def _remember(self, counts: np.ndarray, samples: np.ndarray, last_t: float, last_c: int) -> None:
        self._last_t, self._last_c = float(last_t), last_c
        if self._derived:
            return  # counters made from timestamps never repeat: nothing to compare against
        counts, samples = counts[-HISTORY:], samples[-HISTORY:]
        n = len(counts)
        if n == 1:
            self._hist_c[self._hist_at], self._hist_v[self._hist_at] = counts[0], samples[0]
        else:
            slots = (self._hist_at + np.arange(n)) % HISTORY
            self._hist_c[slots], self._hist_v[slots] = counts, samples
        self._hist_at = (self._hist_at + n) % HISTORY
        self._hist_len = min(HISTORY, self._hist_len + n)

    def _track_drift(self, stamps: np.ndarray, seq: np.ndarray) -> None:
        estimate = self._drift.add(stamps, seq)
        if estimate is not None:
            self.health.clock_drift_ppm, self.health.clock_drift_window_s = estimate
