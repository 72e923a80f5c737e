"""Who wears the armband and how it sits: per-subject anatomy and per-session placement.

Ranges: forearm circumference at the armband 22–30 cm (radius ≈ 35–48 mm; Gordon et al. 1989 ANSUR),
hand size ±6 % between adults (Greiner 1991), muscle position scatter of several degrees and depth
±15 % between people; an armband put on again rotates by roughly ±10–15° and slides ±1–2 cm, which
changes electrode–muscle distances (Hargrove et al. 2006 quote 1 cm shifts as enough to degrade
pattern recognition); skin–electrode impedance changes the noise floor and gain per channel.

The recording conditions of a donning (`RecordingProfile`) span what issue 11 measured on 12 real MindRove
WiFi recordings (8 ch, 500 Hz, several people and sessions): DC offsets of 9–212 mV, often the same on all
channels; drift below 5 Hz of 0.4–38 mV per 2-s window (median; up to 104 mV); EMG of 12–43 µV RMS after a
20-Hz high-pass with a median frequency of 29–77 Hz; mains with all its harmonics from a few % to 97 % of a
channel's 20–250 Hz power; chunked WiFi arrival with a start-up backlog; stale and all-zero rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.synth.muscles import MUSCLES


@dataclass(frozen=True)
class Subject:
    index: int
    bone_scale: float
    forearm_radius_mm: float
    muscle_angle_offset_deg: np.ndarray  # (n_muscles,)
    muscle_depth_scale: np.ndarray  # (n_muscles,)
    muscle_strength: np.ndarray  # (n_muscles,) relative force capacity
    noise_scale: float  # skin impedance → thermal noise level
    mains_hz: float
    seed: int
    tissue_lowpass_hz: float = 60.0  # subcutaneous tissue + dry electrodes: sets the median frequency

    @property
    def subject_id(self) -> str:
        return f"s{self.index:02d}"


@dataclass(frozen=True)
class ArrivalProfile:
    """How the 8-ch stream reaches the host over WiFi in one session (`training.synth.arrival`)."""

    chunk_samples: int  # samples per delivered chunk (real: ~2 per 4 ms)
    base_delay_s: float  # network + SDK latency of every chunk
    jitter_s: float  # mean of the exponential extra delay per chunk (sets the p99 arrival gap)
    pauses_per_minute: float  # WiFi stalls: delivery stops, then the queued chunks arrive at once
    pause_s: tuple[float, float]  # their length range (real: gaps up to 138 ms)
    backlog_s: float  # data buffered before the host read the first chunk, delivered at once (real: ~5 s)
    backlog_delivery_s: float  # how long that backlog takes to arrive (real: within ~40 ms)


@dataclass(frozen=True)
class RecordingProfile:
    """One donning's recording conditions (see the module docstring for the real ranges)."""

    dc_offset_uv: np.ndarray  # (8,)
    drift_mv: float  # median peak-to-peak below 5 Hz in 2-s windows, on the typical channel
    drift_corner_hz: float  # how slow it is: a slow drift is mostly a trend within a 2-s window
    emg_rms_uv: float  # the typical channel's EMG RMS over the session after a 20-Hz high-pass
    mains_uv: np.ndarray  # (8,) fundamental amplitude per channel (poor contact picks up more)
    mains_harmonics: np.ndarray  # (3,) 2nd–4th harmonic amplitude relative to the fundamental
    stale_share: float  # share of rows that are a stale sample repeated (in whole packets)
    zero_rows_per_minute: float  # all-zero rows (dropped packets reported as zeros)
    arrival: ArrivalProfile


def _log_uniform(rng: np.random.Generator, low: float, high: float, size: int | None = None) -> np.ndarray | float:
    return np.exp(rng.uniform(np.log(low), np.log(high), size))


