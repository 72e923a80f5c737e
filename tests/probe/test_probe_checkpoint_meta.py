"""A user hands `mode2` a checkpoint whose meta is damaged: one line naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import torch
from cli_probe import assert_user_error, run_mode2

from training.hand.open_hand import open_hand_model
from training.models.checkpoint_meta import CheckpointMeta, TrainingRecord
from training.models.direct_model import DirectModel
from training.models.model_io import save_model_checkpoint


def test_export_and_evaluate_name_the_mistyped_meta_key(tmp_path: Path) -> None:
    hand = open_hand_model()
    meta = CheckpointMeta(kind="direct", hand_model=hand, training=TrainingRecord(seed=1))
    path = save_model_checkpoint(tmp_path / "direct_best.pth", DirectModel(hand), meta)
    content = torch.load(path, weights_only=True)
    content["training"]["seed"] = "zero"  # as a hand edit or another tool might leave it
    torch.save(content, path)
    result = run_mode2("export-onnx", "--checkpoint", str(path), "--out", str(tmp_path / "m.onnx"))
    assert_user_error(result, str(path), "'training.seed'", "expected an integer")
    assert not (tmp_path / "m.onnx").exists()
    result = run_mode2("evaluate", "--checkpoint", str(path), "--data", str(tmp_path / "none.h5"))
    assert_user_error(result, str(path), "'training.seed'")
