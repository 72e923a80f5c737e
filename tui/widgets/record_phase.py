"""The current phase: a big countdown, the gesture to hold (large, during gesture holds) and the instruction."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Digits, Static

from tui.widgets.record_progress import countdown


def big_word(gesture: str) -> str:
    """A gesture name as the person should read it from a metre away: upper case, letters spaced."""
    words = gesture.replace("_", " ").replace("-", " ").upper().split()
    return "   ".join(" ".join(word) for word in words)


class PhasePanel(Widget):
    """What to do now. The app sets the reactives from each snapshot; the border title names the phase."""

    title: reactive[str] = reactive("")
    """The phase's title ("Rest / calibration"), or what the recording is doing when no phase runs."""
    remaining_s: reactive[float] = reactive(0.0)
    """The phase's countdown."""
    instruction: reactive[str] = reactive("")
    """What the person is asked to do now."""
    gesture: reactive[str | None] = reactive(None)
    """The gesture to hold now (None outside gesture holds)."""

    def compose(self) -> ComposeResult:
        # kept as attributes: a watcher may run while the app shuts down, when a query would find nothing
        self.countdown_digits = Digits("", id="countdown")
        self.gesture_line = Static("", id="gesture")
        self.instruction_line = Static("", id="instruction")
        with Vertical(id="countdown-box"):
            yield self.countdown_digits
        with Vertical(id="phase-text"):
            yield self.gesture_line
            yield self.instruction_line

    def on_mount(self) -> None:
        self._show()

    def _show(self) -> None:
        self.border_title = self.title
        self.countdown_digits.update(countdown(self.remaining_s))
        self.countdown_digits.set_class(0 < self.remaining_s <= 3.0, "-ending")
        self.gesture_line.display = bool(self.gesture)
        if self.gesture:
            self.gesture_line.update(Text.assemble(("HOLD  ", "bold"), (big_word(self.gesture), "bold")))
        self.instruction_line.update(self.instruction)

    def watch_title(self) -> None:
        if self.is_mounted:
            self._show()

    watch_remaining_s = watch_title
    watch_instruction = watch_title
    watch_gesture = watch_title
