"""EMG units: everything a source hands out is µV.

The MindRove SDK reports µV from version 5 on. Older SDKs (and recordings made with them) report raw
ADC counts of the ±2²³-count converter at 0.045 µV per count, so a count-valued stream reaches at most
±377 mV once converted, while count values themselves run into the millions.

How each source decides:
- `mindrove`: the installed SDK's version — ≥ 5 is µV as is, older is counts × 0.045.
- `playback:FILE.csv` and `replay:FILE.h5`: an explicit unit attribute wins (HDF5: `units` on
  `emg/raw` or `emg_units` on the file; `uV`/`µV`/`microvolt(s)` or `counts`); without one, the values
  decide (`counts_evidence`, the same rule as `mode2 import --units auto`): the file is taken as counts and
  converted when its non-zero values have a median magnitude above the converter's full scale in µV
  (377,487 µV: cannot be µV from this armband), or are all whole numbers (raw counts are; µV from the SDK
  are counts × 0.045 and almost never whole, so counts with a DC offset below full scale are caught too);
  anything else is taken as µV. Exact zeros are left out: a dropped-out channel writes them in either unit.
- `sdk-synthetic`: the synthetic board's values are passed through (they are not EMG anyway).
"""

from __future__ import annotations

import numpy as np

UV_PER_COUNT = 0.045
ADC_FULL_SCALE_COUNTS = 1 << 23
ADC_FULL_SCALE_UV = ADC_FULL_SCALE_COUNTS * UV_PER_COUNT  # 377,487 µV

_UV_NAMES = {"uv", "µv", "μv", "microvolt", "microvolts"}
_COUNT_NAMES = {"counts", "count", "raw_counts", "adc_counts"}


def parse_units(value: object) -> str | None:
    """'uV', 'counts', or None for an unknown spelling."""
    text = value.decode() if isinstance(value, bytes) else str(value)
    text = text.strip().lower()
    if text in _UV_NAMES:
        return "uV"
    if text in _COUNT_NAMES:
        return "counts"
    return None


def counts_evidence(values: np.ndarray) -> str | None:
    """Why `values` must be raw ADC counts, in words (see the module docstring), or None if they can be µV."""
    nonzero = values[values != 0]
    if nonzero.size == 0:
        return None
    median = float(np.median(np.abs(nonzero)))
    if median > ADC_FULL_SCALE_UV:
        return (
            f"median |value| {median:,.0f} is beyond the ADC's full scale of {ADC_FULL_SCALE_UV:,.0f} µV, "
            "so these cannot be µV"
        )
    if np.all(nonzero == np.round(nonzero)):
        return f"every value is a whole number, as raw ADC counts are; µV from the SDK are multiples of {UV_PER_COUNT}"
    return None


def looks_like_counts(values: np.ndarray) -> bool:
    """True when the values must be raw counts (`counts_evidence` names why)."""
    return counts_evidence(values) is not None


def sdk_reports_counts(version: str) -> bool:
    """MindRove SDKs before 5.0 report raw counts."""
    try:
        major = int(version.split(".")[0])
    except ValueError:
        return False
    return major < 5
