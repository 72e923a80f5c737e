"""`open_source(spec)`: the one place that parses a source string (`mode2 run`, `record`, `dashboard`)."""

from __future__ import annotations

import math

from firmware_bridge.emg_sources.base import EmgSource, SourceError

SOURCE_SPELLINGS = "mindrove[:IP] | playback:FILE.csv | sdk-synthetic | replay:FILE.h5"


def open_source(
    spec: str,
    *,
    speed: float = 1.0,
    stall_ms: float = 50.0,
    backlog_keep_s: float = 0.1,
    connect_timeout_s: float = 5.0,
    chunk_samples: int = 2,
) -> EmgSource:
    """Open (but do not start) the source named by `spec`; SourceError says what is wrong with it.

    `speed` applies to `replay:` only (× real time; 0 or inf = unpaced); the others run at the device's
    pace. `stall_ms`: silence that counts as a stall. `backlog_keep_s`: how much of a start-up backlog
    is kept. `connect_timeout_s`: how long `start()` waits for a MindRove armband's first data.
    `chunk_samples`: replay's fixed chunk size.
    """
    text = str(spec).strip()
    kind, _, arg = text.partition(":")
    if not isinstance(speed, int | float) or math.isnan(speed) or speed < 0:
        raise SourceError(f"source '{text}': speed {speed!r} must be a number ≥ 0")
    if stall_ms <= 0:
        raise SourceError(f"source '{text}': stall_ms {stall_ms} must be > 0")
    if kind == "replay":
        if not arg:
            raise SourceError("source 'replay:': name the file, e.g. replay:session.h5")
        from firmware_bridge.emg_sources.replay import ReplaySource

        return ReplaySource(arg, speed=speed, chunk_samples=chunk_samples, stall_ms=stall_ms)
    if kind not in ("mindrove", "playback", "sdk-synthetic"):
        raise SourceError(f"unknown source '{text}': use {SOURCE_SPELLINGS}")
    if speed != 1.0:
        raise SourceError(
            f"source '{text}': speed {speed:g} applies to replay: only; {kind} streams at the device's real-time pace"
        )
    if kind == "playback":
        if not arg:
            raise SourceError("source 'playback:': name the file, e.g. playback:recording.csv")
        from firmware_bridge.emg_sources.playback import PlaybackSource

        return PlaybackSource(arg, stall_ms=stall_ms, backlog_keep_s=backlog_keep_s)
    if kind == "sdk-synthetic":
        if arg:
            raise SourceError(f"source '{text}': sdk-synthetic takes no argument")
        from firmware_bridge.emg_sources.sdk_synthetic import SdkSyntheticSource

        return SdkSyntheticSource(stall_ms=stall_ms, backlog_keep_s=backlog_keep_s)
    if _ and not arg:
        raise SourceError("source 'mindrove:': give the armband's IP after the colon, or write just mindrove")
    from firmware_bridge.emg_sources.mindrove_wifi import MindRoveWifiSource

    return MindRoveWifiSource(
        arg or None, stall_ms=stall_ms, backlog_keep_s=backlog_keep_s, connect_timeout_s=connect_timeout_s
    )
