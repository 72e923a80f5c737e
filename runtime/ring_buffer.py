"""A fixed-size ring of the newest EMG samples (and their timestamps); no allocation per append."""

from __future__ import annotations

import numpy as np


class EmgRing:
    def __init__(self, capacity: int, channels: int, *, dtype: type = np.float64) -> None:
        self.capacity = int(capacity)
        self.channels = int(channels)
        self._data = np.zeros((self.capacity, self.channels), dtype)
        self._time = np.zeros(self.capacity, np.float64)
        self._end = 0  # write position
        self.total = 0  # samples ever appended

    def clear(self) -> None:
        self._end = 0
        self.total = 0

    @property
    def filled(self) -> int:
        return min(self.total, self.capacity)

    def append(self, samples: np.ndarray, timestamps: np.ndarray | None = None) -> None:
        """Without `timestamps` the times are not kept (a ring that only serves samples)."""
        n = len(samples)
        if n >= self.capacity:
            self._data[:] = samples[-self.capacity :]
            if timestamps is not None:
                self._time[:] = timestamps[-self.capacity :]
            self._end = 0
            self.total += n
            return
        first = min(n, self.capacity - self._end)
        self._data[self._end : self._end + first] = samples[:first]
        if first < n:
            self._data[: n - first] = samples[first:]
        if timestamps is not None:
            self._time[self._end : self._end + first] = timestamps[:first]
            if first < n:
                self._time[: n - first] = timestamps[first:]
        self._end = (self._end + n) % self.capacity
        self.total += n

    def _index(self, n: int, upto: int | None) -> np.ndarray:
        upto = self.total if upto is None else upto
        back = self.total - upto
        if n + back > self.filled or n <= 0:
            raise ValueError(f"ring holds {self.filled} samples, asked for {n} ending {back} before the newest")
        stop = (self._end - back) % self.capacity
        return np.arange(stop - n, stop) % self.capacity

    def latest(self, n: int, *, upto: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The `n` samples ending at absolute sample count `upto` (default: the newest), oldest first."""
        index = self._index(n, upto)
        return self._data[index], self._time[index]

    def span(self, n: int, *, upto: int | None = None) -> tuple[float, float]:
        """The first and last timestamps of those `n` samples, without copying the samples."""
        index = self._index(n, upto)
        return float(self._time[index[0]]), float(self._time[index[-1]])
