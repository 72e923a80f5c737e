"""Probe `simulate`, `inspect`, `train`, `evaluate` and `pretrain-backbone` as a careless or hostile user
would (issue 8): every bad input ends with exit status 2 (130 for Ctrl-C, documented), one error line
naming the problem, no traceback, and no user file changed or removed.

Subprocess runs (`run_mode2`) are kept few: each `mode2 train` costs seconds. Argument-value properties run
the real command-line entry point in-process (`runtime.cli.main`), where argparse refuses them the same way.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from cli_probe import REPO_ROOT, assert_user_error, fingerprint, run_mode2
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.cli import main
from training.models.checkpoint_io import read_checkpoint_safely
from training.synth import simulate

TRAIN_ARGS = ("--epochs", "1", "--val-sessions", "s01/r03", "--batch-size", "16", "--threads", "1")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three 0.5-minute sessions of one subject, with their 2 kHz streams, made once."""
    out = tmp_path_factory.mktemp("probe_world")
    simulate(out, sessions=3, subjects=1, minutes=0.5, seed=11, progress=False)
    return out


@pytest.fixture(scope="module")
def trained(world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One epoch of Mode 2 on r01–r02 (r03 held out), in-process, made once."""
    out = tmp_path_factory.mktemp("probe_train")
    assert main(["train", "--data", str(world / "s01_r0[1-3].h5"), "--out", str(out), *TRAIN_ARGS]) == 0
    return out


def _in_process(*argv: str) -> tuple[int, str]:
    """`mode2 ARGV` through the real entry point in this process: (exit status, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(list(argv))
        except SystemExit as exit_:  # argparse refuses a value
            code = int(exit_.code or 0)
    return code, err.getvalue()


def _copy_with(source: Path, target: Path, **edits: object) -> Path:
    """A copy of a session with datasets (name → array) or root attrs (`attr_NAME` → value) replaced."""
    shutil.copy(source, target)
    with h5py.File(target, "a") as f:
        for name, value in edits.items():
            if name.startswith("attr_"):
                f.attrs[name[5:]] = value
            else:
                del f[name.replace("__", "/")]
                f.create_dataset(name.replace("__", "/"), data=value)
    return target


# -- argument values: refused by argparse at the edge (in-process, many values) -----------------------
BAD_NUMBERS = st.sampled_from(["0", "-1", "-5", "nan", "inf", "-inf", "1e999", "x", "1.5e", ""])


@settings(max_examples=40, deadline=None)
@given(
    option=st.sampled_from(
        [
            ("simulate", "--minutes"),
            ("simulate", "--sessions"),
            ("simulate", "--subjects"),
            ("train", "--epochs"),
            ("train", "--batch-size"),
            ("train", "--lr"),
            ("pretrain-backbone", "--epochs"),
            ("pretrain-backbone", "--batch-size"),
        ]
    ),
    value=BAD_NUMBERS,
)
def test_bad_numbers_are_refused_by_argparse_naming_the_option(option: tuple[str, str], value: str) -> None:
    command, flag = option
    required = {
        "simulate": ["--out", "/nonexistent/never-written"],
        "train": ["--data", "/nonexistent/*.h5", "--out", "/nonexistent/never"],
        "pretrain-backbone": ["--data", "/nonexistent/*.h5", "--out", "/nonexistent/never.pth"],
    }[command]
    code, err = _in_process(command, *required, f"{flag}={value}")
    assert code == 2 and "Traceback" not in err
    assert flag in err.splitlines()[-1] and "error" in err.splitlines()[-1]
    assert not Path("/nonexistent").exists()


@pytest.mark.parametrize(("flag", "value"), [("--threads", "-1"), ("--seed", "-3"), ("--max-minutes", "nan")])
def test_train_refuses_negative_threads_seed_and_nan_minutes(flag: str, value: str) -> None:
    code, err = _in_process("train", "--data", "x.h5", f"{flag}={value}")
    assert code == 2 and flag in err.splitlines()[-1]


def test_simulate_minutes_nan_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    """Old behaviour: 2-s sessions and exit 0."""
    result = run_mode2("simulate", "--out", tmp_path / "sim", "--minutes", "nan")
    assert_user_error(result, "--minutes")
    assert not (tmp_path / "sim").exists()


def test_simulate_into_an_unwritable_place_is_one_clear_line(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("keep me")
    for out in (a_file, a_file / "below"):
        code, err = _in_process("simulate", "--out", str(out), "--minutes", "0.05", "--no-2k")
        assert code == 2 and "Traceback" not in err and "--out" in err and str(a_file) in err
    assert a_file.read_text() == "keep me"


# -- inspect -----------------------------------------------------------------------------------------
def test_inspect_understands_the_2khz_streams_simulate_writes(world: Path) -> None:
    result = run_mode2("inspect", world / "s01_r01_2k.h5", world / "s01_r01.h5")
    assert result.returncode == 0, result.stderr
    assert "emg2pose layout" in result.stdout and "16 channels" in result.stdout
    assert "subject s01, session r01" in result.stdout


@pytest.mark.parametrize(
    ("edits", "mentions"),
    [
        ({"attr_emg_channels": "eight"}, ("emg_channels", "whole number")),
        ({"attr_emg_sampling_rate": "500 Hz"}, ("emg_sampling_rate", "number")),
        ({"attr_emg_sampling_rate": 0.0}, ("emg_sampling_rate", "positive")),
        ({"emg__raw": np.array([b"a"] * 8)}, ("emg/raw", "expected numbers")),
        ({"emg__timestamps": 3.0}, ("emg/timestamps", "scalar")),
        (
            {"emg__raw": np.zeros((0, 8)), "emg__filtered": np.zeros((0, 8)), "emg__timestamps": np.zeros(0)},
            ("0 EMG samples",),
        ),
    ],
    ids=["string-channels", "string-rate", "rate-0", "string-emg", "scalar-timestamps", "zero-rows"],
)
def test_inspect_refuses_malformed_sessions_in_one_line(
    world: Path, tmp_path: Path, edits: dict, mentions: tuple[str, ...]
) -> None:
    bad = _copy_with(world / "s01_r01.h5", tmp_path / "bad.h5", **edits)
    code, err = _in_process("inspect", str(bad))
    line = err.strip().splitlines()[-1]
    assert code == 2 and "Traceback" not in err, err
    assert str(bad) in line and all(m in line for m in mentions), line


@settings(max_examples=40, deadline=None)
@given(
    target=st.sampled_from(
        ["attr_emg_channels", "attr_emg_sampling_rate", "attr_camera_fps", "emg__timestamps", "pose__ik_error"]
    ),
    value=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(-10, 10**6),
        st.text(max_size=4),
        st.lists(st.floats(-1e6, 1e6), min_size=0, max_size=3).map(np.array),
    ),
)
def test_inspect_either_summarises_or_refuses_any_corrupted_field_in_one_line(
    world: Path, tmp_path_factory: pytest.TempPathFactory, target: str, value: object
) -> None:
    path = tmp_path_factory.mktemp("inspect_fuzz") / "s.h5"
    try:
        _copy_with(world / "s01_r02.h5", path, **{target: value})
    except (TypeError, ValueError):  # h5py cannot store this value at all
        return
    code, err = _in_process("inspect", str(path))
    assert code in (0, 2) and "Traceback" not in err, err
    if code == 2:
        assert str(path) in err.strip().splitlines()[-1]


def test_inspect_of_an_empty_session_is_an_error_not_nan(world: Path, tmp_path: Path) -> None:
    """Old behaviour: NaN summary, exit 0."""
    empty = _copy_with(
        world / "s01_r01.h5",
        tmp_path / "empty.h5",
        emg__raw=np.zeros((0, 8)),
        emg__filtered=np.zeros((0, 8)),
        emg__timestamps=np.zeros(0),
    )
    result = run_mode2("inspect", empty)
    assert_user_error(result, str(empty), "0 EMG samples")
    assert "nan" not in result.stdout.lower()


def test_inspect_with_an_unwritable_plot_fails_before_work_and_changes_nothing(world: Path, tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("keep me")
    before = fingerprint([tmp_path])
    for plot in (tmp_path, a_file / "overview.png"):
        code, err = _in_process("inspect", str(world / "s01_r01.h5"), "--plot", str(plot))
        assert code == 2 and "Traceback" not in err and "--plot" in err.splitlines()[-1], err
    assert fingerprint([tmp_path]) == before


# -- train -------------------------------------------------------------------------------------------
def test_train_refuses_a_file_as_out_and_a_missing_mano_before_loading_anything(world: Path, tmp_path: Path) -> None:
    a_file = tmp_path / "checkpoints"
    a_file.write_text("keep me")
    data = str(world / "s01_r0*.h5")
    assert_user_error(run_mode2("train", "--data", data, "--out", a_file), "--out", "not a folder")
    code, err = _in_process("train", "--data", data, "--out", str(tmp_path / "o"), "--mano", str(tmp_path / "M.pkl"))
    assert code == 2 and "--mano" in err and "mano.is.tue.mpg.de" in err
    code, err = _in_process("train", "--data", data, "--out", str(tmp_path / "o"), "--device", "cuda")
    if not torch.cuda.is_available():
        assert code == 2 and "--device cuda" in err
    assert a_file.read_text() == "keep me"


def test_train_data_typos_and_pretraining_streams_are_named(world: Path, tmp_path: Path) -> None:
    """Old behaviour: dropped in silence."""
    out = tmp_path / "o"
    for entry, words in (
        (world / "s01_r1.h5", "no such file"),
        (world / "s01_r01_2k.h5", "pretraining stream"),
        (world / "typo*.h5", "no session files match"),
    ):
        code, err = _in_process("train", "--data", str(entry), "--out", str(out), *TRAIN_ARGS)
        assert code == 2 and "Traceback" not in err and words in err.splitlines()[-1], err
    code, err = _in_process("train", "--data", str(world / "*_2k.h5"), "--out", str(out), *TRAIN_ARGS)
    assert code == 2 and "skipped 3 *_2k.h5" in err
    assert not out.exists(), "a refused command creates no folder"


def test_train_without_valid_labels_is_refused_before_training(world: Path, tmp_path: Path) -> None:
    """Old behaviour: loss 0, then "best.pth: no such checkpoint file"."""
    data = tmp_path / "data"
    data.mkdir()
    for r in (1, 2, 3):
        source = world / f"s01_r0{r}.h5"
        with h5py.File(source) as f:
            frames = len(f["pose/ik_error"])
        _copy_with(source, data / source.name, pose__ik_error=np.full(frames, 40.0, np.float32))
    result = run_mode2("train", "--data", data / "*.h5", "--out", tmp_path / "out", *TRAIN_ARGS)
    assert_user_error(result, "pass the label filter")
    assert not (tmp_path / "out").exists()


def test_train_on_absurd_emg_is_refused_naming_the_file(world: Path, tmp_path: Path) -> None:
    """EMG of 3e38 µV (float32's edge) used to give a NaN loss and a missing best.pth."""
    data = tmp_path / "data"
    data.mkdir()
    for r in (2, 3):
        shutil.copy(world / f"s01_r0{r}.h5", data)
    with h5py.File(world / "s01_r01.h5") as f:
        raw = f["emg/raw"][()]
    bad = _copy_with(world / "s01_r01.h5", data / "s01_r01.h5", emg__raw=np.sign(raw + 0.5) * 3e38)
    code, err = _in_process("train", "--data", str(data / "*.h5"), "--out", str(tmp_path / "o"), *TRAIN_ARGS)
    assert code == 2 and str(bad) in err and "wrong units" in err


def test_train_resume_of_another_architecture_or_a_hostile_pickle_is_refused(
    world: Path, trained: Path, tmp_path: Path
) -> None:
    last = trained / "transfer_mode2_last.pth"
    before = fingerprint([trained])
    old_style = tmp_path / "old_last.pth"  # a resume file from before it named its architecture
    content = read_checkpoint_safely(last)
    content.pop("arch", None)
    torch.save(content, old_style)
    hostile = tmp_path / "evil.pth"
    torch.save({"kind": "resume", "x": _Evil()}, hostile)
    hostile_pickle = tmp_path / "MANO_RIGHT.pkl"
    hostile_pickle.write_bytes(pickle.dumps(_Evil(), protocol=2))
    cases = [
        ("--resume", last, ("--arch", "direct"), "transfer_mode2 run"),
        ("--resume", old_style, ("--arch", "direct"), "do not fit"),
        ("--resume", hostile, (), "refusing to load"),
        ("--resume", trained / "transfer_mode2_best.pth", (), "not a resume file"),
        ("--mano", hostile_pickle, (), "refusing to load"),
        ("--backbone", hostile, (), "refusing to load"),
    ]
    for flag, path, extra, words in cases:
        code, err = _in_process(
            "train",
            "--data",
            str(world / "s01_r0*.h5"),
            "--out",
            str(tmp_path / "o"),
            *TRAIN_ARGS,
            *extra,
            flag,
            str(path),
        )
        assert code == 2 and "Traceback" not in err, err
        assert words in err.splitlines()[-1] and str(path) in err.splitlines()[-1], err
    assert fingerprint([trained]) == before
    assert not Path("/tmp/h2-training-pwned").exists()


class _Evil:
    def __reduce__(self) -> tuple:
        return (os.system, ("echo pwned > /tmp/h2-training-pwned",))


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize(
    "ignored_at_start",
    [False, True],
    ids=["plain", "SIGINT ignored at start (a background job of a script: `mode2 train … &`)"],
)
def test_ctrl_c_during_training_ends_with_130_and_the_resume_command(
    world: Path, tmp_path: Path, ignored_at_start: bool
) -> None:
    """Python installs no KeyboardInterrupt handler in a process started with SIGINT ignored (as `&` in a
    non-interactive shell starts it): the trainer's own handler must still stop it (it used to train on)."""
    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "runtime.cli",
        "train",
        "--data",
        str(world / "s01_r0*.h5"),
        "--out",
        str(out),
        "--epochs",
        "200",
        "--val-sessions",
        "s01/r03",
        "--batch-size",
        "16",
        "--threads",
        "1",
    ]
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), MPLBACKEND="Agg")
    proc = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_ignore_sigint if ignored_at_start else None,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        last = out / "transfer_mode2_last.pth"
        for line in proc.stdout:  # epoch 1 is logged, then its checkpoints are written
            if "Saved best model" in line or time.monotonic() > deadline:
                break
        while not last.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)  # during epoch 2
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    line = [x for x in stderr.splitlines() if "interrupted" in x][-1]
    assert "resume with: mode2 train" in line and f"--resume {out / 'transfer_mode2_last.pth'}" in line
    resume = read_checkpoint_safely(out / "transfer_mode2_last.pth")
    assert resume["kind"] == "resume" and resume["epoch"] >= 1
    from training.models.model_io import load_model_checkpoint

    load_model_checkpoint(out / "transfer_mode2_best.pth")
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "no temporary left behind"


