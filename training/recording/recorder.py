"""The recording engine of `mode2 record`: EMG source + camera → landmarker → IK → one session file.

Threads (all stamps on one monotonic clock, `clock.py`; one lock around the `SessionWriter`):

- **EMG**: reads the source's chunks, times every sample with `EmgClock`, appends `emg/raw` and
  `emg/filtered` (the display filter: `DisplayFilter`, the synthetic world's `filter_like_recorder` run
  chunk by chunk — 20 Hz high-pass + mains notch; training never reads it, it filters `emg/raw` itself),
  keeps the per-channel RMS of the last 250 ms and runs the runtime's signal checker
  (`runtime.signal_quality.SignalQuality`) for the live flags.
- **camera**: frame → `HandTracker.detect` (MediaPipe, VIDEO mode) → `HandIK.fit_frame` → `append_pose`
  (θ, canonical joints, ik_error mm, mp_confidence, world landmarks in MediaPipe order). The hand's shape
  (betas) is calibrated once from the first good frames of the rest phase, then fixed (attr `hand_betas`).
  **A frame without the hand** is written too, so the pose stream keeps the camera's rhythm and a reader can
  see where the hand was lost: θ, joints and landmarks hold the last fitted frame (the open hand's rest pose
  before the first), `mp_confidence` 0 and `ik_error` = `NO_HAND_IK_ERROR_MM` (the writer refuses NaN): the
  label filter (`Session.valid_pose_mask`: ik_error < 15 mm and confidence > 0.5) drops exactly these.
- **protocol**: walks the phase schedule (`phases.py`), stores each phase as it starts (attr `phases`,
  JSON `[name, start_s, stop_s]` from the protocol start, as the synthetic world stores them; attr
  `protocol_start_time` is that start on the file's clock) and each gesture hold when it ends
  (`gestures/*`, on the file's clock), then stops the others and closes the file.

A fatal error in any thread (armband lost, camera gone, a refused append) stops the recording cleanly: the
file keeps everything written until then, the snapshot shows the error, and `wait()` raises it (as a
`UserError` when it is one, else the original exception: a bug keeps its traceback).

Nothing is written before the first EMG chunk: the writer is created by it (camera frames that come earlier
wait in a short queue), so a source that never delivers leaves no file. The `sdk-synthetic` board (plumbing
only, not EMG) is recorded for a pipeline check with attr `emg_plumbing_only = True` and a note on the
screen; `mode2 train` refuses such files.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from firmware_bridge.errors import UserError
from firmware_bridge.session import SessionWriter
from training.recording.clock import EmgClock, FileClock
from training.recording.display_filter import DisplayFilter
from training.recording.phases import gesture_instruction, gesture_schedule, phase_at, phase_start, protocol
from tui.record_state import GuidanceSnapshot, PhaseInfo

MIRROR_X = np.array([-1.0, 1.0, 1.0])
NO_HAND_IK_ERROR_MM = 100.0  # a frame without the hand: far beyond the label filter's 15 mm (NaN is refused)
RMS_WINDOW_S = 0.25
RATE_WINDOW_S = 2.0
IK_MEDIAN_WINDOW_S = 1.0
EMG_READ_EVERY_S = 0.02
EMG_LOST_AFTER_S = 3.0  # no EMG data this long (and the source is not at its end): the armband is lost
CAMERA_LOST_AFTER_S = 3.0  # no camera frame this long: the camera is gone
CALIBRATION_FRAMES = 20  # good rest-phase frames for the shape calibration
CALIBRATION_MIN_FRAMES = 5  # at the end of the rest phase, calibrate from at least this many
CALIBRATION_MIN_SCORE = 0.8
EARLY_POSE_QUEUE = 300  # camera frames kept while waiting for the first EMG chunk (10 s at 30 fps)
JOIN_TIMEOUT_S = 10.0
SETTLE_S = 1.05  # the source checker's start-up backlog window (1 s) and a little: see Recorder._settle
SETTLE_TIMEOUT_S = 5.0
PLUMBING_NOTE = (
    "sdk-synthetic is the SDK's test board (16 ch @ 250 Hz sine-like signals, adapted to 8 ch @ 500 Hz), "
    "not EMG: this file checks the pipeline only (attr emg_plumbing_only) and `mode2 train` refuses it"
)


@dataclass(frozen=True)
class RecordConfig:
    """What `mode2 record` was asked to do."""

    emg: str
    camera: str
    out: Path  # the session file
    subject: str = "S01"
    session: str = "R01"
    hand: str = "right"
    phase_scale: float = 1.0
    hand_model: str | None = None
    mains_hz: float = 50.0
    connect_timeout_s: float = 5.0
    loop_video: bool = True  # a video-file camera starts again at its end (False: its end ends the recording)


@dataclass
class _Live:
    """What the threads report for the snapshot (guarded by `Recorder._state_lock`)."""

    emg_arrivals: deque[tuple[float, int]] = field(default_factory=deque)
    frame_times: deque[float] = field(default_factory=deque)
    ik_errors: deque[tuple[float, float]] = field(default_factory=deque)
    rms_uv: tuple[float, ...] = ()
    flags: tuple[str, ...] = ()
    hand_detected: bool = False
    mp_confidence: float = 0.0
    last_hand_at: float | None = None
    emg_samples: int = 0
    pose_frames: int = 0
    hand_frames: int = 0
    phase_index: int = 0
    gesture: str | None = None
    instruction: str = ""
    notes: list[str] = field(default_factory=list)


class Recorder:
    """One recording: `Recorder(config)` checks and opens everything (hand model, camera, landmarker, IK,
    EMG source) before anything streams; `start()` starts the source (an unreachable armband fails here, with
    no file written) and the threads; `snapshot()` any time; `stop()` ends it early; `wait()` until the file
    is closed (raises the fatal error if there was one)."""

    def __init__(self, config: RecordConfig) -> None:
        from training.recording.hand_model_file import resolve_hand_model, sha256_file

        self.config = config
        self.phases: tuple[PhaseInfo, ...] = protocol(config.phase_scale)
        self.slots = gesture_schedule(config.phase_scale)
        self.model_path = resolve_hand_model(config.hand_model)  # a missing model fails before the camera opens
        self.model_sha256 = sha256_file(self.model_path)
        self._opened: list[Any] = []
        try:
            from training.recording.camera import open_camera

            self.camera = open_camera(config.camera, loop_video=config.loop_video)
            self._opened.append(self.camera)
            from training.recording.ik import HandIK, IkInputError
            from training.recording.landmarker import HandTracker

            self.tracker = HandTracker(self.model_path, hand=config.hand)
            self._opened.append(self.tracker)
            self.ik = HandIK(threads=1)
            self._ik_error_type: type[Exception] = IkInputError
            from firmware_bridge.emg_sources import open_source

            self.source = open_source(config.emg, connect_timeout_s=config.connect_timeout_s)
            self._opened.append(self.source)
        except BaseException:
            self._close_devices()
            raise
        self.channels = int(self.source.channels)
        self.rate_hz = float(self.source.sampling_rate_hz)
        self.plumbing_only = bool(getattr(self.source, "plumbing_only", False))
        self._emg_clock = EmgClock(self.rate_hz)
        self._filter = DisplayFilter(self.rate_hz, config.mains_hz)
        from runtime.signal_quality import SignalQuality

        self._quality = SignalQuality(sampling_rate_hz=self.rate_hz, channels=self.channels)
        self._rms_ring = np.zeros((max(1, round(RMS_WINDOW_S * self.rate_hz)), self.channels))
        self._rms_filled = 0
        self._write_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._stop = threading.Event()
        self._done = threading.Event()
        self._writer: SessionWriter | None = None
        self._first_emg_time = math.inf  # file time of the first EMG sample: no pose frame before it is written
        self._early_poses: deque[tuple[Any, ...]] = deque(maxlen=EARLY_POSE_QUEUE)
        self._live = _Live()
        self._error: BaseException | None = None
        self._end_reason = ""
        self._file: FileClock | None = None
        self._threads: list[threading.Thread] = []
        self._conductor: threading.Thread | None = None
        self._phase_log: list[list[Any]] = []
        self._gestures_written = 0
        self._betas: np.ndarray | None = None
        self._calibration: list[np.ndarray] = []
        self._last_pose: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._last_pose_t = -math.inf
        self._stopped_at: float | None = None
        if self.plumbing_only:
            self._live.notes.append(PLUMBING_NOTE)

    # -- public ---------------------------------------------------------------------------------------
    @property
    def path(self) -> Path:
        return Path(self.config.out)

    @property
    def total_s(self) -> float:
        return sum(p.duration_s for p in self.phases)

    def start(self) -> None:
        """Start the EMG source (SourceError if it cannot be reached: no file is written) and the threads."""
        try:
            self.source.start()
            self._settle()
        except BaseException:
            self._close_devices()
            raise
        self._file = FileClock.now()
        self._live.instruction = self.phases[0].instruction
        for target, name in ((self._emg_loop, "record-emg"), (self._camera_loop, "record-camera")):
            thread = threading.Thread(target=self._guarded, args=(target,), name=name, daemon=True)
            self._threads.append(thread)
        self._conductor = threading.Thread(target=self._guarded, args=(self._run_protocol,), name="record-protocol")
        for thread in self._threads:
            thread.start()
        self._conductor.start()

    def _settle(self) -> None:
        """Wait out the source's start-up backlog window, discarding what arrives in it.

        The source's checker throws away stale start-up samples during the first second after the first data
        (`StreamChecker.backlog_window_s`), and what it keeps of that second is stale too (measured: the SDK
        playback board hands over ~2,500 rows within 50 ms, the armband a ~5-s backlog). Recording only what
        arrives after it keeps every recorded sample's index, and so its time, continuous with real time."""
        from firmware_bridge.emg_sources.base import SourceError

        started = time.monotonic()
        first: float | None = None
        while True:
            chunk = self.source.read(timeout=0.05)
            now = time.monotonic()
            if chunk is not None and first is None:
                first = chunk.received_at
            if first is not None and now - first > SETTLE_S:
                return
            if chunk is None and self.source.finished:
                raise SourceError(f"{self.config.emg}: the EMG source ended within its first second")
            if first is None and now - started > SETTLE_TIMEOUT_S:
                raise SourceError(f"{self.config.emg}: no EMG data within {SETTLE_TIMEOUT_S:g} s of starting")

    def stop(self) -> None:
        """Ask the recording to end now (returns at once; `wait()` for the closed file)."""
        if self._file is not None and self._stopped_at is None and not self._done.is_set():
            self._stopped_at = time.monotonic()
        self._stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Until the file is closed (True) or `timeout` passed (False); raises a thread's fatal error."""
        if not self._done.wait(timeout):
            return False
        if self._error is not None:
            if isinstance(self._error, UserError):
                raise UserError(f"{self._error} — {self._kept()}") from self._error
            raise self._error
        return True

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    @property
    def end_reason(self) -> str:
        return self._end_reason

    def snapshot(self) -> GuidanceSnapshot:
        now = time.monotonic()
        start = self._file.start_mono if self._file is not None else now
        end = self._stopped_at if self._stopped_at is not None else now
        elapsed = max(0.0, end - start)
        index, remaining = phase_at(self.phases, elapsed)
        with self._state_lock:
            live = self._live
            since = max(0.0, min(RATE_WINDOW_S, now - start))
            rate = sum(n for t, n in live.emg_arrivals if t > now - RATE_WINDOW_S) / since if since > 0.2 else 0.0
            fps = sum(1 for t in live.frame_times if t > now - RATE_WINDOW_S) / since if since > 0.2 else 0.0
            errors = [e for t, e in live.ik_errors if t > now - IK_MEDIAN_WINDOW_S]
            seen = live.last_hand_at if live.last_hand_at is not None else start
            return GuidanceSnapshot(
                phases=self.phases,
                phase_index=len(self.phases) if self._done.is_set() else index,
                elapsed_s=elapsed,
                phase_remaining_s=remaining,
                instruction=live.instruction,
                gesture=live.gesture,
                emg_rms_uv=live.rms_uv or (0.0,) * self.channels,
                emg_flags=live.flags,
                emg_rate_hz=rate,
                camera_fps=fps,
                hand_detected=live.hand_detected,
                mp_confidence=live.mp_confidence,
                ik_error_mm=float(np.median(errors)) if errors else None,
                seconds_without_hand=0.0 if live.hand_detected else max(0.0, end - seen),
                emg_samples=live.emg_samples,
                pose_frames=live.pose_frames,
                finished=self._done.is_set(),
                error=str(self._error) if self._error is not None else None,
                notes=(*live.notes, *(getattr(self.camera, "notes", ()) or ())),
            )

    def summary(self) -> dict[str, Any]:
        """Counts for the end-of-recording report."""
        with self._state_lock:
            live = self._live
            return {
                "path": str(self.path),
                "emg_samples": live.emg_samples,
                "pose_frames": live.pose_frames,
                "hand_frames": live.hand_frames,
                "detected_fraction": live.hand_frames / live.pose_frames if live.pose_frames else 0.0,
                "end_reason": self._end_reason,
                "emg_clock": self._emg_clock.summary(),
            }

    # -- threads ----------------------------------------------------------------------------------------
    def _guarded(self, target: Any) -> None:
        try:
            target()
        except BaseException as error:  # any thread's failure ends the recording cleanly
            self._fail(error)
            if target == self._run_protocol:
                self._finish()

    def _fail(self, error: BaseException) -> None:
        with self._state_lock:
            if self._error is None:
                self._error = error
                self._end_reason = f"error: {error}"
        if self._stopped_at is None:
            self._stopped_at = time.monotonic()
        self._stop.set()

    def _emg_loop(self) -> None:
        last_data = last_read = time.monotonic()
        while not self._stop.is_set():
            # one read per EMG_READ_EVERY_S takes everything that arrived: a few dozen appends a second instead
            # of hundreds of 2-sample chunks, which left the camera thread starved of the GIL
            if self._stop.wait(max(0.0, last_read + EMG_READ_EVERY_S - time.monotonic())):
                break
            chunk = self.source.read(timeout=0.1)
            now = last_read = time.monotonic()
            if chunk is None:
                if self.source.finished:
                    self._end_early(f"the EMG source {self.config.emg} reached its end")
                    return
                if now - last_data > EMG_LOST_AFTER_S:
                    from firmware_bridge.emg_sources.base import SourceError

                    raise SourceError(
                        f"{self.config.emg}: no EMG data for {now - last_data:.1f} s: the armband was lost "
                        "(out of range, switched off or its battery is empty?)"
                    )
                silent = self._quality.update(np.empty((0, self.channels)), np.empty(0), now=now)  # shows a stall
                with self._state_lock:
                    self._live.flags = _flag_names(silent)
                continue
            last_data = now
            assert self._file is not None
            t_mono = self._emg_clock.map(len(chunk), chunk.received_at, chunk.events)
            report = self._quality.update(
                np.asarray(chunk.samples, dtype=np.float64).reshape(-1, self.channels), t_mono, chunk.events, now=now
            )
            if not len(chunk):
                continue
            filtered = self._filter(chunk.samples, chunk.events)
            stamps = self._file.to_file(t_mono)
            with self._write_lock:
                if self._writer is None:
                    self._writer = self._open_writer()
                    self._first_emg_time = float(stamps[0])
                self._writer.append_emg(np.asarray(chunk.samples, dtype=np.float32), stamps, filtered)
                early, self._early_poses = list(self._early_poses), deque()
                for pose in early:
                    if pose[2][0] > self._first_emg_time:
                        self._writer.append_pose(*pose[:5], landmarks=pose[5])
            self._track_rms(filtered)
            with self._state_lock:
                live = self._live
                live.emg_samples += len(chunk)
                live.pose_frames += sum(1 for pose in early if pose[2][0] > self._first_emg_time)
                live.emg_arrivals.append((now, len(chunk)))
                while live.emg_arrivals and live.emg_arrivals[0][0] < now - RATE_WINDOW_S:
                    live.emg_arrivals.popleft()
                live.rms_uv = tuple(float(v) for v in self._rms())
                live.flags = _flag_names(report)

    def _camera_loop(self) -> None:
        assert self._file is not None
        start = self._file.start_mono
        last_frame = time.monotonic()
        last_ms = -1
        while not self._stop.is_set():
            frame = self.camera.read(timeout=0.25)
            now = time.monotonic()
            if frame is None:
                if getattr(self.camera, "ended", False):  # a video file played without looping
                    raise UserError(f"--camera {self.config.camera}: the video file ended")
                if now - last_frame > CAMERA_LOST_AFTER_S:
                    raise UserError(
                        f"--camera {self.config.camera}: no frame for {now - last_frame:.1f} s: the camera "
                        "stopped delivering (unplugged, or taken by another program?)"
                    )
                continue
            last_frame = now
            t = float(frame.t_mono)
            if t < start or t <= self._last_pose_t:
                continue
            ms = max(last_ms + 1, round((t - start) * 1000.0))
            last_ms = ms
            observation = self.tracker.detect(frame.image_rgb, ms)
            self._pose_frame(t, observation)

    def _pose_frame(self, t: float, observation: Any) -> None:
        """Fit one frame (or write a no-hand frame) and append it."""
        assert self._file is not None
        in_rest = self._live.phase_index == 0
        fit = None
        if observation is not None:
            landmarks = np.asarray(observation.world_landmarks, dtype=np.float64)
            # the IK fits a right hand: a left hand's landmarks are mirrored (θ then describes the mirror
            # image, the usual convention for a left hand); the file stores the landmarks as observed
            for_ik = landmarks * MIRROR_X if self.config.hand == "left" else landmarks
            score = float(observation.score)
            try:
                self._calibrate(for_ik, score, in_rest)
                fit = self.ik.fit_frame(for_ik)
            except self._ik_error_type:  # landmarks the IK cannot use (NaN, not metres): a frame without a hand
                self.ik.reset()
                observation = None
        if fit is not None:
            theta = np.asarray(fit.theta, dtype=np.float32).reshape(45)
            joints = np.asarray(fit.joints, dtype=np.float32).reshape(21, 3)
            error = float(np.asarray(fit.ik_error_mm).reshape(-1)[0])
            self._last_pose = (theta, joints, landmarks.astype(np.float32))
        else:
            if self._betas is None and not in_rest and len(self._calibration) >= CALIBRATION_MIN_FRAMES:
                self._set_betas()
            score, error = 0.0, NO_HAND_IK_ERROR_MM
            if self._last_pose is None:
                self._last_pose = _rest_pose()
        theta, joints, marks = self._last_pose
        row = (theta[None], joints[None], self._file.to_file(np.array([t])), np.array([error], np.float32))
        pose = (*row, np.array([score], np.float32), marks[None])
        self._last_pose_t = t
        with self._write_lock:
            if self._writer is None:
                self._early_poses.append(pose)
                written = 0
            elif pose[2][0] <= self._first_emg_time:  # taken before the first EMG sample (fitted meanwhile)
                written = 0
            else:
                self._writer.append_pose(*pose[:5], landmarks=pose[5])
                written = 1
        with self._state_lock:
            live = self._live
            live.pose_frames += written
            live.frame_times.append(t)
            while live.frame_times and live.frame_times[0] < t - RATE_WINDOW_S:
                live.frame_times.popleft()
            live.hand_detected = observation is not None
            live.mp_confidence = score
            if observation is not None:
                live.hand_frames += written
                live.last_hand_at = t
                live.ik_errors.append((t, error))
            while live.ik_errors and live.ik_errors[0][0] < t - IK_MEDIAN_WINDOW_S:
                live.ik_errors.popleft()

    def _calibrate(self, landmarks: np.ndarray, score: float, in_rest: bool) -> None:
        """Shape once: from the first good frames of the rest phase (or the first ones after it, if the rest
        phase had too few), then fixed."""
        if self._betas is not None:
            return
        if score >= CALIBRATION_MIN_SCORE:
            self._calibration.append(landmarks)
        enough = len(self._calibration) >= CALIBRATION_FRAMES
        rest_over = not in_rest and len(self._calibration) >= CALIBRATION_MIN_FRAMES
        if enough or rest_over:
            self._set_betas()

    def _set_betas(self) -> None:
        betas = np.asarray(self.ik.calibrate_shape(np.stack(self._calibration)), dtype=np.float64).reshape(-1)
        self._betas = betas
        with self._write_lock:
            if self._writer is not None:
                self._writer.set_attr("hand_betas", betas)
                self._writer.set_attr("hand_betas_frames", len(self._calibration))
        self._calibration = []

    def _run_protocol(self) -> None:
        assert self._file is not None
        start = self._file.start_mono
        gesture_phase = [p.name for p in self.phases].index("gesture_holds")
        holds_start = phase_start(self.phases, gesture_phase)
        current = -1
        while True:
            elapsed = time.monotonic() - start
            index, _ = phase_at(self.phases, elapsed)
            if index != current:
                self._enter_phase(index, elapsed)
                current = index
            if index == len(self.phases):
                self._end_reason = self._end_reason or "completed"
                break
            instruction, gesture = self.phases[index].instruction, None
            if index == gesture_phase:
                instruction, gesture = gesture_instruction(self.slots, elapsed - holds_start)
            self._write_gestures(holds_start, elapsed, final=False)
            with self._state_lock:
                self._live.instruction, self._live.gesture = instruction, gesture
            if self._stop.wait(0.05):
                break
        if self._stopped_at is None:
            self._stopped_at = time.monotonic()
        self._write_gestures(holds_start, self._stopped_at - start, final=True)
        self._finish()

    def _enter_phase(self, index: int, elapsed: float) -> None:
        """Log the phase that starts now, with its scheduled boundaries (what the screen counted down); a
        stop shortens the last one (`_closing_attrs`)."""
        if index < len(self.phases):
            phase = self.phases[index]
            start = phase_start(self.phases, index)
            self._phase_log.append([phase.name, round(start, 4), round(start + phase.duration_s, 4)])
        with self._state_lock:
            self._live.phase_index = index
        self._set_attr("phases", json.dumps(self._phase_log))

    def _write_gestures(self, holds_start: float, elapsed: float, *, final: bool) -> None:
        assert self._file is not None
        while self._gestures_written < len(self.slots):
            slot = self.slots[self._gestures_written]
            begin, end = holds_start + slot.start_s, holds_start + slot.end_s
            if end > elapsed:
                if not final or elapsed <= begin:
                    return
                end = elapsed  # stopped during this hold: label what was held
            to_file = self._file.to_file
            with self._write_lock:
                if self._writer is None:
                    return
                self._writer.add_gesture(
                    slot.label,
                    float(to_file(self._file.start_mono + begin)),
                    float(to_file(self._file.start_mono + end)),
                )
            self._gestures_written += 1

    def _end_early(self, reason: str) -> None:
        self._end_reason = f"stopped early: {reason}"
        with self._state_lock:
            self._live.notes.append(reason)
        self.stop()

    # -- the file ---------------------------------------------------------------------------------------
    def _open_writer(self) -> SessionWriter:
        assert self._file is not None
        from runtime.run_file import software_version

        config = self.config
        attrs = {
            "recorder": "mode2 record (training/recording)",
            "software_version": software_version(),
            "emg_source": config.emg,
            "emg_source_name": str(getattr(self.source, "name", config.emg)),
            "emg_plumbing_only": self.plumbing_only,
            "camera": config.camera,
            "camera_fps_nominal": float(self.camera.fps),
            "hand_model_path": str(self.model_path),
            "hand_model_sha256": self.model_sha256,
            "hand_model": "open",
            "ik": json.dumps(_ik_settings(self.ik)),
            "phase_scale": float(config.phase_scale),
            "protocol": json.dumps([[p.name, p.title, p.duration_s] for p in self.phases]),
            "protocol_start_time": float(self._file.start_unix),
            "phases": json.dumps(self._phase_log),
            "mains_hz": float(config.mains_hz),
            "emg_filtered": self._filter.description + " (display only; training filters emg/raw itself)",
            "clock": json.dumps(self._file.describe()),
            "pose_no_hand": (
                f"frames without a hand hold the last fit with mp_confidence 0 and ik_error {NO_HAND_IK_ERROR_MM:g} mm"
            ),
            "stop_reason": "recording (not closed: the recorder was killed)",
        }
        if self.plumbing_only:
            attrs["emg_plumbing_note"] = PLUMBING_NOTE
        writer = SessionWriter(
            self.path,
            subject_id=config.subject,
            session_id=config.session,
            hand=config.hand,
            emg_channels=self.channels,
            emg_sampling_rate=self.rate_hz,
            camera_fps=float(self.camera.fps),
            attrs=attrs,
        )
        if self._betas is not None:
            writer.set_attr("hand_betas", self._betas)
        return writer

    def _set_attr(self, key: str, value: Any) -> None:
        with self._write_lock:
            if self._writer is not None:
                self._writer.set_attr(key, value)

    def _finish(self) -> None:
        """Stop the threads, write the closing attrs, close the file and the devices (once)."""
        if self._done.is_set():
            return
        self._stop.set()
        for thread in self._threads:
            thread.join(JOIN_TIMEOUT_S)
        try:
            with self._write_lock:
                writer, self._writer = self._writer, None
                if writer is not None:
                    try:
                        self._closing_attrs(writer)
                    finally:
                        writer.close()
        except BaseException as error:
            self._fail(error)
        finally:
            self._close_devices()
            self._done.set()

    def _closing_attrs(self, writer: SessionWriter) -> None:
        summary = self.summary()
        with self._state_lock:
            frames = list(self._live.frame_times)
        if self._phase_log and self._stopped_at is not None and self._file is not None:
            self._phase_log[-1][2] = round(min(self._phase_log[-1][2], self._stopped_at - self._file.start_mono), 4)
        writer.set_attr("phases", json.dumps(self._phase_log))
        writer.set_attr("stop_reason", self._end_reason or "stopped")
        writer.set_attr("emg_clock", json.dumps(summary["emg_clock"]))
        writer.set_attr("emg_stream_health", json.dumps(self.source.health.as_dict()))
        writer.set_attr("hand_detected_fraction", float(summary["detected_fraction"]))
        if len(frames) > 1:
            writer.set_attr("camera_fps_measured_last_2s", float((len(frames) - 1) / (frames[-1] - frames[0])))
        if self._betas is None:
            writer.set_attr("hand_betas_note", "never calibrated: too few good frames of the hand")

    def _close_devices(self) -> None:
        for thing in reversed(self._opened):
            with contextlib.suppress(Exception):  # closing what is already broken must not hide the first error
                thing.close()
        self._opened = []

    def _kept(self) -> str:
        summary = self.summary()
        if not summary["emg_samples"]:
            return "nothing was recorded (no file written)"
        return (
            f"{self.path} keeps what was recorded until then ({summary['emg_samples']} EMG samples, "
            f"{summary['pose_frames']} camera frames)"
        )

    # -- live levels --------------------------------------------------------------------------------------
    def _track_rms(self, filtered: np.ndarray) -> None:
        size = len(self._rms_ring)
        tail = np.asarray(filtered, dtype=np.float64)[-size:]
        self._rms_ring = np.concatenate([self._rms_ring[len(tail) :], tail])
        self._rms_filled = min(size, self._rms_filled + len(tail))

    def _rms(self) -> np.ndarray:
        if not self._rms_filled:
            return np.zeros(self.channels)
        recent = self._rms_ring[-self._rms_filled :]
        return np.sqrt(np.mean(recent**2, axis=0))


