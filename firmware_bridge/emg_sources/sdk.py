"""What the three SDK-backed sources share: loading `mindrove`, one board session, chunked reads.

Reads are chunked: `get_board_data_count()` then `get_board_data()` takes everything in the SDK's ring
buffer at once (the SDK's own thread fills it), never one sample per call. The SDK's logger is switched
off: every failure becomes a `SourceError` that says what to do instead.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
from dataclasses import dataclass
from typing import Any

import numpy as np

from firmware_bridge.emg_sources.base import EmgSource, SourceError
from firmware_bridge.emg_sources.checks import StreamChecker

RING_SECONDS = 60  # the SDK keeps this much if the reader falls behind (beyond it: a counted gap)
ARMBAND_COUNTER_MODULUS = 256  # the WiFi board's package counter; grows automatically if it turns out wider


@dataclass(frozen=True)
class Sdk:
    """The `mindrove` names a source needs, loaded on demand (replay works without the package)."""

    BoardShim: Any
    BoardIds: Any
    MindRoveInputParams: Any
    MindRoveError: type[Exception]
    version: str


def load_sdk(spec: str) -> Sdk:
    try:
        from mindrove.board_shim import BoardIds, BoardShim, MindRoveInputParams
        from mindrove.exit_codes import MindRoveError
    except ImportError as error:
        raise SourceError(
            f"source '{spec}' needs the `mindrove` package, which is not installed "
            f"(pip install 'mode2-edge[device]'): {error}"
        ) from error
    try:
        version = importlib.metadata.version("mindrove")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    BoardShim.disable_board_logger()
    return Sdk(BoardShim, BoardIds, MindRoveInputParams, MindRoveError, version)


@dataclass(frozen=True)
class Layout:
    """Where a board's rows are: EMG rows, timestamp row, package-counter row."""

    emg_rows: list[int]
    timestamp_row: int
    counter_row: int
    rate_hz: float

    @classmethod
    def of(cls, sdk: Sdk, board_id: int, channels: int | None = None) -> Layout:
        emg = list(sdk.BoardShim.get_emg_channels(board_id))
        return cls(
            emg_rows=emg[:channels] if channels else emg,
            timestamp_row=int(sdk.BoardShim.get_timestamp_channel(board_id)),
            counter_row=int(sdk.BoardShim.get_package_num_channel(board_id)),
            rate_hz=float(sdk.BoardShim.get_sampling_rate(board_id)),
        )

    def armband_checker(self, *, stall_ms: float, backlog_keep_s: float) -> StreamChecker:
        """The checks for the WiFi armband's stream (live or played back from its CSV layout)."""
        return StreamChecker(
            rate_hz=self.rate_hz,
            channels=len(self.emg_rows),
            counter_modulus=ARMBAND_COUNTER_MODULUS,
            stall_ms=stall_ms,
            backlog_keep_s=backlog_keep_s,
        )


class SdkBoardSource(EmgSource):
    """One SDK board session: prepared at open, streamed from `start()`, released at `close()`."""

    def __init__(
        self,
        *,
        name: str,
        sdk: Sdk,
        board_id: int,
        params: Any,
        layout: Layout,
        checker: StreamChecker,
        scale: float = 1.0,
    ) -> None:
        super().__init__(checker)
        self.name = name
        self._sdk = sdk
        self._layout = layout
        self._scale = scale
        self.channels = len(layout.emg_rows)
        self._streaming = False
        self._board = None
        try:
            self._board = sdk.BoardShim(board_id, params)
            self._board.prepare_session()
        except sdk.MindRoveError as error:
            self._board = None
            raise SourceError(f"{name}: the MindRove SDK could not prepare the board: {error}") from error

    def _start(self) -> None:
        assert self._board is not None
        try:
            self._board.start_stream(int(RING_SECONDS * self._layout.rate_hz))
        except self._sdk.MindRoveError as error:
            self._release()
            raise SourceError(f"{self.name}: the MindRove SDK could not start streaming: {error}") from error
        self._streaming = True

    def _take(self) -> np.ndarray | None:
        """Everything in the SDK's ring buffer, as (rows, n), or None if empty."""
        assert self._board is not None
        data = self._board.get_board_data()  # asks the SDK for its count itself: one round trip, not two
        return data if data.shape[1] else None

    def _poll(self, now: float) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
        data = self._take()
        if data is None:
            return None
        layout = self._layout
        samples = data[layout.emg_rows].T * self._scale
        return samples, data[layout.timestamp_row].copy(), data[layout.counter_row].copy()

    def _close(self) -> None:
        self._release()

    def _release(self) -> None:
        board, self._board = self._board, None
        if board is None:
            return
        if self._streaming:
            self._streaming = False
            # already stopped (e.g. at the end of a playback file): releasing is what matters
            with contextlib.suppress(self._sdk.MindRoveError):
                board.stop_stream()
        with contextlib.suppress(self._sdk.MindRoveError):
            board.release_session()
