"""The guidance screen of `mode2 record`: walks a person through the seed guide's five phases while the
recorder records, and shows whether what is being recorded is any good.

Data flow: the app asks `provider()` (the recorder's `snapshot`) for a `GuidanceSnapshot` every
`refresh_s` on a timer and pushes a changed one into the widgets' reactives; it never touches the
recorder otherwise. `q` asks first, then calls `on_stop()` once and keeps showing the snapshots until one
says `finished`; a finished snapshot is summed up for `summary_s` and the app exits with it as its return
value. So `mode2 record` runs

    last = RecordGuideApp(recorder.snapshot, on_stop=recorder.stop).run()

and `last` is None only when the screen was left without the recorder finishing (a second `q` after a
stop that does not complete, or a crash of the screen): the caller then stops and waits for the recorder.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual import events
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from tui.record_state import GuidanceSnapshot
from tui.screens import ConfirmScreen
from tui.widgets.record_camera import IK_ERROR_LIMIT_MM, MIN_CONFIDENCE, CameraPanel
from tui.widgets.record_emg import RecordEmgLevels
from tui.widgets.record_phase import PhasePanel
from tui.widgets.record_progress import PhaseStrip, clock, phases_done

SHORT_ROWS = 30  # below this terminal height the hand warning takes one line instead of three
SUMMARY_S = 2.0  # how long the final summary stays before the app exits (any key closes it at once)

# (key, what it does): the help screen's table and the README's, from one list
KEYS: tuple[tuple[str, str], ...] = (
    ("q", "stop recording (asks first); the file is closed with what was recorded so far"),
    ("q again", "after a confirmed stop: leave the screen now (the recorder still closes the file)"),
    ("?", "this help"),
    ("esc", "close this help / cancel a question"),
)
LEGEND: tuple[tuple[str, str], ...] = (
    ("phases", "✓ done  ▶ now  · to come; the bar below is the whole protocol, filled up to now"),
    ("EMG", "µV RMS per channel (0-based); red with the flag's name = a signal-quality flag is up"),
    ("hand", f"seen with the detection confidence (labels need > {MIN_CONFIDENCE:g})"),
    ("IK err", f"running median IK error: green < {IK_ERROR_LIMIT_MM:g} mm (kept for training), red otherwise"),
    ("red bar", "the hand has left the camera's view: bring it back"),
)


def shown_phase_index(snapshot: GuidanceSnapshot) -> int:
    """The phase to show as current. Once finished, the phase the recording ended in: a recorder may report
    `phase_index == len(phases)` for any ended recording, so the elapsed time decides how far it got."""
    if not snapshot.finished:
        return snapshot.phase_index
    return min(snapshot.phase_index, phases_done(snapshot.phases, snapshot.elapsed_s))


def final_title(snapshot: GuidanceSnapshot) -> str:
    if snapshot.error:
        return "Recording ended with an error"
    if shown_phase_index(snapshot) < len(snapshot.phases):
        return "Recording stopped early"
    return "Recording finished"


def summary_text(snapshot: GuidanceSnapshot) -> Text:
    """What was recorded, in a few lines (the summary screen's body)."""
    out = Text()
    done = min(shown_phase_index(snapshot), len(snapshot.phases))
    out.append(
        f"phases done {done}/{len(snapshot.phases)} · {clock(snapshot.elapsed_s)} of {clock(snapshot.total_s)}\n"
    )
    out.append(f"written: {snapshot.emg_samples:,} EMG samples · {snapshot.pose_frames:,} pose frames\n")
    if snapshot.error:
        out.append(f"error: {snapshot.error}\n", style="bold red")
    for note in snapshot.notes:
        out.append(f"note: {note}\n", style="yellow")
    out.rstrip()
    return out


class RecordHelpScreen(ModalScreen[None]):
    """The keys and what the colours mean; escape, ? or q closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,question_mark,q", "close", "close")]

    def compose(self) -> ComposeResult:
        keys = Table(box=None, show_header=False, pad_edge=False)
        keys.add_column("key", style="bold cyan", no_wrap=True)
        keys.add_column("does")
        for key, does in KEYS:
            keys.add_row(key, does)
        legend = Table(box=None, show_header=False, pad_edge=False)
        legend.add_column("what", style="bold", no_wrap=True)
        legend.add_column("means")
        for what, means in LEGEND:
            legend.add_row(what, means)
        with Vertical(id="help-box", classes="modal-box"):
            yield Static("Keys", classes="modal-title")
            yield Static(keys, id="help-keys")
            yield Static("On the screen", classes="modal-title")
            yield Static(legend, id="help-legend")

    def action_close(self) -> None:
        self.dismiss(None)


class StopConfirmScreen(ConfirmScreen):
    """Stop the recording? y/enter stops, n/escape/q goes back to recording (nothing happens). The dashboard's
    confirm modal (answers, focus on "no") with the recorder's wording and no e-stop bar."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y,enter", "answer(True)", "yes"),
        Binding("n,escape,q", "answer(False)", "no"),
    ]

    def __init__(self, detail: str) -> None:
        super().__init__("Stop recording?", detail)

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box", classes="modal-box"):
            yield Static(self.question, classes="modal-title")
            yield Static(self.detail, id="confirm-detail")
            with Horizontal(id="confirm-buttons"):
                yield Button("Stop (y)", id="yes", variant="error")
                yield Button("Keep recording (n)", id="no", variant="primary")