# -- evaluate ----------------------------------------------------------------------------------------
def test_evaluate_recognises_a_training_session_under_another_session_id(
    world: Path, trained: Path, tmp_path: Path
) -> None:
    """Old behaviour: accepted (keys were the only check)."""
    renamed = _copy_with(world / "s01_r01.h5", tmp_path / "fresh.h5", attr_session_id="r77")
    result = run_mode2(
        "evaluate", "--checkpoint", trained / "transfer_mode2_best.pth", "--data", renamed, "--out", tmp_path / "ev"
    )
    assert_user_error(result, str(renamed), "were used to train", "s01/r01")
    assert not (tmp_path / "ev" / "report.md").exists()


def test_evaluate_falls_back_to_keys_for_old_checkpoints_and_says_so(
    world: Path, trained: Path, tmp_path: Path
) -> None:
    content = read_checkpoint_safely(trained / "transfer_mode2_best.pth")
    del content["training"]["train_emg_sha256"]
    old = tmp_path / "old.pth"
    torch.save(content, old)
    code, err = _in_process(
        "evaluate", "--checkpoint", str(old), "--data", str(world / "s01_r01.h5"), "--out", str(tmp_path / "e")
    )
    assert code == 2 and "predates content fingerprints" in err and "were used to train" in err.splitlines()[-1]


