"""The synthetic world: physiology that a model can learn from, and recordings that look like real ones."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import butter, sosfiltfilt, welch

from firmware_bridge.session import read_session
from training.data.emg2pose_format import read_emg2pose_file
from training.data.emg_checks import without_zero_rows
from training.hand.angle_map import EMG2POSE_ANGLE_LIMITS
from training.hand.fk_numpy import forward_kinematics_np
from training.hand.open_hand import open_hand_model
from training.synth.emg import MotorUnitPool
from training.synth.motion import GESTURES, generate_motion
from training.synth.muscles import MUSCLES, activations
from training.synth.nuisance import ADC_RAIL_UV, FAULT_CODES
from training.synth.subjects import make_placement, make_subject
from training.synth.world import simulate_session


def test_files_follow_the_contract(small_world: Path) -> None:
    names = sorted(p.name for p in small_world.iterdir())
    assert names == sorted([f"s01_r0{r}{suffix}" for r in (1, 2, 3) for suffix in (".h5", "_2k.h5", "_mindrove.csv")])
    session = read_session(small_world / "s01_r01.h5")
    assert session.emg_rate == 500.0 and session.emg_raw.shape[1] == 8
    assert session.attrs["synthetic"] and session.key == "s01/r01"
    assert 0.8 < session.valid_pose_mask().mean() < 1.0, "some, not all, camera frames fail the quality filter"
    truth = session.extras["truth/emg2pose_angles"]
    assert truth.shape == (len(session.pose_timestamps), 20)
    lo, hi = EMG2POSE_ANGLE_LIMITS.T
    assert np.all(truth >= lo - 1e-5) and np.all(truth <= hi + 1e-5)
    hand = open_hand_model(session.attrs["bone_scale"])
    assert np.abs(forward_kinematics_np(hand, session.mano_theta) - session.joints_3d).max() < 1e-5
    assert (
        np.abs(
            forward_kinematics_np(hand, session.extras["truth/mano_theta"]) - session.extras["truth/joints_3d"]
        ).max()
        < 1e-5
    )


def test_deterministic_under_seed(tmp_path: Path) -> None:
    subject = make_subject(2, 11)
    a = simulate_session(tmp_path / "a", subject, 1, 0.1, 11, write_2k=False)
    b = simulate_session(tmp_path / "b", subject, 1, 0.1, 11, write_2k=False)
    c = simulate_session(tmp_path / "c", subject, 1, 0.1, 12, write_2k=False)
    sa, sb, sc = (read_session(p[0]) for p in (a, b, c))
    assert np.array_equal(sa.emg_raw, sb.emg_raw) and np.array_equal(sa.mano_theta, sb.mano_theta)
    assert not np.array_equal(sa.emg_raw[: len(sc.emg_raw)], sc.emg_raw[: len(sa.emg_raw)])


def test_emg_spectrum_and_amplitude_are_physiological(small_world: Path) -> None:
    rec = read_emg2pose_file(small_world / "s01_r01_2k.h5")
    assert rec.emg.shape[1] == 16 and rec.sample_rate == 2000.0
    freqs, power = welch(rec.emg[2000:], fs=2000, axis=0, nperseg=1024)
    total = power.mean(axis=1)
    cumulative = np.cumsum(total) / total.sum()
    median_frequency = freqs[np.searchsorted(cumulative, 0.5)]
    assert 50 < median_frequency < 150
    assert 1 - cumulative[np.searchsorted(freqs, 450)] < 0.05, "< 5 % of the power above 450 Hz"
    assert cumulative[np.searchsorted(freqs, 20)] < 0.05, "little power below 20 Hz"
    rms = np.sqrt(np.mean(rec.emg[2000:] ** 2, axis=0))
    assert 5 < rms.max() < 1000, "surface EMG is tens to hundreds of µV"


def test_emg_grows_with_effort_and_differs_by_finger() -> None:
    rng = np.random.default_rng(0)
    rest = np.tile(GESTURES["rest"], (300, 1))
    grip = activations(rest, np.full(300, 0.8))
    relaxed = activations(rest, np.zeros(300))
    assert grip[-1].sum() > 3 * relaxed[-1].sum()
    pool = MotorUnitPool(depth_mm=6.0, rng=rng)
    weak = pool.synthesise(np.full(200, 0.1), 100.0, 4000)
    strong = pool.synthesise(np.full(200, 0.6), 100.0, 4000)
    assert np.sqrt(np.mean(strong[500:] ** 2)) > 3 * np.sqrt(np.mean(weak[500:] ** 2))
    # flexing the index finger activates the index flexor compartments, not the pinky's
    index_flex = np.tile(GESTURES["rest"], (300, 1))
    index_flex[100:200, 5] = np.linspace(0.3, 1.3, 100)
    act = activations(index_flex, np.zeros(300))
    names = [m.name for m in MUSCLES]
    assert act[150, names.index("FDS_index")] > 3 * act[150, names.index("FDS_pinky")]


def test_raw_stream_has_dc_mains_and_labelled_faults(small_world: Path) -> None:
    session = read_session(small_world / "s01_r02.h5")
    raw = session.emg_raw.astype(np.float64)
    profile = make_placement(make_subject(1, 7), 2).recording  # the donning this session was drawn with
    assert np.all(np.abs(profile.dc_offset_uv) >= 9e3), "DC offsets of 9–212 mV, as on the real armband"
    head = raw[:100][raw[:100].any(axis=1)]  # the first 0.2 s, before the drift (0.4–38 mV per 2 s) has moved
    assert np.abs(np.median(head, axis=0) - profile.dc_offset_uv).max() < 500.0, "raw sits on the profile's DC"
    # zero rows are a step of the whole DC that rings through any filter: hold over them first, as inspect does
    hp = sosfiltfilt(butter(4, 20.0, btype="high", fs=500, output="sos"), without_zero_rows(raw) - raw.mean(0), axis=0)
    assert np.abs(hp.mean(axis=0)).max() < 5.0, "a high-pass removes the offset"
    mains = float(session.attrs["mains_hz"])
    before_faults = hp[250:2250]  # faults start after the first sixth of the session
    freqs, power = welch(before_faults, fs=500, axis=0, nperseg=2000)
    line = power[np.argmin(np.abs(freqs - mains))].mean()
    near = power[(np.abs(freqs - mains) > 3) & (np.abs(freqs - mains) < 10)].mean()
    assert line > 5 * near, "a mains line stands out of the spectrum"

    labels = session.extras["truth/fault_labels"]
    events = json.loads(session.attrs["fault_events"])
    assert {e[0] for e in events} == {"lift_off", "saturation", "flat_line", "stall", "duplicate"}
    for kind, channel, _start, _stop in events:
        if kind == "flat_line":
            segment = labels == FAULT_CODES["flat_line"]
            assert np.ptp(raw[segment, channel]) == 0.0
        if kind == "saturation":
            segment = labels == FAULT_CODES["saturation"]
            assert np.all(np.abs(session.emg_raw[segment, channel]) == np.float32(ADC_RAIL_UV)), "the ±377 mV rail"
        if kind == "stall":
            gap_at = np.flatnonzero(labels == FAULT_CODES["stall"])[0]
            assert session.emg_timestamps[gap_at] - session.emg_timestamps[gap_at - 1] > 0.25
        if kind == "duplicate":
            dup = np.flatnonzero(labels == FAULT_CODES["duplicate"])[:4]
            assert np.array_equal(raw[dup], raw[dup - 4])
    assert np.abs(session.emg_raw).max() <= np.float32(ADC_RAIL_UV), "nothing beyond the ADC's full scale"
    # the bad rows every real session has, with or without --faults: all-zero rows, stale repeats of a row
    zero = labels == FAULT_CODES["zero_row"]
    assert zero.any() and np.array_equal(zero, ~raw.any(axis=1)), "exactly the labelled rows are all zero"
    stale = np.flatnonzero(labels == FAULT_CODES["stale_repeat"])
    assert len(stale) and len(stale) % 4 == 0, "stale runs of whole 4-sample packets"
    assert np.array_equal(raw[stale], raw[stale - 1]), "a stale row repeats the row before it"


def test_sessions_differ_by_armband_placement(small_world: Path) -> None:
    sessions = [read_session(small_world / f"s01_r0{r}.h5") for r in (1, 2, 3)]
    rotations = {round(s.attrs["armband_rotation_deg"], 3) for s in sessions}
    assert len(rotations) == 3
    assert len({s.attrs["bone_scale"] for s in sessions}) == 1, "same subject, same hand"


def test_protocol_phases_scale_with_minutes() -> None:
    motion = generate_motion(2.0, np.random.default_rng(0))
    durations = {name: stop - start for name, start, stop in motion.phases}
    assert durations["dynamic"] == pytest.approx(60.0, abs=1.5)
    assert durations["rest"] == pytest.approx(15.0, abs=1.5)
    assert motion.gestures, "gesture holds are labelled"
    speed = np.abs(np.gradient(motion.angles, motion.time, axis=0)).max(axis=0)
    assert 1.0 < speed.max() < 8.0, "peak joint speeds of a few rad/s"


def test_mindrove_sdk_plays_the_csv_back(small_world: Path) -> None:
    from mindrove.board_shim import BoardIds, BoardShim, MindRoveInputParams

    session = read_session(small_world / "s01_r01.h5")
    BoardShim.disable_board_logger()
    params = MindRoveInputParams()
    params.file = str(small_world / "s01_r01_mindrove.csv")
    params.master_board = BoardIds.MINDROVE_WIFI_BOARD.value
    board = BoardShim(BoardIds.PLAYBACK_FILE_BOARD.value, params)
    board.prepare_session()
    board.start_stream()
    chunks = []
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        time.sleep(0.1)
        chunk = board.get_board_data()
        if chunk.shape[1]:
            chunks.append(chunk)
    board.stop_stream()
    board.release_session()
    data = np.concatenate(chunks, axis=1)
    emg = data[BoardShim.get_emg_channels(BoardIds.MINDROVE_WIFI_BOARD.value)].T
    # the CSV's timestamp column is the host's arrival time (a start-up backlog of seconds arrives at once, then
    # ~500 samples/s), and the playback board paces by it: 2.5 s of playback hold what arrived in ~2.5 s
    arrival = session.extras["import/arrival_times"]
    arrived_by = np.searchsorted(arrival, arrival[0] + np.array([1.0, 3.0]), side="right")
    assert arrived_by[0] < len(emg) <= arrived_by[1], "the backlog at once, then the arrival clock's pace"
    assert np.abs(emg - session.emg_raw[: len(emg)]).max() < 0.05, "µV as stored (float32 rounding only)"


def test_simulate_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from runtime.cli import main

    assert (
        main(["simulate", "--out", str(tmp_path), "--sessions", "2", "--minutes", "0.1", "--seed", "1", "--no-2k"]) == 0
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s01_r01.h5", "s01_r02.h5"]
    assert "s01_r02.h5" in capsys.readouterr().out
