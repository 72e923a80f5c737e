"""Bad input to the training side is refused with a UserError that names the file/option (issue 8):
argument validators, session files, `--data` selection, implausible EMG, diverging training, NaN weights."""

from __future__ import annotations

import argparse
import math
import shutil
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_bridge.cli_types import bounded_float, non_negative_int, positive_float, positive_int
from firmware_bridge.errors import UserError
from firmware_bridge.session import SessionFormatError, SessionWriter, read_session
from training.data.emg2pose_format import Emg2PoseFormatError, read_emg2pose_file, write_emg2pose_file
from training.data.windows import (
    build_windows,
    check_trainable,
    emg_fingerprint,
    load_sessions,
    require_labelled,
    resolve_data,
)
from training.fitting.trainer import TrainConfig, TrainingDiverged, train
from training.hand.fk_numpy import forward_kinematics_np
from training.hand.open_hand import open_hand_model
from training.models.checkpoint_io import CheckpointError
from training.models.checkpoint_meta import CheckpointMeta
from training.models.direct_model import DirectModel
from training.models.model_io import load_model_checkpoint, save_model_checkpoint

HAND = open_hand_model()


def write_session(
    path: Path, *, seconds: float = 4.0, channels: int = 8, rate: float = 500.0, ik_error: float = 5.0
) -> Path:
    """A small valid session through the real writer (EMG noise, a still hand seen at 30 fps)."""
    rng = np.random.default_rng(1)
    n = int(seconds * rate)
    m = int(seconds * 30)
    with SessionWriter(path, subject_id="p1", session_id="r01", emg_channels=channels, emg_sampling_rate=rate) as w:
        if n:
            w.append_emg(rng.normal(0, 40, (n, channels)), np.arange(n) / rate)
        if m:
            theta = rng.normal(0, 0.1, (m, 45)).astype(np.float32)
            joints = forward_kinematics_np(HAND, theta).astype(np.float32)
            w.append_pose(theta, joints, np.arange(m) / 30.0, np.full(m, ik_error), np.full(m, 0.9))
    return path


# -- argument validators ------------------------------------------------------------------------------
@given(st.integers(min_value=-(10**6), max_value=10**6))
def test_whole_number_options_accept_exactly_their_range(value: int) -> None:
    for parse, low in ((positive_int, 1), (non_negative_int, 0)):
        if value >= low:
            assert parse(str(value)) == value
        else:
            with pytest.raises(argparse.ArgumentTypeError, match=f"≥ {low}"):
                parse(str(value))


@given(st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(["nan", "inf", "-inf", "1e999", "x", ""]))
def test_float_options_refuse_nan_inf_and_out_of_range(value: float | str) -> None:
    text = repr(value) if isinstance(value, float) else value
    minutes = bounded_float(0.0, 30.0, low_inclusive=False)
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if math.isfinite(number) and 0 < number <= 30:
        assert minutes(text) == number
    else:
        with pytest.raises(argparse.ArgumentTypeError):
            minutes(text)
    if math.isfinite(number) and number > 0:
        assert positive_float(text) == number
    else:
        with pytest.raises(argparse.ArgumentTypeError):
            positive_float(text)


# -- session files ------------------------------------------------------------------------------------
def test_a_scalar_gesture_label_is_one_gesture_not_its_letters(tmp_path: Path) -> None:
    path = write_session(tmp_path / "s.h5")
    with h5py.File(path, "a") as f:
        f.create_dataset("gestures/labels", data="fist")
        f.create_dataset("gestures/start_times", data=0.5)
        f.create_dataset("gestures/end_times", data=1.5)
    assert read_session(path).gestures == [("fist", 0.5, 1.5)]


