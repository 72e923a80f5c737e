"""`sdk-synthetic` — the SDK's synthetic board, adapted to the armband layout. Plumbing only: not EMG.

The SDK's SYNTHETIC_BOARD streams 16 "EMG" channels at 250 Hz (sine-like test signals of growing
amplitude, one sample about every 4 ms, an 8-bit package counter), not the armband's 8 channels at
500 Hz. A model trained on the armband cannot be honoured on it, yet it is the one board that exercises
the SDK's streaming thread, ring buffer and chunked reads with no file and no hardware. So this source
adapts it rather than refusing it:

- the first 8 EMG rows are kept, in order;
- 250 Hz → 500 Hz by causal linear interpolation: each new sample x_k (time t_k) yields the midpoint
  (x_{k-1} + x_k)/2 at (t_{k-1} + t_k)/2 and x_k at t_k (the SDK's timestamps are arrival times, so the
  midpoint time keeps them increasing; one input period of latency, nothing from the future);
- the package counter c_k becomes 2c_k − 1 and 2c_k, modulo 512, so the counter checks run unchanged
  at 500 Hz (a lost input sample is two missing output samples);
- `plumbing_only = True`: the runtime runs its loop on it but refuses to arm (the values are not EMG).
"""

from __future__ import annotations

import numpy as np

from firmware_bridge.emg_sources.base import ARMBAND_CHANNELS, ARMBAND_RATE_HZ
from firmware_bridge.emg_sources.checks import StreamChecker
from firmware_bridge.emg_sources.sdk import Layout, SdkBoardSource, load_sdk

SPEC = "sdk-synthetic"
UPSAMPLE = 2
COUNTER_MODULUS = 512  # the board's 8-bit counter, doubled by the upsampling


class SdkSyntheticSource(SdkBoardSource):
    plumbing_only = True

    def __init__(self, *, stall_ms: float = 50.0, backlog_keep_s: float = 0.1) -> None:
        sdk = load_sdk(SPEC)
        board = int(sdk.BoardIds.SYNTHETIC_BOARD.value)
        layout = Layout.of(sdk, board, channels=ARMBAND_CHANNELS)
        rate = layout.rate_hz * UPSAMPLE
        checker = StreamChecker(
            rate_hz=rate,
            channels=ARMBAND_CHANNELS,
            counter_modulus=COUNTER_MODULUS,
            grow_modulus=False,
            stall_ms=stall_ms,
            backlog_keep_s=backlog_keep_s,
        )
        super().__init__(
            name=SPEC, sdk=sdk, board_id=board, params=sdk.MindRoveInputParams(), layout=layout, checker=checker
        )
        self.native_rate_hz = layout.rate_hz
        self.native_channels = len(sdk.BoardShim.get_emg_channels(board))
        self.sampling_rate_hz = rate
        if rate != ARMBAND_RATE_HZ:  # pragma: no cover - only if a future SDK changes the board's rate
            raise RuntimeError(f"sdk-synthetic: the SDK's synthetic board now runs at {layout.rate_hz} Hz")
        self._previous: np.ndarray | None = None
        self._previous_t: float | None = None

    def _poll(self, now: float) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
        batch = super()._poll(now)
        if batch is None:
            return None
        x, t, c = batch
        previous = x[:1] if self._previous is None else self._previous[None, :]
        previous_t = t[0] - 1.0 / self.native_rate_hz if self._previous_t is None else self._previous_t
        self._previous, self._previous_t = x[-1].copy(), float(t[-1])
        mids = 0.5 * (np.concatenate([previous, x[:-1]]) + x)
        mid_t = 0.5 * (np.concatenate([[previous_t], t[:-1]]) + t)
        samples = np.empty((2 * len(x), x.shape[1]))
        samples[0::2], samples[1::2] = mids, x
        stamps = np.empty(2 * len(t))
        stamps[0::2], stamps[1::2] = mid_t, t
        counters = np.empty(2 * len(c), dtype=np.int64)
        base = np.rint(c).astype(np.int64) * 2
        counters[0::2], counters[1::2] = (base - 1) % COUNTER_MODULUS, base % COUNTER_MODULUS
        return samples, stamps, counters
