"""The recorder's guidance screen driven by Textual's pilot: it shows the snapshots it is given, asks before
stopping, calls `on_stop` once and leaves with the final snapshot.

A scripted recorder stands in for training/recording/recorder.py (tested on its own, and end to end by the
lead): it hands out whichever `GuidanceSnapshot` the test set last, exactly as `Recorder.snapshot` is
polled, and counts `stop()` calls.
"""

from __future__ import annotations

import inspect
import itertools
import time
from collections.abc import Callable
from dataclasses import replace

import pytest
from dashboard_script import pilot_test
from rich.text import Text
from textual.widget import Widget

from firmware_bridge.session.schema import Session
from tui.record_screen import RecordGuideApp, RecordHelpScreen, StopConfirmScreen, SummaryScreen
from tui.record_state import GuidanceSnapshot, PhaseInfo
from tui.widgets.record_camera import IK_ERROR_LIMIT_MM, MIN_CONFIDENCE
from tui.widgets.record_emg import channel_flags

SIZE = (80, 24)
PHASES = (
    PhaseInfo("rest", "Rest / calibration", "Rest your forearm on the table, hand relaxed.", 30.0),
    PhaseInfo("dynamic", "Dynamic movements", "Open and close the hand, move each finger.", 120.0),
    PhaseInfo("gesture_holds", "Gesture holds", "Hold the gesture shown until the next one.", 30.0),
    PhaseInfo("exploration", "Random exploration", "Move the hand freely.", 30.0),
    PhaseInfo("cool_down", "Cool-down", "Relax the hand slowly.", 30.0),
)
LONG_NOTE = (  # the recorder's note for the SDK's synthetic board: what matters is at its end
    "sdk-synthetic is the SDK's test board (16 ch @ 250 Hz sine-like signals, adapted to 8 ch @ 500 Hz), "
    "not EMG: this file checks the pipeline only (attr emg_plumbing_only) and `mode2 train` refuses it"
)
LEVELS = (12.0, 25.0, 40.0, 80.0, 160.0, 320.0, 55.0, 30.0)


def snapshot(**changes: object) -> GuidanceSnapshot:
    """A sound moment 10 s into the rest phase; `changes` override any field."""
    base = GuidanceSnapshot(
        phases=PHASES,
        phase_index=0,
        elapsed_s=10.0,
        phase_remaining_s=20.0,
        instruction=PHASES[0].instruction,
        gesture=None,
        emg_rms_uv=LEVELS,
        emg_flags=(),
        emg_rate_hz=500.0,
        camera_fps=29.8,
        hand_detected=True,
        mp_confidence=0.93,
        ik_error_mm=6.2,
        seconds_without_hand=0.0,
        emg_samples=5000,
        pose_frames=298,
    )
    return replace(base, **changes)


def holding(gesture: str, **changes: object) -> GuidanceSnapshot:
    during = dict(
        phase_index=2, elapsed_s=158.0, phase_remaining_s=22.0, instruction=f"Hold: {gesture.replace('_', ' ')}"
    )
    return snapshot(**{**during, "gesture": gesture, **changes})


class ScriptedRecorder:
    """`snapshot()` returns the snapshot the test set last; `stop()` is counted."""

    def __init__(self, first: GuidanceSnapshot) -> None:
        self.current = first
        self.stops = 0

    def snapshot(self) -> GuidanceSnapshot:
        return self.current

    def stop(self) -> None:
        self.stops += 1


def text_of(widget: Widget) -> str:
    """What a widget shows, as plain text."""
    content = getattr(widget, "content", None)
    shown = content if content is not None else widget.render()
    return shown.plain if isinstance(shown, Text) else str(shown)


def visible_text(widget: Widget) -> str:
    """The lines a widget draws on screen now (its content wrapped and cut to its size)."""
    strips = widget.render_lines(widget.region.reset_offset)
    return "\n".join("".join(segment.text for segment in strip) for strip in strips)


def red_rows(widget: Widget) -> list[bool]:
    """Per rendered line, whether any of it is drawn in red."""
    rendered = widget.render()
    assert isinstance(rendered, Text)
    return [any("red" in str(span.style) for span in line.spans) for line in rendered.split("\n")]


