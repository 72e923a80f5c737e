"""benchmarks/learning_curve.py on a tiny setting: table, JSON, plot, capping, and a clean held-out session."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from tests.benchmark_scripts import load_benchmark
from training.models.backbone import default_backbone_path
from training.models.checkpoint_io import sha256_of


@pytest.fixture(scope="module")
def curve(small_world: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("curve")
    module = load_benchmark("learning_curve")
    # r01 + r02 give ~1 minute of training data: 0.5 fits, 5 is capped
    argv = ["--data", str(small_world / "s01_r0?.h5"), "--out", str(out), "--minutes", "0.5", "5"]
    argv += [
        "--seeds",
        "1",
        "--epochs",
        "1",
        "--arches",
        "mode1",
        "direct",
        "--heldout-session",
        "r03",
        "--threads",
        "1",
    ]
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert module.main(argv) == 0
    return out, buffer.getvalue()


def test_learning_curve_prints_a_row_per_arch_and_amount_and_an_answer(curve: tuple[Path, str]) -> None:
    _, printed = curve
    rows = [line for line in printed.splitlines() if line.startswith("| Mode 1") or line.startswith("| direct")]
    assert len(rows) == 4, printed
    assert any(line.startswith("| Mode 1 (fixed map) | 0.5 |") for line in rows)
    assert "no answer: the curve needs both --arches mode2 and direct" in printed


def test_minutes_beyond_the_data_are_capped_and_said(curve: tuple[Path, str]) -> None:
    out, printed = curve
    assert "s01: 5 min asked" in printed and "capped" in printed
    result = json.loads((out / "learning_curve.json").read_text())
    capped = [r for r in result["runs"] if r["capped"]]
    assert capped and all(r["minutes_asked"] == 5 and r["minutes_used"] < 1.1 for r in capped)
    assert result["notes"] and "capped" in result["notes"][0]


def test_json_has_rows_runs_and_the_answer_and_the_plot_is_written(curve: tuple[Path, str]) -> None:
    out, _ = curve
    result = json.loads((out / "learning_curve.json").read_text())
    assert {"arguments", "model_selection", "notes", "rows", "answer", "runs", "cpu_seconds_total"} <= set(result)
    assert {(r["arch"], round(r["minutes"], 2)) for r in result["rows"]} == {
        ("mode1", 0.5),
        ("direct", 0.5),
        ("mode1", round(result["runs"][-1]["minutes_used"], 2)),
        ("direct", round(result["runs"][-1]["minutes_used"], 2)),
    }
    for row in result["rows"]:
        assert row["mpjpe_mean_mm"] > 0 and row["fingertip_mean_mm"] > 0 and row["mean_pose_mpjpe_mm"] > 0
        assert row["skill"] is not None and row["flexion_error_mean_deg"] >= 0
        # the confidence's AUROC: NaN for a run whose frames all fall on one side of 20 mm, left out of the mean
        values = [
            r["metrics"]["confidence_auroc"]
            for r in result["runs"]
            if r["arch"] == row["arch"] and round(r["minutes_used"], 6) == round(row["minutes"], 6)
        ]
        finite = [v for v in values if v == v]
        if finite:
            assert row["confidence_auroc"] == pytest.approx(sum(finite) / len(finite)) and 0 <= min(finite) <= 1
        else:
            assert row["confidence_auroc"] is None
    assert any(row["confidence_auroc"] is not None for row in result["rows"]), "no run measured the confidence"
    entry = result["recommendation_entry"]  # what --record-curve would keep for `mode2 train`
    assert entry["backbone_sha256"] == sha256_of(default_backbone_path()) and entry["synthetic"] is True
    assert {(r["arch"], r["minutes"]) for r in entry["rows"]} == {(r["arch"], r["minutes"]) for r in result["rows"]}
    png = out / "learning_curve.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_heldout_session_is_never_in_the_training_set(curve: tuple[Path, str]) -> None:
    out, _ = curve
    result = json.loads((out / "learning_curve.json").read_text())
    for run in result["runs"]:
        assert run["heldout_file"].endswith("s01_r03.h5")
        assert run["train_files"] and run["heldout_file"] not in run["train_files"]
        assert all(not f.endswith("r03.h5") for f in run["train_files"])
    half = [r for r in result["runs"] if r["minutes_asked"] == 0.5]
    assert all(r["train_files"] == [f for f in r["train_files"] if f.endswith("s01_r01.h5")] for r in half), (
        "half a minute comes from the first session only"
    )


def test_answer_line_reports_where_mode2_wins() -> None:
    module = load_benchmark("learning_curve")

    def rows(mode2: list[float], direct: list[float]) -> list[dict]:
        amounts = [1.0, 2.0, 5.0]
        return [{"arch": "mode2", "minutes": m, "mpjpe_mean_mm": v} for m, v in zip(amounts, mode2, strict=True)] + [
            {"arch": "direct", "minutes": m, "mpjpe_mean_mm": v} for m, v in zip(amounts, direct, strict=True)
        ]

    assert module.answer(rows([15, 16, 17], [18, 17, 14])) == "below 5 minutes Mode 2 beats direct by 3.00 to 1.00 mm"
    assert (
        module.answer(rows([18, 17, 16], [15, 14, 13])) == "Mode 2 does not beat direct at any amount of data measured"
    )


def test_each_variant_trains_mode2_with_its_options(small_world: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The variant names of the curve tool reach the model and the trainer as `mode2 train`'s options would."""
    module = load_benchmark("learning_curve")
    from training.data.windows import load_sessions

    data = module.subject_data(load_sessions([str(small_world / "s01_r0?.h5")], quiet=True), "s01", "r03")
    seen: dict[str, tuple] = {}
    real_train = module.train

    def recording_train(model: Any, train_windows: Any, log_windows: Any, config: Any, meta: Any) -> Any:
        seen[current] = (model, config, meta.config)
        return real_train(model, train_windows, log_windows, config, meta)

    monkeypatch.setattr(module, "train", recording_train)
    args = module.parse_args(["--data", "x", "--out", "y", "--epochs", "1", "--threads", "1"])
    for current in module.VARIANTS:
        run = module.run_one(data, current, 1, 0.3, args)
        assert run.arch == current and run.metrics["mpjpe_mean_mm"] > 0
    model, config, model_config = seen["mode2-guide"]
    assert not config.scale_adapter_lr and model_config.backbone_finetune == "none"
    assert config.prefix == "transfer_mode2" and type(model).__name__ == "Mode2Model"
    assert not any(p.requires_grad for p in model.backbone.parameters())
    wide_model, wide_config, wide_model_config = seen["mode2-wide"]
    assert wide_model_config.converter_hidden == 512 and wide_model.converter.residual[0].out_features == 512
    assert not wide_config.scale_adapter_lr and wide_model_config.backbone_finetune == "none"
    assert seen["mode2-ft"][2].backbone_finetune == "decoder" and not seen["mode2-ft"][1].scale_adapter_lr
    assert any(p.requires_grad for p in seen["mode2-ft"][0].backbone.decoder.parameters())
    assert seen["mode2-alr"][1].scale_adapter_lr and seen["mode2-alr"][2].backbone_finetune == "none"


