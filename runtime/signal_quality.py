"""Signal quality on the raw EMG stream: is the signal sound enough for the gate to open?

Stage 2 of the runtime hop (acquire → **quality** → infer → gate → actuate). A stateful, per-channel
checker fed with the raw stream (µV as the armband reports it, DC offset and all) chunk by chunk as it
arrives. numpy only, and cheap: the per-sample checks touch only the new rows; the windowed checks run
on a schedule (every `eval_every_s`; the spectrum every `spectrum_every_s`) over a small ring buffer.

Detectors (all thresholds in `QualityConfig`):

- **flat line** (`FLAT`, per channel): the channel repeats the exact same value for `flat_repeat_samples`
  samples while the stream moves (trailing whole-row repeats — stale samples, flagged DUPLICATE — do not
  count: a stale run of 8–12 rows is not eight electrodes going flat), or its sample-to-sample RMS over
  `flat_window_s` is below `flat_diff_rms_uv` (a dead channel with a little ADC noise). All-zero rows flag
  every channel; they are repaired (the previous row held) before the windowed detectors see them, so one
  zero row is not also a 300-mV "lift-off".
- **saturation** (`SATURATED`, per channel): the value sits at or beyond `rail_fraction × rail_uv` and has
  not changed for `saturation_repeat_samples` samples (a clipped ADC holds its code). The default rail is
  the MindRove's ±2²³ counts × 0.045 µV ≈ ±377 mV. Requiring the held value keeps a channel whose offset
  merely sits high from reading as saturated (the synthetic world's offsets reach 400 mV today, its rail
  is 600 mV: both are caught by the default).
- **electrode lift-off** (`LIFT_OFF`, per channel): the low-frequency level (20-ms block means, which
  cancel 50 Hz mains exactly) moves by more than `lift_on_uv` within `lift_window_s`, or the broadband
  residual around it exceeds `lift_broadband_uv` RMS. The default (4 mV in 100 ms, i.e. 40 mV/s) lets
  drift of 40 mV within 2 s pass and flags 70 mV or more within 2 s (issue 11's worst real file drifts
  104 mV): as fast a level change as the world's slowest lift-off, and indistinguishable from one by
  its level alone. Once on, the flag stays while the level still spans `lift_release_uv` over
  `lift_release_window_s`, so a slow wander does not open the gate at each turning point.
- **mains dominance** (`MAINS`, per channel): mains power (fundamental + harmonic bins of a Hann-windowed
  FFT over `mains_window_s`, averaged over `mains_average_s`) as a share of itself plus the channel's
  *active* EMG power — the highest averaged non-mains 20–250 Hz power seen lately (decaying with
  `mains_reference_decay_s`, starting from a prior of `mains_reference_prior_uv` RMS, typical forearm
  sEMG). Not the share within the current window: at rest EMG is tiny and any 0.5-s window is mostly
  mains on a perfectly good electrode (measured on the clean synthetic world: over 70 % for seconds at
  a time on several channels). What ruins a channel is mains stronger than its EMG in use (issue 11: up
  to 97 % of the power on real files). The default flags above 70 % (mains RMS over 1.5 × the EMG RMS)
  and releases below 60 %. While a channel is (or within the window was) flat, saturated or lifted off,
  its averages are frozen: a lift-off picks up hundreds of µV of mains that say nothing about the
  electrode in contact. 50 or 60 Hz is detected from the data when `mains_hz` is None.
- **stream** (`STALL`, `GAP`, `DUPLICATE`; set on every channel): the source's events; a timestamp step
  above `gap_s` (samples missing); no sample for `stall_after_s` when the caller passes `now`; whole rows
  equal to the previous row (stale samples) or to the row one packet (4 samples) earlier (a duplicated
  packet). Exact equality across all channels does not happen in real noisy data.
- **warm-up** (`WARMUP`, every channel): after start and `reset()` until `warmup_s` of samples arrived.
  The mains check needs `mains_settle_s` of samples before it may flag; its average survives `reset()`.

`rms_uv` (for the dashboard) is the RMS over the last `rms_window_s` of the deviation from the 20-ms block
means — the signal above ≈ 25 Hz, EMG plus mains.

Every flag is held for at least `hold_s` (lift-off: `lift_hold_s`) after its condition last held, and the
threshold detectors have separate on/off levels: flags do not chatter.

Channels are numbered from 0, as in the flags array, the session files and `mode2 inspect` (ch0…ch7).
Arrays in a report are never modified afterwards (the checker replaces, never mutates, them).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from firmware_bridge.emg_rows import hold_over_zero_rows
from firmware_bridge.emg_sources.units import ADC_FULL_SCALE_UV

MINDROVE_RAIL_UV = ADC_FULL_SCALE_UV  # ±8,388,608 counts × 0.045 µV ≈ ±377.5 mV
PACKET_SAMPLES = 4  # MindRove WiFi: 4 samples per packet at 500 Hz


class QualityFlag(enum.IntFlag):
    """Per-channel bitmask. STALL, GAP, DUPLICATE and WARMUP concern the stream and are set on every channel."""

    NONE = 0
    FLAT = 1
    SATURATED = 2
    LIFT_OFF = 4
    MAINS = 8
    STALL = 16
    GAP = 32
    DUPLICATE = 64
    WARMUP = 128


STREAM_FLAGS = QualityFlag.STALL | QualityFlag.GAP | QualityFlag.DUPLICATE | QualityFlag.WARMUP


def quality_bits() -> dict[str, int]:
    """Each flag's name and bit, as the telemetry hello states the meaning of `quality_flags`."""
    return {flag.name.lower(): int(flag) for flag in QualityFlag if flag.name and int(flag)}


