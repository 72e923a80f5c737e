"""Write an 8-ch stream as a MindRove WiFi-board playback file, using the SDK's own layout and writer.

The SDK's PLAYBACK_FILE_BOARD (master board MINDROVE_WIFI_BOARD) streams such a file back at real-time
pace and passes its package-counter column through unchanged, so hardware-free runs go through the real
SDK code path, counter checks included. The counter therefore behaves like the device's:

- one step per sample, wrapping at 256 (`COUNTER_MODULUS`);
- derived from the timestamps: a stall that lost k sample periods skips k counter values;
- a duplicated packet (samples marked in `duplicate_mask`, or labelled `duplicate` in the world's
  `truth/fault_labels`) repeats the counter values of the samples it copies — the run of L marked
  samples repeats the L counters before it, as `inject_faults` copies the packet before it — and the
  samples it overwrote are then skipped, as a device that re-sent an old packet instead of the new one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from mindrove.board_shim import BoardIds, BoardShim
from mindrove.data_filter import DataFilter

from training.synth.nuisance import FAULT_CODES

WIFI_BOARD = BoardIds.MINDROVE_WIFI_BOARD.value
COUNTER_MODULUS = 256


def package_counter(
    timestamps: np.ndarray, rate_hz: float, duplicate_mask: np.ndarray | None = None, modulus: int = COUNTER_MODULUS
) -> np.ndarray:
    """(N,) device-like package counter for samples at `timestamps` (see the module docstring)."""
    stamps = np.asarray(timestamps, dtype=np.float64)
    if len(stamps) == 0:
        return np.zeros(0, dtype=np.int64)
    steps = np.maximum(1, np.rint(np.diff(stamps) * rate_hz)).astype(np.int64)
    seq = np.concatenate([[0], np.cumsum(steps)])
    if duplicate_mask is not None:
        mask = np.asarray(duplicate_mask, dtype=bool)
        if mask.shape != stamps.shape:
            raise ValueError(f"duplicate_mask has shape {mask.shape}, the timestamps {stamps.shape}")
        edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
        for start, stop in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
            length = stop - start
            if start >= length:  # (a run at the very start has nothing before it to repeat)
                seq[start:stop] = seq[start - length : start]
    return seq % modulus


def write_mindrove_playback_csv(
    path: str | Path,
    emg_uv: np.ndarray,
    timestamps: np.ndarray,
    *,
    fault_labels: np.ndarray | None = None,
    duplicate_mask: np.ndarray | None = None,
    counters: np.ndarray | None = None,
) -> Path:
    """(N,8) µV and (N,) unix seconds → `DataFilter.write_file` CSV in the WiFi board's 39-row layout.

    `timestamps` go to the timestamp column: the host's arrival times on a real recording. The package
    counter is `counters` when given (the world derives it from the true sample times, since its arrival
    times are chunked); otherwise derived from `timestamps`, and `fault_labels` (N,) — the world's
    `truth/fault_labels` codes — mark `duplicate` samples (as does `duplicate_mask`) that repeat counters.
    """
    path = Path(path)
    rows = BoardShim.get_num_rows(WIFI_BOARD)
    emg_rows = BoardShim.get_emg_channels(WIFI_BOARD)
    if emg_uv.ndim != 2 or emg_uv.shape[1] != len(emg_rows):
        raise ValueError(f"{path}: expected ({len(emg_rows)} channels) EMG, got shape {emg_uv.shape}")
    if len(timestamps) != len(emg_uv):
        raise ValueError(f"{path}: {len(timestamps)} timestamps for {len(emg_uv)} samples")
    if fault_labels is not None:
        labels_dup = np.asarray(fault_labels) == FAULT_CODES["duplicate"]
        duplicate_mask = labels_dup if duplicate_mask is None else (np.asarray(duplicate_mask, bool) | labels_dup)
    data = np.zeros((rows, len(emg_uv)), dtype=np.float64)
    data[emg_rows] = emg_uv.T
    data[BoardShim.get_timestamp_channel(WIFI_BOARD)] = timestamps
    if counters is None:
        counters = package_counter(timestamps, float(BoardShim.get_sampling_rate(WIFI_BOARD)), duplicate_mask)
    elif len(counters) != len(emg_uv):
        raise ValueError(f"{path}: {len(counters)} package counters for {len(emg_uv)} samples")
    data[BoardShim.get_package_num_channel(WIFI_BOARD)] = counters
    data[BoardShim.get_battery_channel(WIFI_BOARD)] = 95.0
    accel = BoardShim.get_accel_channels(WIFI_BOARD)
    data[accel[2]] = 1.0  # gravity on z, the band lying still
    path.parent.mkdir(parents=True, exist_ok=True)
    DataFilter.write_file(np.ascontiguousarray(data), str(path), "w")
    return path
