"""What a real MindRove recording adds to clean EMG, and the faults the runtime must catch.

Magnitudes follow issue 11's measurements on 12 real MindRove WiFi recordings (drawn per donning in
`subjects.RecordingProfile`): the EMG reaches the electrodes low-passed by tissue and dry contacts (median
frequency 29–77 Hz) at 12–43 µV RMS; on it sit a DC offset of 9–212 mV (often shared by all channels),
drift of 0.4–38 mV per 2 s below 5 Hz, mains with its 2nd–4th harmonics (from a few % to 97 % of a
channel's 20–250 Hz power), amplifier noise (1–2 µV RMS), motion artefacts below 20 Hz growing with hand
speed (Clancy et al. 2002 / De Luca et al. 2010), the ADC's ±2²³ counts × 0.045 µV ≈ ±377 mV range, and
in the rows themselves stale samples repeated for whole packets and all-zero rows.
Faults and bad rows carry per-sample ground-truth labels (`FAULT_CODES`).
"""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, sosfilt

from firmware_bridge.emg_sources.units import ADC_FULL_SCALE_UV
from training.data.emg_checks import drift_swings_mv, high_passed
from training.synth.subjects import RecordingProfile

FAULT_CODES = {
    "none": 0,
    "lift_off": 1,
    "saturation": 2,
    "flat_line": 3,
    "stall": 4,
    "duplicate": 5,
    "stale_repeat": 6,
    "zero_row": 7,
}
ADC_RAIL_UV = ADC_FULL_SCALE_UV  # the MindRove ADC's full scale: ±8,388,608 counts × 0.045 µV ≈ ±377.5 mV
PACKET_SAMPLES = 4  # samples per WiFi packet at 500 Hz (a packet every 8 ms)


def shape_emg(clean: np.ndarray, fs: float, tissue_lowpass_hz: float, rms_uv: float) -> np.ndarray:
    """Clean EMG as the armband's dry electrodes see it: low-passed by tissue and contact (2nd order), and
    scaled so the typical (median) channel has `rms_uv` RMS after a 20-Hz high-pass over the session."""
    shaped = sosfilt(butter(2, tissue_lowpass_hz, fs=fs, output="sos"), clean, axis=0)
    level = float(np.median(np.sqrt(np.mean(high_passed(shaped, fs) ** 2, axis=0))))
    return shaped * (rms_uv / level) if level > 0 else shaped


def drift(
    n: int, channels: int, fs: float, median_swing_mv: float, rng: np.random.Generator, corner_hz: float = 0.7
) -> np.ndarray:
    """(n, channels) µV of slow wander whose typical channel's median 2-s swing below 5 Hz is
    `median_swing_mv`; shared in part by all channels, with a slowly varying strength (so a few windows
    swing about three times the median, as on the real files)."""
    low = butter(4, corner_hz, fs=fs, output="sos")  # steep: real drift leaves the EMG band alone
    shared = rng.normal(0.0, 1.0, (n, 1))
    own = rng.normal(0.0, 1.0, (n, channels))
    wander = sosfilt(low, 0.6 * shared + 0.8 * own, axis=0)
    slow = sosfilt(butter(4, 0.05, fs=fs, output="sos"), rng.normal(0, 1, n), axis=0)
    envelope = np.exp(0.25 * slow / max(float(np.std(slow)), 1e-12))
    wander *= envelope[:, None]
    swings = drift_swings_mv(wander, fs)
    typical = float(np.median(np.median(swings, axis=0))) if len(swings) else 0.0
    return wander * (median_swing_mv / typical) if typical > 0 else wander


