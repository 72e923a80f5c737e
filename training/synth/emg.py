"""Motor-unit-like EMG sources, one per muscle, at 2 kHz.

Per muscle a pool of motor units (Fuglevand, Winter & Patla 1993, J. Neurophysiol. 70:2470):
recruitment thresholds spread exponentially over 1–70 % of activation (size principle, Henneman 1957),
twitch/MUAP amplitudes spread 100-fold with the threshold, firing rates from 8 Hz at recruitment to
35 Hz, inter-spike intervals with ~20 % variability. Each discharge adds a biphasic MUAP
(first-order Hermite–Rodriguez function, Lo Conte et al. 1994) whose width grows with the muscle's
depth (tissue low-pass filtering), which puts the surface spectrum's peak at ~60–130 Hz with its energy
in 20–450 Hz (Merletti & Parker, "Electromyography", 2004, ch. 4–6).
"""

from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve

FS_SOURCE = 2000.0
N_UNITS = 24
RECRUITMENT_RANGE = (0.01, 0.7)
AMPLITUDE_RANGE = 100.0
MIN_RATE_HZ, MAX_RATE_HZ = 8.0, 35.0
ISI_VARIABILITY = 0.2
# Peak MUAP amplitude of the largest unit of a muscle right under the skin, in µV: with the pool
# fully active a superficial muscle reads ~0.5–1 mV RMS, typical of maximal sEMG over the forearm.
PEAK_MUAP_UV = 2000.0


def muap_kernel(depth_mm: float, fs: float = FS_SOURCE) -> np.ndarray:
    """Biphasic MUAP shape, unit peak; wider for deeper sources."""
    sigma_s = (1.5 + 0.09 * depth_mm) * 1e-3
    t = np.arange(-5 * sigma_s, 5 * sigma_s + 1 / fs, 1 / fs)
    shape = -(t / sigma_s) * np.exp(-((t / sigma_s) ** 2))
    return shape / np.abs(shape).max()


class MotorUnitPool:
    """Stateful spike generator for one muscle, so a session can be synthesised in chunks."""

    def __init__(self, depth_mm: float, rng: np.random.Generator) -> None:
        lo, hi = RECRUITMENT_RANGE
        k = np.arange(N_UNITS) / (N_UNITS - 1)
        self.thresholds = lo * (hi / lo) ** k
        self.amplitudes = AMPLITUDE_RANGE**k / AMPLITUDE_RANGE * rng.uniform(0.8, 1.2, N_UNITS)
        self.phase = rng.uniform(0.0, 1.0, N_UNITS)
        self.kernel = muap_kernel(depth_mm)
        self.tail = np.zeros(len(self.kernel) - 1)
        self.rng = rng

    def rates(self, activation: np.ndarray) -> np.ndarray:
        """(T,) activation → (N_UNITS, T) firing rates in Hz (0 below threshold)."""
        above = activation[None, :] - self.thresholds[:, None]
        span = np.maximum(1.0 - self.thresholds[:, None], 1e-6)
        rate = MIN_RATE_HZ + (MAX_RATE_HZ - MIN_RATE_HZ) * np.clip(1.5 * above / span, 0.0, 1.0)
        return np.where(above >= 0.0, rate, 0.0)

    def synthesise(self, activation: np.ndarray, rate_hz: float, n_out: int) -> np.ndarray:
        """Activation sampled at `rate_hz` (≥ 2 × MAX_RATE_HZ) → (n_out,) source at FS_SOURCE in µV.

        Firing phases are integrated at the activation's own rate and each discharge is placed at its
        interpolated crossing time, so the cost grows with the number of spikes, not of 2 kHz samples.
        """
        train = np.zeros(n_out)
        active = np.flatnonzero(self.thresholds <= activation.max())  # units never recruited here: skip
        if len(active):
            rate = self.rates(activation)[active]
            # ISI variability ~ISI_VARIABILITY: noise per step, scaled by the steps an interval spans
            sigma = ISI_VARIABILITY * np.sqrt(rate_hz / np.maximum(rate, 1.0))
            increments = rate / rate_hz * (1.0 + sigma * self.rng.standard_normal(rate.shape))
            increments = np.clip(increments, 0.0, 0.95)
            phase = self.phase[active, None] + np.cumsum(increments, axis=1)
            counts = np.floor(phase)
            previous = np.concatenate([self.phase[active, None], phase[:, :-1]], axis=1)
            unit, step = np.nonzero(counts > np.floor(previous))
            fraction = (counts[unit, step] - previous[unit, step]) / np.maximum(increments[unit, step], 1e-9)
            index = np.minimum(((step + fraction) * (FS_SOURCE / rate_hz)).astype(np.int64), n_out - 1)
            np.add.at(train, index, self.amplitudes[active][unit] * PEAK_MUAP_UV)
            self.phase[active] = phase[:, -1] - counts[:, -1]
        full = fftconvolve(train, self.kernel)  # length n_out + K - 1
        full[: len(self.tail)] += self.tail
        self.tail = full[n_out:].copy()
        return full[:n_out]
