"""`mode2 export-onnx`: metadata, parity, dynamic batch, int8, failure on broken parity, direct baseline."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import export.export_command as export_command
from export.onnx_export import ExportWrapper
from runtime.cli import main
from runtime.model_metadata import ModelMetadataError, read_model_metadata, validate_metadata
from training.model_io import load_model_checkpoint

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def checkpoints(small_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ckpt")
    common = [
        "--data",
        str(small_world / "s01_r0*.h5"),
        "--out",
        str(out),
        "--epochs",
        "1",
        "--val-sessions",
        "s01/r03",
        "--batch-size",
        "16",
    ]
    assert main(["train", *common]) == 0
    assert main(["train", "--arch", "direct", *common]) == 0
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(out / "transfer_mode2_best.pth"),
                "--data",
                str(small_world / "s01_r03.h5"),
                "--out",
                str(out / "eval"),
                "--write-calibration",
            ]
        )
        == 0
    )
    return out


@pytest.fixture(scope="module")
def exported(checkpoints: Path, small_world: Path) -> Path:
    out = checkpoints / "onnx" / "model.onnx"
    assert (
        main(
            [
                "export-onnx",
                "--checkpoint",
                str(checkpoints / "transfer_mode2_best.pth"),
                "--out",
                str(out),
                "--data",
                str(small_world / "s01_r03.h5"),
                "--int8",
            ]
        )
        == 0
    )
    return out


def test_metadata_and_checker(exported: Path, checkpoints: Path) -> None:
    model = onnx.load(str(exported))
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == 17
    meta = read_model_metadata(exported)
    validate_metadata(meta)
    assert meta["input"]["sampling_rate_hz"] == 500.0 and meta["input"]["window_samples"] == 1000
    assert meta["input"]["units"] == "uV" and meta["input"]["recommended_hop_samples"] == 500
    assert len(meta["joint_names"]) == 21 and meta["joint_names"][16] == "thumb_tip"
    assert meta["initial_state_policy"] in ("neutral", "train_mean", "feedback")
    assert meta["confidence_calibration"]["x"], "the calibration written by evaluate is carried"
    assert meta["training_data"]["val_sessions"] == ["s01/r03"] and meta["validation"]["val_mpjpe_mm"] > 0
    assert meta["parity"]["theta_max_abs_rad"] <= 1e-4 and meta["parity"]["joints_max_abs_mm"] <= 0.01
    assert len(meta["source_checkpoint_sha256"]) == 64
    assert (exported.parent / "model.md").read_text().count("Parity") == 1


def test_parity_and_dynamic_batch(exported: Path, checkpoints: Path) -> None:
    model, meta = load_model_checkpoint(checkpoints / "transfer_mode2_best.pth")
    wrapper = ExportWrapper(model, meta.get("confidence_calibration"))
    g = torch.Generator().manual_seed(3)
    emg = torch.randn(3, 8, 1000, generator=g) * 80 + 2e5
    initial = torch.rand(3, 20, generator=g) * 0.3
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    together = session.run(None, {"emg": emg.numpy(), "initial_pose": initial.numpy()})
    alone = session.run(None, {"emg": emg[1:2].numpy(), "initial_pose": initial[1:2].numpy()})
    with torch.no_grad():
        reference = [t.numpy() for t in wrapper(emg, initial)]
    assert together[1].shape == (3, 21, 3)
    for a, b in zip(together, alone, strict=True):
        assert np.abs(a[1:2] - b).max() < 1e-5
    assert np.abs(together[0] - reference[0]).max() <= 1e-4
    assert np.abs(together[1] - reference[1]).max() <= 1e-5
    assert np.all((together[3] >= 0) & (together[3] <= 1))


def test_int8_variant_loads_and_reports_its_delta(exported: Path) -> None:
    int8 = exported.with_name("model.int8.onnx")
    assert int8.exists() and int8.stat().st_size < exported.stat().st_size
    assert read_model_metadata(int8)["model_kind"] == "mode2"
    session = ort.InferenceSession(str(int8), providers=["CPUExecutionProvider"])
    out = session.run(None, {"emg": np.zeros((2, 8, 1000), np.float32), "initial_pose": np.zeros((2, 20), np.float32)})
    assert out[1].shape == (2, 21, 3)
    assert "int8" in (exported.parent / "model.md").read_text()


def test_broken_parity_fails_the_export(
    checkpoints: Path, small_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Drifting(ExportWrapper):  # the reference disagrees with what was exported
        def forward(self, emg: torch.Tensor, initial: torch.Tensor) -> tuple[torch.Tensor, ...]:
            theta, *rest = super().forward(emg, initial)
            return (theta + 1e-3, *rest)

    monkeypatch.setattr(export_command, "ExportWrapper", Drifting)
    out = tmp_path / "model.onnx"
    code = main(
        [
            "export-onnx",
            "--checkpoint",
            str(checkpoints / "transfer_mode2_best.pth"),
            "--out",
            str(out),
            "--data",
            str(small_world / "s01_r03.h5"),
        ]
    )
    assert code == 2 and not out.exists()


def test_direct_baseline_exports_through_the_same_contract(
    checkpoints: Path, small_world: Path, tmp_path: Path
) -> None:
    out = tmp_path / "direct.onnx"
    assert (
        main(
            [
                "export-onnx",
                "--checkpoint",
                str(checkpoints / "direct_best.pth"),
                "--out",
                str(out),
                "--data",
                str(small_world / "s01_r03.h5"),
            ]
        )
        == 0
    )
    meta = read_model_metadata(out)
    assert meta["model_kind"] == "direct"
    validate_metadata(meta)
    names = [o.name for o in ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).get_outputs()]
    assert names == ["theta", "joints", "angles", "confidence", "feedback_angles"]


def test_runtime_refuses_metadata_it_cannot_honour() -> None:
    meta = {
        "metadata_version": 1,
        "input": {"channels": 16, "sampling_rate_hz": 2000.0, "units": "mV"},
        "initial_state_policy": "oracle",
        "joint_names": ["x"] * 21,
    }
    with pytest.raises(ModelMetadataError) as info:
        validate_metadata(meta)
    message = str(info.value)
    assert "16 EMG channels" in message and "2000.0 Hz" in message and "'mV'" in message and "oracle" in message


def test_the_file_runs_without_torch(exported: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["torch"] = None  # any import of torch now fails
        import numpy as np, onnxruntime as ort
        from runtime.model_metadata import read_model_metadata, validate_metadata
        session = ort.InferenceSession({str(exported)!r}, providers=["CPUExecutionProvider"])
        meta = read_model_metadata(session)
        validate_metadata(meta)
        out = session.run(None, {{"emg": np.zeros((1, 8, 1000), np.float32),
                                  "initial_pose": np.asarray([meta["initial_state_mean"]], np.float32)}})
        print("OK", out[1].shape, "torch" in sys.modules and sys.modules["torch"] is not None)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "OK (1, 21, 3) False"
    assert json.loads(json.dumps(read_model_metadata(exported)))  # plain JSON


def test_device_extra_alone_runs_the_exported_model(exported: Path, tmp_path: Path) -> None:
    """A fresh venv with only `.[device]` (what the arm's board installs): no torch, the model still runs."""
    venv = tmp_path / "device-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", f"{REPO}[device]"], capture_output=True, text=True, check=False
    )
    assert install.returncode == 0, f"installing the device extra failed:\n{install.stderr[-2000:]}"
    script = textwrap.dedent(
        f"""
        import importlib.util, numpy as np, onnxruntime as ort
        from runtime.model_metadata import read_model_metadata, validate_metadata
        assert importlib.util.find_spec("torch") is None, "the device extra must not bring torch"
        session = ort.InferenceSession({str(exported)!r}, providers=["CPUExecutionProvider"])
        meta = read_model_metadata(session)
        validate_metadata(meta)
        out = session.run(None, {{"emg": np.zeros((1, 8, 1000), np.float32),
                                  "initial_pose": np.asarray([meta["initial_state_mean"]], np.float32)}})
        print("OK", out[1].shape)
        """
    )
    result = subprocess.run([str(python), "-c", script], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "OK (1, 21, 3)"
    listing = subprocess.run([str(python), "-m", "pip", "list"], capture_output=True, text=True, check=True).stdout
    assert "torch" not in listing.lower().split()
