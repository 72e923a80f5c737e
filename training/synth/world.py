"""The synthetic world, end to end: motion → muscles → motor units → electrodes → recording files.

For each subject × session it writes
- `sXX_rYY.h5` — the session contract (8 ch @ 500 Hz raw + filtered µV, camera labels at 30 fps) with
  ground truth in `truth/*` (true emg2pose angles, θ and joints at the pose timestamps, per-sample fault
  labels);
- `sXX_rYY_2k.h5` — the same motion seen by a 16-ch band at 2 kHz, in emg2pose's own file layout, for
  pretraining the stand-in backbone;
- optionally `sXX_rYY_mindrove.csv` — the 8-ch stream in the MindRove WiFi board's playback layout.
Everything is deterministic under the seed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.signal import butter, sosfilt, sosfilt_zi
from tqdm import tqdm

from firmware_bridge.atomic_write import atomic_path
from firmware_bridge.mindrove_import import Recording as ArmbandRecording
from firmware_bridge.mindrove_import import build_timeline
from firmware_bridge.session import SessionWriter
from training.data.emg2pose_format import write_emg2pose_file
from training.data.emg_checks import without_zero_rows
from training.hand.open_hand import open_hand_model
from training.recording.display_filter import display_filter_sos
from training.synth.arrival import arrival_times
from training.synth.camera import CameraLabels, observe
from training.synth.emg import FS_SOURCE, MotorUnitPool
from training.synth.mindrove_csv import package_counter, write_mindrove_playback_csv
from training.synth.motion import MOTION_RATE, Motion, generate_motion
from training.synth.muscles import MUSCLES, activations
from training.synth.nuisance import FAULT_CODES, add_bad_rows, add_recording_nuisances, inject_faults
from training.synth.subjects import Placement, Subject, make_placement, make_subject
from training.synth.volume import gain_matrix

FS_MINDROVE = 500.0
CAMERA_FPS = 30.0
ELECTROMECHANICAL_DELAY_S = 0.04  # EMG leads movement by ~30–50 ms (Cavanagh & Komi 1979)
CHUNK_S = 10.0
RING_NOISE_UV = 1.0


@dataclass
class SessionStreams:
    emg_2k: np.ndarray  # (T,16) µV, high-passed band signal
    angles_2k: np.ndarray  # (T,20)
    mindrove_clean: np.ndarray  # (N,8) µV at 500 Hz, band-limited EMG only


def synthesise_streams(
    motion: Motion, subject: Subject, placement: Placement, rng: np.random.Generator
) -> SessionStreams:
    """Run the physiology chunk by chunk at 2 kHz and return both electrode streams."""
    delay = round(ELECTROMECHANICAL_DELAY_S * MOTION_RATE)
    future_angles = np.concatenate([motion.angles[delay:], np.repeat(motion.angles[-1:], delay, axis=0)])
    future_grip = np.concatenate([motion.grip[delay:], np.repeat(motion.grip[-1:], delay)])
    act = activations(future_angles, future_grip, subject.muscle_strength)
    n_src = int(len(motion.time) * FS_SOURCE / MOTION_RATE)
    t_src = np.arange(n_src) / FS_SOURCE
    depths = np.array([m.depth_mm for m in MUSCLES]) * subject.muscle_depth_scale
    pools = [MotorUnitPool(float(d), rng) for d in depths]
    g16 = gain_matrix(subject, placement, 16) * placement.ring_gain[:, None]
    g8 = gain_matrix(subject, placement, 8) * placement.channel_gain[:, None]
    anti_alias = butter(6, 200.0, fs=FS_SOURCE, output="sos")
    aa_state = np.zeros((anti_alias.shape[0], 2, 8))
    high_pass = butter(2, 20.0, btype="high", fs=FS_SOURCE, output="sos")
    hp_state = np.zeros((high_pass.shape[0], 2, 16))
    ring_chunks, mindrove_chunks = [], []
    chunk = int(CHUNK_S * MOTION_RATE)
    up = int(FS_SOURCE / MOTION_RATE)
    for chunk_start in range(0, len(motion.time), chunk):
        chunk_act = act[chunk_start : chunk_start + chunk]
        start, stop = chunk_start * up, (chunk_start + len(chunk_act)) * up
        sources = np.empty((len(MUSCLES), stop - start))
        for m, pool in enumerate(pools):
            sources[m] = pool.synthesise(chunk_act[:, m], MOTION_RATE, stop - start)
        ring = sources.T @ g16.T + rng.normal(0.0, RING_NOISE_UV * subject.noise_scale, (stop - start, 16))
        ring, hp_state = sosfilt(high_pass, ring, axis=0, zi=hp_state)
        ring_chunks.append(ring.astype(np.float32))
        band8, aa_state = sosfilt(anti_alias, sources.T @ g8.T, axis=0, zi=aa_state)
        mindrove_chunks.append(band8)
    emg_2k = np.concatenate(ring_chunks)
    band = np.concatenate(mindrove_chunks)
    step = int(FS_SOURCE / FS_MINDROVE)
    angles_2k = np.stack([np.interp(t_src, motion.time, motion.angles[:, k]) for k in range(20)], axis=1)
    return SessionStreams(emg_2k=emg_2k, angles_2k=angles_2k.astype(np.float32), mindrove_clean=band[::step])


def filter_like_recorder(raw: np.ndarray, fs: float, mains_hz: float) -> np.ndarray:
    """The recorder's causal display filter: 20 Hz high-pass + mains notch, started at steady state."""
    sos = display_filter_sos(fs, mains_hz)
    zi = sosfilt_zi(sos)[:, :, None] * raw[:1][None, :, :]
    filtered, _ = sosfilt(sos, raw, axis=0, zi=zi)
    return filtered


