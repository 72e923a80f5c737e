"""EMG sources: one module per source behind one interface (`EmgSource`), picked by `open_source(spec)`.

| spec | module | what |
|---|---|---|
| `mindrove[:IP]` | mindrove_wifi.py | the WiFi armband through the SDK |
| `playback:FILE.csv` | playback.py | the SDK's playback board (WiFi layout, real-time pace) |
| `sdk-synthetic` | sdk_synthetic.py | the SDK's synthetic board adapted to 8 ch @ 500 Hz; plumbing only |
| `replay:FILE.h5` | replay.py | a session/run file, deterministic, at `speed` × real time |

Every source hands out `EmgChunk`s in µV (units.py) after the same checks (checks.py): package
counters and timestamps → gaps, duplicates (dropped), stalls, clock drift; the start-up backlog is
discarded. The counts are in `source.health` (`StreamHealth`), each occurrence an event in its chunk.
"""

from firmware_bridge.emg_sources.base import EmgChunk, EmgSource, SourceError, StreamEvent, StreamHealth
from firmware_bridge.emg_sources.factory import SOURCE_SPELLINGS, open_source

__all__ = [
    "SOURCE_SPELLINGS",
    "EmgChunk",
    "EmgSource",
    "SourceError",
    "StreamEvent",
    "StreamHealth",
    "open_source",
]
