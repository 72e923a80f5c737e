"""All-zero rows in the raw EMG stream (a real MindRove armband's dropped packets): one repair for training
and device alike.

The armband reports a packet it lost as rows of exact zeros on every channel. Against a DC offset of hundreds
of mV such a row is a step of the whole offset: through the model's input filter it rings to hundreds of mV,
and normalised it becomes a z-score in the thousands (issue 11: three zero rows in a window, |z| = 4,634).
Real signal is never exactly zero on all channels at once, so an all-zero row is a missing sample, and the
sample before it is the best stand-in: it adds no step for the filter to ring on.

The rule (`hold_over_zero_rows`), applied by the runtime loop to each chunk before its input stage and by
`firmware_bridge.emg_filter.filter_session` to a whole recorded session before training cuts its windows:

- every all-zero row repeats the last row before it that is not all zero, across chunk boundaries (the
  caller passes the previous chunk's last, already repaired, row as `last_good`), and across gaps too (the
  runtime holds the row from before a gap, so training does);
- all-zero rows with no good row before them in the stream (its very first rows) stay zero. A live stream
  cannot know its first good row in advance; a recorded session could, but training must see what the
  device sees, so it keeps them zero too. Instead the input filter restarts at the stream's first non-zero
  row (`signal_onset`), as after a gap: the leading zeros filter to exactly 0 and the signal starts from the
  steady state of its own level, with no step from 0 to the DC offset to ring.

Everything is vectorised (an index running maximum, no Python loop over rows): the loop calls this on every
chunk it reads.
"""

from __future__ import annotations

import numpy as np


def zero_row_mask(x: np.ndarray) -> np.ndarray:
    """(n,) bool: the rows of (n, channels) `x` that are exactly zero on every channel (NaN is not zero)."""
    return ~np.asarray(x).any(axis=1)


def hold_over_zero_rows(x: np.ndarray, last_good: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(repaired, zero): chunk `x` (n, channels) whose all-zero rows repeat the last non-zero row before them,
    and the (n,) mask of the rows that were all zero.

    `last_good` is the row before the chunk (the previous chunk's last row as repaired; None at the stream's
    start): leading zero rows of the chunk take it. Leading zero rows with no non-zero row before them stay
    zero (a zero `last_good` says the same: the stream has had no signal yet), see the module docstring.
    `repaired` is a new array when some row was all zero, `x` itself otherwise; `x` is never modified.
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"hold_over_zero_rows: expected (n, channels) samples, got shape {x.shape}")
    zero = zero_row_mask(x)
    if not zero.any():
        return x, zero
    # index of the last non-zero row at or before each row (-1: none in this chunk)
    source = np.where(zero, -1, np.arange(len(x)))
    np.maximum.accumulate(source, out=source)
    repaired = x[np.maximum(source, 0)]  # rows with no source take row 0, which is then a zero row itself
    if last_good is not None and source[0] < 0:
        repaired[source < 0] = np.asarray(last_good, dtype=x.dtype)
    return repaired, zero


def signal_onset(zero: np.ndarray, last_good: np.ndarray | None) -> int | None:
    """Where in this chunk the stream's signal starts after all-zero rows only: the first non-zero row, when
    every row of the stream before it was all zero. The model's input filter restarts there. None when the
    signal started before the chunk (`last_good` non-zero), when the stream starts with signal (no row
    before, `last_good` None, and the chunk's first row non-zero) or when the chunk is all zero rows.

    `zero` is the chunk's mask (from `hold_over_zero_rows`), `last_good` the same row passed to it.
    """
    if last_good is not None and np.any(last_good):
        return None
    good = np.flatnonzero(~np.asarray(zero, dtype=bool))
    if not len(good):
        return None
    first = int(good[0])
    if first == 0 and last_good is None:
        return None
    return first


def repair_recording(emg: np.ndarray) -> tuple[np.ndarray, int | None]:
    """A whole recorded (n, channels) stream repaired as the runtime loop repairs it chunk by chunk (the
    result does not depend on the chunking), and where the input filter must restart because the recording
    starts with zero rows (None: it need not). For anything that feeds a recorded session to the model."""
    repaired, zero = hold_over_zero_rows(np.asarray(emg))
    return repaired, signal_onset(zero, None)
