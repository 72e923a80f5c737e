"""Live EMG levels while recording: a bar and the µV RMS per channel, red with its flag named when the
recorder's signal-quality check raises one on that channel.

The recorder reports raised flags as words (`GuidanceSnapshot.emg_flags`), e.g. `lift-off: ch2 ch5`,
`stall`. A flag names its channels as `chN` or `channel N` (0-based, as runtime/signal_quality.py, the
session files and `mode2 inspect` number them), one or several; a flag that names no channel concerns the
stream (stall, gap, warm-up) and marks every channel, as the runtime's stream flags do.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from tui.widgets.emg_levels import level

MAX_BAR, MAX_LABEL = 40, 48
CHANNEL = re.compile(r"\b(?:channels?|ch)\s*#?\s*(\d+(?:\s*,\s*\d+)*)\b", re.IGNORECASE)


def short_label(flag: str) -> str:
    """The flag without its channels and detail: 'channel 5: electrode lift-off (…)' → 'electrode lift-off',
    'lift-off: ch2 ch5' → 'lift-off', 'stream: stall (…)' → 'stall'."""
    text = CHANNEL.sub("", flag).split("(")[0]
    text = re.sub(r"^\W*stream\b", "", text.strip(), flags=re.IGNORECASE)
    return text.strip(" :-,;") or "flag"


def flag_channels(flag: str) -> list[int]:
    """The channels a flag names (empty: a stream flag)."""
    return [int(n) for match in CHANNEL.finditer(flag) for n in re.findall(r"\d+", match.group(1))]


def channel_flags(flags: Sequence[str], channels: int) -> list[list[str]]:
    """Per channel, the short labels of the flags raised on it (a stream flag goes to every channel)."""
    out: list[list[str]] = [[] for _ in range(channels)]
    for flag in flags:
        label = short_label(flag)
        named = flag_channels(flag)
        for ch in named or range(channels):
            if ch < channels and label not in out[ch]:
                out[ch].append(label)
    return out


def _uv(value: float) -> str:
    """µV in 5 characters."""
    if not math.isfinite(value):
        return "    —"
    if value < 1000:
        return f"{value:5.1f}"
    return f"{value:5.0f}" if value < 1e5 else "  big"


def column_widths(inner: int) -> tuple[int, int]:
    """(bar, label) widths for one channel in `inner` cells: 'NN ' + bar + ' ' + µV (5) + ' ' + label. The
    label keeps at least 4 cells ('flat', 'lif…') before the bar grows past 8; a wide panel names flags in full."""
    rest = inner - 3 - 1 - 5 - 1
    label = min(18, max(4, rest - 8))
    bar = max(3, min(MAX_BAR, rest - label))
    return bar, max(0, min(MAX_LABEL, rest - bar))


class RecordEmgLevels(Widget):
    """One line per channel; when the panel is shorter than the channel count, the channels go into columns."""

    levels: reactive[tuple[float, ...]] = reactive(())
    """RMS per channel over the last 250 ms (µV)."""
    flags: reactive[tuple[str, ...]] = reactive(())
    """Signal-quality flags raised now, as the recorder words them (empty: the signal is sound)."""
    rate_hz: reactive[float] = reactive(0.0)
    """EMG samples per second actually arriving."""

    def flagged(self) -> list[list[str]]:
        """Per channel, the labels of its raised flags (empty list: the channel is sound)."""
        return channel_flags(self.flags, len(self.levels))

    def on_mount(self) -> None:
        self.watch_rate_hz()

    def watch_rate_hz(self) -> None:
        # in the title: the panels have only a top border (the dashboard's look), a subtitle would not show
        rate = f"{self.rate_hz:.0f} Hz" if self.rate_hz > 0 else "NO SAMPLES"
        self.border_title = f"EMG µV RMS · {rate} · quality"

    def render(self) -> Text:
        n = len(self.levels)
        if not n:
            return Text("no EMG yet", style="dim")
        per_channel = self.flagged()
        rows = max(1, self.size.height)
        columns = math.ceil(n / rows)
        rows = math.ceil(n / columns)
        col_w = self.size.width // columns
        bar_w, label_w = column_widths(col_w - (1 if columns > 1 else 0))  # columns are one space apart
        out = Text(no_wrap=True, overflow="crop")
        for row in range(rows):
            if row:
                out.append("\n")
            for col in range(columns):
                ch = col * rows + row
                if ch >= n:
                    break
                uv = self.levels[ch]
                labels = per_channel[ch]
                filled = round(level(uv) * bar_w) if math.isfinite(uv) else 0
                out.append(f"{ch:>2} ", style="bold red" if labels else "bold")
                out.append("█" * filled, style="red" if labels else "green")
                out.append("░" * (bar_w - filled), style="grey30")
                out.append(" ")
                out.append(_uv(uv), style="bold red" if labels else "")
                out.append(" ")
                label = ",".join(labels) if labels else "ok"
                if len(label) > label_w:
                    label = label[: max(0, label_w - 1)] + "…" if label_w else ""
                out.append(label.ljust(label_w), style="bold red" if labels else "dim green")
                if col < columns - 1:
                    out.append(" ")
        return out
