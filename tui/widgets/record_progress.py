"""The recording protocol at a glance: each phase done / now / to come, a bar over the whole run, the time."""

from __future__ import annotations

import math

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from tui.record_state import PhaseInfo

DONE, NOW, TO_COME = "✓", "▶", "·"
END_TOLERANCE_S = 0.01  # a protocol that ends this close to its total has run to its end
STYLES = {DONE: "green", NOW: "bold black on #c9a400", TO_COME: "grey50"}


def clock(seconds: float) -> str:
    """Seconds as m:ss (h:mm:ss from an hour on); negative values show as 0:00."""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def countdown(seconds: float) -> str:
    """A countdown rounds up: it shows 0:01 until the phase is over, never 0:00 while time is left."""
    return clock(math.ceil(max(0.0, seconds) - 1e-9))


def phases_done(phases: tuple[PhaseInfo, ...], elapsed_s: float) -> int:
    """How many phases had run to their end `elapsed_s` into the protocol (== len(phases): all of them)."""
    end, done = 0.0, 0
    for phase in phases:
        end += phase.duration_s
        if elapsed_s + END_TOLERANCE_S < end:
            break
        done += 1
    return done


def phase_mark(i: int, current: int) -> str:
    return DONE if i < current else NOW if i == current else TO_COME


LABEL_FORMS = (
    " {mark} {number} {title}",
    "{mark} {number} {title}",
    "{mark} {title}",
    "{mark} {number} {name}",
    "{mark} {name}",
)


def phase_labels(phases: tuple[PhaseInfo, ...], current: int, width: int) -> list[str]:
    """One label per phase, all in the same form: the first of `LABEL_FORMS` in which every label fits
    `width` (titles, then the shorter machine names), else the titles cut with an ellipsis."""
    fields = [
        dict(mark=phase_mark(i, current), number=i + 1, title=p.title, name=p.name.replace("_", " "))
        for i, p in enumerate(phases)
    ]
    for form in LABEL_FORMS:
        labels = [form.format(**f) for f in fields]
        if all(len(label) <= width for label in labels):
            return labels
    labels = [LABEL_FORMS[2].format(**f) for f in fields]
    return [label if len(label) <= width else label[: max(1, width - 1)] + "…" for label in labels]


class PhaseStrip(Widget):
    """Two lines: the phases as equal cells (mark, number, title), then a bar whose segments are as long as
    the phases, filled up to the time elapsed, and `elapsed / total` at its end."""

    phases: reactive[tuple[PhaseInfo, ...]] = reactive(())
    """The protocol, as the recorder scaled it."""
    phase_index: reactive[int] = reactive(0)
    """The current phase (== len(phases) once the protocol is over)."""
    elapsed_s: reactive[float] = reactive(0.0)
    """Since the protocol started."""

    def marks(self) -> str:
        """The marks of all phases in order (what tests and the headless eye read): e.g. '✓▶···'."""
        return "".join(phase_mark(i, self.phase_index) for i in range(len(self.phases)))

    def render(self) -> Text:
        width = self.size.width
        n = len(self.phases)
        if not n:
            return Text("waiting for the recorder…", style="dim")
        out = Text(no_wrap=True, overflow="crop")
        cell = max(4, width // n)
        for i, label in enumerate(phase_labels(self.phases, self.phase_index, cell - 1)):
            out.append(label.ljust(cell - 1), style=STYLES[phase_mark(i, self.phase_index)])
            out.append(" ")
        out.append("\n")
        total = sum(p.duration_s for p in self.phases)
        time_text = f" {clock(self.elapsed_s)} / {clock(total)}"
        bar_w = max(0, width - len(time_text))
        ends = [sum(p.duration_s for p in self.phases[: i + 1]) for i in range(n)]
        for col in range(bar_w):
            t = (col + 0.5) / bar_w * total if total > 0 else 0.0
            owner = next((i for i, end in enumerate(ends) if t < end), n - 1)
            if t <= self.elapsed_s:
                out.append("█", style="green" if owner < self.phase_index else "#c9a400")
            else:
                out.append("░", style="grey42" if owner % 2 else "grey27")  # alternate shades show the phases
        out.append(time_text, style="bold")
        return out
