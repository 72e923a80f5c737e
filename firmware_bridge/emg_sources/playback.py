"""`playback:FILE.csv` — a recording streamed by the SDK's own playback board, at real-time pace.

The file is a `DataFilter.write_file` CSV in the MindRove WiFi board's 39-row layout (what
`mode2 simulate --playback-csv` and the SDK's recorders write). The SDK's PLAYBACK_FILE_BOARD with
master board MINDROVE_WIFI_BOARD streams it row by row at the pace of the file's timestamps (a hole
in the timestamps becomes a pause), passes the package-counter column through unchanged and rewrites
the timestamps onto the host clock. So the runtime meets the file through exactly the code path it
meets the armband through, counter checks included.

`finished` turns true once every row of the file has arrived (or, should the SDK ever drop the last
rows, after `END_SILENCE_S` without data once the file has started).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from firmware_bridge.emg_sources.base import SourceError
from firmware_bridge.emg_sources.sdk import Layout, SdkBoardSource, load_sdk
from firmware_bridge.emg_sources.units import UV_PER_COUNT, looks_like_counts

CHECK_LINES = 500  # lines parsed up front to check the layout and the units
END_SILENCE_S = 5.0


def _count_lines(path: Path) -> int:
    lines = 0
    last = b"\n"
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            lines += block.count(b"\n")
            last = block[-1:]
    return lines + (0 if last == b"\n" else 1)


def _head(path: Path, spec: str, rows: int) -> np.ndarray:
    """The first CHECK_LINES rows as (n, rows) floats; SourceError if the layout is not the WiFi board's."""
    return read_playback_rows(path, spec, rows, limit=CHECK_LINES)


# -- shared with `mode2 import` (firmware_bridge/mindrove_import.py): the one parser of this layout --------
def read_playback_rows(path: Path, spec: str, rows: int, *, limit: int | None = None) -> np.ndarray:
    """The file's rows (or its first `limit`) as (n, rows) floats, checked line by line.

    SourceError (a UserError) names the line, and for a value that is not a number also the column.
    """
    values = []
    try:
        with path.open("r", encoding="ascii", errors="strict") as handle:
            for number, line in enumerate(handle, start=1):
                if limit is not None and number > limit:
                    break
                fields = line.rstrip("\r\n").split("\t")
                if len(fields) != rows:
                    raise SourceError(
                        f"{spec}: line {number} has {len(fields)} tab-separated columns; a MindRove WiFi playback "
                        f"file (DataFilter.write_file layout) has {rows}"
                    )
                try:
                    values.append([float(x) for x in fields])
                except ValueError as error:
                    column = next(k for k, x in enumerate(fields, start=1) if not is_number(x))
                    raise SourceError(
                        f"{spec}: line {number} column {column}: {fields[column - 1]!r} is not a number"
                    ) from error
    except UnicodeDecodeError as error:
        raise SourceError(f"{spec}: not a text CSV file ({error})") from error
    except OSError as error:
        raise SourceError(f"{spec}: cannot read the file ({error})") from error
    if not values:
        raise SourceError(f"{spec}: the file has no samples")
    return np.asarray(values)


def is_number(text: str) -> bool:
    """Whether `float()` takes the text (the CSV parsers name the first column that is not a number)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


class PlaybackSource(SdkBoardSource):
    def __init__(self, path: str | Path, *, stall_ms: float = 50.0, backlog_keep_s: float = 0.1) -> None:
        path = Path(path)
        spec = f"playback:{path}"
        if not path.is_file():
            raise SourceError(f"{spec}: no such file")
        sdk = load_sdk(spec)
        wifi = int(sdk.BoardIds.MINDROVE_WIFI_BOARD.value)
        layout = Layout.of(sdk, wifi)
        head = _head(path, spec, int(sdk.BoardShim.get_num_rows(wifi)))
        self.converted_from_counts = looks_like_counts(head[:, layout.emg_rows])
        self._total_rows = _count_lines(path)
        self._rows_received = 0
        params = sdk.MindRoveInputParams()
        params.file = str(path)
        params.master_board = wifi
        checker = layout.armband_checker(stall_ms=stall_ms, backlog_keep_s=backlog_keep_s)
        super().__init__(
            name=spec,
            sdk=sdk,
            board_id=int(sdk.BoardIds.PLAYBACK_FILE_BOARD.value),
            params=params,
            layout=layout,
            checker=checker,
            scale=UV_PER_COUNT if self.converted_from_counts else 1.0,
        )
        self.path = path
        self.sampling_rate_hz = layout.rate_hz

    @property
    def total_rows(self) -> int:
        """Rows (samples) in the file."""
        return self._total_rows

    def _poll(self, now: float) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
        batch = super()._poll(now)
        if batch is not None:
            self._rows_received += len(batch[1])
        return batch

    @property
    def _exhausted(self) -> bool:
        if self._rows_received >= self._total_rows:
            return True
        last = self._last_data_at
        return self._rows_received > 0 and last is not None and time.monotonic() - last > END_SILENCE_S
