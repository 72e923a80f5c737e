"""Write an 8-ch stream as a MindRove WiFi-board playback file, using the SDK's own layout and writer.

The SDK's PLAYBACK_FILE_BOARD (master board MINDROVE_WIFI_BOARD) streams such a file back at real-time
pace, so hardware-free runs go through the real SDK code path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from mindrove.board_shim import BoardIds, BoardShim
from mindrove.data_filter import DataFilter

WIFI_BOARD = BoardIds.MINDROVE_WIFI_BOARD.value


def write_mindrove_playback_csv(path: str | Path, emg_uv: np.ndarray, timestamps: np.ndarray) -> Path:
    """(N,8) µV and (N,) unix seconds → `DataFilter.write_file` CSV in the WiFi board's 39-row layout."""
    path = Path(path)
    rows = BoardShim.get_num_rows(WIFI_BOARD)
    emg_rows = BoardShim.get_emg_channels(WIFI_BOARD)
    if emg_uv.ndim != 2 or emg_uv.shape[1] != len(emg_rows):
        raise ValueError(f"{path}: expected ({len(emg_rows)} channels) EMG, got shape {emg_uv.shape}")
    data = np.zeros((rows, len(emg_uv)), dtype=np.float64)
    data[emg_rows] = emg_uv.T
    data[BoardShim.get_timestamp_channel(WIFI_BOARD)] = timestamps
    data[BoardShim.get_package_num_channel(WIFI_BOARD)] = np.arange(len(emg_uv)) % 256
    data[BoardShim.get_battery_channel(WIFI_BOARD)] = 95.0
    accel = BoardShim.get_accel_channels(WIFI_BOARD)
    data[accel[2]] = 1.0  # gravity on z, the band lying still
    path.parent.mkdir(parents=True, exist_ok=True)
    DataFilter.write_file(np.ascontiguousarray(data), str(path), "w")
    return path