class SummaryScreen(ModalScreen[None]):
    """The last snapshot summed up; the app exits after `SUMMARY_S` or at any key."""

    def __init__(self, snapshot: GuidanceSnapshot) -> None:
        super().__init__()
        self.snapshot = snapshot

    def compose(self) -> ComposeResult:
        box_classes = "modal-box -error" if self.snapshot.error else "modal-box"
        with Vertical(id="summary-box", classes=box_classes):
            yield Static(final_title(self.snapshot), classes="modal-title", id="summary-title")
            yield Static(summary_text(self.snapshot), id="summary-body")
            yield Static("closing… (any key closes now)", id="summary-hint")

    def on_key(self, event: events.Key) -> None:
        event.stop()
        self.dismiss(None)


class RecordGuideApp(App[GuidanceSnapshot | None]):
    """The guidance screen over a snapshot provider; see the module docstring for the calling contract."""

    CSS_PATH = "record_screen.tcss"
    TITLE = "mode2 record"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "stop", "stop recording"),
        # Textual's own quit keys would leave the recorder running unseen: they ask to stop, like q
        Binding("ctrl+q,ctrl+c", "stop", "stop recording", show=False, priority=True),
        Binding("question_mark", "help", "help"),
    ]

    def __init__(
        self,
        provider: Callable[[], GuidanceSnapshot],
        *,
        on_stop: Callable[[], None],
        refresh_s: float = 0.1,
        summary_s: float = SUMMARY_S,
    ) -> None:
        super().__init__()
        self.provider = provider
        self.on_stop = on_stop
        self.refresh_s = refresh_s
        self.summary_s = summary_s
        self.snapshot: GuidanceSnapshot | None = None  # the last snapshot shown
        self.stop_requested = False  # on_stop() was called (it is called at most once)
        self.finished = False  # a finished snapshot arrived: the summary is up, polling has ended
        self.left = False  # the app has asked to exit (it does so once)

    # -- layout ------------------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        # the app keeps its own references: `query_one` would search whichever screen is on top (a modal)
        self.error_banner = Static("", id="error")
        self.strip = PhaseStrip(id="strip")
        self.phase_panel = PhasePanel(id="phase")
        self.hand_warning = Static("", id="hand-warning")
        self.emg = RecordEmgLevels(id="emg")
        self.camera = CameraPanel(id="camera")
        self.notes = Static("", id="notes")
        self.keys_bar = Static("", id="keys")
        yield self.error_banner
        yield self.strip
        yield self.phase_panel
        yield self.hand_warning
        with Horizontal(id="body"):
            yield self.emg
            yield self.camera
        yield self.notes
        yield self.keys_bar

    def on_mount(self) -> None:
        self.camera.border_title = "camera · IK"
        self.error_banner.display = False
        self.hand_warning.display = False
        self.notes.display = False
        self._show_keys()
        self.set_interval(self.refresh_s, self.poll)
        self.poll()

    def on_resize(self, event: events.Resize) -> None:
        self.screen.set_class(event.size.height < SHORT_ROWS, "-short")

    # -- the snapshots -----------------------------------------------------------------------------------

    def poll(self) -> None:
        """Ask the recorder how things stand; show it if it changed; on `finished`, sum up and leave."""
        if self.finished:
            return
        snapshot = self.provider()
        if snapshot != self.snapshot:
            self.show(snapshot)
        if snapshot.finished:
            self._finish(snapshot)

    def show(self, snap: GuidanceSnapshot) -> None:
        """Push one snapshot into the widgets."""
        self.snapshot = snap
        strip = self.strip
        strip.phases = snap.phases
        index = shown_phase_index(snap)
        strip.phase_index = index
        strip.elapsed_s = snap.elapsed_s

        panel = self.phase_panel
        n = len(snap.phases)
        phase = snap.phases[index] if 0 <= index < n else None
        if phase is None:
            panel.title = "protocol complete" if n and index >= n else "starting"
        elif snap.finished:
            panel.title = f"stopped in phase {index + 1}/{n} · {phase.title}"
        else:
            panel.title = f"phase {index + 1}/{n} · {phase.title}"
        if self.stop_requested and not snap.finished:
            panel.title += " · STOPPING: closing the file…"
        panel.remaining_s = snap.phase_remaining_s if phase is not None and not snap.finished else 0.0
        panel.instruction = snap.instruction
        panel.gesture = snap.gesture

        self.error_banner.display = bool(snap.error)
        if snap.error:
            self.error_banner.update(Text.assemble(("ERROR  ", "bold"), snap.error))

        out = snap.hand_out_of_frame
        self.hand_warning.display = out
        if out:
            gone = f"⚠  HAND OUT OF FRAME for {snap.seconds_without_hand:.1f} s"
            self.hand_warning.update(f"{gone} — bring your hand back into the camera's view")

        emg = self.emg
        emg.levels = snap.emg_rms_uv
        emg.flags = snap.emg_flags
        emg.rate_hz = snap.emg_rate_hz

        camera = self.camera
        camera.hand_detected = snap.hand_detected
        camera.confidence = snap.mp_confidence
        camera.seconds_without_hand = snap.seconds_without_hand
        camera.out_of_frame = snap.hand_out_of_frame
        camera.camera_fps = snap.camera_fps
        camera.ik_error_mm = snap.ik_error_mm
        camera.emg_samples = snap.emg_samples
        camera.pose_frames = snap.pose_frames

        self.notes.display = bool(snap.notes)
        if snap.notes:
            self.notes.update("\n".join(f"note: {note}" for note in snap.notes))

    def _finish(self, snapshot: GuidanceSnapshot) -> None:
        self.finished = True
        self._show_keys()
        if isinstance(self.screen, ModalScreen):
            self.screen.dismiss()  # a question or the help: the recording is over, nothing left to ask
        self.push_screen(SummaryScreen(snapshot), lambda _: self._leave(snapshot))
        self.set_timer(self.summary_s, lambda: self._leave(snapshot))

    def _leave(self, result: GuidanceSnapshot | None) -> None:
        if not self.left:
            self.left = True
            self.exit(result)

    def _show_keys(self) -> None:
        text = Text(no_wrap=True, overflow="ellipsis")
        if self.finished:
            text.append(" RECORDING DONE ", style="bold black on green")
            text.append("  closing…")
        elif self.stop_requested:
            text.append(" STOPPING ", style="bold black on #c9a400")
            text.append("  waiting for the recorder to close the file   q leave now   ? help")
        else:
            text.append(" ● REC ", style="bold white on #b00000")
            text.append("  q stop recording   ? help")
        self.keys_bar.update(text)

    # -- keys --------------------------------------------------------------------------------------------

    def action_stop(self) -> None:
        if self.finished or isinstance(self.screen, StopConfirmScreen):
            return
        if self.stop_requested:
            self._leave(None)  # a finished snapshot would have ended the app already
            return
        snap = self.snapshot
        if snap is not None and snap.phase is not None:
            where = f"phase {snap.phase_index + 1} of {len(snap.phases)} ({snap.phase.title}), {clock(snap.elapsed_s)}"
            detail = f"Now in {where}. The file is closed with what was recorded so far."
        else:
            detail = "The file is closed with what was recorded so far."
        self.push_screen(StopConfirmScreen(detail), self._stop_answered)

    def _stop_answered(self, yes: bool | None) -> None:
        if not yes or self.stop_requested or self.finished:
            return
        self.stop_requested = True
        self.on_stop()
        self._show_keys()
        if self.snapshot is not None:
            self.show(self.snapshot)

    def action_help(self) -> None:
        if not isinstance(self.screen, ModalScreen):
            self.push_screen(RecordHelpScreen())