# The order in which a closed gate names its reason: the most fundamental problem first.
FLAG_PRIORITY = (
    QualityFlag.WARMUP,
    QualityFlag.STALL,
    QualityFlag.GAP,
    QualityFlag.SATURATED,
    QualityFlag.LIFT_OFF,
    QualityFlag.FLAT,
    QualityFlag.DUPLICATE,
    QualityFlag.MAINS,
)
_HELD = (  # flags kept as "held until sample k" rows
    QualityFlag.FLAT,
    QualityFlag.SATURATED,
    QualityFlag.LIFT_OFF,
    QualityFlag.MAINS,
    QualityFlag.STALL,
    QualityFlag.GAP,
    QualityFlag.DUPLICATE,
)
_ROW = {flag: i for i, flag in enumerate(_HELD)}
_HARDWARE_ROWS = [_ROW[QualityFlag.FLAT], _ROW[QualityFlag.SATURATED], _ROW[QualityFlag.LIFT_OFF]]
_WEIGHTS = np.array([int(flag) for flag in _HELD], dtype=np.int64)
_EVENT_FLAGS = {"gap": QualityFlag.GAP, "duplicate": QualityFlag.DUPLICATE, "stall": QualityFlag.STALL}


# the flag that must catch each kind of electrode/stream fault (the synthetic world labels its faults by
# these names: `truth/fault_labels`); used by the detection benchmark and the tests
FAULT_FLAGS = {
    "lift_off": QualityFlag.LIFT_OFF,
    "saturation": QualityFlag.SATURATED,
    "flat_line": QualityFlag.FLAT,
    "duplicate": QualityFlag.DUPLICATE,
    "stall": QualityFlag.STALL | QualityFlag.GAP,
}


@dataclass(frozen=True)
class QualityConfig:
    """Thresholds and windows. Tuned on synthetic seed 1 (benchmarks/measure_signal_quality.py)."""

    rail_uv: float = MINDROVE_RAIL_UV
    rail_fraction: float = 0.98
    saturation_repeat_samples: int = 4
    flat_repeat_samples: int = 8
    flat_window_s: float = 0.1
    flat_diff_rms_uv: float = 0.2
    lift_window_s: float = 0.1
    lift_on_uv: float = 4000.0
    lift_release_window_s: float = 0.5
    lift_release_uv: float = 2500.0
    lift_broadband_uv: float = 3000.0
    lift_hold_s: float = 0.25
    mains_window_s: float = 0.5
    mains_average_s: float = 1.0
    mains_reference_decay_s: float = 60.0
    mains_reference_prior_uv: float = 40.0
    mains_settle_s: float = 1.0
    mains_on: float = 0.7  # mains RMS > 1.5 × the EMG RMS in use
    mains_off: float = 0.6
    mains_bin_halfwidth_hz: float = 3.0
    rms_window_s: float = 0.2
    band_hz: tuple[float, float] = (20.0, 250.0)
    hold_s: float = 0.1
    gap_s: float = 0.05
    stall_after_s: float = 0.04
    warmup_s: float = 0.15
    eval_every_s: float = 0.01
    spectrum_every_s: float = 0.05
    # Mains families (50.0, 60.0) that the model's input filter notches out (`mode2 run` reads them from the
    # model: firmware_bridge.emg_filter.notched_mains_families). MAINS on the detected family is then still
    # flagged and described (`QualityReport.advisory`: re-seat the electrode) but does not close the gate:
    # the model never sees that mains. Empty (the default): MAINS closes the gate like every other flag.
    mains_advisory_hz: tuple[float, ...] = ()


