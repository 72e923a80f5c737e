"""Where a replay is: hop i of total, time into the run, speed, paused."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget


class ReplayBar(Widget):
    """A one-line position bar; hidden (by the app) on live feeds."""

    index: reactive[int] = reactive(0)
    """Hop index of the last hop handed out."""
    total: reactive[int] = reactive(0)
    """Hops in the run file."""
    t: reactive[float] = reactive(0.0)
    """Seconds into the run."""
    speed: reactive[float] = reactive(1.0)
    """Replay speed (× real time)."""
    paused: reactive[bool] = reactive(False)
    """Whether the replay is paused."""

    def render(self) -> Text:
        width = self.size.width
        head = Text(no_wrap=True)
        head.append(" PAUSED " if self.paused else " ▶ ", style="bold black on yellow" if self.paused else "bold green")
        head.append(f" hop {self.index}/{self.total}  t {self.t:6.1f} s  {self.speed:g}× ")
        bar_w = max(0, width - head.cell_len - 1)
        frac = 0.0 if self.total <= 1 else min(1.0, self.index / (self.total - 1))
        done = round(frac * bar_w)
        head.append("━" * done, style="bold cyan")
        head.append("─" * (bar_w - done), style="grey35")
        return head