async def wait_until(pilot, condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await pilot.pause(0.02)
    await pilot.pause()


async def show(pilot, app: RecordGuideApp, recorder: ScriptedRecorder, snap: GuidanceSnapshot) -> None:
    """Hand the app a new snapshot and wait (bounded) until it has drawn it."""
    recorder.current = snap
    await wait_until(pilot, lambda: app.snapshot is snap, "the app showed the new snapshot")


def make(first: GuidanceSnapshot, **options: float) -> tuple[RecordGuideApp, ScriptedRecorder]:
    recorder = ScriptedRecorder(first)
    app = RecordGuideApp(recorder.snapshot, on_stop=recorder.stop, refresh_s=0.02, **options)
    return app, recorder


@pilot_test
async def test_phase_strip_and_countdown_follow_the_snapshot() -> None:
    first = snapshot(elapsed_s=17.4, phase_remaining_s=12.6)
    app, recorder = make(first)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.snapshot is first, "the first snapshot shown")
        assert app.strip.marks() == "▶····"
        assert "500 Hz" in app.emg.border_title
        assert "0:17 / 4:00" in text_of(app.strip)
        assert app.phase_panel.countdown_digits.value == "0:13"  # rounds up: 12.6 s left
        assert "phase 1/5" in app.phase_panel.border_title and "Rest / calibration" in app.phase_panel.border_title
        assert text_of(app.phase_panel.instruction_line) == PHASES[0].instruction

        dynamic = snapshot(phase_index=1, elapsed_s=95.0, phase_remaining_s=65.2, instruction=PHASES[1].instruction)
        await show(pilot, app, recorder, dynamic)
        assert app.strip.marks() == "✓▶···"
        assert "1:35 / 4:00" in text_of(app.strip)
        assert app.phase_panel.countdown_digits.value == "1:06"
        assert "Dynamic movements" in app.phase_panel.border_title
        assert text_of(app.phase_panel.instruction_line) == PHASES[1].instruction


@pilot_test
async def test_the_gesture_to_hold_is_shown_large_during_holds_only() -> None:
    fist = holding("thumbs_up")
    app, recorder = make(fist)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.snapshot is fist, "the first snapshot shown")
        gesture = app.phase_panel.gesture_line
        assert gesture.display and gesture.region.height == 3
        assert "T H U M B S   U P" in text_of(gesture)
        assert app.strip.marks() == "✓✓▶··"

        await show(pilot, app, recorder, holding("pinch", elapsed_s=163.0, phase_remaining_s=17.0))
        assert "P I N C H" in text_of(gesture)

        explore = snapshot(phase_index=3, elapsed_s=185.0, phase_remaining_s=25.0, instruction=PHASES[3].instruction)
        await show(pilot, app, recorder, explore)
        assert not gesture.display
        assert text_of(app.phase_panel.instruction_line) == PHASES[3].instruction


@pilot_test
async def test_a_raised_flag_turns_its_channel_red_and_names_the_flag() -> None:
    flags = ("flat: ch2", "channel 5: electrode lift-off (level moved 5.1 mV in 100 ms, residual 40 µV RMS)")
    flagged = snapshot(emg_flags=flags)
    app, recorder = make(flagged)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.snapshot is flagged, "the first snapshot shown")
        rows = text_of(app.emg).splitlines()
        assert len(rows) == 8
        assert "flat" in rows[2] and "electrode lift-off" in rows[5]
        assert rows[0].rstrip().endswith("ok") and "320.0" in rows[5]
        assert red_rows(app.emg) == [False, False, True, False, False, True, False, False]

        await show(pilot, app, recorder, snapshot(emg_flags=()))
        assert not any(red_rows(app.emg))
        assert "flat" not in text_of(app.emg)

        # a flag that names no channel concerns the stream: every channel is marked, as the runtime does
        await show(pilot, app, recorder, snapshot(emg_flags=("stall",)))  # the recorder's word for it
        assert all(red_rows(app.emg))
        assert all("stall" in row for row in text_of(app.emg).splitlines())


