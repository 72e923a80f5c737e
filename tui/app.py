"""The dashboard: one glance says whether the hand may move, why not, and how to stop it.

Data flow (Textual as intended): one thread worker loops `feed.read(0.1)` and posts each message to the
app as a typed Message (`HelloReceived`, `HopReceived`, ...). The app's handlers run on the UI thread:
every hop goes into `HopHistory` (series and counters miss nothing), but the widgets' reactives are set
from the newest hop only on a `RENDER_HZ` timer, so a 20 Hz runtime, or a replay at 8×, never makes the
screen redraw faster than it usefully can. Nothing on the UI thread waits on the feed: `send()` on a live
feed only queues a line on a socket.
"""

from __future__ import annotations

import math
import time
from typing import Any, ClassVar, Protocol, runtime_checkable

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.worker import get_current_worker

from tui.feed import Feed, FeedReadOnly
from tui.history import HopHistory, as_float
from tui.screens import ConfirmScreen, HelpScreen
from tui.widgets.confidence_plot import ConfidencePlot
from tui.widgets.emg_levels import EmgLevels
from tui.widgets.estop_bar import EstopBar
from tui.widgets.event_log import EventLog
from tui.widgets.gate_banner import DISCONNECTED, NO_DATA, GateBanner
from tui.widgets.hand_view import HandView
from tui.widgets.health_panel import HealthPanel
from tui.widgets.joint_bars import JointBars
from tui.widgets.link_panel import LinkPanel
from tui.widgets.replay_bar import ReplayBar

RENDER_HZ = 10.0
PLOT_HZ = 5.0  # plotext rebuilds the whole figure on every change (~10–30 ms at 140×44): redraw it less often
THRESHOLD_STEP = 0.05
SEEK_S = 5.0
SILENT_S = 1.0  # a live runtime that is connected but sends no hop for this long is shown as NO DATA
CONTROL_ACTIONS = frozenset({"clear_estop", "toggle_arm", "threshold"})
REPLAY_ACTIONS = frozenset({"toggle_pause", "seek", "speed"})
EVENT_LEVELS = {
    "estop_latched": "alarm",
    "link_lost": "alarm",
    "device_fault": "alarm",
    "stream_stall": "warn",
    "stopping": "warn",
    "estop_cleared": "ok",
    "link_restored": "ok",
    "armed": "ok",
    "disarmed": "warn",
    "control_refused": "warn",
}


@runtime_checkable
class ReplayControls(Protocol):
    """What a replay feed offers besides `Feed` (tui/replay_feed.py `ReplayFeed`)."""

    def toggle_pause(self) -> None: ...
    def seek(self, seconds: float) -> None: ...
    def speed_up(self) -> None: ...
    def speed_down(self) -> None: ...


class FeedMessage(Message):
    """One message from the feed, as the plain dict of docs/TELEMETRY.md (or tui/feed.py's own types)."""

    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__()
        self.data = data


class HelloReceived(FeedMessage):
    """A (new) hello: channel names, quality bits, hand limits."""


class HopReceived(FeedMessage):
    """One runtime hop snapshot."""


class EventReceived(FeedMessage):
    """Something the runtime reports between hops (armed, estop_latched, link_lost, ...)."""


class AckReceived(FeedMessage):
    """The runtime's answer to one of our control requests."""


class StatusChanged(FeedMessage):
    """The feed's link to its data changed (tui/feed.py `status`)."""


class PositionChanged(FeedMessage):
    """Where a replay is (tui/feed.py `position`)."""


class ByeReceived(FeedMessage):
    """The runtime said it is going away."""


MESSAGE_TYPES: dict[str, type[FeedMessage]] = {
    "hello": HelloReceived,
    "hop": HopReceived,
    "event": EventReceived,
    "ack": AckReceived,
    "status": StatusChanged,
    "position": PositionChanged,
    "bye": ByeReceived,
}


def clock_text(wall: Any) -> str | None:
    """A wall-clock stamp (s since the epoch) as local HH:MM:SS, or None when the message has none."""
    value = as_float(wall)
    return None if value is None else time.strftime("%H:%M:%S", time.localtime(value))


