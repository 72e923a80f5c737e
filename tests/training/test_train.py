"""`mode2 train` end to end on tiny synthetic sessions: outputs, resume, the direct arch, torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from runtime.cli import main
from training.models.checkpoint_io import read_checkpoint_safely
from training.models.model_io import load_model_checkpoint

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained(small_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("train")
    code = main(
        [
            "train",
            "--data",
            str(small_world / "s01_r0*.h5"),
            "--out",
            str(out),
            "--epochs",
            "2",
            "--val-sessions",
            "s01/r03",
            "--checkpoint-every",
            "1",
            "--batch-size",
            "16",
        ]
    )
    assert code == 0
    return out


def test_training_writes_what_the_guide_promises(trained: Path) -> None:
    names = {p.name for p in trained.iterdir()}
    assert {
        "transfer_mode2_best.pth",
        "transfer_mode2_epoch1.pth",
        "transfer_mode2_epoch2.pth",
        "training_curves.png",
        "metrics.json",
        "transfer_mode2_last.pth",
    } <= names
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["epochs_run"] == 2 and len(metrics["history"]) == 2
    assert metrics["initial_state_policy"] in ("neutral", "train_mean", "feedback")
    assert set(metrics["initial_state_eval_mpjpe_mm"]) == {"neutral", "train_mean", "feedback", "label"}
    model, meta = load_model_checkpoint(trained / "transfer_mode2_best.pth")
    assert meta.kind == "mode2" and meta.training is not None and meta.training.val_sessions == ("s01/r03",)
    assert "s01/r03" not in meta.training.train_sessions
    assert meta.initial_state_policy == metrics["initial_state_policy"]
    assert meta.normalisation is not None and len(meta.normalisation.std) == 8
    assert meta.initial_state_mean is not None and len(meta.initial_state_mean) == 20
    assert meta.backbone is not None and meta.backbone.kind == "standin_backbone"
    out = model(torch.zeros(1, 8, 1000), torch.zeros(1, 20))
    assert out.joints.shape == (1, 21, 3)


def test_resume_continues_from_the_stored_epoch(
    trained: Path, small_world: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    resume = read_checkpoint_safely(trained / "transfer_mode2_last.pth")
    assert resume["epoch"] == 2
    code = main(
        [
            "train",
            "--data",
            str(small_world / "s01_r0*.h5"),
            "--out",
            str(trained),
            "--epochs",
            "3",
            "--val-sessions",
            "s01/r03",
            "--resume",
            str(trained / "transfer_mode2_last.pth"),
            "--batch-size",
            "16",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "Epoch 3/3" in out and "Epoch 1/3" not in out
    assert json.loads((trained / "metrics.json").read_text())["epochs_run"] == 3


def test_direct_baseline_trains(small_world: Path, tmp_path: Path) -> None:
    assert (
        main(
            [
                "train",
                "--arch",
                "direct",
                "--data",
                str(small_world / "s01_r0*.h5"),
                "--out",
                str(tmp_path),
                "--epochs",
                "1",
                "--val-sessions",
                "s01/r03",
            ]
        )
        == 0
    )
    _model, meta = load_model_checkpoint(tmp_path / "direct_best.pth")
    assert meta.kind == "direct" and meta.initial_state_policy == "none"


def test_bad_data_gives_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--data", str(tmp_path / "nothing*.h5"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "matches no file" in err and "no session files match" in err


def test_torchrun_two_processes_write_one_coherent_checkpoint(small_world: Path, tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "runtime.cli",
        "train",
        "--data",
        str(small_world / "s01_r0*.h5"),
        "--out",
        str(tmp_path),
        "--epochs",
        "1",
        "--val-sessions",
        "s01/r03",
        "--batch-size",
        "8",
        "--threads",
        "1",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, env=env, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("Epoch 1/1") == 1, "only rank 0 logs"
    _model, meta = load_model_checkpoint(tmp_path / "transfer_mode2_best.pth")
    assert meta.kind == "mode2"
    assert sorted(p.name for p in tmp_path.glob("*.pth")) == ["transfer_mode2_best.pth", "transfer_mode2_last.pth"]