def test_flag_words_map_to_channels_and_short_labels() -> None:
    # the recorder's own wording (training/recording/recorder.py `_flag_names`) and the runtime's reasons
    flags = ("lift-off: ch0 ch3", "Channel 3: mains dominates (50 µV)", "stall", "flat: ch11", "stream: gap (80 ms)")
    assert channel_flags(flags, 4) == [
        ["lift-off", "stall", "gap"],
        ["stall", "gap"],
        ["stall", "gap"],
        ["lift-off", "mains dominates", "stall", "gap"],
    ]
    assert channel_flags(("saturated: channels 1, 2",), 3) == [[], ["saturated"], ["saturated"]]


@pilot_test
async def test_hand_out_of_frame_warning_appears_and_disappears() -> None:
    seen = snapshot()
    app, recorder = make(seen)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.snapshot is seen, "the first snapshot shown")
        assert not app.hand_warning.display
        lost = dict(hand_detected=False, mp_confidence=0.0, ik_error_mm=None)

        await show(pilot, app, recorder, snapshot(seconds_without_hand=0.3, **lost))
        assert not app.hand_warning.display  # a blink is not a warning (contract: more than 0.5 s)
        assert "NOT SEEN 0.3 s" in text_of(app.camera) and not red_rows(app.camera)[0]

        await show(pilot, app, recorder, snapshot(seconds_without_hand=2.4, **lost))
        assert app.hand_warning.display and app.hand_warning.region.height == 1  # one red line under 30 rows
        assert "HAND OUT OF FRAME for 2.4 s" in text_of(app.hand_warning)
        assert "NOT SEEN 2.4 s" in text_of(app.camera) and red_rows(app.camera)[0]
        assert "no fit yet" in text_of(app.camera)

        await show(pilot, app, recorder, snapshot(elapsed_s=12.0, phase_remaining_s=18.0))
        assert not app.hand_warning.display
        assert "seen  conf 0.93" in text_of(app.camera)


@pilot_test
async def test_ik_error_is_green_under_the_training_filter_limit_and_red_at_it() -> None:
    good = snapshot(ik_error_mm=7.04, camera_fps=29.8, emg_samples=123456, pose_frames=7404)
    app, recorder = make(good)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.snapshot is good, "the first snapshot shown")
        camera = text_of(app.camera)
        assert "7.0 mm" in camera and "29.8 fps" in camera and "123,456" in camera and "7,404" in camera
        ik_row = red_rows(app.camera)[2]
        assert not ik_row

        await show(pilot, app, recorder, snapshot(ik_error_mm=15.0))
        assert "15.0 mm" in text_of(app.camera) and "unused" in text_of(app.camera)
        assert red_rows(app.camera)[2]


def test_the_screen_colours_by_the_filter_that_training_applies() -> None:
    defaults = inspect.signature(Session.valid_pose_mask).parameters
    assert defaults["max_ik_error_mm"].default == IK_ERROR_LIMIT_MM
    assert defaults["min_confidence"].default == MIN_CONFIDENCE


@pilot_test
async def test_q_asks_first_cancel_keeps_recording_and_confirm_calls_on_stop_once() -> None:
    first = snapshot()
    app, recorder = make(first, summary_s=30.0)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.snapshot is first, "the first snapshot shown")
        await pilot.press("q")
        await wait_until(pilot, lambda: isinstance(app.screen, StopConfirmScreen), "the stop question")
        assert "phase 1 of 5" in text_of(app.screen.query_one("#confirm-detail"))
        await pilot.press("n")
        await wait_until(pilot, lambda: not isinstance(app.screen, StopConfirmScreen), "the question closed")
        later = snapshot(elapsed_s=11.0, phase_remaining_s=19.0)
        await show(pilot, app, recorder, later)  # still polling: recording goes on
        assert recorder.stops == 0 and not app.stop_requested

        await pilot.press("ctrl+c")  # Textual's quit keys ask too: the recorder must never be left unseen
        await wait_until(pilot, lambda: isinstance(app.screen, StopConfirmScreen), "the stop question again")
        await pilot.press("y")
        await wait_until(pilot, lambda: recorder.stops == 1, "on_stop called")
        assert "STOPPING" in text_of(app.keys_bar) and "STOPPING" in app.phase_panel.border_title

        closing = snapshot(elapsed_s=11.5, phase_remaining_s=18.5)
        await show(pilot, app, recorder, closing)  # the screen stays until the recorder says finished
        assert app.return_value is None and recorder.stops == 1

        final = replace(closing, finished=True)
        recorder.current = final
        await wait_until(pilot, lambda: isinstance(app.screen, SummaryScreen), "the summary")
        assert "Recording stopped early" in text_of(app.screen.query_one("#summary-title"))
        await pilot.press("enter")  # any key closes the summary
        await wait_until(pilot, lambda: app.return_value is final, "the app exited with the final snapshot")
    assert recorder.stops == 1


