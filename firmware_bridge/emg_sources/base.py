"""The one interface every EMG source implements, and the data it hands out.

A source is opened by `open_source(spec)` (see `factory.py`), started once, then read in chunks::

    source.start()
    while not source.finished:
        chunk = source.read(timeout=0.1)   # EmgChunk | None
    source.close()

`read` returns everything that arrived since the previous read (never one sample at a time), already
checked: duplicated packets are removed, the start-up backlog is discarded, and every gap, duplicate,
stall and backlog is reported as a `StreamEvent` (with its index in the chunk) and counted in
`source.health`. Subclasses only implement `_start`, `_poll` (return what arrived, without waiting) and
`_close`; the waiting, the checks and the bookkeeping live here once.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from firmware_bridge.errors import UserError

if TYPE_CHECKING:
    from firmware_bridge.emg_sources.checks import StreamChecker

EventKind = Literal["gap", "duplicate", "stall", "backlog"]
ARMBAND_RATE_HZ = 500.0
ARMBAND_CHANNELS = 8
POLL_STEP_S = 0.002  # how long read() sleeps between polls while waiting (no busy loop)


class SourceError(UserError):
    """An EMG source cannot be opened or used: the message names the source and what is wrong."""


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """Something the stream did that a consumer must know about, at `index` within its chunk.

    - ``gap``: `samples` samples never arrived (skipped package counters, or a timestamp jump where the
      source has no counter); `index` is the first sample after the hole.
    - ``duplicate``: `samples` repeated samples (a re-sent packet) were dropped just before `index`.
    - ``stall``: no data for `detail` ms (longer than the source's `stall_ms`); `index` is the first
      sample after the silence, `samples` the silent sample periods.
    - ``backlog``: `samples` stale samples delivered at start-up were discarded before `index` (0).
    """

    kind: EventKind
    index: int
    samples: int
    detail: str


@dataclass(slots=True)
class EmgChunk:
    """Samples that arrived since the previous read, in µV, oldest first.

    `samples` (n,C) float64 µV; `timestamps` (n,) float64 s on the source's clock; `counters` (n,) int
    package numbers as the device sent them, or None where the source has none (replay);
    `received_at` is `time.monotonic()` when the read returned. A chunk can hold 0 samples when
    everything that arrived was dropped (duplicates, backlog): its `events` then say why.
    """

    samples: np.ndarray
    timestamps: np.ndarray
    counters: np.ndarray | None
    received_at: float
    events: list[StreamEvent] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.timestamps)


@dataclass(slots=True)
class StreamHealth:
    """Running counters of what the stream did since `start()`; `as_dict()` snapshots them."""

    samples: int = 0  # delivered samples
    chunks: int = 0  # delivered chunks (reads that returned a chunk)
    gaps: int = 0  # holes in the counter / timestamps
    missing_samples: int = 0  # samples those holes lost
    duplicate_packets: int = 0  # runs of repeated samples
    duplicate_samples: int = 0  # samples dropped as repeats
    stalls: int = 0  # times no data came for longer than stall_ms
    backlog_discarded_samples: int = 0  # stale start-up samples thrown away
    clock_drift_ppm: float = 0.0  # sample clock vs the timestamp (host) clock; 0 until measurable
    clock_drift_window_s: float = 0.0  # how long a span the drift estimate covers (0: none yet)
    longest_gap_ms: float = 0.0  # longest interval between consecutive delivered samples

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class EmgSource(ABC):
    """Base class: read loop, checks and bookkeeping. Subclasses implement `_start`, `_poll`, `_close`."""

    name: str = "source"
    sampling_rate_hz: float = ARMBAND_RATE_HZ
    channels: int = ARMBAND_CHANNELS
    units: str = "uV"
    plumbing_only: bool = False

    def __init__(self, checker: StreamChecker) -> None:
        self._checker = checker
        self._started = False
        self._closed = False
        self._last_data_at: float | None = None
        self._live_stall_s = checker.stall_s  # host-time silence that counts as a stall while waiting
        self._stall_counted = False

    # -- what subclasses provide ----------------------------------------------------------------
    @abstractmethod
    def _start(self) -> None:
        """Open and start the device or file stream."""

    @abstractmethod
    def _poll(self, now: float) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
        """What arrived since the last poll, without waiting: (samples (n,C) µV, timestamps, counters)."""

    @abstractmethod
    def _close(self) -> None:
        """Release the device or file (called once)."""

    def _next_wait(self, now: float) -> float:
        """How long nothing can arrive (paced replay knows; live sources say one poll step)."""
        return POLL_STEP_S

    @property
    def _exhausted(self) -> bool:
        """True when the underlying file has been read to its end (live sources never are)."""
        return False

    # -- the interface ----------------------------------------------------------------------------
    @property
    def health(self) -> StreamHealth:
        return self._checker.health

    @property
    def finished(self) -> bool:
        """The end of a playback/replay file was reached and everything was delivered."""
        return self._exhausted

    @property
    def stalled(self) -> bool:
        """No data has arrived for longer than the stall threshold (while streaming, before the end)."""
        if not self._started or self._closed or self._last_data_at is None or self.finished:
            return False
        return time.monotonic() - self._last_data_at > self._live_stall_s

    def start(self) -> None:
        """Begin streaming. Raises SourceError if the device cannot be reached."""
        if self._closed:
            raise RuntimeError(f"{self.name}: start() after close()")
        if self._started:
            return
        self._start()
        self._started = True
        self._last_data_at = time.monotonic()

    def read(self, timeout: float = 0.1) -> EmgChunk | None:
        """All samples that arrived since the last read; waits at most `timeout` s for some, else None."""
        if not self._started or self._closed:
            raise RuntimeError(f"{self.name}: read() needs start() first and no close()")
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            now = time.monotonic()
            batch = self._poll(now)
            if batch is not None and len(batch[1]):
                return self._deliver(batch, now)
            if self.finished:
                return None
            self._watch_stall(now)
            if now >= deadline:
                return None
            time.sleep(max(0.0, min(self._next_wait(now), deadline - now, POLL_STEP_S * 5)))

    def close(self) -> None:
        """Stop streaming and release the device; safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        self._close()

    def __enter__(self) -> EmgSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.channels}ch@{self.sampling_rate_hz:g}Hz>"

    # -- internals ----------------------------------------------------------------------------------
    def _watch_stall(self, now: float) -> None:
        if self._last_data_at is None or self._stall_counted:
            return
        if now - self._last_data_at > self._live_stall_s:
            self._stall_counted = True  # counted once, at its onset; the event rides on the next chunk
            self._checker.health.stalls += 1

    def _deliver(self, batch: tuple[np.ndarray, np.ndarray, np.ndarray | None], now: float) -> EmgChunk:
        samples, stamps, counters = batch
        already_counted = self._stall_counted
        silence = now - (self._last_data_at if self._last_data_at is not None else now)
        self._stall_counted = False
        self._last_data_at = now
        kept, kept_stamps, kept_counters, events = self._checker.process(
            samples, stamps, counters, now=now, stall_already_counted=already_counted
        )
        if already_counted and not any(e.kind == "stall" and e.index == 0 for e in events):
            periods = max(0, round(silence * self.sampling_rate_hz) - 1)
            events.insert(0, StreamEvent("stall", 0, periods, f"no data for {silence * 1000:.0f} ms (host clock)"))
        self._checker.health.samples += len(kept_stamps)
        self._checker.health.chunks += 1
        return EmgChunk(
            samples=kept,
            timestamps=kept_stamps,
            counters=kept_counters if self._deliver_counters else None,
            received_at=now,
            events=events,
        )

    _deliver_counters = True  # replay derives its counters from timestamps and does not hand them out
