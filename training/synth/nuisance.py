"""What a real MindRove recording adds to clean EMG, and the faults the runtime must catch.

Magnitudes follow DESIGN.md's measured notes on real MindRove files (DC offsets of hundreds of mV,
50/60 Hz mains, chunked arrival, duplicated packets, spikes) and the sEMG literature (amplifier
noise 1–2 µV RMS; motion artefacts below 20 Hz, Clancy et al. 2002 / De Luca et al. 2010).
Faults carry per-sample ground-truth labels (`FAULT_CODES`).
"""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, sosfilt

FAULT_CODES = {"none": 0, "lift_off": 1, "saturation": 2, "flat_line": 3, "stall": 4, "duplicate": 5}
ADC_RAIL_UV = 600e3  # assumed ±600 mV input range after the DC offsets (see docs/SYNTHETIC_WORLD.md)
PACKET_SAMPLES = 4  # samples per WiFi packet at 500 Hz (a packet every 8 ms)


def add_recording_nuisances(
    clean: np.ndarray,
    fs: float,
    rng: np.random.Generator,
    *,
    dc_offset_uv: np.ndarray,
    mains_hz: float,
    mains_uv: float,
    noise_uv: float,
    movement_speed: np.ndarray,
) -> np.ndarray:
    """(N,C) clean µV → raw µV with DC offset + drift, mains, thermal noise and motion artefacts.

    `movement_speed` (N,) is the hand's summed joint speed (rad/s) at the same samples; artefacts
    grow with it above a threshold (cable and skin movement).
    """
    n, channels = clean.shape
    t = np.arange(n) / fs
    drift = np.cumsum(rng.normal(0.0, 11.0, (n, channels)), axis=0)  # ~2 mV over a minute
    drift = sosfilt(butter(1, 0.05, fs=fs, output="sos"), drift, axis=0)
    phase = rng.uniform(0, 2 * np.pi, channels)
    mains_gain = rng.uniform(0.5, 1.5, channels)
    mains = (
        mains_uv
        * mains_gain
        * (
            np.sin(2 * np.pi * mains_hz * t[:, None] + phase)
            + 0.3 * np.sin(2 * np.pi * 3 * mains_hz * t[:, None] + 2 * phase)
        )
    )
    thermal = rng.normal(0.0, noise_uv, (n, channels))
    envelope = np.clip(movement_speed - 4.0, 0.0, None)[:, None] / 4.0
    artefact = sosfilt(
        butter(2, [1.0, 12.0], btype="band", fs=fs, output="sos"), rng.normal(0, 1, (n, channels)), axis=0
    )
    artefact *= 80.0 * envelope * rng.uniform(0.5, 1.5, channels)
    return clean + dc_offset_uv[None, :] + drift + mains + thermal + artefact


def inject_faults(
    raw: np.ndarray, timestamps: np.ndarray, fs: float, rng: np.random.Generator, mains_hz: float, count: int = 5
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[str, int, int, int]]]:
    """Inject `count` faults (one of each kind in turn), each in its own slot after the first 10 s.

    Returns (raw, timestamps, labels (N,) uint8, events [(kind, channel, start, stop)]). A stall removes
    samples, so the returned arrays can be shorter; its label sits on the first sample after the gap.
    """
    raw = raw.copy()
    labels = np.zeros(len(raw), dtype=np.uint8)
    events: list[tuple[str, int, int, int]] = []
    kinds = ["lift_off", "saturation", "flat_line", "duplicate", "stall"]
    n = len(raw)
    first, last = min(int(10 * fs), n // 6), n - int(3 * fs)
    slot = (last - first) // count
    if slot < int(2.5 * fs):
        return raw, timestamps, labels, events  # too short to hold the faults apart
    starts = first + slot * np.arange(count) + rng.integers(0, slot - int(2.5 * fs) + 1, count)
    removed = np.zeros(n, dtype=bool)
    for i, start in enumerate(starts):
        kind = kinds[i % len(kinds)]
        channel = int(rng.integers(raw.shape[1]))
        length = int(rng.uniform(1.0, 2.0) * fs)
        stop = min(n, start + length)
        t = np.arange(stop - start) / fs
        if kind == "lift_off":
            wander = 20e3 * np.sin(2 * np.pi * rng.uniform(0.5, 2.0) * t) + 400.0 * np.sin(2 * np.pi * mains_hz * t)
            raw[start:stop, channel] += wander
        elif kind == "saturation":
            raw[start:stop, channel] = ADC_RAIL_UV * np.sign(raw[start, channel] or 1.0)
        elif kind == "flat_line":
            raw[start:stop, channel] = raw[start, channel]
        elif kind == "duplicate":
            stop = min(n, start + 10 * PACKET_SAMPLES)
            for packet in range(start, stop - PACKET_SAMPLES + 1, 2 * PACKET_SAMPLES):
                raw[packet + PACKET_SAMPLES : packet + 2 * PACKET_SAMPLES] = raw[packet : packet + PACKET_SAMPLES]
                labels[packet + PACKET_SAMPLES : packet + 2 * PACKET_SAMPLES] = FAULT_CODES["duplicate"]
            events.append((kind, -1, start, stop))
            continue
        else:  # stall: the stream stops delivering for a while
            stop = min(n - 1, start + int(rng.uniform(0.3, 1.0) * fs))
            removed[start:stop] = True
            labels[stop] = FAULT_CODES["stall"]
            events.append((kind, -1, start, stop))
            continue
        labels[start:stop] = FAULT_CODES[kind]
        events.append((kind, channel, start, stop))
    keep = ~removed
    return raw[keep], timestamps[keep], labels[keep], events