def _argv(small_world: Path, out: Path, *more: str) -> list[str]:
    return [
        "--data", str(small_world / "s01_r0?.h5"), "--out", str(out), "--minutes", "0.5", "5", "--seeds", "1",
        "--epochs", "1", "--arches", "mode1", "direct", "--heldout-session", "r03", "--threads", "1", *more,
    ]  # fmt: skip


def _quiet_main(module: Any, argv: list[str]) -> str:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert module.main(argv) == 0
    return buffer.getvalue()


def test_every_run_is_logged_as_it_ends_and_a_rerun_trains_only_what_is_missing(
    curve: tuple[Path, str], small_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    done_out, _ = curve
    lines = (done_out / "runs.jsonl").read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(line)["setting"]["epochs"] == 1 for line in lines)
    # an interrupted curve: two of the four runs logged, and a third cut off while it was written
    (tmp_path / "runs.jsonl").write_text("\n".join(lines[:2]) + "\n" + lines[2][:40])
    module = load_benchmark("learning_curve")
    trained: list[tuple] = []
    real_run_one = module.run_one

    def recording_run_one(data: Any, arch: str, seed: int, minutes: float, args: Any) -> Any:
        trained.append((arch, seed, minutes))
        return real_run_one(data, arch, seed, minutes, args)

    monkeypatch.setattr(module, "run_one", recording_run_one)
    printed = _quiet_main(module, _argv(small_world, tmp_path))
    kept = [json.loads(line)["run"] for line in lines[:2]]
    assert len(trained) == 2 and all((r["arch"], r["seed"], r["minutes_asked"]) not in trained for r in kept)
    assert "2 runs kept from" in printed and "2 of the 4 asked for still to run" in printed
    assert "its last line was cut off by the interruption" in printed
    result = json.loads((tmp_path / "learning_curve.json").read_text())
    assert len(result["runs"]) == 4 and len((tmp_path / "runs.jsonl").read_text().splitlines()) == 4
    for old in kept:  # the kept runs enter the curve as they were measured
        assert any(r == old for r in result["runs"])
    # all four logged now: a third invocation trains nothing and gives the same rows
    trained.clear()
    _quiet_main(module, _argv(small_world, tmp_path))
    assert trained == [] and json.loads((tmp_path / "learning_curve.json").read_text())["rows"] == result["rows"]