def _flag_names(report: Any) -> tuple[str, ...]:
    """'lift-off: ch2 ch5', 'stall', … for every flag raised now (empty when the signal is sound)."""
    from runtime.signal_quality import STREAM_FLAGS, QualityFlag

    if report.ok:
        return ()
    flags = np.asarray(report.flags)
    names = []
    for flag in QualityFlag:
        if not flag.name or not int(flag):
            continue
        hit = np.flatnonzero(flags & int(flag))
        if not len(hit):
            continue
        name = flag.name.lower().replace("_", "-")
        names.append(name if flag & STREAM_FLAGS else f"{name}: " + " ".join(f"ch{c}" for c in hit))
    return tuple(names)


def _rest_pose() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The open hand's rest pose (θ = 0), for no-hand frames before the first fit."""
    from training.hand.fk_numpy import forward_kinematics_np
    from training.hand.open_hand import open_hand_model
    from training.hand.skeleton import MANO_TO_MEDIAPIPE

    theta = np.zeros(45)
    joints = forward_kinematics_np(open_hand_model(), theta).reshape(21, 3)
    return theta.astype(np.float32), joints.astype(np.float32), joints[MANO_TO_MEDIAPIPE].astype(np.float32)


def _ik_settings(ik: Any) -> dict[str, Any]:
    """The IK's public settings, for the file (whatever of them the fitter exposes)."""
    settings: dict[str, Any] = {"class": f"{type(ik).__module__}.{type(ik).__name__}", "threads": 1}
    for key in ("fit_shape", "priors", "max_iterations", "warm_start_max_error_mm"):
        value = getattr(ik, key, None)
        if value is None or callable(value):
            continue
        if hasattr(value, "__dataclass_fields__"):
            from dataclasses import asdict

            value = asdict(value)
        try:
            json.dumps(value)
        except TypeError:
            value = repr(value)
        settings[key] = value
    return settings
