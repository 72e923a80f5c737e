"""What every inference engine does first: the model's causal input filter on the stream, and a ring of the
filtered samples.

The filter (`input.input_filter` in the model's metadata; firmware_bridge/emg_filter.py) is the one the
model was trained behind: it runs on every sample as it arrives, so the window an engine cuts is the same
whichever engine cuts it. At a discontinuity (a long gap, a stall, a backlog) the loop calls `restart(offset)`
and the filter starts afresh at that sample, exactly where training restarts it in a recorded session.
Version 1 models (raw µV in, detrend inside the graph) get the samples unfiltered.
"""

from __future__ import annotations

import numpy as np

from firmware_bridge.emg_filter import FilterSpecError, InputFilter, StreamFilter
from runtime.model_contract import ModelMetadataError
from runtime.model_metadata import LoadedModel
from runtime.ring_buffer import EmgRing


class InputStage:
    def __init__(self, model: LoadedModel, capacity: int) -> None:
        meta = model.meta
        self.channels = meta.channels
        self.filter: StreamFilter | None = None
        if meta.input_filter is not None:
            try:
                spec = InputFilter.from_dict(meta.input_filter, "input.input_filter")
            except FilterSpecError as error:
                raise ModelMetadataError(f"{model.path}: {error}") from error
            if spec.sampling_rate_hz != meta.sampling_rate_hz:
                raise ModelMetadataError(
                    f"{model.path}: input.input_filter is designed for {spec.sampling_rate_hz:g} Hz, the model "
                    f"runs at {meta.sampling_rate_hz:g} Hz"
                )
            self.filter = StreamFilter(spec, meta.channels)
        self.ring = EmgRing(capacity, meta.channels, dtype=np.float32)  # filtered samples, as the graphs take them
        self._restart_at: list[int] = []  # absolute sample counts where the filter restarts
        self._pending: list[np.ndarray] = []  # raw blocks fed but not yet filtered
        self._fed = 0

    @property
    def total(self) -> int:
        """Samples fed since the start (never reset: it is the loop's sample count)."""
        return self._fed

    def restart(self, offset: int = 0) -> int:
        """The stream is discontinuous before the `offset`-th sample of the next `feed`; returns that sample's
        absolute count."""
        at = self._fed + max(0, int(offset))
        self._restart_at.append(at)
        return at

    def feed(self, samples: np.ndarray) -> None:
        """(n, channels) raw µV, queued: they are filtered when a window or frame first needs them, so the
        filter runs once per read instead of once per 2-sample block (≈ 30 µs per call whatever its length)."""
        if len(samples):
            self._pending.append(np.asarray(samples, np.float64))
            self._fed += len(samples)

    def _catch_up(self) -> None:
        if not self._pending:
            return
        samples = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending = []
        start, n = self.ring.total, len(samples)
        due = sorted({at for at in self._restart_at if at <= start + n})
        self._restart_at = [at for at in self._restart_at if at > start + n]
        if self.filter is None:
            out = samples.astype(np.float32)
        else:
            out = np.empty((n, self.channels), np.float32)
            begin = 0
            for at in due:
                cut = max(at - start, begin)
                out[begin:cut] = self.filter.process(samples[begin:cut])
                self.filter.reset()
                begin = cut
            out[begin:] = self.filter.process(samples[begin:])
        self.ring.append(out)

    def window(self, end: int, length: int) -> np.ndarray:
        """The `length` filtered samples ending at absolute count `end` (exclusive), oldest first, float32."""
        if end > self.ring.total:
            self._catch_up()
        return self.ring.latest(length, upto=end)[0]
