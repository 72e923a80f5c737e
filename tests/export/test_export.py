"""`mode2 export-onnx`: metadata, parity, dynamic batch, int8 that describes itself, failure on broken
parity, one trace per export, direct baseline, and the exported file loading through `load_model`."""

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
import export.onnx_export as onnx_export
from export.onnx_export import ExportWrapper
from runtime.cli import main
from runtime.model_contract import INPUT_NAMES, OUTPUT_NAMES, ModelMetadataError
from runtime.model_metadata import load_model, read_model_metadata, validate_metadata
from training.models.model_io import load_model_checkpoint

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def checkpoints(trained_checkpoints: Path) -> Path:
    """The session-wide trained models (tests/conftest.py), shared with the runtime and probe suites."""
    return trained_checkpoints


@pytest.fixture(scope="module")
def exported(exported_model: Path) -> Path:
    return exported_model


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
    # the causal input filter the model was trained behind travels with it, for the runtime to run on the stream
    _, checkpoint_meta = load_model_checkpoint(checkpoints / "transfer_mode2_best.pth")
    assert checkpoint_meta.normalisation is not None
    assert meta["input"]["input_filter"] == json.loads(json.dumps(checkpoint_meta.normalisation.input_filter))


def test_parity_and_dynamic_batch(exported: Path, checkpoints: Path) -> None:
    model, meta = load_model_checkpoint(checkpoints / "transfer_mode2_best.pth")
    wrapper = ExportWrapper(model, meta.confidence_calibration)
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


def test_int8_file_describes_itself_not_the_fp32_model(exported: Path, checkpoints: Path, small_world: Path) -> None:
    fp32, int8 = load_model(exported), load_model(exported.with_name("model.int8.onnx"))
    assert fp32.meta.quantization == "none" and int8.meta.quantization == "int8-dynamic"
    assert int8.meta.raw["quantized_from"] == {"file": "model.onnx", "sha256": fp32.sha256}
    assert int8.meta.parity != fp32.meta.parity
    # its figures are its own: measured again on the same windows, the int8 file gives exactly them
    model, meta = load_model_checkpoint(checkpoints / "transfer_mode2_best.pth")
    assert meta.normalisation is not None
    windows = export_command.parity_windows([str(small_world / "s01_r03.h5")], meta.normalisation.filter).windows
    inputs = export_command.parity_inputs(windows, fp32.meta.initial_state_mean)
    wrapper = ExportWrapper(model, meta.confidence_calibration)
    for loaded in (fp32, int8):
        again = inputs.check(loaded.path, wrapper).to_dict()
        recorded = loaded.meta.raw["parity"]
        assert recorded.keys() == again.keys()
        for key, value in again.items():
            assert recorded[key] == pytest.approx(value, rel=1e-6, abs=1e-9), (loaded.path.name, key)
    assert int8.meta.parity.theta_max_abs_rad > 1e-4  # quantized: the fp32 tolerance could not describe it
    card = (exported.parent / "model.md").read_text()
    assert f"MPJPE Δ {int8.meta.parity.mpjpe_delta_mm:+.3f} mm (its own" in card and "int8-dynamic" in card


def test_exported_file_loads_through_the_runtime_loader(exported: Path) -> None:
    loaded = load_model(exported)
    assert [i.name for i in loaded.session.get_inputs()] == list(INPUT_NAMES)
    assert [o.name for o in loaded.session.get_outputs()] == list(OUTPUT_NAMES)
    assert loaded.meta.parity is not None and loaded.meta.parity.theta_max_abs_rad <= 1e-4
    assert loaded.meta.initial_state_policy in ("neutral", "train_mean", "feedback")
    assert len(loaded.meta.initial_state_mean or ()) == 20 and loaded.meta.confidence_calibrated


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


def test_direct_baseline_exports_through_the_same_contract_tracing_once(
    checkpoints: Path, small_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    traces = []
    real_export = onnx_export.torch.onnx.export

    def counting_export(*args: object, **kwargs: object) -> object:
        traces.append(args[2])
        return real_export(*args, **kwargs)

    monkeypatch.setattr(onnx_export.torch.onnx, "export", counting_export)
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
    assert len(traces) == 1, "the model is traced once; only metadata_props are rewritten after the parity check"
    assert Path(str(traces[0])).parent == tmp_path and traces[0] != str(out), "traced into a temporary file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["direct.md", "direct.onnx"], "no temporary file left"
    meta = read_model_metadata(out)
    assert meta["model_kind"] == "direct" and meta["parity"]["theta_max_abs_rad"] <= 1e-4
    validate_metadata(meta)
    names = [o.name for o in ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).get_outputs()]
    assert names == ["theta", "joints", "angles", "confidence", "feedback_angles"]


def test_runtime_refuses_metadata_it_cannot_honour(exported: Path) -> None:
    meta = read_model_metadata(exported)
    meta["input"].update(channels=16, sampling_rate_hz=2000.0, units="mV")
    meta["initial_state_policy"] = "oracle"
    with pytest.raises(ModelMetadataError) as info:
        validate_metadata(meta)
    message = str(info.value)
    assert "input.channels: is 16" in message and "2000.0" in message and "'mV'" in message and "oracle" in message


