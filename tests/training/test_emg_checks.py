"""The bad-data checks of `training.data.emg_checks` on arrays, at and around their thresholds, and the
session writer's errors: they name the dataset, the absolute row index and its timestamp, and a writer whose
first append is refused leaves no file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from firmware_bridge.errors import UserError
from firmware_bridge.session import SessionWriter, read_session
from training.data import emg_checks
from training.data.emg_checks import check_emg, mains_shares

RATE = 500.0


def _emg(seconds: float = 10.0, seed: int = 0, uv: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    return rng.normal(0, uv, (n, 8)) + 40_000.0, 100.0 + np.arange(n) / RATE


def _checks(raw: np.ndarray, stamps: np.ndarray, gestures=()) -> dict[str, emg_checks.Finding]:
    return {f.check: f for f in check_emg(raw, stamps, RATE, gestures)}


def test_clean_broadband_emg_has_no_finding() -> None:
    assert check_emg(*_emg(), RATE) == []


@pytest.mark.parametrize("mains", [50.0, 60.0])
def test_mains_share_names_the_frequency_and_the_worst_channel(mains: float) -> None:
    raw, stamps = _emg()
    t = np.arange(len(raw)) / RATE
    raw[:, 6] += 80.0 * np.sin(2 * np.pi * mains * t) + 40.0 * np.sin(2 * np.pi * 3 * mains * t)
    finding = _checks(raw, stamps)["mains"]
    assert finding.channel == 6 and finding.details["mains_hz"] == mains
    assert finding.value > 0.7 and f"{mains:g} Hz mains" in finding.message


def test_mains_below_the_threshold_is_not_named() -> None:
    raw, stamps = _emg()
    raw[:, 1] += 10.0 * np.sin(2 * np.pi * 50.0 * np.arange(len(raw)) / RATE)  # 50 µV² vs 900 µV² of EMG
    assert mains_shares(raw, RATE)[1][1] < emg_checks.MAINS_SHARE_WARN
    assert "mains" not in _checks(raw, stamps)


def test_drift_is_named_above_5_mv_and_not_at_the_worlds_sub_millivolt_swing() -> None:
    raw, stamps = _emg()
    slow = np.sin(2 * np.pi * 0.3 * np.arange(len(raw)) / RATE)
    quiet = raw.copy()
    quiet[:, 0] += 300.0 * slow  # 0.6 mV peak to peak: the synthetic world's level
    assert "drift" not in _checks(quiet, stamps)
    raw[:, 4] += 10_000.0 * slow
    finding = _checks(raw, stamps)["drift"]
    assert finding.channel == 4 and finding.value > emg_checks.DRIFT_MEDIAN_WARN_MV


def test_stale_runs_of_four_rows_are_counted_and_shorter_ones_are_not() -> None:
    raw, stamps = _emg()
    raw[100:103] = raw[100]  # a run of 3: not a stale sample pattern
    assert "stale" not in _checks(raw, stamps)
    raw[1000:1004] = raw[1000]
    raw[2000:2008] = raw[2000]
    finding = _checks(raw, stamps)["stale"]
    assert finding.value == 3 + 7 and finding.times_s == (2.0, 4.0)


def test_zero_rows_are_named_once_and_do_not_ring_into_other_checks() -> None:
    raw, stamps = _emg()
    raw[[10, 11, 12, 13, 3000]] = 0.0  # four in a row: zero rows, not stale ones
    found = _checks(raw, stamps)
    assert set(found) == {"zero_rows"}
    assert found["zero_rows"].value == 5 and found["zero_rows"].times_s[:2] == (0.02, 6.0), "each run once"


def test_counts_instead_of_microvolts_and_flat_channels_are_named() -> None:
    raw, stamps = _emg()
    assert _checks(raw / 0.045, stamps)["units"].value == pytest.approx(40_000 / 0.045 / 1000, rel=0.01)
    raw[:, 3] = 40_000.0
    flat = _checks(raw, stamps)["flat"]
    assert flat.channel == 3 and "unconnected" in flat.message


def test_every_channel_flat_is_empty_emg() -> None:
    raw, stamps = _emg()
    assert set(_checks(np.full_like(raw, 5.0), stamps)) == {"empty", "stale"}


def test_no_samples_is_a_user_error_naming_the_source() -> None:
    with pytest.raises(UserError, match=r"x\.h5: emg/raw holds no samples"):
        check_emg(np.zeros((0, 8)), np.zeros(0), RATE, source="x.h5")


def test_gaps_over_20_ms_are_named_and_real_jitter_is_not() -> None:
    raw, stamps = _emg()
    jitter = stamps + np.random.default_rng(1).uniform(0, 0.006, len(stamps))  # ≤ 15-ms p99 gaps
    assert "gap" not in _checks(raw, np.maximum.accumulate(jitter) + np.arange(len(stamps)) * 1e-9)
    stamps[2000:] += 0.05
    assert _checks(raw, stamps)["gap"].times_s == (3.998,)


def test_a_start_backlog_is_named() -> None:
    raw, stamps = _emg()
    stamps[:1000] = stamps[0] + np.linspace(0, 0.02, 1000)
    stamps[1000:] = stamps[0] + 0.022 + np.arange(len(stamps) - 1000) / RATE
    finding = _checks(raw, stamps)["backlog"]
    assert finding.details["samples"] == 1000 and finding.value == pytest.approx(2.0 - 0.02, abs=0.01)


def test_contrast_uses_rest_labels_or_the_unlabelled_time() -> None:
    raw, stamps = _emg(uv=20.0)
    t = stamps - stamps[0]
    moving = (t >= 2) & (t < 6)
    strong = raw.copy()
    strong[moving] = (strong[moving] - 40_000.0) * 3 + 40_000.0
    gestures = [("fist", stamps[0] + 2, stamps[0] + 6)]
    assert "contrast" not in _checks(strong, stamps, gestures)
    assert "contrast" not in _checks(strong, stamps, [*gestures, ("REST", stamps[0] + 7, stamps[0] + 9)])
    found = _checks(raw, stamps, gestures)["contrast"]
    assert found.value < emg_checks.CONTRAST_WARN and found.times_s == (2.0,)


# -- the writer --------------------------------------------------------------------------------------------
def test_writer_errors_name_dataset_absolute_row_and_time(tmp_path: Path) -> None:
    writer = SessionWriter(tmp_path / "s.h5", subject_id="s", session_id="r")
    writer.append_emg(np.ones((100, 8)), np.arange(100) / RATE)
    bad = np.ones((50, 8))
    bad[7, 2] = np.inf
    with pytest.raises(ValueError, match=r"emg/raw: NaN or inf at emg/raw row 107 \(t = 0\.214 s\), column \(2,\)"):
        writer.append_emg(bad, (100 + np.arange(50)) / RATE)
    stamps = (100 + np.arange(50)) / RATE
    stamps[30] = stamps[29]
    with pytest.raises(ValueError, match=r"strictly increasing: emg/timestamps row 130 \(t = 0\.258 s\) follows"):
        writer.append_emg(np.ones((50, 8)), stamps)
    with pytest.raises(ValueError, match=r"emg/timestamps row 100 \(t = 0\.1 s\) is not after .* \(0\.198 s\)"):
        writer.append_emg(np.ones((50, 8)), 0.1 + np.arange(50) / RATE)
    with pytest.raises(ValueError, match=r"emg/raw: expected shape \(n,8\), got \(50, 7\) .* row 100 \(t = 0\.2 s\)"):
        writer.append_emg(np.ones((50, 7)), (100 + np.arange(50)) / RATE)
    writer.close()
    assert len(read_session(tmp_path / "s.h5", validate=False).emg_timestamps) == 100


def test_a_writer_refused_at_its_first_append_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "aborted.h5"
    with pytest.raises(ValueError, match="row 1"), SessionWriter(path, subject_id="s", session_id="r") as writer:
        writer.append_emg(np.ones((3, 8)), np.array([0.0, 0.0, 0.1]))
    assert list(tmp_path.iterdir()) == []


def test_a_refused_first_append_keeps_an_older_file_of_the_same_name(tmp_path: Path) -> None:
    path = tmp_path / "kept.h5"
    path.write_bytes(b"an older recording")
    with pytest.raises(ValueError), SessionWriter(path, subject_id="s", session_id="r") as writer:
        writer.append_emg(np.full((3, 8), np.nan), np.arange(3) / RATE)
    assert path.read_bytes() == b"an older recording" and len(list(tmp_path.iterdir())) == 1