@pilot_test
async def test_a_second_q_after_a_stop_that_does_not_finish_leaves_without_a_final_snapshot() -> None:
    first = snapshot()
    app, recorder = make(first)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.snapshot is first, "the first snapshot shown")
        await pilot.press("q", "y")
        await wait_until(pilot, lambda: recorder.stops == 1, "on_stop called")
        await pilot.press("q")
        await wait_until(pilot, lambda: app.left, "the app left")
    assert app.return_value is None and recorder.stops == 1


@pilot_test
async def test_the_app_exits_by_itself_with_the_final_snapshot_when_finished() -> None:
    last = snapshot(phase_index=4, elapsed_s=239.9, phase_remaining_s=0.1, instruction=PHASES[4].instruction)
    app, recorder = make(last, summary_s=0.3)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.snapshot is last, "the first snapshot shown")
        await pilot.press("question_mark")  # a modal up when the end comes is closed for the summary
        await wait_until(pilot, lambda: isinstance(app.screen, RecordHelpScreen), "the help")
        done = snapshot(phase_index=5, elapsed_s=240.0, phase_remaining_s=0.0, emg_samples=120000, pose_frames=7200)
        final = replace(done, finished=True, instruction="Done.")
        recorder.current = final
        await wait_until(pilot, lambda: isinstance(app.screen, SummaryScreen), "the summary")
        summary = text_of(app.screen.query_one("#summary-body"))
        assert "Recording finished" in text_of(app.screen.query_one("#summary-title"))
        assert "phases done 5/5 · 4:00 of 4:00" in summary and "120,000 EMG samples" in summary and "7,200" in summary
        assert app.strip.marks() == "✓✓✓✓✓"
        await wait_until(pilot, lambda: app.return_value is final, "the app exited after the summary")
    assert recorder.stops == 0  # the recorder finished on its own: nothing to stop


@pilot_test
async def test_the_error_banner_shows_the_recorders_error_and_the_summary_repeats_it() -> None:
    error = "armband lost: no EMG for 2.0 s (mindrove:192.168.4.1)"
    broken = snapshot(error=error, emg_rate_hz=0.0)
    app, recorder = make(broken, summary_s=30.0)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.snapshot is broken, "the first snapshot shown")
        assert app.error_banner.display and error in text_of(app.error_banner)
        assert "NO SAMPLES" in app.emg.border_title
        final = replace(broken, finished=True)
        recorder.current = final
        await wait_until(pilot, lambda: isinstance(app.screen, SummaryScreen), "the summary")
        assert "error" in text_of(app.screen.query_one("#summary-title"))
        assert error in text_of(app.screen.query_one("#summary-body"))
        assert "-error" in app.screen.query_one("#summary-box").classes
        await pilot.press("space")
        await wait_until(pilot, lambda: app.return_value is final, "the app exited")


@pilot_test
async def test_notes_are_shown_and_help_lists_the_keys() -> None:
    note = "sdk-synthetic is not EMG: a test signal, not for training"
    first = snapshot(notes=(note,))
    app, _ = make(first)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.snapshot is first, "the first snapshot shown")
        assert app.notes.display and note in text_of(app.notes)
        await pilot.press("question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, RecordHelpScreen), "the help")
        keys = app.screen.query_one("#help-keys").content
        assert "stop recording" in str(keys.columns[1]._cells)
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, RecordHelpScreen), "the help closed")