def make_recording_profile(rng: np.random.Generator, channels: int = 8) -> RecordingProfile:
    """Draw a donning's recording conditions spanning the real recordings' ranges."""
    dc_common = rng.choice([-1.0, 1.0]) * _log_uniform(rng, 12e3, 200e3)
    if rng.uniform() < 0.7:  # the common case on the real files: (nearly) one offset on every channel
        dc = dc_common * rng.uniform(0.97, 1.03, channels)
    else:
        dc = rng.choice([-1.0, 1.0], channels) * _log_uniform(rng, 9e3, 212e3, channels)
    emg_rms = float(_log_uniform(rng, 13.0, 36.0))  # mains adds to it: real files measure 12–43 µV
    # mains relative to the EMG: the typical channel from a few % of the band's power to about half of it;
    # poorly contacting channels (one or two, in some sessions) pick up several times more
    mains = float(_log_uniform(rng, 0.08, 1.2)) * emg_rms * np.exp(rng.normal(0.0, 0.35, channels))
    if rng.uniform() < 0.5:
        bad = rng.choice(channels, size=int(rng.integers(1, 3)), replace=False)
        mains[bad] *= _log_uniform(rng, 2.0, 7.0, len(bad))
    arrival = ArrivalProfile(
        chunk_samples=2,
        base_delay_s=float(rng.uniform(0.002, 0.006)),
        jitter_s=float(_log_uniform(rng, 0.0008, 0.003)),
        pauses_per_minute=float(rng.uniform(0.5, 4.0)),
        pause_s=(0.02, float(rng.uniform(0.06, 0.14))),
        backlog_s=float(rng.uniform(3.5, 6.0)),
        backlog_delivery_s=float(rng.uniform(0.015, 0.04)),
    )
    drift_mv = float(_log_uniform(rng, 0.4, 38.0))
    # quiet recordings drift slowly (a trend within 2 s: electrode chemistry), large swings come from
    # movement and are faster — the real files' below-20-Hz share after a per-window detrend (73–96 %) needs both
    drift_corner_hz = 0.04 * (drift_mv / 0.4) ** 0.7 * float(_log_uniform(rng, 0.7, 1.4))
    return RecordingProfile(
        dc_offset_uv=dc,
        drift_mv=drift_mv,
        drift_corner_hz=float(drift_corner_hz),
        emg_rms_uv=emg_rms,
        mains_uv=mains,
        mains_harmonics=np.array([rng.uniform(0.05, 0.5), rng.uniform(0.2, 0.8), rng.uniform(0.05, 0.4)]),
        stale_share=float(_log_uniform(rng, 0.0005, 0.03)),
        zero_rows_per_minute=float(_log_uniform(rng, 0.2, 3.0)),
        arrival=arrival,
    )


@dataclass(frozen=True)
class Placement:
    """One donning of the armband(s) for one session."""

    rotation_deg: float
    shift_mm: float  # along the arm; changes spread and overall gain
    channel_gain: np.ndarray  # (8,) MindRove electrode contact quality
    ring_gain: np.ndarray  # (16,) the 16-ch band
    recording: RecordingProfile


def make_subject(index: int, seed: int) -> Subject:
    rng = np.random.default_rng([seed, index, 1])
    n = len(MUSCLES)
    return Subject(
        index=index,
        bone_scale=float(np.clip(rng.normal(1.0, 0.06), 0.85, 1.15)),
        forearm_radius_mm=float(rng.uniform(36.0, 46.0)),
        muscle_angle_offset_deg=rng.normal(0.0, 6.0, n),
        muscle_depth_scale=rng.uniform(0.85, 1.15, n),
        muscle_strength=np.exp(rng.normal(0.0, 0.2, n)),
        noise_scale=float(rng.uniform(0.7, 1.6)),
        mains_hz=50.0 if rng.uniform() < 0.6 else 60.0,
        seed=seed,
        tissue_lowpass_hz=float(_log_uniform(rng, 20.0, 100.0)),
    )


def make_placement(subject: Subject, session_index: int) -> Placement:
    rng = np.random.default_rng([subject.seed, subject.index, 2, session_index])
    return Placement(
        rotation_deg=float(rng.normal(0.0, 12.0)),
        shift_mm=float(rng.normal(0.0, 8.0)),
        channel_gain=rng.uniform(0.75, 1.15, 8),
        ring_gain=rng.uniform(0.85, 1.1, 16),
        recording=make_recording_profile(rng),
    )
