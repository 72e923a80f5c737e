"""Windows: label filter, interpolation onto the EMG clock, held-out splits, statistics from training only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from firmware_bridge.emg_filter import InputFilter, filter_session
from firmware_bridge.errors import UserError
from firmware_bridge.session import read_session
from training.data.windows import (
    DEFAULT_INPUT_FILTER,
    SUPERVISED_INDICES,
    build_windows,
    channel_std,
    session_windows,
    split_sessions,
)
from training.models.mode2_model import output_time_offsets


def test_windows_follow_the_guide(small_world: Path) -> None:
    session = read_session(small_world / "s01_r01.h5")
    w = session_windows(session)
    n = len(session.emg_timestamps)
    assert w["emg"].shape[1:] == (8, 1000)
    assert len(w["emg"]) <= (n - 1000) // 500 + 1, "2-s windows, 50 % overlap"
    assert np.allclose(np.diff(w["start_time"])[np.diff(w["start_time"]) < 1.5], 1.0, atol=0.01)
    # windows are cut from the session after the model's causal input filter (the default: high-pass + mains
    # notches of both families), run over the whole stream
    assert InputFilter.design(500.0, notch_hz=(50, 60, 100, 120, 150, 180, 200, 240)) == DEFAULT_INPUT_FILTER
    filtered = filter_session(session.emg_raw, session.emg_timestamps, DEFAULT_INPUT_FILTER)
    first = int(np.searchsorted(session.emg_timestamps, w["start_time"][0]))
    np.testing.assert_array_equal(w["emg"][0], filtered[first : first + 1000].T)
    # labels interpolated at the supervised instants; "now" is the window's end: the last 2-kHz sample, the 4th of
    # the causal upsampler's between window samples 998 and 999, i.e. (4·999 − 1 + 0.5) / 2000 s
    assert output_time_offsets([SUPERVISED_INDICES[-1]])[0] == pytest.approx(3995.5 / 2000.0)
    assert 999 / 500.0 - output_time_offsets([SUPERVISED_INDICES[-1]])[0] < 0.5 / 500.0, "within ½ sample of 'now'"


def test_invalid_camera_frames_are_not_supervised(small_world: Path) -> None:
    session = read_session(small_world / "s01_r02.h5")
    w = session_windows(session)
    valid = session.valid_pose_mask()
    times = w["start_time"][:, None] + output_time_offsets(SUPERVISED_INDICES)[None]
    right = np.clip(np.searchsorted(session.pose_timestamps, times), 1, len(valid) - 1)
    both_valid = valid[right] & valid[right - 1]
    assert not np.any(w["mask"] & ~both_valid), "a point next to a failed frame is never supervised"
    assert w["mask"].mean() > 0.7


def test_interpolated_labels_match_the_frames(small_world: Path) -> None:
    session = read_session(small_world / "s01_r01.h5")
    w = session_windows(session)
    k, s = np.argwhere(w["mask"])[5]
    t = w["start_time"][k] + output_time_offsets([SUPERVISED_INDICES[s]])[0]
    i = np.searchsorted(session.pose_timestamps, t)
    a, b = session.pose_timestamps[i - 1], session.pose_timestamps[i]
    expected = session.mano_theta[i - 1] + (session.mano_theta[i] - session.mano_theta[i - 1]) * (t - a) / (b - a)
    assert np.allclose(w["theta"][k, s], expected, atol=1e-5)


def test_split_by_session_and_subject_never_by_window(small_world: Path) -> None:
    sessions = [read_session(small_world / f"s01_r0{r}.h5") for r in (1, 2, 3)]
    split = split_sessions(sessions, ["s01/r03"], None)
    assert [s.key for s in split.val] == ["s01/r03"]
    assert {s.key for s in split.train} == {"s01/r01", "s01/r02"}
    default = split_sessions(sessions, None, None)
    assert [s.key for s in default.val] == ["s01/r03"], "default: each subject's last session"
    with pytest.raises(UserError, match="leaves 0 training"):
        split_sessions(sessions, None, "s01")
    train, val = build_windows(split.train), build_windows(split.val)
    assert set(train.keys) & set(val.keys) == set()
    assert not set(train.start_time.tolist()) & set(val.start_time.tolist())


def test_normalisation_statistics_come_from_training_windows(small_world: Path) -> None:
    sessions = [read_session(small_world / f"s01_r0{r}.h5") for r in (1, 2, 3)]
    train = build_windows(sessions[:2])
    val = build_windows(sessions[2:])
    std_train = channel_std(train)
    assert std_train.shape == (8,) and torch.all(std_train > 1)
    assert not torch.allclose(std_train, channel_std(val)), "each set has its own statistics"
    # the spread of the filtered windows the model sees (no DC left to inflate it)
    torch.testing.assert_close(std_train, train.emg.transpose(0, 1).reshape(8, -1).std(dim=1), rtol=0.05, atol=0)