def test_added_runs_of_another_setting_or_heldout_session_are_refused(
    curve: tuple[Path, str], small_world: Path, tmp_path: Path
) -> None:
    from firmware_bridge.errors import UserError

    done_out, _ = curve
    module = load_benchmark("learning_curve")
    added = ["--add-runs", str(done_out / "learning_curve.json")]
    with pytest.raises(UserError, match=r"measured with another setting — epochs 1 \(here 2\)"):
        module.main([*_argv(small_world, tmp_path / "a", *added), "--epochs", "2"])
    with pytest.raises(UserError, match=r"s01 was evaluated on .*s01_r03\.h5, here on .*s01_r02\.h5"):
        module.main([*_argv(small_world, tmp_path / "b", *added), "--heldout-session", "r02"])
    with pytest.raises(UserError, match="no such file"):
        module.main(_argv(small_world, tmp_path / "c", "--add-runs", str(tmp_path / "missing.json")))
    # the same setting: every run comes from the earlier curve, nothing is trained, arches not asked are left out
    printed = _quiet_main(module, [*_argv(small_world, tmp_path / "d", *added), "--arches", "direct"])
    assert (
        "2 runs kept from" in printed
        and "(2 outside the arches, subjects, seeds and minutes asked for left out)" in printed
    )
    assert "0 of the 2 asked for still to run" in printed
    # the direct baseline uses no backbone: its runs join another backbone's curve; Mode 1's are left out (and said)
    other = str(Path(module.REPO) / "training" / "assets" / "foundation_backbone.pth")
    printed = _quiet_main(module, [*_argv(small_world, tmp_path / "e", *added), "--backbone", other, "--no-training"])
    assert "2 runs kept from" in printed and "(2 of another backbone left out)" in printed
    assert "2 asked for have no run and are left out (s01/mode1/seed 1/0.5 min" in printed
    # --no-training: the curve of what is there; the runs missing are named, none is trained
    printed = _quiet_main(module, [*_argv(small_world, tmp_path / "g", *added), "--seeds", "1", "2", "--no-training"])
    assert "note: --no-training: 4 asked for have no run and are left out (s01/mode1/seed 2/0.5 min" in printed
    result = json.loads((tmp_path / "g" / "learning_curve.json").read_text())
    assert len(result["runs"]) == 4 and {r["seed"] for r in result["runs"]} == {1}
    # runs of amounts not asked for stay out of the curve too
    printed = _quiet_main(module, [*_argv(small_world, tmp_path / "i", *added), "--minutes", "0.5"])
    assert "(2 outside the arches, subjects, seeds and minutes asked for left out)" in printed
    assert {r["minutes"] for r in json.loads((tmp_path / "i" / "learning_curve.json").read_text())["rows"]} == {0.5}
    with pytest.raises(UserError, match="no runs"):
        module.main([*_argv(small_world, tmp_path / "h"), "--no-training"])


def _run(module: Any, subject: str, arch: str, seed: int, mm: float) -> Any:
    return module.Run(subject, arch, seed, 5.0, 5.0, False, [], "h", 10, 10, 20.0, 1.0, {"mpjpe_mean_mm": mm})


def test_seed_spread_is_within_subjects_and_mode2_is_paired_with_direct_per_subject_and_seed() -> None:
    module = load_benchmark("learning_curve")
    mode2 = {("s01", 1): 10.0, ("s01", 2): 12.0, ("s02", 1): 20.0, ("s02", 2): 20.0}
    direct = {("s01", 1): 11.0, ("s01", 2): 14.0, ("s02", 1): 19.0, ("s02", 2): 19.5}
    runs = [_run(module, s, "mode2", seed, mm) for (s, seed), mm in mode2.items()]
    runs += [_run(module, s, "direct", seed, mm) for (s, seed), mm in direct.items()]
    rows = {r["arch"]: r for r in module.aggregate(runs)}
    # s01's seeds differ by 2 mm (variance 2), s02's not at all: pooled sd = sqrt((2 + 0) / 2) = 1, while the
    # spread over subjects × seeds (4.2 mm) is mostly between subjects
    assert rows["mode2"]["mpjpe_mean_mm_seed_sd"] == pytest.approx(1.0)
    assert rows["mode2"]["mpjpe_mean_mm_std"] > 4.0 and rows["mode2"]["seeds"] == [1, 2]
    (paired,) = module.paired_margins(runs)
    # per subject: s01 (−1 − 2)/2 = −1.5, s02 (1 + 0.5)/2 = 0.75; mean −0.375, se = sd/√2 = 1.125
    assert paired["mean_mm"] == pytest.approx(-0.375) and paired["se_mm"] == pytest.approx(1.125)
    assert (paired["subjects"], paired["pairs"], paired["wins"]) == (2, 4, 2)
    one_seed = [r for r in runs if r.seed == 1]
    assert module.aggregate(one_seed)[0]["mpjpe_mean_mm_seed_sd"] is None
    assert "| 5 | -0.38 | 1.12 | 2 | 4 | 2/4 |" in module.paired_table([paired])
