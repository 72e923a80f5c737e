"""When each sample of the 8-ch stream reaches the host: chunked WiFi arrival, as on the real armband.

Issue 11 measured real MindRove WiFi recordings: about 2 samples arrive per 4 ms, the p99 step between
arrivals is 5–15 ms, delivery pauses reach 138 ms (the queued samples then arrive at once), and at
start-up a backlog of about 5 s of samples is delivered within ~40 ms. `arrival_times` reproduces that
from the samples' true times and a session's `ArrivalProfile`; the host stores arrival times (what the
SDK's timestamp column holds), and the session file gets the per-sample times the importer reconstructs
from them (`firmware_bridge.mindrove_import.build_timeline`).
"""

from __future__ import annotations

import numpy as np

from training.synth.subjects import ArrivalProfile


def chunk_ids(sample_times: np.ndarray, chunk_samples: int) -> np.ndarray:
    """(N,) chunk number of each sample: `chunk_samples` consecutive samples per chunk, restarting after a
    gap (samples lost in a stall never share a chunk with the samples after it)."""
    t = np.asarray(sample_times, dtype=np.float64)
    if len(t) < 2:
        return np.zeros(len(t), dtype=np.int64)
    steps = np.diff(t)
    gap = steps > 1.5 * np.median(steps)
    run_start = np.flatnonzero(np.r_[True, gap])
    position = np.arange(len(t)) - run_start[np.cumsum(np.r_[False, gap])]
    return np.cumsum(position % chunk_samples == 0) - 1


def arrival_times(sample_times: np.ndarray, profile: ArrivalProfile, rng: np.random.Generator) -> np.ndarray:
    """(N,) true sample times (s, rising; gaps where samples were lost) → (N,) host arrival times (s).

    Non-decreasing; samples of one chunk share its arrival time; never before the sample was taken.
    """
    t = np.asarray(sample_times, dtype=np.float64)
    n = len(t)
    if n == 0:
        return t.copy()
    chunk = chunk_ids(t, profile.chunk_samples)
    last = np.flatnonzero(np.r_[chunk[1:] != chunk[:-1], True])
    sent = t[last]  # a chunk leaves when its last sample is taken
    delay = profile.base_delay_s + rng.exponential(profile.jitter_s, len(sent))
    arrive = np.maximum.accumulate(sent + delay)  # one WiFi link: chunks arrive in order
    duration = float(t[-1] - t[0])
    for _ in range(rng.poisson(profile.pauses_per_minute * duration / 60.0)):
        begin = t[0] + rng.uniform(0.0, duration)
        end = begin + rng.uniform(*profile.pause_s)
        held = (arrive >= begin) & (arrive < end)
        arrive[held] = end  # delivery stops; what queued up arrives at once when it resumes
    if profile.backlog_s > 0:
        release = t[0] + profile.backlog_s
        backlog = sent < release
        spread = np.linspace(0.0, profile.backlog_delivery_s, int(backlog.sum()))
        arrive[backlog] = np.maximum(arrive[backlog], release + profile.base_delay_s + spread)
    arrive = np.maximum.accumulate(arrive)
    return arrive[chunk]