class DashboardApp(App[None]):
    """The whole screen over one `Feed`: live (`--attach`, `--demo`) or replayed (`--replay`)."""

    CSS_PATH = "dashboard.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("e", "estop", "E-STOP", priority=True),
        Binding("c", "clear_estop", "clear e-stop"),
        Binding("a", "toggle_arm", "arm/disarm"),
        Binding("plus,equals_sign", f"threshold({THRESHOLD_STEP})", "threshold +"),
        Binding("minus", f"threshold({-THRESHOLD_STEP})", "threshold -"),
        Binding("space", "toggle_pause", "pause"),
        Binding("left", f"seek({-SEEK_S})", "back"),
        Binding("right", f"seek({SEEK_S})", "forward"),
        Binding("left_square_bracket", "speed(-1)", "slower"),
        Binding("right_square_bracket", "speed(1)", "faster"),
        Binding("question_mark", "help", "help"),
        Binding("q", "quit", "quit"),
    ]

    def __init__(
        self,
        feed: Feed,
        *,
        title: str = "mode2 dashboard",
        render_hz: float = RENDER_HZ,
        silent_after_s: float | None = None,
    ) -> None:
        super().__init__()
        self.silent_after_s = SILENT_S if silent_after_s is None else silent_after_s
        self.feed = feed
        self.title = title
        self.render_hz = render_hz
        self.history = HopHistory()
        self.hello: dict[str, Any] = {}
        self.latest: dict[str, Any] | None = None
        self.connected = True
        self.status_detail = ""
        self.estop_since = ""
        self.sent: list[tuple[int, str, float | None]] = []  # (request id, command, value) in send order
        self._pending: dict[int, str] = {}
        self._dirty = False
        self._last_state: str | None = None
        self._plot_at = 0.0
        self._last_hop_at = time.monotonic()  # when the last hop arrived (live feeds: silence is shown)
        self.silent = False  # connected, but no hop for SILENT_S: what the screen shows is no longer known
        self.handled = 0  # feed messages handled (tests wait on it)
        self.frames = 0  # times the widgets were updated from a hop (at most render_hz a second)

    # -- layout ------------------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        # the app keeps its own references: `query_one` would search whichever screen is on top (a modal)
        self.banner, self.replay_bar = GateBanner(id="banner"), ReplayBar(id="replay")
        self.emg, self.plot = EmgLevels(id="emg"), ConfidencePlot(id="confidence")
        self.hand, self.joint_bars = HandView(id="hand"), JointBars(id="joints")
        self.link, self.health, self.event_log = LinkPanel(id="link"), HealthPanel(id="health"), EventLog(id="log")
        yield self.banner
        yield self.replay_bar
        with Horizontal(id="body") as self.body:
            with Vertical(id="left"):
                yield self.emg
                yield self.plot
            with Vertical(id="right"):
                with Horizontal(id="hand-row"):
                    yield self.hand
                    yield self.joint_bars
                with Horizontal(id="status-row"):
                    yield self.link
                    yield self.health
                yield self.event_log
        hints = "? help  a arm  c clear  +/- thr  q quit"
        if not self.feed.live:
            hints = "? help  space pause  ←/→ seek  [/] speed  q quit"
        yield EstopBar(hints, id="estop-bar")

    def on_mount(self) -> None:
        titles = {
            "#emg": "EMG µV · quality",
            "#confidence": "confidence · threshold",
            "#hand": "hand",
            "#joints": "commands (rad)",
            "#link": "serial link",
            "#health": "loop health",
            "#log": "events",
        }
        for selector, text in titles.items():
            self.screen.query_one(selector).border_title = text
        self.replay_bar.display = isinstance(self.feed, ReplayControls)
        self.log_line(f"{self.title}: press ? for the keys", stamp=" " * 8)
        self.set_interval(1.0 / self.render_hz, self.render_latest)
        if self.feed.live and math.isfinite(self.silent_after_s):
            self.set_interval(self.silent_after_s / 4, self.check_silence)
        self._read_feed()

    # -- the feed ----------------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, name="feed reader", exit_on_error=True)
    def _read_feed(self) -> None:
        worker = get_current_worker()
        while not worker.is_cancelled:
            message = self.feed.read(0.1)
            if message is None:
                continue
            kind = MESSAGE_TYPES.get(str(message.get("type")))
            if kind is not None:  # unknown message types are ignored, as the contract asks
                self.post_message(kind(message))

    def on_unmount(self) -> None:
        self.workers.cancel_all()

    def on_hello_received(self, message: HelloReceived) -> None:
        self.handled += 1
        self.hello = message.data
        hand = self.hello.get("hand") or {}
        limits = []
        for j in hand.get("joints") or []:
            lo, hi = as_float(j.get("min_rad")), as_float(j.get("max_rad"))
            limits.append((str(j.get("name", "?")), 0.0 if lo is None else lo, 1.0 if hi is None else hi))
        self.joint_bars.limits = tuple(limits)
        self.emg.bit_names = dict(self.hello.get("quality_bits") or {})
        hop_ms = as_float(self.hello.get("hop_ms"))
        if hop_ms:
            self.plot.hop_s = hop_ms / 1000.0
        source = self.hello.get("source") or (self.hello.get("replay") or {}).get("path") or ""
        self.log_line(f"hello from {self.hello.get('client', '?')}: software {self.hello.get('software')} {source}")

    def on_hop_received(self, message: HopReceived) -> None:
        self.handled += 1
        hop = message.data
        self.history.add(hop)
        self.latest = hop
        self._last_hop_at = time.monotonic()
        if self.silent:
            self.silent = False
            self.log_line("hops from the runtime again", level="ok")
        self._dirty = True
        state = hop.get("state")
        if state != self._last_state and self._last_state is not None:
            reason = hop.get("gate_reason") or ""
            self.log_line(f"gate {self._last_state} → {state}" + (f": {reason}" if reason else ""), self._stamp(hop))
        self._last_state = state
        if hop.get("estop") and not self.estop_since:
            self._latched(self._stamp(hop))
        elif hop.get("estop") is False and self.estop_since:
            self.estop_since = ""

    def on_event_received(self, message: EventReceived) -> None:
        self.handled += 1
        event = message.data
        kind = str(event.get("kind", "event"))
        detail = event.get("detail") or ""
        stamp = self._stamp(event)
        self.log_line(f"{kind}: {detail}" if detail else kind, stamp, EVENT_LEVELS.get(kind, "info"))
        if kind == "estop_latched":
            self._latched(stamp)
        elif kind == "estop_cleared":
            self.estop_since = ""
        self._dirty = True

    def on_ack_received(self, message: AckReceived) -> None:
        self.handled += 1
        ack = message.data
        request = ack.get("id")
        pending = self._pending.pop(request, None) if isinstance(request, int) else None
        command = ack.get("command") or pending or "?"
        ok = bool(ack.get("ok"))
        detail = ack.get("detail") or ""
        self.log_line(
            f"ack #{request} {command}: {'ok' if ok else 'REFUSED'} {detail}".rstrip(), level="ok" if ok else "alarm"
        )

    def on_status_changed(self, message: StatusChanged) -> None:
        self.handled += 1
        status = message.data
        connected = bool(status.get("connected"))
        self.status_detail = str(status.get("detail") or "")
        if connected != self.connected or self.status_detail:
            self.log_line(
                self.status_detail or ("connected" if connected else "disconnected"),
                level="info" if connected else "alarm",
            )
        if connected and not self.connected:
            self.history.restart()
            self._last_hop_at = time.monotonic()  # silence counts from the reconnection
            self.silent = False
        self.connected = connected
        self._dirty = True
        self.render_latest()

    def on_position_changed(self, message: PositionChanged) -> None:
        self.handled += 1
        pos = message.data
        bar = self.replay_bar
        index = pos.get("index")
        if isinstance(index, int) and not bar.index - 1 <= index <= bar.index + 25:
            self.history.restart()  # a seek: the series would join unrelated stretches
        bar.index = int(pos.get("index") or 0)
        bar.total = int(pos.get("total") or 0)
        bar.t = as_float(pos.get("t")) or 0.0
        bar.speed = as_float(pos.get("speed")) or 1.0
        bar.paused = bool(pos.get("paused"))

    def on_bye_received(self, message: ByeReceived) -> None:
        self.handled += 1
        self.log_line(f"runtime says bye: {message.data.get('reason', '')}", level="warn")

    def check_silence(self) -> None:
        """A runtime can be connected and still say nothing (a hung loop): after `silent_after_s` without a
        hop the banner says NO DATA instead of showing the last gate state as if it still held."""
        quiet_s = time.monotonic() - self._last_hop_at
        if self.connected and self.latest is not None and quiet_s >= self.silent_after_s and not self.silent:
            self.silent = True
            self.log_line(f"no hop from the runtime for {quiet_s:.1f} s (still connected)", level="alarm")
            self._dirty = True

    # -- drawing (at most RENDER_HZ) -----------------------------------------------------------------------

    def render_latest(self, force: bool = False) -> None:
        """Push the newest hop into the widgets' reactives, if anything changed since the last frame."""
        if not (self._dirty or force):
            return
        self._dirty = False
        self.frames += 1
        banner = self.banner
        banner.estop_since = self.estop_since
        hop = self.latest
        self.body.set_class(not self.connected or self.silent, "-stale")
        if not self.connected:
            banner.state = DISCONNECTED
            banner.reason = self.status_detail or "no data from the runtime"
        elif self.silent:
            banner.state = NO_DATA
            banner.reason = f"connected, but no hop from the runtime for more than {self.silent_after_s:g} s"
        if hop is None:
            if self.connected:
                banner.reason = self.status_detail or "waiting for the first hop"
            return
        if self.connected and not self.silent:
            banner.state = str(hop.get("state") or "?")
            reasons = [str(hop.get("gate_reason") or "")]
            quality = str(hop.get("quality_reason") or "")
            if quality and quality not in reasons[0]:
                reasons.append(f"signal: {quality}")
            advisory = str(hop.get("quality_advisory") or "")
            if advisory:  # a flag up that does not close the gate (mains the model's filter removes)
                reasons.append(f"advisory: {advisory}")
            banner.reason = " · ".join(r for r in reasons if r)
        banner.armed = hop.get("armed") if isinstance(hop.get("armed"), bool) else None
        banner.confidence = as_float(hop.get("confidence"))
        banner.threshold = as_float(hop.get("threshold"))

        emg = self.emg
        emg.levels = tuple(as_float(v) or 0.0 for v in hop.get("emg_rms_uv") or ())
        emg.flags = tuple(int(v or 0) for v in hop.get("quality_flags") or ())
        emg.history = tuple(self.history.emg)

        now = time.monotonic()
        if force or now - self._plot_at >= 1.0 / PLOT_HZ:
            self._plot_at = now
            self.plot.threshold = as_float(hop.get("threshold"))
            self.plot.series = tuple(self.history.confidence)

        joints = hop.get("joints") or ()
        self.hand.joints = tuple(tuple(as_float(c) or 0.0 for c in j) for j in joints)
        self.joint_bars.targets = tuple(as_float(v) for v in hop.get("targets") or ())

        link = self.link
        link.link_state = str(hop.get("link_state") or "")
        link.device_state = _int(hop.get("device_state"), -1)
        link.sent = _int(hop.get("sent"), None)
        link.acked = _int(hop.get("acked"), 0)
        link.seq_gaps = self.history.seq_gaps
        link.device_faults = _int(hop.get("device_faults"), 0)
        link.rtt_ms = as_float(hop.get("rtt_ms"))

        health = self.health
        health.infer_ms = as_float(hop.get("infer_ms"))
        health.duty = as_float(hop.get("duty"))
        health.latency_p50 = as_float(hop.get("latency_ms_p50"))
        health.latency_p99 = as_float(hop.get("latency_ms_p99"))
        health.drops = _int(hop.get("drops"), None)
        health.missed_hops = _int(hop.get("missed_hops"), 0)
        health.stream_gaps = _int(hop.get("stream_gaps"), 0)
        health.stream_duplicates = _int(hop.get("stream_duplicates"), 0)
        health.stream_stalls = _int(hop.get("stream_stalls"), None)

    # -- the log -------------------------------------------------------------------------------------------

    def _stamp(self, message: dict[str, Any] | None = None) -> str:
        """The time to show for a message: its wall clock; in a replay without one, the replay position."""
        stamp = clock_text((message or {}).get("wall"))
        if stamp is None and self.latest is not None:
            stamp = clock_text(self.latest.get("wall"))
        if stamp is None and isinstance(self.feed, ReplayControls):
            stamp = f"+{self.replay_bar.t:.1f}s"
        return stamp or " " * 8  # no clock known yet (messages before the first hop)

    def log_line(self, text: str, stamp: str | None = None, level: str = "info") -> None:
        self.event_log.add(stamp or self._stamp(), text, level)

    def _latched(self, stamp: str) -> None:
        if not self.estop_since:
            self.estop_since = stamp
            self._dirty = True

    # -- keys --------------------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "estop":
            return True
        if isinstance(self.screen, ModalScreen):
            return False  # a modal is up: only the e-stop (and the modal's own keys) act
        if action in REPLAY_ACTIONS:
            return isinstance(self.feed, ReplayControls)
        return True

    def action_estop(self) -> None:
        if isinstance(self.screen, ConfirmScreen):
            self.screen.dismiss(False)  # an e-stop overrides whatever was being confirmed
        self._send("estop")

    def action_clear_estop(self) -> None:
        if self._read_only():
            return
        self._confirm("Clear the e-stop?", "The runtime stays disarmed until you arm it again.", "clear_estop")

    def action_toggle_arm(self) -> None:
        if self._read_only():
            return
        armed = bool(self.latest and self.latest.get("armed"))
        if armed:
            self._confirm("Disarm?", "Back to hold/safe commands only.", "disarm")
        else:
            self._confirm("ARM the hand?", "Active commands will follow the model whenever the gate opens.", "arm")

    def action_threshold(self, step: float) -> None:
        if self._read_only():
            return
        old = as_float(self.latest.get("threshold")) if self.latest else None
        if old is None:
            self.log_line("threshold: not known yet (no hop received)", level="warn")
            return
        new = round(min(1.0, max(0.0, old + step)), 2)
        if new == round(old, 2):
            self.log_line(f"threshold already at {old:.2f}", level="warn")
            return
        self._confirm("Change the gate threshold?", f"{old:.2f} → {new:.2f}", "set_threshold", new)

    def action_toggle_pause(self) -> None:
        if isinstance(self.feed, ReplayControls):
            self.feed.toggle_pause()

    def action_seek(self, seconds: float) -> None:
        if isinstance(self.feed, ReplayControls):
            self.feed.seek(seconds)

    def action_speed(self, direction: int) -> None:
        if isinstance(self.feed, ReplayControls):
            self.feed.speed_up() if direction > 0 else self.feed.speed_down()

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def _read_only(self) -> bool:
        """On a replay, say so instead of asking for a confirmation nobody could act on."""
        if self.feed.live:
            return False
        self.log_line("replay: no runtime to send to", level="warn")
        return True

    def _confirm(self, question: str, detail: str, command: str, value: float | None = None) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self._send(command, value)
            else:
                self.log_line(f"{command}: cancelled, nothing sent", level="local")

        self.push_screen(ConfirmScreen(question, detail), answered)

    def _send(self, command: str, value: float | None = None) -> None:
        shown = command if value is None else f"{command} {value:.2f}"
        try:
            request = self.feed.send(command, value)
        except FeedReadOnly:
            self.log_line("replay: no runtime to send to", level="warn")
            return
        except OSError as error:  # the live feed's FeedDisconnected is a ConnectionError
            self.log_line(f"{shown} NOT SENT: {error}", level="alarm")
            return
        self.sent.append((request, command, value))
        self._pending[request] = command
        self.log_line(f"sent {shown} (#{request})", level="alarm" if command == "estop" else "local")


def _int(value: Any, default: Any) -> Any:
    return value if isinstance(value, int) and not isinstance(value, bool) else default