def test_evaluate_refuses_sessions_it_cannot_window_naming_the_file(world: Path, trained: Path, tmp_path: Path) -> None:
    """Old behaviour: "cannot reshape array of size 0" / a ValueError traceback."""
    with h5py.File(world / "s01_r03.h5") as f:
        n = 750  # 1.5 s
        cut = {name: f[name][:n] for name in ("emg/raw", "emg/filtered", "emg/timestamps")}
        raw16 = np.tile(f["emg/raw"][()], (1, 2))
    short = _copy_with(
        world / "s01_r03.h5",
        tmp_path / "short.h5",
        emg__raw=cut["emg/raw"],
        emg__filtered=cut["emg/filtered"],
        emg__timestamps=cut["emg/timestamps"],
    )
    wide = _copy_with(
        world / "s01_r03.h5",
        tmp_path / "wide.h5",
        emg__raw=raw16,
        emg__filtered=raw16,
        attr_emg_channels=16,
    )
    checkpoint = trained / "transfer_mode2_best.pth"
    assert_user_error(
        run_mode2("evaluate", "--checkpoint", checkpoint, "--data", short, "--out", tmp_path / "e"),
        str(short),
        "shorter than one 2-s window",
    )
    code, err = _in_process("evaluate", "--checkpoint", str(checkpoint), "--data", str(wide), "--out", str(tmp_path))
    assert code == 2 and str(wide) in err and "8 MindRove channels" in err