@dataclass(frozen=True)
class QualityReport:
    """One verdict per `update()`."""

    ok: bool
    """No flag on any channel: the signal is sound for the gate."""
    flags: np.ndarray
    """(channels,) int: a QualityFlag bitmask per channel (stream flags on every channel)."""
    reason: str
    """"" when ok, else the most fundamental problem in words, naming its channel or "stream"."""
    rms_uv: np.ndarray
    """(channels,) µV: RMS above ≈ 25 Hz over the last `rms_window_s` (dashboard levels)."""
    mains_share: np.ndarray
    """(channels,) mains power / (mains + EMG power in use), averaged; MAINS above `mains_on`."""
    mains_hz: float | None = None
    """The mains frequency in use (fixed or detected; None before the first spectrum)."""
    advisory: str = ""
    """A flag that is up but does not close the gate (MAINS the model's filter removes), in words; else ""."""


class _Detrend:
    """Least-squares removal of mean and slope over a fixed-length window, then a Hann window (two matmuls)."""

    def __init__(self, n: int) -> None:
        t = np.arange(n) - (n - 1) / 2.0
        self.basis = np.stack([np.ones(n), t], axis=1)  # (n, 2)
        self.solve = np.stack([np.full(n, 1.0 / n), t / float(t @ t)])  # (2, n): the two coefficients
        self.window = np.hanning(n)[:, None]

    def __call__(self, seg: np.ndarray) -> np.ndarray:
        out = seg - self.basis @ (self.solve @ seg)
        out *= self.window
        return out