def mains_pickup(n: int, fs: float, mains_hz: float, profile: RecordingProfile, rng: np.random.Generator) -> np.ndarray:
    """(n, channels) µV of mains: the fundamental per channel plus its 2nd–4th harmonics (below Nyquist),
    its strength breathing slowly as the person moves in the field."""
    t = np.arange(n) / fs
    channels = len(profile.mains_uv)
    out = np.zeros((n, channels))
    for k, relative in enumerate((1.0, *profile.mains_harmonics), start=1):
        if k * mains_hz >= fs / 2:
            break
        phase = rng.uniform(0, 2 * np.pi, channels)
        out += relative * np.sin(2 * np.pi * k * mains_hz * t[:, None] + phase)
    breathing = 1.0 + 0.25 * np.sin(2 * np.pi * rng.uniform(0.01, 0.05) * t + rng.uniform(0, 2 * np.pi))
    return out * profile.mains_uv[None, :] * breathing[:, None]


def add_recording_nuisances(
    clean: np.ndarray,
    fs: float,
    rng: np.random.Generator,
    *,
    profile: RecordingProfile,
    tissue_lowpass_hz: float,
    mains_hz: float,
    noise_uv: float,
    movement_speed: np.ndarray,
) -> np.ndarray:
    """(N,C) clean µV → raw µV: shaped EMG + DC offset + drift + mains + thermal noise + motion artefacts,
    clipped at the ADC's range.

    `movement_speed` (N,) is the hand's summed joint speed (rad/s) at the same samples; artefacts
    grow with it above a threshold (cable and skin movement).
    """
    n, channels = clean.shape
    emg = shape_emg(clean, fs, tissue_lowpass_hz, profile.emg_rms_uv)
    wander = drift(n, channels, fs, profile.drift_mv, rng, profile.drift_corner_hz)
    mains = mains_pickup(n, fs, mains_hz, profile, rng)
    thermal = rng.normal(0.0, noise_uv, (n, channels))
    envelope = np.clip(movement_speed - 4.0, 0.0, None)[:, None] / 4.0
    artefact = sosfilt(
        butter(2, [1.0, 12.0], btype="band", fs=fs, output="sos"), rng.normal(0, 1, (n, channels)), axis=0
    )
    artefact *= 25.0 * envelope * rng.uniform(0.5, 1.5, channels)
    raw = emg + profile.dc_offset_uv[None, :] + wander + mains + thermal + artefact
    return np.clip(raw, -ADC_RAIL_UV, ADC_RAIL_UV)


def add_bad_rows(
    raw: np.ndarray, labels: np.ndarray, fs: float, profile: RecordingProfile, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The rows a real armband delivers wrong (labelled in `labels`, in place on copies):

    - stale repeats: a whole packet (or 2–3 in a row) carries the sample before it again — runs of 4, 8,
      12 … identical rows after the original, `profile.stale_share` of the rows;
    - zero rows: 1–3 consecutive rows with every channel exactly 0, `profile.zero_rows_per_minute`.
    Rows already labelled, the row a stale run repeats, and the packet before a labelled row (a duplicated
    packet's source) are left alone, so every labelled run still shows what its label says.
    """
    raw, labels = raw.copy(), labels.copy()
    n = len(raw)
    packets = n // PACKET_SAMPLES
    runs = rng.choice([1, 2, 3], size=max(1, packets), p=[0.6, 0.25, 0.15])
    want = round(profile.stale_share * n / (PACKET_SAMPLES * 1.55))  # runs average 1.55 packets
    starts = np.sort(rng.choice(np.arange(1, max(2, packets)), size=min(want, max(0, packets - 1)), replace=False))
    for start, length in zip(starts, runs, strict=False):
        a, b = start * PACKET_SAMPLES, min(n, (start + length) * PACKET_SAMPLES)
        if labels[a - 1 : b + PACKET_SAMPLES].any():
            continue
        raw[a:b] = raw[a - 1]
        labels[a:b] = FAULT_CODES["stale_repeat"]
    count = rng.poisson(profile.zero_rows_per_minute * n / fs / 60.0)
    for start in rng.integers(1, max(2, n - 3), size=count):
        stop = min(n, start + int(rng.integers(1, 4)))
        if labels[start : stop + PACKET_SAMPLES].any():
            continue
        raw[start:stop] = 0.0
        labels[start:stop] = FAULT_CODES["zero_row"]
    return raw, labels


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