def test_evaluate_with_nan_weights_names_the_checkpoint_and_changes_nothing(
    world: Path, trained: Path, tmp_path: Path
) -> None:
    """Old behaviour: "SVD did not converge" traceback."""
    content = read_checkpoint_safely(trained / "transfer_mode2_best.pth")
    name = next(k for k, v in content["state_dict"].items() if v.is_floating_point() and "adapter" in k)
    content["state_dict"][name] = torch.full_like(content["state_dict"][name], float("nan"))
    broken = tmp_path / "diverged.pth"
    torch.save(content, broken)
    out = tmp_path / "eval"
    out.mkdir()
    (out / "report.md").write_text("an earlier report")
    before = fingerprint([broken, out])
    result = run_mode2("evaluate", "--checkpoint", broken, "--data", world / "s01_r03.h5", "--out", out)
    assert_user_error(result, str(broken), "NaN")
    assert fingerprint([broken, out]) == before


def test_evaluate_refuses_a_file_as_out(world: Path, trained: Path, tmp_path: Path) -> None:
    a_file = tmp_path / "report"
    a_file.write_text("keep")
    code, err = _in_process(
        "evaluate",
        "--checkpoint",
        str(trained / "transfer_mode2_best.pth"),
        "--data",
        str(world / "s01_r03.h5"),
        "--out",
        str(a_file),
    )
    assert code == 2 and "--out" in err and a_file.read_text() == "keep"