class SignalQuality:
    """Stateful per-channel checker; call `update()` with every chunk of the raw stream, in order."""

    def __init__(
        self,
        sampling_rate_hz: float = 500.0,
        channels: int = 8,
        mains_hz: float | None = None,
        *,
        config: QualityConfig | None = None,
    ) -> None:
        if sampling_rate_hz <= 0 or channels < 1:
            raise ValueError(f"SignalQuality: need a positive rate and ≥ 1 channel, got {sampling_rate_hz}, {channels}")
        if mains_hz is not None and float(mains_hz) not in (50.0, 60.0):
            raise ValueError(f"SignalQuality: mains_hz must be 50, 60 or None (detect), got {mains_hz}")
        self.fs = float(sampling_rate_hz)
        self.channels = int(channels)
        self.config = c = config or QualityConfig()
        self._fixed_mains = float(mains_hz) if mains_hz is not None else None

        def samples(seconds: float) -> int:
            return max(1, round(seconds * self.fs))

        self._hold = samples(c.hold_s)
        self._lift_hold = samples(c.lift_hold_s)
        self._flat_n = samples(c.flat_window_s)
        self._block = samples(0.02)  # one 50-Hz period
        self._lift_blocks = max(2, samples(c.lift_window_s) // self._block)
        self._release_blocks = max(self._lift_blocks, samples(c.lift_release_window_s) // self._block)
        self._mains_n = samples(c.mains_window_s)
        self._rms_n = samples(c.rms_window_s)
        self._eval_every = samples(c.eval_every_s)
        self._spectrum_every = samples(c.spectrum_every_s)
        self._warmup = samples(c.warmup_s)
        self._settle = samples(c.mains_settle_s)
        self._alpha = min(1.0, c.spectrum_every_s / c.mains_average_s)
        self._sat_level = c.rail_fraction * c.rail_uv
        self._stall_s = c.stall_after_s
        self._no_flags = np.zeros(self.channels, dtype=np.int64)
        self._no_flags.setflags(write=False)
        self._no_run = np.zeros(self.channels, dtype=np.int64)
        self._no_run.setflags(write=False)
        self._rms_blocks = max(1, self._rms_n // self._block)
        self._ring_n = max(self._mains_n, self._release_blocks * self._block, self._rms_n, self._flat_n + 1) + 8
        self._mains_detrend = _Detrend(self._mains_n)
        freqs = np.fft.rfftfreq(self._mains_n, 1.0 / self.fs)
        band = (freqs >= c.band_hz[0]) & (freqs <= c.band_hz[1])
        # Parseval, one-sided, Hann-weighted: mean square = 2 Σ|X_k|² / (N Σw²). One matrix product turns the
        # power spectrum into [band, 50-Hz family, 60-Hz family] mean squares.
        scale = 2.0 / (self._mains_n * float(np.sum(self._mains_detrend.window**2)))
        rows = [band, self._harmonic_bins(freqs, 50.0) & band, self._harmonic_bins(freqs, 60.0) & band]
        self._select = scale * np.array(rows, dtype=np.float64)
        self._decay = float(np.exp(-c.spectrum_every_s / c.mains_reference_decay_s))
        # Long-run mains state survives reset(): mains pickup is a property of the electrodes, not of a gap.
        self._family_power = {50.0: 0.0, 60.0: 0.0}
        self._mains_ms = np.zeros(self.channels)  # averaged mean squares, µV²
        self._other_ms = np.zeros(self.channels)
        self._reference_ms = np.full(self.channels, c.mains_reference_prior_uv**2)
        self._spectra = 0
        self._seen = 0
        self.reset()

    # -- public API ----------------------------------------------------------------------------------
    @property
    def mains_hz(self) -> float | None:
        """The mains frequency in use: fixed, or detected from the data so far (None before any spectrum)."""
        if self._fixed_mains is not None:
            return self._fixed_mains
        p50, p60 = self._family_power[50.0], self._family_power[60.0]
        if p50 == p60 == 0.0:
            return None
        return 50.0 if p50 >= p60 else 60.0

    def reset(self) -> None:
        """Forget the recent signal (after a stall or gap): the detectors re-warm. The mains average stays."""
        c = self.channels
        self._ring = np.zeros((2 * self._ring_n, c))
        self._pos = 0  # next write index in [0, ring_n)
        self._count = 0  # samples since reset
        self._contiguous = 0  # samples since reset or the last gap: the windowed detectors look no further back
        self._total = 0  # samples since reset: the clock the holds run on (reset clears the holds too)
        self._hold_until = np.zeros((len(_HELD), c), dtype=np.int64)
        self._latest_hold = 0  # max of _hold_until: while it lies behind, no held flag is up
        self._evals = 0
        self._active = np.zeros((len(_HELD), c), dtype=bool)  # threshold detectors' hysteresis state
        self._run = np.zeros(c, dtype=np.int64)  # trailing count of samples equal to their predecessor
        self._row_run = 0  # trailing count of whole rows equal to their predecessor (stale samples)
        self._last_t: float | None = None
        self._stalled_for = 0.0
        self._gap_s = 0.0
        self._next_eval = self._warmup
        self._next_spectrum = self._mains_n
        self._rms = np.zeros(c)
        self._share = self._share_now() if self._spectra else np.zeros(c)
        self._diff_rms = np.full(c, np.inf)
        self._lift_span = np.zeros(c)
        self._broadband = np.zeros(c)
        # per channel, level span and broadband residual (µV) when lift-off's onset condition last held, and
        # whether it holds now: a flag held or not yet released is described by what raised it, not by a calm now
        self._lift_onset = np.zeros((c, 2))
        self._lift_now = np.zeros(c, dtype=bool)
        self._last_flags = np.zeros(c, dtype=np.int64)
        self._last_reason = ""
        self._advisory_channels: np.ndarray | None = None
        self._advisory = ""

    def update(
        self,
        samples: np.ndarray,
        timestamps: np.ndarray,
        stream_events: Iterable[Any] = (),
        *,
        now: float | None = None,
    ) -> QualityReport:
        """Feed the next chunk, (n, channels) µV with its (n,) timestamps in s; n may be 0.

        `stream_events` are the source's findings for this chunk (`.kind` in gap/duplicate/stall/backlog,
        `.index` the row they concern; a backlog is not a quality problem, but where start-up samples were
        discarded the stream jumps, so the windowed detectors start again there, as after a gap). `now`, on the
        timestamps' clock, lets the checker see a stall while no samples arrive; without it a stall shows
        only when samples resume (as a GAP if samples went missing).
        """
        x = np.asarray(samples, dtype=np.float64)
        n = x.shape[0]
        if x.ndim != 2 or x.shape[1] != self.channels:
            raise ValueError(f"SignalQuality.update: samples must be (n, {self.channels}), got {x.shape}")
        if len(timestamps) != n:
            raise ValueError(f"SignalQuality.update: {n} samples but {len(timestamps)} timestamps")
        for event in stream_events:
            kind = getattr(event, "kind", "")
            index = min(max(int(getattr(event, "index", 0) or 0), 0), n)
            flag = _EVENT_FLAGS.get(kind)
            if flag is not None:
                self._hold_row(flag, self._total + index + self._hold)
            if kind == "backlog" and getattr(event, "samples", 0):  # samples discarded: the stream jumps here
                self._contiguous = min(self._contiguous, -index)
        if n:
            self._check_time(timestamps)
            self._check_rows(x)
            if self._total >= self._next_eval:
                self._evaluate()
        if now is not None and self._last_t is not None:
            self._stalled_for = max(0.0, float(now) - self._last_t)
            if self._stalled_for > self.config.stall_after_s:
                self._hold_row(QualityFlag.STALL, self._total + self._hold)
        return self._report()

    # -- per-chunk checks ----------------------------------------------------------------------------
    def _hold_row(self, flag: QualityFlag, until: int, channels: np.ndarray | None = None) -> None:
        self._latest_hold = max(self._latest_hold, until)
        row = self._hold_until[_ROW[flag]]
        if channels is None:
            np.maximum(row, until, out=row)
        else:
            row[channels] = np.maximum(row[channels], until)

    def _check_time(self, ts: np.ndarray) -> None:
        first, last = float(ts[0]), float(ts[-1])
        previous = self._last_t if self._last_t is not None else first
        self._last_t, self._stalled_for = last, 0.0
        if last - previous <= self.config.gap_s:
            return  # no step inside can be larger
        steps = np.diff(np.asarray(ts, dtype=np.float64), prepend=previous)
        self._gap_s = float(steps.max())
        if self._gap_s > self.config.gap_s:
            self._hold_row(QualityFlag.GAP, self._total + len(ts) + self._hold)
            # the level on either side of a gap says nothing about the electrode (the drift went on while
            # samples were missing): the windowed detectors start again from the first row after it
            self._contiguous = min(self._contiguous, -int(np.flatnonzero(steps > self.config.gap_s)[-1]))

    def _check_rows(self, x: np.ndarray) -> None:
        n = len(x)
        until = self._total + n + self._hold
        if np.count_nonzero(x) != x.size:  # some exact zero: look for all-zero rows
            x, zero = self._repair_zero_rows(x)
            if zero.any():
                self._hold_row(QualityFlag.FLAT, until)
        history = min(self._count, PACKET_SAMPLES)
        if n + history <= self._ring_n:
            self._write(x)
            end = self._pos + self._ring_n
            ext = self._ring[end - n - history : end]
        else:  # a backlog longer than the ring: check it whole, keep its tail
            end = self._pos + self._ring_n
            ext = np.concatenate([self._ring[end - history : end], x])
            self._write(x)
        if not history:
            return
        cur, prev = ext[history:], ext[history - 1 : -1]
        eq = cur == prev
        if not np.count_nonzero(eq):  # the usual case: every value changed
            self._run, self._row_run = self._no_run, 0
            if history >= PACKET_SAMPLES and np.count_nonzero(cur[:, 0] == ext[:n, 0]):
                back = ext[: len(ext) - PACKET_SAMPLES]
                if (cur == back).all(axis=1).any():
                    self._hold_row(QualityFlag.DUPLICATE, until)
            return
        ne = ~eq
        self._run = np.where(ne.any(axis=0), ne[::-1].argmax(axis=0), self._run + n)
        changed = ne.any(axis=1)  # rows in which some channel moved
        self._row_run = int(changed[::-1].argmax()) if changed.any() else self._row_run + n
        longest = int(self._run.max())
        c = self.config
        if longest >= c.saturation_repeat_samples - 1:
            saturated = (self._run >= c.saturation_repeat_samples - 1) & (np.abs(cur[-1]) >= self._sat_level)
            if saturated.any():
                self._hold_row(QualityFlag.SATURATED, until, saturated)
            # a channel is flat when it repeats while the stream moves: repeats of whole rows are stale samples
            # (a stream fault, DUPLICATE below, on every channel), not eight electrodes going flat at once
            flat = self._run - self._row_run >= c.flat_repeat_samples - 1
            if flat.any():
                self._hold_row(QualityFlag.FLAT, until, flat)
        # Whole rows repeating: test one channel first (cheap, almost never equal), then all.
        if eq[:, 0].any() and eq.all(axis=1).any():
            self._hold_row(QualityFlag.DUPLICATE, until)
        elif history >= PACKET_SAMPLES:
            back = ext[: len(ext) - PACKET_SAMPLES]
            if (cur[:, 0] == back[:, 0]).any() and (cur == back).all(axis=1).any():
                self._hold_row(QualityFlag.DUPLICATE, until)

    def _repair_zero_rows(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Hold the last good row over all-zero rows (the model input's rule, firmware_bridge/emg_rows.py), so
        the windowed detectors see no 300-mV step; returns (repaired, zero-row mask)."""
        return hold_over_zero_rows(x, self._ring[self._pos + self._ring_n - 1] if self._count else None)

    def _write(self, x: np.ndarray) -> None:
        n, size = len(x), self._ring_n
        tail = x[-size:] if n > size else x
        k = len(tail)
        first = min(k, size - self._pos)
        for offset in (0, size):  # mirrored halves: the last `size` samples are always contiguous
            self._ring[self._pos + offset : self._pos + offset + first] = tail[:first]
            if first < k:
                self._ring[offset : offset + k - first] = tail[first:]
        self._pos = (self._pos + k) % size
        self._count += n
        self._contiguous += n
        self._total += n
        self._seen += n

    def _last(self, length: int) -> np.ndarray:
        end = self._pos + self._ring_n
        return self._ring[end - length : end]

    # -- windowed checks -----------------------------------------------------------------------------
    def _evaluate(self) -> None:
        c = self.config
        self._next_eval = self._total + self._eval_every
        self._evals += 1
        count = min(self._count, self._ring_n, self._contiguous)
        if count > self._flat_n and self._evals % 2:  # exact repeats are caught per sample; this every other time
            steps = np.diff(self._last(self._flat_n + 1), axis=0)
            self._diff_rms = np.sqrt(np.einsum("ij,ij->j", steps, steps) / self._flat_n)
            flat = self._diff_rms < c.flat_diff_rms_uv
            if np.count_nonzero(flat):
                self._hold_row(QualityFlag.FLAT, self._total + self._hold, flat)
        size = self._lift_blocks * self._block
        if count >= size:
            recent = self._last(size).reshape(self._lift_blocks, self._block, self.channels)
            levels = recent.mean(axis=1)
            self._lift_span = levels.max(axis=0) - levels.min(axis=0)
            residual = recent - levels[:, None, :]
            self._broadband = np.sqrt(np.einsum("ijk,ijk->k", residual, residual) / size)
            row = _ROW[QualityFlag.LIFT_OFF]
            onset = (self._lift_span > c.lift_on_uv) | (self._broadband > c.lift_broadband_uv)
            if np.count_nonzero(onset):  # what the words quote (rare: not on every evaluation)
                self._lift_onset[onset] = np.c_[self._lift_span, self._broadband][onset]
            self._lift_now = onset
            active = onset.copy()
            if np.count_nonzero(self._active[row]):  # release only when the level has calmed over a longer span
                blocks = min(count // self._block, self._release_blocks)
                longer = self._last(blocks * self._block).reshape(blocks, self._block, self.channels).mean(axis=1)
                active |= self._active[row] & (longer.max(axis=0) - longer.min(axis=0) > c.lift_release_uv)
            self._active[row] = active
            if np.count_nonzero(active):
                self._hold_row(QualityFlag.LIFT_OFF, self._total + self._lift_hold, active)
        if self._count >= self._next_spectrum:
            self._next_spectrum = self._total + self._spectrum_every
            if count >= self._mains_n:  # no spectrum of a window holding a gap: the averages wait
                self._spectrum()

    def _band_rms(self) -> np.ndarray:
        """RMS of the deviation from 20-ms block means over the last `rms_window_s`: the signal above ≈ 25 Hz."""
        size = self._rms_blocks * self._block
        recent = self._last(size).reshape(self._rms_blocks, self._block, self.channels)
        residual = recent - recent.mean(axis=1, keepdims=True)
        return np.sqrt(np.einsum("ijk,ijk->k", residual, residual) / size)

    def _spectrum(self) -> None:
        """The mains share over `mains_window_s`, its powers averaged over `mains_average_s`."""
        self._rms = self._band_rms()
        spec = np.fft.rfft(self._mains_detrend(self._last(self._mains_n)), axis=0)
        band, p50, p60 = self._select @ (spec.real**2 + spec.imag**2)
        # A channel that is (or within the window was) flat, saturated or lifted off says nothing about its
        # mains pickup in contact: keep its averages as they were (a lift-off picks up hundreds of µV of mains).
        faulty = self._hold_until[_HARDWARE_ROWS].max(axis=0) + self._mains_n > self._total
        if self._fixed_mains is None:
            # 50 or 60 Hz: each sound channel votes with its *share* of the band at either family, at most 1, so
            # one channel's step to the rail or lift-off (broadband power millions of times the mains, more of
            # it in the 50-Hz bins) cannot outvote seven channels' mains for the half minute the vote remembers
            sound = ~faulty
            total = np.maximum(band[sound], 1e-30)
            self._family_power[50.0] = 0.99 * self._family_power[50.0] + float((p50[sound] / total).sum())
            self._family_power[60.0] = 0.99 * self._family_power[60.0] + float((p60[sound] / total).sum())
        mains = p60 if self.mains_hz == 60.0 else p50
        other = band - mains
        self._spectra += 1
        alpha = max(self._alpha, 1.0 / self._spectra)
        alpha = np.where(faulty, 0.0, alpha)
        self._mains_ms += alpha * (mains - self._mains_ms)
        self._other_ms += alpha * (other - self._other_ms)
        self._reference_ms = np.where(
            faulty, self._reference_ms, np.maximum(self._other_ms, self._reference_ms * self._decay)
        )
        self._share = self._share_now()
        if self._seen < self._settle:
            return
        c = self.config
        row = _ROW[QualityFlag.MAINS]
        active = self._share > np.where(self._active[row], c.mains_off, c.mains_on)
        self._active[row] = active
        if active.any():
            self._hold_row(QualityFlag.MAINS, self._total + self._hold, active)

    def _share_now(self) -> np.ndarray:
        return self._mains_ms / np.maximum(self._mains_ms + self._reference_ms, 1e-30)

    def _harmonic_bins(self, freqs: np.ndarray, f0: float) -> np.ndarray:
        lo, hi = self.config.band_hz
        half = self.config.mains_bin_halfwidth_hz
        bins = np.zeros(len(freqs), dtype=bool)
        for k in range(1, int(hi // f0) + 1):
            if lo <= k * f0 <= hi - half:
                bins |= np.abs(freqs - k * f0) <= half
        return bins

    # -- the verdict ---------------------------------------------------------------------------------
    def _report(self) -> QualityReport:
        if self._latest_hold <= self._total and self._count >= self._warmup and self._stalled_for <= self._stall_s:
            self._last_flags, self._last_reason = self._no_flags, ""
            return QualityReport(True, self._no_flags, "", self._rms, self._share, self.mains_hz)
        flags = _WEIGHTS @ (self._hold_until > self._total)
        if self._stalled_for > self.config.stall_after_s:
            flags |= int(QualityFlag.STALL)
        if self._count < self._warmup:
            flags |= int(QualityFlag.WARMUP)
        gating, advisory = flags, ""
        if self.mains_hz in self.config.mains_advisory_hz:
            mains = np.flatnonzero(flags & int(QualityFlag.MAINS))
            if len(mains):
                gating = flags & ~int(QualityFlag.MAINS)
                # words only when the set of channels changes (its figures as first seen): the runtime tells
                # each new advisory as an event, and other channels' flags or the figures come and go
                if not np.array_equal(mains, self._advisory_channels):
                    self._advisory_channels = mains
                    # the advice first, the figures last: a run file keeps the first 160 bytes of an event
                    where, _, figures = self._describe(QualityFlag.MAINS, int(mains[0])).partition(" (")
                    self._advisory = (
                        f"{where} — the model's input filter removes it; re-seat the electrode "
                        f"({len(mains)} channel(s); {figures}"
                    )
                advisory = self._advisory
        ok = not np.count_nonzero(gating)
        if ok:
            reason = ""
        elif int(gating[0]) & (QualityFlag.STALL | QualityFlag.WARMUP) or not np.array_equal(gating, self._last_flags):
            reason = self._reason(gating)  # text only when the verdict changes (or its duration does)
        else:
            reason = self._last_reason
        self._last_flags, self._last_reason = gating, reason
        return QualityReport(ok, flags, reason, self._rms, self._share, self.mains_hz, advisory)

    def _reason(self, flags: np.ndarray) -> str:
        union = int(np.bitwise_or.reduce(flags))
        for flag in FLAG_PRIORITY:
            if union & flag:
                hit = np.flatnonzero(flags & int(flag))
                more = f" (+{len(hit) - 1} more channels)" if flag not in STREAM_FLAGS and len(hit) > 1 else ""
                return self._describe(flag, int(hit[0])) + more
        return "unknown"

    def _describe(self, flag: QualityFlag, ch: int) -> str:
        c = self.config
        if flag is QualityFlag.WARMUP:
            return f"stream: warming up ({1000 * self._count / self.fs:.0f} of {c.warmup_s * 1000:.0f} ms)"
        if flag is QualityFlag.STALL:
            return f"stream: stall (no samples for {1000 * self._stalled_for:.0f} ms)"
        if flag is QualityFlag.GAP:
            return f"stream: gap ({1000 * self._gap_s:.0f} ms between samples)"
        if flag is QualityFlag.DUPLICATE:
            return "stream: duplicated or stale samples (rows repeat earlier rows)"
        if flag is QualityFlag.SATURATED:
            return f"channel {ch}: saturated (held at ≥ {self._sat_level / 1000:.0f} mV, the ADC rail)"
        if flag is QualityFlag.LIFT_OFF:
            span, broadband = self._lift_onset[ch]
            held = "" if self._lift_now[ch] else "; held until the level settles"
            return (
                f"channel {ch}: electrode lift-off (level moved {span / 1000:.1f} mV in "
                f"{c.lift_window_s * 1000:.0f} ms, residual {broadband:.0f} µV RMS{held})"
            )
        if flag is QualityFlag.FLAT:
            if self._run[ch] >= c.flat_repeat_samples - 1:
                return f"channel {ch}: flat line (same value for {self._run[ch] + 1} samples)"
            if self._diff_rms[ch] < c.flat_diff_rms_uv:
                window = f"{c.flat_window_s * 1000:.0f} ms"
                return f"channel {ch}: flat line (sample-to-sample RMS {self._diff_rms[ch]:.2f} µV over {window})"
            return f"channel {ch}: flat line (all-zero rows)"
        mains_uv = float(np.sqrt(self._mains_ms[ch]))
        emg_uv = float(np.sqrt(self._reference_ms[ch]))
        return (
            f"channel {ch}: mains dominates ({mains_uv:.0f} µV RMS at {self.mains_hz:.0f} Hz + harmonics vs "
            f"{emg_uv:.0f} µV of EMG in use: {100 * self._share[ch]:.0f} % of 20–250 Hz power)"
        )
