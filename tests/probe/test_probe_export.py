"""Probe `mode2 export-onnx` as a careless or hostile user would (issue 8): bad arguments, bad data, broken
checkpoints, a failed parity check and a kill -9 mid-export. Every one ends with exit status 2 and one error
line naming the problem (or, for kill -9, nothing at all) — and the model the user already had is unchanged,
byte for byte.

Subprocess runs are kept few (each imports torch); the many argument cases run the real entry point
in-process (`runtime.cli.main`), which turns a user error into the same one line and exit status.
"""

from __future__ import annotations

import contextlib
import io
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from cli_probe import REPO_ROOT, assert_user_error, fingerprint, run_mode2

import export.export_command as export_command
from export.onnx_export import ExportWrapper
from runtime.cli import main
from runtime.model_metadata import load_model

USER_FILES = ("model.onnx", "model.int8.onnx", "model.md")


@pytest.fixture(scope="module")
def checkpoint(trained_checkpoints: Path) -> Path:
    """One epoch of Mode 2 on r01–r02 (r03 held out): the session-wide model of tests/conftest.py."""
    return trained_checkpoints / "transfer_mode2_best.pth"


@pytest.fixture(scope="module")
def held_out(small_world: Path) -> Path:
    return small_world / "s01_r03.h5"


@pytest.fixture(scope="module")
def first_export(exported_model: Path) -> Path:
    """The user's existing, good export (model, int8 and card) that nothing below may damage."""
    return exported_model.parent


@pytest.fixture
def users_model(first_export: Path, tmp_path: Path) -> Path:
    """A fresh copy of the good export in its own folder (a test may try to overwrite it)."""
    folder = tmp_path / "models"
    folder.mkdir()
    for name in USER_FILES:
        shutil.copy2(first_export / name, folder / name)
    return folder


def user_prints(folder: Path) -> dict[str, str | None]:
    return fingerprint(folder / name for name in USER_FILES)


def in_process(*argv: str) -> tuple[int, str]:
    """`mode2 ARGV` through the real entry point in this process: (exit status, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(list(argv))
    return code, err.getvalue()


def assert_refused_in_one_line(users_model: Path, args: Sequence[object], *mentions: str) -> None:
    """`mode2 export-onnx ARGS` exits 2 with one error line naming every mention; the user's files are unchanged."""
    before = user_prints(users_model)
    code, err = in_process("export-onnx", *map(str, args))
    assert code == 2 and err.count("\n") == 1 and err.startswith("mode2 export-onnx: error: "), err
    assert all(mention in err for mention in mentions), err
    assert user_prints(users_model) == before


def copy_session(source: Path, target: Path, change: Callable[[h5py.File], None]) -> Path:
    shutil.copy(source, target)
    with h5py.File(target, "r+") as f:
        change(f)
    return target


def shorten(f: h5py.File) -> None:
    """1.5 s of EMG (and the camera frames of that time): shorter than one 2-s window."""
    emg_rows, pose_rows = f["emg/raw"].shape[0], f["pose/timestamps"].shape[0]
    resizable = []
    f.visititems(
        lambda name, obj: resizable.append(obj) if isinstance(obj, h5py.Dataset) and obj.maxshape[0] is None else None
    )
    for dataset in resizable:
        rows = {emg_rows: 750, pose_rows: 45}.get(dataset.shape[0])
        if rows is not None:
            dataset.resize(rows, axis=0)
    f.attrs["duration_sec"] = 1.5


def damage_checkpoint(source: Path, target: Path, change: Callable[[dict], None]) -> Path:
    content = torch.load(source, weights_only=True)
    change(content)
    torch.save(content, target)
    return target


def _set(key: str, value: object) -> Callable[[dict], None]:
    return lambda content: content.__setitem__(key, value)


BAD_DATA: dict[str, tuple[Callable[[h5py.File], None], str]] = {
    "nan-emg": (lambda f: f["emg/raw"].__setitem__((100, 3), np.nan), "emg/raw"),
    "short": (shorten, "shorter than"),
}
BAD_CHECKPOINTS: dict[str, tuple[Callable[[dict], None], str]] = {
    "missing-hand-model": (lambda c: c.pop("hand_model"), "hand_model"),
    "missing-weights": (lambda c: c.pop("state_dict"), "state_dict"),
    "bogus-config": (_set("config", {"adapter_init": "bogus"}), "bogus"),
    "bogus-backbone-config": (lambda c: c["backbone"].__setitem__("config", {"width": "wide"}), "checkpoint"),
    "three-value-initial-mean": (_set("initial_state_mean", [0.1, 0.2, 0.3]), "initial_state_mean"),
    "nan-initial-mean": (_set("initial_state_mean", [float("nan")] * 20), "initial_state_mean"),
    "broken-calibration": (_set("confidence_calibration", {"x": [0.0, 1.0], "y": [0.5]}), "confidence_calibration"),
    "unknown-policy": (_set("initial_state_policy", "oracle"), "initial_state_policy"),
}


@pytest.mark.parametrize("case", sorted(BAD_DATA))
def test_bad_data_is_one_clear_line_and_the_model_is_untouched(
    case: str, checkpoint: Path, held_out: Path, users_model: Path, tmp_path: Path
) -> None:
    change, mention = BAD_DATA[case]
    data = copy_session(held_out, tmp_path / f"{case}.h5", change)
    args = ("--checkpoint", checkpoint, "--out", users_model / "model.onnx", "--data", data, "--int8")
    assert_refused_in_one_line(users_model, args, str(data), mention)