@pytest.mark.parametrize("size", [(80, 24), (132, 43)])
@pilot_test
async def test_everything_fits_on_screen_even_with_warning_error_notes_and_16_channels(size) -> None:
    crowded = holding(
        "fist",
        emg_rms_uv=tuple(10.0 + 5 * ch for ch in range(16)),
        emg_flags=("flat: ch13",),
        error="camera gone: no frame for 3.0 s",
        notes=(LONG_NOTE, "camera: video file clip.mp4 (a stand-in webcam; loops at its end)"),
        hand_detected=False,
        seconds_without_hand=3.0,
    )
    app, _ = make(crowded)
    async with app.run_test(size=size) as pilot:
        await wait_until(pilot, lambda: app.snapshot is crowded, "the first snapshot shown")
        screen = app.screen.region
        parts = [app.error_banner, app.strip, app.phase_panel, app.hand_warning, app.emg, app.camera]
        parts += [app.notes, app.keys_bar, app.phase_panel.countdown_digits, app.phase_panel.gesture_line]
        for part in parts:
            assert part.region.height > 0 and screen.contains_region(part.region), part
        stacked = [app.error_banner, app.strip, app.phase_panel, app.hand_warning, app.emg, app.notes, app.keys_bar]
        for upper, lower in itertools.pairwise(stacked):
            assert upper.region.bottom <= lower.region.y, (upper, lower)
        assert app.hand_warning.region.height == (1 if size[1] < 30 else 3)
        emg = text_of(app.emg)
        assert len(emg.splitlines()) == (8 if size[1] < 30 else 16)  # 80×24: two columns of eight
        assert all(f"{ch:>2} " in emg for ch in range(16))  # all channels, in columns when rows run short
        assert "flat" in emg
        notes = " ".join(visible_text(app.notes).split())
        assert "not EMG" in notes and "refuses it" in notes and "stand-in webcam" in notes
        # the camera panel shows all of its lines
        assert app.camera.region.height - 1 >= len(text_of(app.camera).splitlines())


def test_the_screen_during_a_gesture_hold_with_a_flag_and_the_hand_gone_looks_as_approved(snap_compare) -> None:
    """SVG snapshot at 80×24 (pytest-textual-snapshot). After a deliberate change of the looks:
    `.venv/bin/pytest tests/tui/test_record_screen.py --snapshot-update`, then look at the SVG."""
    moment = holding(
        "thumbs_up",
        emg_flags=("flat: ch2",),
        hand_detected=False,
        mp_confidence=0.0,
        seconds_without_hand=1.5,
        ik_error_mm=17.5,
        notes=("sdk-synthetic is not EMG: a test signal, not for training",),
    )
    app, _ = make(moment)

    async def shown(pilot) -> None:
        await wait_until(pilot, lambda: app.snapshot is moment, "the snapshot shown")

    assert snap_compare(app, terminal_size=SIZE, run_before=shown)


@pilot_test
async def test_a_stopped_recording_is_summed_up_as_stopped_even_when_the_recorder_reports_every_phase_over() -> None:
    # training/recording/recorder.py reports phase_index == len(phases) for any ended recording: the elapsed
    # time (95 s of 240: in the dynamic phase) says how far it got
    first = snapshot(phase_index=1, elapsed_s=95.0, phase_remaining_s=65.0, instruction=PHASES[1].instruction)
    app, recorder = make(first, summary_s=30.0)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.snapshot is first, "the first snapshot shown")
        final = replace(first, phase_index=5, phase_remaining_s=0.0, finished=True)
        recorder.current = final
        await wait_until(pilot, lambda: isinstance(app.screen, SummaryScreen), "the summary")
        assert "Recording stopped early" in text_of(app.screen.query_one("#summary-title"))
        assert "phases done 1/5 · 1:35 of 4:00" in text_of(app.screen.query_one("#summary-body"))
        assert app.strip.marks() == "✓▶···"
        assert "stopped in phase 2/5" in app.phase_panel.border_title
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.return_value is final, "the app exited")