@dataclass
class _World:
    """One session of the synthetic world before recording: the motion, its EMG and its camera labels."""

    subject: Subject
    placement: Placement
    motion: Motion
    streams: SessionStreams
    camera: CameraLabels


@dataclass
class _Recording:
    """What the MindRove recorder would have stored: raw + display-filtered µV, timestamps, fault labels."""

    raw: np.ndarray  # (N,8) µV
    filtered: np.ndarray  # (N,8) µV
    stamps: np.ndarray  # (N,) unix s, reconstructed from the arrival times as `mode2 import` does
    arrival: np.ndarray  # (N,) unix s when each sample reached the host (the SDK's timestamp column)
    counters: np.ndarray  # (N,) the device's package counter
    true_times: np.ndarray  # (N,) unix s when each sample was taken
    labels: np.ndarray  # (N,) uint8 fault codes (FAULT_CODES)
    events: list  # (kind, channel, start, stop) of each injected fault
    t0: float  # unix s of the session start


def _make_world(subject: Subject, session_index: int, minutes: float, rng: np.random.Generator) -> _World:
    placement = make_placement(subject, session_index)
    motion = generate_motion(minutes, rng)
    streams = synthesise_streams(motion, subject, placement, rng)
    camera = observe(motion, open_hand_model(subject.bone_scale), CAMERA_FPS, rng)
    return _World(subject, placement, motion, streams, camera)


def _record(world: _World, session_index: int, rng: np.random.Generator, faults: bool) -> _Recording:
    """The 8-ch stream as recorded: electrode nuisances, a session start time, faults, bad rows, chunked
    arrival, and the per-sample times the importer reconstructs from it."""
    subject, placement, motion = world.subject, world.placement, world.motion
    n = len(world.streams.mindrove_clean)
    t_rel = np.arange(n) / FS_MINDROVE
    speed = np.interp(t_rel, motion.time, np.abs(np.gradient(motion.angles, 1 / MOTION_RATE, axis=0)).sum(axis=1))
    profile = placement.recording
    raw = add_recording_nuisances(
        world.streams.mindrove_clean,
        FS_MINDROVE,
        rng,
        profile=profile,
        tissue_lowpass_hz=subject.tissue_lowpass_hz,
        mains_hz=subject.mains_hz,
        noise_uv=1.5 * subject.noise_scale,
        movement_speed=speed,
    )
    t0 = 1.75e9 + 86400.0 * (subject.index * 10 + session_index) + float(rng.uniform(0, 3600))
    true_rel = t_rel.copy()
    labels = np.zeros(n, dtype=np.uint8)
    events: list = []
    if faults:
        raw, true_rel, labels, events = inject_faults(raw, true_rel, FS_MINDROVE, rng, subject.mains_hz)
    raw, labels = add_bad_rows(raw, labels, FS_MINDROVE, profile, rng)
    arrival = t0 + arrival_times(true_rel, profile.arrival, rng)
    counters = package_counter(true_rel, FS_MINDROVE, labels == FAULT_CODES["duplicate"])
    armband = ArmbandRecording(
        Path(f"{subject.subject_id}_r{session_index:02d}"),
        "sdk",
        raw,
        arrival,
        counters,
        FS_MINDROVE,
        [f"ch{c}" for c in range(raw.shape[1])],
    )
    stamps = build_timeline(armband).times
    filtered = filter_like_recorder(without_zero_rows(raw), FS_MINDROVE, subject.mains_hz)
    return _Recording(raw, filtered, stamps, arrival, counters, t0 + true_rel, labels, events, t0)


def _session_attrs(world: _World, recording: _Recording, seed: int) -> dict:
    """The file attributes that describe how this synthetic session was made (ground truth for tests)."""
    return {
        "synthetic": True,
        "seed": seed,
        "mains_hz": world.subject.mains_hz,
        "armband_rotation_deg": world.placement.rotation_deg,
        "armband_shift_mm": world.placement.shift_mm,
        "bone_scale": world.subject.bone_scale,
        "phases": json.dumps(world.motion.phases),
        "fault_events": json.dumps([(k, int(c), int(a), int(b)) for k, c, a, b in recording.events]),
        "fault_codes": json.dumps(FAULT_CODES),
        "hand_model": "open",
        "generator": "mode2 simulate (training.synth)",
    }


