"""`mode2 get-hand-model`'s builder and the model-file check, on the real mediapipe 0.10.21 wheel.

The wheel is downloaded once per session through pip (download only; pip's cache makes it quick, and
CI's `mode2 get-hand-model` step fills that cache).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from firmware_bridge.errors import UserError
from training.recording.hand_model_file import (
    HAND_MODEL_ENV,
    MEMBERS,
    OFFICIAL_MODEL_URL,
    TASK_SHA256,
    WHEEL_NAME,
    WHEEL_SHA256,
    build_hand_model,
    default_hand_model_path,
    download_wheel,
    resolve_hand_model,
    sidecar_path,
)


@pytest.fixture(scope="module")
def wheel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("mediapipe-wheel")
    download_wheel(folder, progress=None)
    return folder


@pytest.fixture(scope="module")
def built_model(wheel_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_hand_model(
        tmp_path_factory.mktemp("model") / "hand_landmarker.task", wheel_dir=wheel_dir, progress=None
    )


def test_building_from_the_wheel_gives_the_recorded_file_and_its_licence(built_model: Path) -> None:
    assert hashlib.sha256(built_model.read_bytes()).hexdigest() == TASK_SHA256
    assert resolve_hand_model(built_model) == built_model
    with zipfile.ZipFile(built_model) as bundle:
        assert [i.filename for i in bundle.infolist()] == [m.task_name for m in MEMBERS]
        assert all(i.compress_type == zipfile.ZIP_STORED for i in bundle.infolist())
        for member in MEMBERS:
            assert hashlib.sha256(bundle.read(member.task_name)).hexdigest() == member.sha256
    licence = sidecar_path(built_model).read_text(encoding="utf-8")
    for needed in ("Apache License", "Version 2.0", WHEEL_NAME, WHEEL_SHA256, TASK_SHA256, "palm_detection_full"):
        assert needed in licence
    # nothing else beside them: no temporary file survived the atomic writes
    assert sorted(p.name for p in built_model.parent.iterdir()) == [built_model.name, sidecar_path(built_model).name]


def test_the_built_model_tracks_a_rendered_hand(built_model: Path) -> None:
    from training.hand.angle_map import emg2pose_angles_to_mano_pose
    from training.hand.fk_numpy import forward_kinematics_np
    from training.hand.open_hand import open_hand_model
    from training.recording.landmarker import HandTracker
    from training.recording.render import render_hand
    from training.synth.motion import GESTURES

    joints = forward_kinematics_np(open_hand_model(), emg2pose_angles_to_mano_pose(GESTURES["open"]))
    rng = np.random.default_rng(3)
    with HandTracker(built_model) as tracker:
        seen = [tracker.detect(render_hand(joints, rng=rng), 33 * i) is not None for i in range(8)]
    assert sum(seen) >= 5, seen


def test_a_corrupted_wheel_is_refused_and_leaves_no_file(wheel_dir: Path, tmp_path: Path) -> None:
    bad_dir = tmp_path / "wheels"
    bad_dir.mkdir()
    bad = bad_dir / WHEEL_NAME
    shutil.copyfile(wheel_dir / WHEEL_NAME, bad)
    with bad.open("r+b") as handle:  # one flipped byte in the middle of the file
        handle.seek(bad.stat().st_size // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0xFF]))
    out = tmp_path / "out" / "hand_landmarker.task"
    with pytest.raises(UserError, match="sha256") as error:
        build_hand_model(out, wheel_dir=bad_dir, progress=None)
    assert str(bad) in str(error.value)
    assert not out.exists() and not sidecar_path(out).exists()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_wheel_dir_without_the_wheel_says_how_to_download_it(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="pip download") as error:
        build_hand_model(tmp_path / "m.task", wheel_dir=tmp_path, progress=None)
    assert WHEEL_NAME in str(error.value)
    assert not (tmp_path / "m.task").exists()


def test_a_failing_pip_download_names_the_command_and_the_offline_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an index-less pip with nothing to find: what an offline machine sees, in well under a second
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    out = tmp_path / "out" / "hand_landmarker.task"
    with pytest.raises(UserError) as error:
        build_hand_model(out, progress=None)
    message = str(error.value)
    assert "pip download" in message and "mediapipe==0.10.21" in message and "--wheel-dir" in message
    assert "No matching distribution" in message  # pip's own reason is passed on
    assert not out.exists()


def test_a_missing_model_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(UserError) as error:
        resolve_hand_model(tmp_path / "nowhere.task")
    message = str(error.value)
    assert str(tmp_path / "nowhere.task") in message
    assert "mode2 get-hand-model" in message and OFFICIAL_MODEL_URL in message


def test_the_default_location_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(HAND_MODEL_ENV, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_hand_model_path() == tmp_path / "data" / "mode2" / "hand_landmarker.task"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_hand_model_path() == tmp_path / "home" / ".local" / "share" / "mode2" / "hand_landmarker.task"
    monkeypatch.setenv(HAND_MODEL_ENV, str(tmp_path / "mine.task"))
    assert default_hand_model_path() == tmp_path / "mine.task"
    with pytest.raises(UserError, match=HAND_MODEL_ENV):  # the error says where the default came from
        resolve_hand_model(None)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"<html>404 Not Found</html>", "not a zip"),
        ("zip-without-networks", "hand_landmarks_detector.tflite"),
    ],
)
def test_a_file_that_is_not_a_hand_model_is_refused(tmp_path: Path, content: bytes | str, expected: str) -> None:
    path = tmp_path / "hand_landmarker.task"
    if content == "zip-without-networks":
        with zipfile.ZipFile(path, "w") as bundle:
            bundle.writestr("hand_detector.tflite", b"x")
    else:
        path.write_bytes(content)  # type: ignore[arg-type]
    with pytest.raises(UserError, match=expected) as error:
        resolve_hand_model(path)
    assert "mode2 get-hand-model" in str(error.value)


def test_a_zip_with_the_right_names_but_no_networks_is_refused_by_the_tracker(tmp_path: Path) -> None:
    from training.recording.landmarker import HandTracker

    path = tmp_path / "hand_landmarker.task"
    with zipfile.ZipFile(path, "w") as bundle:
        for member in MEMBERS:
            bundle.writestr(member.task_name, b"not a tflite network")
    with pytest.raises(UserError, match="MediaPipe cannot load it"):
        HandTracker(path)


def test_an_official_style_bundle_is_accepted(built_model: Path, tmp_path: Path) -> None:
    """Google's file: the same two networks, possibly in another order and with other entries."""
    official = tmp_path / "official.task"
    with zipfile.ZipFile(built_model) as source, zipfile.ZipFile(official, "w") as bundle:
        for member in reversed(MEMBERS):
            bundle.writestr(member.task_name, source.read(member.task_name))
        bundle.writestr("metadata.json", b"{}")
    assert resolve_hand_model(official) == official
