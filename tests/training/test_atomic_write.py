"""Writers of user files: old file or complete new file, never half of one — even under kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from firmware_bridge.atomic_write import (
    atomic_path,
    check_writable_dir,
    check_writable_file,
    ensure_writable_dir,
    write_text_atomic,
)
from firmware_bridge.errors import UserError

REPO = Path(__file__).resolve().parents[2]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "report.md"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half of the new")
        raise RuntimeError("writer failed")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md"]


def test_ctrl_c_inside_a_write_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "best.pth"
    target.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_bytes(b"new, incomplete")
        raise KeyboardInterrupt
    assert target.read_bytes() == b"old" and len(list(tmp_path.iterdir())) == 1


def test_a_complete_write_replaces_the_file_and_keeps_the_suffix_for_the_writer(tmp_path: Path) -> None:
    target = tmp_path / "plot.png"
    target.write_text("old")
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.suffix == ".png" and tmp != target
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert write_text_atomic(tmp_path / "sub" / "m.json", "{}").read_text() == "{}"


def test_unusable_places_are_user_errors_naming_them(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(UserError, match="is a folder"), atomic_path(tmp_path):
        pass
    with pytest.raises(UserError, match=f"{a_file}.*not a folder"):
        ensure_writable_dir(a_file)
    with pytest.raises(UserError, match="cannot"):
        ensure_writable_dir(a_file / "below")
    with pytest.raises(UserError, match="is a folder"):
        check_writable_file(tmp_path)
    with pytest.raises(UserError, match=f"cannot be created, {a_file} is a file"):
        check_writable_dir(a_file / "below" / "deeper")
    assert check_writable_dir(tmp_path / "new" / "deeper") and not (tmp_path / "new").exists(), (
        "checks, creates nothing"
    )
    with pytest.raises(UserError, match="cannot"), atomic_path(a_file / "below.txt") as tmp:
        tmp.write_text("never")
    assert a_file.read_text() == "x"


def test_kill_9_while_checkpoints_are_rewritten_leaves_a_loadable_checkpoint(tmp_path: Path) -> None:
    """A process rewrites a checkpoint in a loop (as training does every epoch) and is SIGKILLed while the
    next rewrite is under way: the file on disk still loads, complete, and no temporary is mistaken for it."""
    target = tmp_path / "direct_best.pth"
    script = textwrap.dedent(
        f"""
        import torch
        from training.models.direct_model import DirectModel
        from training.hand.open_hand import open_hand_model
        from training.models.checkpoint_meta import CheckpointMeta, TrainingRecord, ValidationMetrics
        from training.models.model_io import save_model_checkpoint
        hand = open_hand_model()
        model = DirectModel(hand)
        padding = TrainingRecord(command="x" * 16_000_000)  # a file big enough to be caught mid-write
        for k in range(10_000):
            metrics = ValidationMetrics(val_mpjpe_mm=1.0, val_mpjpe_median_mm=1.0, val_loss=1.0, epoch=k)
            meta = CheckpointMeta(kind="direct", hand_model=hand, training=padding, metrics=metrics)
            save_model_checkpoint({str(target)!r}, model, meta)
            print(k, flush=True)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert proc.stdout is not None
        for _ in range(3):  # three complete saves; the fourth is being written right now
            assert proc.stdout.readline().strip(), "the writer died"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    from training.models.model_io import load_model_checkpoint

    _model, meta = load_model_checkpoint(target)
    assert meta.kind == "direct" and meta.metrics is not None and meta.metrics.epoch >= 2
    assert all(p.name.startswith(".") for p in tmp_path.iterdir() if p != target), "only hidden temporaries"
