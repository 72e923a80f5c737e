"""The event log: runtime events, acks, link status changes and what this dashboard did."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import RichLog

LEVEL_STYLES = {"info": "", "ok": "green", "warn": "yellow", "alarm": "bold red", "local": "cyan"}


class EventLog(RichLog):
    """A scrolling log, newest at the bottom; each line is "stamp  text"."""

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(max_lines=500, wrap=False, markup=False, name=name, id=id, classes=classes)

    def add(self, stamp: str, text: str, level: str = "info") -> None:
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append(f"{stamp} ", style="dim")
        line.append(text, style=LEVEL_STYLES.get(level, ""))
        self.write(line)
