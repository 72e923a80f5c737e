"""The help screen (every key) and the confirm modal; both keep the e-stop bar at the bottom."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from tui.widgets.estop_bar import EstopBar

# (key, what it does, where): the help screen's table and the README's, from one list
KEYS: tuple[tuple[str, str, str], ...] = (
    ("e", "E-STOP now: latch the runtime's e-stop (no confirmation)", "every screen"),
    ("c", "clear the e-stop (asks first; the runtime stays disarmed)", "live"),
    ("a", "arm / disarm (asks first)", "live"),
    ("+ / -", "gate threshold ± 0.05 (asks first, showing old → new)", "live"),
    ("space", "pause / resume", "replay"),
    ("← / →", "seek 5 s back / forward", "replay"),
    ("[ / ]", "replay slower / faster (0.25× … 8×)", "replay"),
    ("?", "this help", ""),
    ("q", "quit the dashboard (the runtime keeps running)", ""),
)


class HelpScreen(ModalScreen[None]):
    """Every key of the dashboard; any of escape, ? or q closes it."""

    BINDINGS = [  # noqa: RUF012 (Textual's declared class attribute)
        Binding("escape,question_mark,q", "close", "close"),
    ]

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
        table.add_column("key", style="bold cyan", no_wrap=True)
        table.add_column("does")
        table.add_column("on", style="dim", no_wrap=True)
        for key, does, where in KEYS:
            table.add_row(key, does, where)
        with Vertical(id="help-box"):
            yield Static("Keys", id="help-title")
            yield Static(table, id="help-table")
            yield Static(
                "Control keys go to the runtime over the telemetry socket; acks appear in the log.", id="help-note"
            )
        yield EstopBar("esc close help")

    def action_close(self) -> None:
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    """Ask before sending a control request: y/enter sends, n/escape cancels (nothing is sent)."""

    BINDINGS = [  # noqa: RUF012
        Binding("y,enter", "answer(True)", "yes"),
        Binding("n,escape", "answer(False)", "no"),
    ]

    def __init__(self, question: str, detail: str = "") -> None:
        super().__init__()
        self.question = question
        self.detail = detail

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box"):
            yield Static(self.question, id="confirm-question")
            if self.detail:
                yield Static(self.detail, id="confirm-detail")
            with Horizontal(id="confirm-buttons"):
                yield Button("Yes (y)", id="yes", variant="warning")
                yield Button("No (n / esc)", id="no", variant="primary")
        yield EstopBar("y confirm  n cancel")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