@pytest.mark.parametrize(
    ("edit", "where"),
    [
        (("attr", "emg_channels", "eight"), "attrs/emg_channels"),
        (("attr", "emg_sampling_rate", "fast"), "attrs/emg_sampling_rate"),
        (("attr", "emg_sampling_rate", 0.0), "attrs/emg_sampling_rate"),
        (("attr", "emg_sampling_rate", -500.0), "attrs/emg_sampling_rate"),
        (("data", "emg/raw", np.array([b"a", b"b"])), "emg/raw"),
        (("data", "emg/timestamps", 1.0), "emg/timestamps"),
        (("data", "emg/raw", np.zeros((0, 8))), "emg/"),
    ],
)
def test_malformed_attributes_and_datasets_name_what_is_wrong(tmp_path: Path, edit: tuple, where: str) -> None:
    path = write_session(tmp_path / "s.h5")
    _apply(path, edit)
    with pytest.raises(SessionFormatError) as info:
        read_session(path)
    assert str(path) in str(info.value) and where in str(info.value)


def test_an_empty_recording_is_refused_not_summarised_as_nan(tmp_path: Path) -> None:
    path = write_session(tmp_path / "empty.h5", seconds=0.0)
    with pytest.raises(SessionFormatError, match="0 EMG samples"):
        read_session(path)


def _apply(path: Path, edit: tuple) -> None:
    kind, name, value = edit
    with h5py.File(path, "a") as f:
        if kind == "attr":
            f.attrs[name] = value
        else:
            if name in f:
                del f[name]
            f.create_dataset(name, data=value)


