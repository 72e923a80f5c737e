"""The streamed, resumable, subject-held-out pretraining (`mode2 pretrain-backbone` at foundation scale)."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from firmware_bridge.errors import UserError
from training.commands import pretrain_command
from training.fitting.pretrain import _windows, read_checkpoint
from training.fitting.pretrain_data import WindowReader, index_windows
from training.models.backbone_io import load_backbone, sha256_of


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 subjects for training (seed 1) and 1 other subject, also named s01, for validation (seed 2)."""
    from training.synth import simulate

    root = tmp_path_factory.mktemp("foundation")
    simulate(root / "train", sessions=1, subjects=2, minutes=0.2, seed=1, progress=False)
    simulate(root / "heldout", sessions=1, subjects=1, minutes=0.2, seed=2, progress=False)
    return root


def _run(*argv: str | Path) -> int:
    parser = argparse.ArgumentParser()
    pretrain_command.add_arguments(parser)
    torch.set_num_threads(1)
    return pretrain_command.run(parser.parse_args([str(a) for a in argv]))


def _base(world: Path, out: Path) -> list[str | Path]:
    return [
        "--data", f"{world}/train/*_2k.h5", "--val-data", f"{world}/heldout/*_2k.h5",
        "--out", out, "--batch-size", "4", "--epochs", "3", "--val-windows", "3",
    ]  # fmt: skip


def test_streamed_windows_are_exactly_the_in_memory_windows(tiny_world: Path) -> None:
    paths = sorted((tiny_world / "train").glob("*_2k.h5"))
    emg, angles = _windows(paths, 4000, 2000)
    index = index_windows(paths, 4000, 2000)
    reader = WindowReader(index, max_open=1)  # forces the LRU to close and reopen files
    streamed_emg, streamed_angles = reader.read(torch.arange(len(index)).numpy())
    reader.close()
    assert len(index) == len(emg) > 10
    assert torch.equal(torch.from_numpy(streamed_emg), emg) and torch.equal(torch.from_numpy(streamed_angles), angles)
    assert index.subjects == ("seed1/s01", "seed1/s02")


def test_validation_files_of_a_training_subject_are_refused(tiny_world: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"--val-data: subject\(s\) seed1/s01 also in --data"):
        _run(
            "--data", f"{tiny_world}/train/s01_*_2k.h5", "--val-data", f"{tiny_world}/heldout/s01_*_2k.h5",
            f"{tiny_world}/train/s01_*_2k.h5", "--out", tmp_path / "x.pth",
        )  # fmt: skip
    assert not (tmp_path / "x.pth").exists()


def test_a_run_stopped_and_resumed_ends_with_the_weights_of_an_uninterrupted_run(
    tiny_world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    whole, staged = tmp_path / "whole.pth", tmp_path / "staged.pth"
    assert _run(*_base(tiny_world, whole), "--max-steps", "7") == 0
    assert _run(*_base(tiny_world, staged), "--max-steps", "7", "--stage-steps", "4") == 0
    partial = tmp_path / "staged.partial.pth"
    assert partial.exists() and not staged.exists()
    assert f"resume with: mode2 pretrain-backbone --resume {partial}" in capsys.readouterr().out
    assert _run("--resume", partial) == 0
    done_whole = torch.load(tmp_path / "whole.partial.pth", weights_only=True)
    done_staged = torch.load(partial, weights_only=True)
    assert done_whole["total_steps"] == done_staged["total_steps"] == 7  # 6 batches/epoch: crosses an epoch
    for key, value in done_whole["model"].items():
        assert torch.equal(value, done_staged["model"][key]), key
    for key, value in done_whole["best_state"].items():
        assert torch.equal(value, done_staged["best_state"][key]), key
    untimed = [
        [{k: v for k, v in e.items() if k != "elapsed_min"} for e in d["history"]] for d in (done_whole, done_staged)
    ]
    assert untimed[0] == untimed[1] and len(untimed[0]) == 2  # epoch 1, then the partial epoch 2
    shipped_whole, shipped_staged = load_backbone(whole)[0].state_dict(), load_backbone(staged)[0].state_dict()
    assert all(torch.equal(v, shipped_staged[k]) for k, v in shipped_whole.items())
    with pytest.raises(UserError, match="already finished"):
        _run("--resume", partial)


def test_the_finished_run_writes_a_loadable_backbone_and_its_log_with_sha256(
    tiny_world: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "foundation.pth"
    assert _run(*_base(tiny_world, out), "--epochs", "1") == 0
    _model, info = load_backbone(out)
    assert info.kind == "standin_backbone" and info.provenance["holdout"] == "held-out subjects"
    digest = sha256_of(out)
    assert f"sha256 {digest}" in capsys.readouterr().out
    log = out.with_suffix(".md").read_text()
    assert digest in log and "holding the initial pose" in log and "| 1 |" in log
    assert info.provenance["heldout"]["hold_span_rad"] > 0 and info.provenance["history"][0]["epoch"] == 1


def _start(world: Path, out: Path, *extra: str) -> subprocess.Popen[str]:
    repo = Path(__file__).resolve().parents[2]
    argv = [sys.executable, "-m", "runtime.cli", "pretrain-backbone", *map(str, _base(world, out)), *extra]
    env = dict(os.environ, PYTHONPATH=str(repo), OMP_NUM_THREADS="1")
    return subprocess.Popen(argv, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def _wait_for(path: Path, process: subprocess.Popen[str], seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, "the run ended before writing a checkpoint"
        assert time.monotonic() < deadline, f"no {path} within {seconds} s"
        time.sleep(0.05)


def test_sigkill_between_or_during_checkpoint_writes_leaves_a_loadable_checkpoint(
    tiny_world: Path, tmp_path: Path
) -> None:
    out = tmp_path / "killed.pth"
    process = _start(tiny_world, out, "--epochs", "50", "--checkpoint-every-min", "0.0005")  # every ~30 ms
    try:
        _wait_for(out.with_name("killed.partial.pth"), process)
        time.sleep(0.3)  # several more writes: the kill lands at a random point of the write cycle
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    state = read_checkpoint(out.with_name("killed.partial.pth"))
    assert state["total_steps"] >= 1 and not state["done"] and not out.exists()


def test_sigterm_ends_the_stage_with_a_checkpoint_and_the_resume_command(tiny_world: Path, tmp_path: Path) -> None:
    out = tmp_path / "stopped.pth"
    partial = out.with_name("stopped.partial.pth")
    process = _start(tiny_world, out, "--epochs", "50", "--checkpoint-every-min", "0.0005")
    try:
        _wait_for(partial, process)
        process.send_signal(signal.SIGTERM)
        stdout, _ = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130
    assert f"resume with: mode2 pretrain-backbone --resume {partial}" in stdout
    assert read_checkpoint(partial)["stage_checks"][-1]["steps"] >= 1


def test_resume_refuses_data_options_and_non_checkpoints(tiny_world: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"--resume .* drop --data"):
        _run("--resume", tmp_path / "x.partial.pth", "--data", f"{tiny_world}/train/*_2k.h5")
    not_a_checkpoint = tmp_path / "notes.partial.pth"
    not_a_checkpoint.write_text("hello")
    with pytest.raises(UserError, match="not a readable pretraining checkpoint"):
        _run("--resume", not_a_checkpoint)
