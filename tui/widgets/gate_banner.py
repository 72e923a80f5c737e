"""The top bar: may the hand move? The gate state big and coloured, armed or not, and why not."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Static

STATE_CLASSES = {"ACTIVE": "-active", "HOLD": "-hold", "SAFE": "-safe", "ESTOP": "-estop"}
DISCONNECTED = "DISCONNECTED"
NO_DATA = "NO DATA"  # connected, but the runtime has stopped sending hops
WAITING = "WAITING"


class GateBanner(Widget):
    """The gate state as a coloured block, and beside it armed/e-stop, the reason and confidence."""

    state: reactive[str] = reactive(WAITING)
    """ACTIVE / HOLD / SAFE / ESTOP from the last hop, DISCONNECTED when the feed says so, NO DATA when a
    connected runtime has sent no hop for a second, WAITING before."""
    armed: reactive[bool | None] = reactive(None)
    """Armed on purpose (None: not known yet)."""
    estop_since: reactive[str] = reactive("")
    """When the latched e-stop latched ("" when none is latched), as shown."""
    reason: reactive[str] = reactive("")
    """Why the gate is closed, or why there is no data (the feed's status detail)."""
    confidence: reactive[float | None] = reactive(None)
    """Calibrated confidence of the last hop."""
    threshold: reactive[float | None] = reactive(None)
    """The gate threshold of the last hop."""

    def compose(self) -> ComposeResult:
        # kept as attributes: a watcher may run while the app shuts down, when a query would find nothing
        self._state_label, self._armed_line = Static(id="gate-state"), Static(id="gate-armed")
        self._reason_line, self._info_line = Static(id="gate-reason"), Static(id="gate-info")
        yield self._state_label
        with Vertical(id="gate-detail"):
            yield self._armed_line
            yield self._reason_line
            yield self._info_line

    def _show_state(self) -> None:
        label = "E-STOP" if self.state == "ESTOP" else self.state
        self._state_label.update(label)
        for cls in (*STATE_CLASSES.values(), "-disconnected", "-waiting"):
            self.remove_class(cls)
        if self.state in (DISCONNECTED, NO_DATA):
            self.add_class("-disconnected")
        else:
            self.add_class(STATE_CLASSES.get(self.state, "-waiting"))

    def _show_detail(self) -> None:
        line = Text(no_wrap=True, overflow="ellipsis")
        if self.estop_since:
            line.append(f"E-STOP latched {self.estop_since}", style="bold white on #b00000")
            line.append("  ")
        stale = self.state in (DISCONNECTED, NO_DATA)  # what the last hop said, no longer known to hold
        if stale and self.armed is not None:
            line.append("last known: ", style="dim")
        if self.armed is True:
            line.append("ARMED", style="dim green" if stale else "bold green")
        elif self.armed is False:
            line.append("DISARMED", style="dim yellow" if stale else "bold yellow")
        self._armed_line.update(line)
        info = Text()
        if self.confidence is not None or self.threshold is not None:
            conf = "—" if self.confidence is None else f"{self.confidence:.2f}"
            thr = "—" if self.threshold is None else f"{self.threshold:.2f}"
            info.append(f"confidence {conf}  threshold {thr}", style="dim" if stale else "")
        self._info_line.update(info)
        reason = Text(self.reason, no_wrap=True, overflow="ellipsis")
        if self.state == "ACTIVE" and not self.reason:
            reason = Text("gate open: commands follow the model", style="green")
        self._reason_line.update(reason)

    def on_mount(self) -> None:
        self._show_state()
        self._show_detail()

    def watch_state(self) -> None:
        if self.is_mounted:
            self._show_state()
            self._show_detail()

    def watch_armed(self) -> None:
        if self.is_mounted:
            self._show_detail()

    watch_estop_since = watch_armed
    watch_reason = watch_armed
    watch_confidence = watch_armed
    watch_threshold = watch_armed