_VALUES = st.one_of(
    st.text(max_size=5),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-3, 3),
    st.just(np.zeros(0)),
    st.just(np.zeros((3, 2))),
    st.just(np.array([b"x", b"y"])),
    st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=4).map(np.array),
)
_TARGETS = st.sampled_from(
    [
        ("attr", "emg_channels"),
        ("attr", "emg_sampling_rate"),
        ("attr", "camera_fps"),
        ("data", "emg/raw"),
        ("data", "emg/timestamps"),
        ("data", "pose/timestamps"),
        ("data", "pose/ik_error"),
        ("data", "gestures/labels"),
        ("data", "gestures/start_times"),
    ]
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(target=_TARGETS, value=_VALUES)
def test_any_corrupted_field_gives_a_clean_session_error_or_a_valid_session(
    tmp_path_factory: pytest.TempPathFactory, target: tuple[str, str], value: Any
) -> None:
    folder = tmp_path_factory.mktemp("fuzz")
    path = write_session(folder / "s.h5", seconds=2.5)
    try:
        _apply(path, (*target, value))
    except (TypeError, ValueError):  # h5py cannot store this value at all
        return
    try:
        session = read_session(path)
    except SessionFormatError as error:
        assert str(path) in str(error)
        return
    assert session.emg_raw.ndim == 2 and len(session.emg_timestamps) >= 2 and session.emg_rate > 0


def test_a_2khz_stream_is_named_as_such_when_read_as_a_session(tmp_path: Path) -> None:
    path = write_emg2pose_file(
        tmp_path / "s01_r01_2k.h5",
        np.arange(100) / 2000.0,
        np.zeros((100, 16), np.float32),
        np.zeros((100, 20), np.float32),
        user="s01",
        session="r01",
        stage="x",
    )
    with pytest.raises(SessionFormatError, match="pretrain-backbone"):
        read_session(path)
    with h5py.File(path, "a") as f:
        f["emg2pose"].attrs["sample_rate"] = "fast"
    with pytest.raises(Emg2PoseFormatError, match="sample_rate"):
        read_emg2pose_file(path)


# -- --data selection and what Mode 2 needs ----------------------------------------------------------
def test_data_entries_that_match_nothing_or_pretraining_streams_are_reported(tmp_path: Path) -> None:
    good = write_session(tmp_path / "s01_r01.h5")
    shutil.copy(good, tmp_path / "s01_r01_2k.h5")
    (tmp_path / "s01_r01_mindrove.csv").write_text("x")
    selection = resolve_data([str(tmp_path / "*"), str(tmp_path / "typo*.h5")])
    assert selection.paths == [good]
    notes = " | ".join(selection.notes)
    assert "typo*.h5' matches no file" in notes and "_2k.h5 pretraining" in notes and "non-.h5" in notes
    for entry, words in (
        (tmp_path / "s01_r01_2k.h5", "pretraining stream"),
        (tmp_path / "s01_r1.h5", "no such file"),
        (tmp_path, "is a folder"),
    ):
        with pytest.raises(UserError, match=words):
            resolve_data([str(entry)])
    with pytest.raises(UserError, match="no session files match"):
        load_sessions([str(tmp_path / "typo*.h5")], quiet=True)


@pytest.mark.parametrize(
    ("kwargs", "scale", "words"),
    [
        ({"channels": 16}, 1.0, "8 MindRove channels, this file has 16"),
        ({"seconds": 1.5}, 1.0, "shorter than one 2-s window"),
        ({"rate": 1000.0}, 1.0, "Mode 2 needs 500"),
        ({}, 3e38 / 40, "wrong units"),
    ],
)
def test_sessions_mode2_cannot_use_are_refused_naming_the_file(
    tmp_path: Path, kwargs: dict, scale: float, words: str
) -> None:
    path = write_session(tmp_path / "s.h5", **kwargs)
    if scale != 1.0:
        with h5py.File(path, "a") as f:
            f["emg/raw"][...] = np.clip(f["emg/raw"][()].astype(np.float64) * scale, -3e38, 3e38)
    session = read_session(path)
    for check in (check_trainable, lambda s: build_windows([s])):
        with pytest.raises(SessionFormatError) as info:
            check(session)
        assert str(path) in str(info.value) and words in str(info.value)


def test_sessions_without_valid_labels_give_no_training_windows(tmp_path: Path) -> None:
    session = read_session(write_session(tmp_path / "s.h5", ik_error=40.0))
    windows = build_windows([session])
    with pytest.raises(UserError, match=r"0 of 120 pose frames pass the label filter"):
        require_labelled(windows, [session], "training")


def test_a_renamed_copy_has_the_same_emg_fingerprint(tmp_path: Path) -> None:
    original = write_session(tmp_path / "a.h5")
    copy = tmp_path / "renamed.h5"
    shutil.copy(original, copy)
    with h5py.File(copy, "a") as f:
        f.attrs["session_id"] = "r99"
    a, b = read_session(original), read_session(copy)
    assert a.key != b.key and emg_fingerprint(a) == emg_fingerprint(b)
    other = read_session(write_session(tmp_path / "c.h5", seconds=3.0))
    assert emg_fingerprint(other) != emg_fingerprint(a)


# -- training and checkpoints -----------------------------------------------------------------------
def test_a_loss_that_becomes_nan_stops_training_naming_the_cause(tmp_path: Path) -> None:
    session = read_session(write_session(tmp_path / "s.h5", seconds=3.0))
    windows = build_windows([session])
    # EMG the session check refuses (float32's edge), here straight into the loop
    windows.emg.copy_(torch.sign(torch.randn_like(windows.emg)) * 3e38)
    model = DirectModel(HAND)
    config = TrainConfig(out=tmp_path / "out", epochs=3, batch_size=4, progress=False, prefix="direct")
    with pytest.raises(TrainingDiverged, match=r"NaN or inf in epoch 1.*EMG values up to 3e\+38"):
        train(model, windows, windows, config, CheckpointMeta(kind="direct", hand_model=HAND))
    assert not (tmp_path / "out" / "direct_best.pth").exists()


def test_a_checkpoint_with_nan_weights_is_refused_naming_it(tmp_path: Path) -> None:
    model = DirectModel(HAND)
    with torch.no_grad():
        next(iter(model.parameters())).fill_(float("nan"))
    path = save_model_checkpoint(tmp_path / "direct_best.pth", model, CheckpointMeta(kind="direct", hand_model=HAND))
    with pytest.raises(CheckpointError, match=f"{path}: weights contain NaN"):
        load_model_checkpoint(path)


def test_an_absent_accelerator_is_refused_not_ignored() -> None:
    from training.commands.train_command import pick_device

    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="--device cuda"):
            pick_device("cuda")
    if not (torch.backends.mps.is_available()):
        with pytest.raises(UserError, match="--device mps"):
            pick_device("mps")
    assert pick_device("auto").type in ("cuda", "mps", "cpu")