@pytest.mark.parametrize("case", sorted(BAD_CHECKPOINTS))
def test_a_broken_checkpoint_is_one_clear_line_naming_it(
    case: str, checkpoint: Path, held_out: Path, users_model: Path, tmp_path: Path
) -> None:
    change, mention = BAD_CHECKPOINTS[case]
    broken = damage_checkpoint(checkpoint, tmp_path / f"{case}.pth", change)
    args = ("--checkpoint", broken, "--out", users_model / "model.onnx", "--data", held_out)
    assert_refused_in_one_line(users_model, args, str(broken), mention)


def test_bad_arguments_are_refused_before_any_work(
    checkpoint: Path, held_out: Path, users_model: Path, tmp_path: Path
) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder")
    cases = {
        "--opset 7": (["--opset", "7"], "--opset 7"),
        "--opset 99": (["--opset", "99"], "--opset 99"),
        "--out a folder": (["--out", str(users_model)], "is a folder"),
        "--out inside a file": (["--out", str(a_file / "model.onnx")], "not a folder"),
        "--out not .onnx": (["--out", str(tmp_path / "model.pth")], "must end in .onnx"),
        "--out the checkpoint": (["--out", str(checkpoint)], "must end in .onnx"),
        "--data missing": (["--data", str(tmp_path / "nope.h5")], "nope.h5"),
        "--data not HDF5": (["--data", str(a_file)], "notes.txt"),
        "--checkpoint missing": (["--checkpoint", str(tmp_path / "nope.pth")], "nope.pth"),
        "--checkpoint a folder": (["--checkpoint", str(tmp_path)], "is a folder"),
        "--checkpoint a session": (["--checkpoint", str(held_out)], "not a PyTorch checkpoint"),
    }
    before = user_prints(users_model)
    for name, (extra, mention) in cases.items():
        base = {"--checkpoint": str(checkpoint), "--out": str(users_model / "model.onnx"), "--data": str(held_out)}
        base.update(dict(zip(extra[::2], extra[1::2], strict=True)))
        argv = [item for pair in base.items() for item in pair]
        code, err = in_process("export-onnx", *argv)
        assert code == 2 and err.count("\n") == 1 and err.startswith("mode2 export-onnx: error: "), (name, err)
        assert mention in err, (name, err)
        assert user_prints(users_model) == before, name
    assert sorted(p.name for p in users_model.iterdir()) == sorted(USER_FILES), "no temporary file left behind"


def test_the_installed_command_says_it_in_one_line(checkpoint: Path, held_out: Path, users_model: Path) -> None:
    before = user_prints(users_model)
    result = run_mode2("export-onnx", "--checkpoint", checkpoint, "--data", held_out, "--out", users_model)
    assert_user_error(result, "is a folder")
    assert user_prints(users_model) == before


def test_a_failed_parity_check_keeps_the_previous_model_byte_for_byte(
    checkpoint: Path, held_out: Path, users_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Drifting(ExportWrapper):  # the PyTorch reference disagrees with what was exported
        def forward(self, emg: torch.Tensor, initial: torch.Tensor) -> tuple[torch.Tensor, ...]:
            theta, *rest = super().forward(emg, initial)
            return (theta + 1e-3, *rest)

    monkeypatch.setattr(export_command, "ExportWrapper", Drifting)
    before = user_prints(users_model)
    args = ("--checkpoint", checkpoint, "--out", users_model / "model.onnx", "--data", held_out, "--int8")
    code, err = in_process("export-onnx", *map(str, args))
    assert code == 2 and "parity check failed" in err and "unchanged" in err, err
    assert user_prints(users_model) == before
    assert sorted(p.name for p in users_model.iterdir()) == sorted(USER_FILES), "no temporary file left behind"
    assert load_model(users_model / "model.onnx").meta.parity is not None


def _lines(stream: io.TextIOBase, into: queue.Queue[str]) -> None:
    for line in stream:
        into.put(line)
    into.put("")


def test_kill_9_during_export_leaves_the_previous_model_intact(
    checkpoint: Path, held_out: Path, users_model: Path
) -> None:
    """Killed right after the fp32 parity check (the old exporter then had a model without parity figures
    where the user's model was): the user's three files are exactly what they were, and still load."""
    before = user_prints(users_model)
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=str(REPO_ROOT), PYTHONUNBUFFERED="1")
    argv = ["--checkpoint", checkpoint, "--out", users_model / "model.onnx", "--data", held_out, "--int8"]
    process = subprocess.Popen(
        [sys.executable, "-m", "runtime.cli", "export-onnx", *map(str, argv)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=REPO_ROOT,
        env=env,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_lines, args=(process.stdout, lines), daemon=True).start()
    try:
        while True:
            line = lines.get(timeout=120)
            assert line, "the export ended before its parity check"
            if line.startswith("parity fp32"):
                break
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL, "the export finished before it could be killed"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    assert user_prints(users_model) == before
    loaded = load_model(users_model / "model.onnx")
    assert loaded.meta.parity is not None and loaded.meta.quantization == "none"
    leftovers = [p.name for p in users_model.iterdir() if p.name not in USER_FILES]
    assert all(name.startswith(".model.") and ".tmp-" in name for name in leftovers), leftovers