def _append_poses(writer: SessionWriter, camera: CameraLabels, pose_t: np.ndarray, rows: slice) -> None:
    """Camera labels and the hidden truth for the same frames."""
    writer.append_pose(
        camera.theta[rows],
        camera.joints[rows],
        pose_t[rows],
        camera.ik_error[rows],
        camera.confidence[rows],
        landmarks=camera.landmarks[rows],
    )
    writer.append_extra("truth/emg2pose_angles", camera.true_angles[rows].astype(np.float32))
    writer.append_extra("truth/mano_theta", camera.true_theta[rows].astype(np.float32))
    writer.append_extra("truth/joints_3d", camera.true_joints[rows].astype(np.float32))


def _write_session(path: Path, world: _World, recording: _Recording, session_index: int, attrs: dict) -> Path:
    """Write the session file a second of EMG at a time, like the recorder, each pose frame after the EMG
    it follows; atomically (a crash leaves no half file)."""
    raw, stamps, camera = recording.raw, recording.stamps, world.camera
    with (
        atomic_path(path) as tmp_path,
        SessionWriter(
            tmp_path,
            subject_id=world.subject.subject_id,
            session_id=f"r{session_index:02d}",
            emg_sampling_rate=FS_MINDROVE,
            camera_fps=CAMERA_FPS,
            attrs=attrs,
        ) as writer,
    ):
        pose_t = recording.t0 + camera.time
        emg_step = int(FS_MINDROVE)
        pose_i = 0
        for start in range(0, len(raw), emg_step):
            stop = min(len(raw), start + emg_step)
            writer.append_emg(raw[start:stop], stamps[start:stop], recording.filtered[start:stop])
            writer.append_extra("truth/fault_labels", recording.labels[start:stop])
            writer.append_extra("truth/sample_times", recording.true_times[start:stop])
            writer.append_extra("import/arrival_times", recording.arrival[start:stop])
            writer.append_extra("import/package_numbers", recording.counters[start:stop].astype(np.int32))
            pose_stop = int(np.searchsorted(pose_t, stamps[stop - 1], side="right")) if stop < len(raw) else len(pose_t)
            if pose_stop > pose_i:
                _append_poses(writer, camera, pose_t, slice(pose_i, pose_stop))
                pose_i = pose_stop
        for label, start_s, stop_s in world.motion.gestures:
            writer.add_gesture(label, recording.t0 + start_s, recording.t0 + stop_s)
    return path


def _write_2k(path: Path, world: _World, t0: float, session_index: int) -> Path:
    """The 16-ch 2 kHz view of the same motion, in emg2pose's layout (for pretraining the backbone)."""
    streams = world.streams
    t_2k = t0 + np.arange(len(streams.emg_2k)) / FS_SOURCE
    return write_emg2pose_file(
        path,
        t_2k,
        streams.emg_2k,
        streams.angles_2k,
        user=world.subject.subject_id,
        session=f"r{session_index:02d}",
        stage="protocol",
    )


def simulate_session(
    out_dir: Path,
    subject: Subject,
    session_index: int,
    minutes: float,
    seed: int,
    *,
    write_2k: bool = True,
    playback_csv: bool = False,
    faults: bool = False,
) -> list[Path]:
    """One subject's session: world → recording → files. The steps share one generator, in this order."""
    rng = np.random.default_rng([seed, subject.index, 3, session_index])
    world = _make_world(subject, session_index, minutes, rng)
    recording = _record(world, session_index, rng, faults)
    name = f"{subject.subject_id}_r{session_index:02d}"
    written = [
        _write_session(out_dir / f"{name}.h5", world, recording, session_index, _session_attrs(world, recording, seed))
    ]
    if write_2k:
        written.append(_write_2k(out_dir / f"{name}_2k.h5", world, recording.t0, session_index))
    if playback_csv:
        written.append(
            write_mindrove_playback_csv(
                out_dir / f"{name}_mindrove.csv", recording.raw, recording.arrival, counters=recording.counters
            )
        )
    return written


def simulate(
    out_dir: str | Path,
    sessions: int = 3,
    subjects: int = 1,
    minutes: float = 4.0,
    seed: int = 0,
    *,
    write_2k: bool = True,
    playback_csv: bool = False,
    faults: bool = False,
    progress: bool = True,
) -> list[Path]:
    """Simulate `subjects × sessions` recordings of `minutes` each into `out_dir`; returns the paths."""
    if sessions < 1 or subjects < 1 or not (0 < minutes < math.inf):  # `not (…)` also refuses NaN
        raise ValueError(f"simulate: sessions and subjects must be ≥ 1 and minutes finite and > 0, got {minutes}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(s, r) for s in range(1, subjects + 1) for r in range(1, sessions + 1)]
    written: list[Path] = []
    for s, r in tqdm(jobs, desc="simulate", unit="session", disable=not progress):
        subject = make_subject(s, seed)
        written += simulate_session(
            out, subject, r, minutes, seed, write_2k=write_2k, playback_csv=playback_csv, faults=faults
        )
    return written