# -- pretrain-backbone -------------------------------------------------------------------------------
def test_pretrain_refuses_missing_data_and_an_unwritable_out(world: Path, tmp_path: Path) -> None:
    code, err = _in_process("pretrain-backbone", "--data", str(tmp_path / "none*.h5"), "--out", str(tmp_path / "b.pth"))
    assert code == 2 and "no files match" in err
    code, err = _in_process("pretrain-backbone", "--data", str(world / "*_2k.h5"), "--out", str(tmp_path))
    assert code == 2 and "is a folder" in err
    code, err = _in_process(
        "pretrain-backbone",
        "--data",
        str(world / "s01_r01.h5"),
        str(world / "s01_r03.h5"),
        "--out",
        str(tmp_path / "b"),
    )
    assert code == 2 and "Traceback" not in err and "emg2pose" in err.splitlines()[-1]


def test_evaluate_refuses_a_hostile_direct_checkpoint(world: Path, trained: Path, tmp_path: Path) -> None:
    hostile = tmp_path / "direct_best.pth"
    torch.save({"kind": "direct", "state_dict": _Evil()}, hostile)
    code, err = _in_process(
        "evaluate",
        "--checkpoint",
        str(trained / "transfer_mode2_best.pth"),
        "--direct",
        str(hostile),
        "--data",
        str(world / "s01_r03.h5"),
        "--out",
        str(tmp_path / "e"),
    )
    line = err.strip().splitlines()[-1]
    assert code == 2 and "Traceback" not in err and str(hostile) in line and "refusing to load" in line
    assert not Path("/tmp/h2-training-pwned").exists()