def test_the_file_runs_without_torch(exported: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["torch"] = None  # any import of torch now fails
        import numpy as np, onnxruntime as ort
        from runtime.model_metadata import load_model
        model = load_model({str(exported)!r})
        out = model.session.run(None, {{"emg": np.zeros((1, 8, 1000), np.float32),
                                        "initial_pose": np.asarray([model.meta.initial_state_mean], np.float32)}})
        print("OK", out[1].shape, "torch" in sys.modules and sys.modules["torch"] is not None)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "OK (1, 21, 3) False"
    assert json.loads(json.dumps(read_model_metadata(exported)))  # plain JSON


def test_device_extra_alone_runs_the_exported_model(exported: Path, small_world: Path, tmp_path: Path) -> None:
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
        from runtime.model_metadata import load_model
        assert importlib.util.find_spec("torch") is None, "the device extra must not bring torch"
        model = load_model({str(exported)!r})
        out = model.session.run(None, {{"emg": np.zeros((1, 8, 1000), np.float32),
                                        "initial_pose": np.asarray([model.meta.initial_state_mean], np.float32)}})
        print("OK", out[1].shape)
        """
    )
    result = subprocess.run([str(python), "-c", script], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "OK (1, 21, 3)"
    listing = subprocess.run([str(python), "-m", "pip", "list"], capture_output=True, text=True, check=True).stdout
    assert "torch" not in listing.lower().split()
    # the whole runtime too, as the "done" reads: the SDK's playback board → model → gate → the
    # emulated hand (the C firmware built from the installed package's sources) with a run file
    csv = small_world / "s01_r03_mindrove.csv"
    command = [str(venv / "bin" / "mode2"), "run", "--model", str(exported), "--source", f"playback:{csv}"]
    command += ["--port", "sim", "--record", str(tmp_path / "run.h5"), "--duration", "6", "--quiet"]
    command += ["--summary-json", str(tmp_path / "s.json")]
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    summary = json.loads((tmp_path / "s.json").read_text())
    assert (tmp_path / "run.h5").is_file()
    assert summary["hops"] > 50 and summary["commands_acked"] == summary["commands_sent"] > 0
    # and the dashboard, from the installed package (its stylesheet is package data), replaying that run file
    dashboard = textwrap.dedent(
        f"""
        import asyncio, sys
        from tui.app import DashboardApp
        from tui.replay_feed import ReplayFeed

        async def main():
            app = DashboardApp(ReplayFeed({str(tmp_path / "run.h5")!r}, speed=8.0))
            async with app.run_test(size=(80, 24)) as pilot:
                for _ in range(200):
                    await pilot.pause(0.05)
                    if app.latest is not None and app.latest["hop"] > 20:
                        break
                print("HOP", app.latest["hop"] if app.latest else None, "torch" in sys.modules)

        asyncio.run(main())
        """
    )
    shown = subprocess.run([str(python), "-c", dashboard], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr[-2000:]
    hop, torch_loaded = shown.stdout.split()[1:]
    assert int(hop) > 20 and torch_loaded == "False", shown.stdout


def test_metadata_and_model_card_carry_fingertip_flexion_and_skill_against_the_mean_pose(exported: Path) -> None:
    validation = read_model_metadata(exported)["validation"]
    assert validation["val_fingertip_mm"] > 0 and validation["val_flexion_error_deg"] > 0
    mean_pose = validation["val_mean_pose_mpjpe_mm"]
    assert mean_pose > 0
    assert validation["val_skill"] == pytest.approx(1 - validation["val_mpjpe_mm"] / mean_pose)
    assert load_model(exported).meta.validation_extra["val_mean_pose_mpjpe_mm"] == pytest.approx(mean_pose)
    card = (exported.parent / "model.md").read_text()
    assert f"Mean pose (training-label mean) on the same frames: {mean_pose:.2f} mm → skill" in card
    assert "Held-out fingertip error:" in card
    assert ("does not beat the mean pose" in card) == (validation["val_skill"] <= 0)


def test_model_card_says_in_words_when_the_model_does_not_beat_the_mean_pose(exported: Path) -> None:
    from export.model_card import render_model_card

    metadata = read_model_metadata(exported)
    graph = {"nodes": 1, "has_loop": False, "bytes": 1}
    worse = {**metadata["validation"], "val_mpjpe_mm": 18.0, "val_mean_pose_mpjpe_mm": 16.1}
    card = render_model_card(exported, {**metadata, "validation": worse}, graph, None)
    assert "**This model does not beat the mean pose: 18.0 mm vs 16.1 mm (skill -0.12).**" in card
    better = {**worse, "val_mpjpe_mm": 12.0}
    assert "does not beat" not in render_model_card(exported, {**metadata, "validation": better}, graph, None)
    old = {k: v for k, v in worse.items() if k in ("val_mpjpe_mm", "val_mpjpe_median_mm", "val_loss", "epoch")}
    card = render_model_card(exported, {**metadata, "validation": old}, graph, None)
    assert "Skill against the mean pose: not measured" in card, "a model exported before the figures existed"


def test_the_new_validation_figures_are_optional_but_checked_when_present(exported: Path) -> None:
    from runtime.model_contract import ModelMetadata

    metadata = read_model_metadata(exported)
    old = {k: v for k, v in metadata["validation"].items() if not k.startswith(("val_fing", "val_flex", "val_mean"))}
    old.pop("val_skill")
    assert ModelMetadata.parse({**metadata, "validation": old}, "old").validation_extra == {}
    bad = {**metadata["validation"], "val_fingertip_mm": -1.0, "val_skill": "good"}
    with pytest.raises(ModelMetadataError, match=r"validation\.val_fingertip_mm.*validation\.val_skill"):
        ModelMetadata.parse({**metadata, "validation": bad}, "bad")
