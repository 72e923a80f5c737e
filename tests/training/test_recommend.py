"""Which model `mode2 train` recommends for the amount of data: read off a measured learning curve."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from training.fitting.recommend import MODE2_SETTINGS, curve_settings, load_curves, recommend, record_curve
from training.models.backbone import default_backbone_path
from training.models.checkpoint_io import sha256_of


def _curve(sha: str = "abc", arches: tuple[str, ...] = ("mode2", "mode1", "direct")) -> dict:
    mm = {"mode2": (14.0, 14.5, 15.0), "mode1": (13.0, 13.0, 13.0), "direct": (16.0, 13.0, 10.0)}
    rows = [
        {"arch": a, "minutes": m, "n": 3, "mpjpe_mean_mm": v, "mpjpe_mean_mm_std": 0.5}
        for a in arches
        for m, v in zip((1.0, 5.0, 20.0), mm[a], strict=True)
    ]
    return {"backbone_sha256": sha, "subjects": ["s01", "s02"], "seeds": [1, 2], "epochs": 20, "synthetic": True,
            "mode2_settings": dict(MODE2_SETTINGS), "rows": rows}  # fmt: skip


def test_the_winner_changes_with_the_amount_of_data_and_mode1_is_never_recommended() -> None:
    curves = [_curve()]
    few = recommend("abc", 1.0, curves)
    assert few.arch == "mode2" and few.clamped_to is None  # Mode 1 is lower, but not deployable
    assert "Mode 2 is the expected best for this amount of data by 2.0 mm" in few.describe("mode2")
    many = recommend("abc", 20.0, curves)
    assert many.arch == "direct"
    assert "consider --arch direct" in many.describe("mode2") and "by 5.0 mm" in many.describe("mode2")


def test_a_gap_under_half_a_millimetre_is_called_a_tie() -> None:
    curve = _curve()
    for row in curve["rows"]:
        if row["arch"] == "direct" and row["minutes"] == 1.0:
            row["mpjpe_mean_mm"] = 14.3  # Mode 2 14.0
    said = recommend("abc", 1.0, [curve]).describe("direct")
    assert "about equal here (within 0.5 mm)" in said and "consider" not in said


def test_interpolation_is_on_log_minutes_and_never_extrapolates() -> None:
    curves = [_curve()]
    middle = recommend("abc", math.sqrt(5.0), curves)  # halfway between 1 and 5 on a log axis
    assert middle.expected_mm["direct"] == pytest.approx(14.5)
    assert middle.expected_mm["mode2"] == pytest.approx(14.25)
    beyond = recommend("abc", 60.0, curves)
    assert beyond.clamped_to == 20.0 and beyond.expected_mm["direct"] == pytest.approx(10.0)
    assert "outside the curve: read at 20 min" in beyond.describe("direct")
    assert "no advice outside the measured range" in beyond.describe("direct")
    assert "consider" not in beyond.describe("mode2")
    below = recommend("abc", 0.25, curves)
    assert below.clamped_to == 1.0 and below.expected_mm["mode2"] == pytest.approx(14.0)


def test_no_curve_for_the_backbone_or_no_direct_baseline_gives_no_advice() -> None:
    assert recommend("other", 5.0, [_curve()]) is None
    assert recommend("abc", 5.0, [_curve(arches=("mode2", "mode1"))]) is None


def test_a_curve_measured_with_other_mode2_settings_gives_no_advice() -> None:
    """A change of Mode 2's defaults makes every curve measured before it stale: it must not advise."""
    guide = _curve()
    guide.pop("mode2_settings")  # recorded before curves said which settings they used
    other = _curve()
    other["mode2_settings"] = {**MODE2_SETTINGS, "adapter_lr": "plain"}
    assert recommend("abc", 5.0, [guide]) is None and recommend("abc", 5.0, [other]) is None
    assert curve_settings("abc", [guide, other]) == [None, other["mode2_settings"]]
    assert recommend("abc", 5.0, [guide, _curve()]) is not None


def test_recording_a_curve_replaces_the_same_backbones_and_keeps_others(tmp_path: Path) -> None:
    path = tmp_path / "curves.json"
    record_curve(_curve("abc"), path)
    record_curve(_curve("xyz"), path)
    newer = _curve("abc")
    newer["rows"][0]["mpjpe_mean_mm"] = 9.0
    record_curve(newer, path)
    curves = load_curves(path)
    assert [c["backbone_sha256"] for c in curves] == ["xyz", "abc"]
    assert recommend("abc", 1.0, curves).expected_mm["mode2"] == 9.0


def test_the_shipped_curve_belongs_to_the_shipped_backbone() -> None:
    advice = recommend(sha256_of(default_backbone_path()), 5.0)
    assert advice is not None, "training/assets/learning_curves.json has no curve for the shipped stand-in"
    assert set(advice.expected_mm) >= {"mode2", "direct"}


def test_a_curve_with_paired_runs_says_the_paired_difference_at_the_nearest_amount() -> None:
    curve = _curve()
    curve["paired_mode2_minus_direct"] = [
        {"minutes": 1.0, "mean_mm": -2.04, "se_mm": 0.47, "subjects": 3, "pairs": 9, "wins": 8},
        {"minutes": 20.0, "mean_mm": 4.96, "se_mm": None, "subjects": 1, "pairs": 3, "wins": 0},
    ]
    said = recommend("abc", 1.5, [curve]).describe("mode2")
    assert "paired at 1 min, Mode 2 − direct -2.0 ± 0.5 mm (1 se over 3 subjects)" in said
    assert "Mode 2 better in 8 of 9 subject × seed runs" in said
    assert "paired at 20 min, Mode 2 − direct +5.0 mm (1 se over 1 subjects)" in recommend(
        "abc", 15.0, [curve]
    ).describe("direct")
    assert "paired" not in recommend("abc", 1.5, [_curve()]).describe("mode2")  # a curve recorded without pairs
