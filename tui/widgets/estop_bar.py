"""The bar at the bottom of every screen: how to stop the hand, and the other keys of that screen."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

ESTOP_HINT = "E-STOP: press e"


class EstopBar(Widget):
    """One line: the e-stop key first, in red, then this screen's other keys."""

    hints: reactive[str] = reactive("? help  q quit")
    """The other keys of the screen this bar sits on, as shown."""

    def __init__(self, hints: str | None = None, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        if hints is not None:
            self.hints = hints

    def render(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f" {ESTOP_HINT} ", style="bold white on #b00000")
        text.append("  " + self.hints)
        return text
