"""Calibrating the model's confidence on held-out data: raw confidence → P(joint error ≤ 20 mm).

Two fits, both stored as a small piecewise-linear table (`x`, `y`) that the ONNX graph applies and the
runtime can read from the model's metadata:
- `isotonic` (the default; pool-adjacent-violators, numpy only): monotone and free-form.
- `platt`: logistic regression on logit(raw confidence) — two parameters, shrunk towards the identity —
  sampled at 33 knots.
Measured with `benchmarks/calibration_methods.py` (README, "Confidence that helps the gate"): fitted on a
minute spread over a session's phases (~170 windows at the 0.25-s calibration hop) and scored on the rest,
isotonic improved Brier and ECE on 4 of 4 held-out sessions (mean ECE 0.156 → 0.110), Platt on 2 and 3
(0.156 → 0.134); on a session's first minute Platt did slightly better — neither carried to another session.
Fit on one set of frames, report on another.
"""

from __future__ import annotations

import numpy as np

from training.scoring.metrics import ERROR_THRESHOLD_MM

METHODS = ("isotonic", "platt")
PLATT_KNOTS = 33
PLATT_PRIOR = 1e-2  # ridge towards the identity map (a = 1, b = 0): keeps tiny or one-sided sets sane
_EPS = 1e-4


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def platt_fit(confidence: np.ndarray, outcome: np.ndarray, prior: float = PLATT_PRIOR) -> tuple[float, float]:
    """(a, b) of P(outcome) = sigmoid(a · logit(confidence) + b), by Newton's method on the penalised
    log-likelihood (penalty `prior` · ((a − 1)² + b²) / 2 per frame-sum, so an empty signal stays the identity)."""
    x, y = _logit(confidence), np.asarray(outcome, dtype=np.float64)
    theta = np.array([1.0, 0.0])
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-(theta[0] * x + theta[1])))
        gradient = np.array([((p - y) * x).sum(), (p - y).sum()]) + prior * (theta - [1.0, 0.0])
        w = p * (1 - p)
        hessian = np.array([[(w * x * x).sum(), (w * x).sum()], [(w * x).sum(), w.sum()]]) + prior * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        theta -= step
        if np.abs(step).max() < 1e-9:
            break
    return float(theta[0]), float(theta[1])


def platt_table(a: float, b: float, knots: int = PLATT_KNOTS) -> dict[str, list[float]]:
    x = np.linspace(0.0, 1.0, knots)
    y = 1.0 / (1.0 + np.exp(-(a * _logit(x) + b)))
    return {"x": x.tolist(), "y": np.maximum.accumulate(y).tolist() if a >= 0 else y.tolist()}


def isotonic_fit(x: np.ndarray, y: np.ndarray, max_knots: int = 32) -> dict[str, list[float]]:
    """Monotone non-decreasing fit of y (0/1) on x; returns knots for piecewise-linear interpolation."""
    order = np.argsort(x, kind="mergesort")
    xs, ys = np.asarray(x, float)[order], np.asarray(y, float)[order]
    values, weights, lefts = [], [], []
    for i, value in enumerate(ys):  # pool adjacent violators
        values.append(value)
        weights.append(1.0)
        lefts.append(i)
        while len(values) > 1 and values[-2] > values[-1]:
            w = weights[-2] + weights[-1]
            v = (values[-2] * weights[-2] + values[-1] * weights[-1]) / w
            values[-2:], weights[-2:] = [v], [w]
            lefts.pop()
    centres = []
    for k, left in enumerate(lefts):
        right = lefts[k + 1] if k + 1 < len(lefts) else len(xs)
        centres.append(float(xs[left:right].mean()))
    knots_x, knots_y = np.array(centres), np.array(values)
    if len(knots_x) > max_knots:
        keep = np.unique(np.linspace(0, len(knots_x) - 1, max_knots).round().astype(int))
        knots_x, knots_y = knots_x[keep], knots_y[keep]
    knots_x, unique = np.unique(knots_x, return_index=True)
    return {"x": knots_x.tolist(), "y": np.maximum.accumulate(knots_y[unique]).tolist()}


def apply(calibration: dict[str, list[float]] | None, confidence: np.ndarray) -> np.ndarray:
    if not calibration or not calibration.get("x"):
        return np.asarray(confidence)
    return np.interp(confidence, calibration["x"], calibration["y"])


def fit_from_errors(confidence: np.ndarray, errors_mm: np.ndarray, method: str = "isotonic") -> dict[str, object]:
    """The table mapping raw confidence to P(error ≤ 20 mm), fitted on these frames."""
    outcome = (np.asarray(errors_mm) <= ERROR_THRESHOLD_MM).astype(float)
    if method == "platt":
        a, b = platt_fit(confidence, outcome)
        table: dict[str, object] = {**platt_table(a, b), "a": a, "b": b}
    elif method == "isotonic":
        table = dict(isotonic_fit(confidence, outcome))
    else:
        raise ValueError(f"unknown calibration method {method!r}; choose from {METHODS}")
    target = f"P(mean joint error <= {ERROR_THRESHOLD_MM:g} mm)"
    return {**table, "method": method, "target": target, "n": len(confidence)}


def brier(probability: np.ndarray, outcome: np.ndarray) -> float:
    return float(np.mean((np.asarray(probability) - np.asarray(outcome, float)) ** 2))


def reliability_bins(probability: np.ndarray, outcome: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """The reliability diagram's points: per equal-width probability bin, how many frames, their mean
    predicted probability and the observed frequency of the outcome (empty bins are left out)."""
    probability = np.clip(np.asarray(probability, dtype=np.float64), 0.0, 1.0)
    outcome = np.asarray(outcome, dtype=np.float64)
    index = np.minimum((probability * bins).astype(int), bins - 1)
    rows = []
    for b in range(bins):
        members = index == b
        if members.any():
            rows.append(
                {
                    "low": b / bins,
                    "high": (b + 1) / bins,
                    "n": int(members.sum()),
                    "predicted": float(probability[members].mean()),
                    "observed": float(outcome[members].mean()),
                }
            )
    return rows


def expected_calibration_error(probability: np.ndarray, outcome: np.ndarray, bins: int = 10) -> float:
    """Frame-weighted mean |predicted − observed| over the reliability bins (0 = perfectly calibrated)."""
    rows = reliability_bins(probability, outcome, bins)
    total = sum(r["n"] for r in rows)
    if total == 0:
        return float("nan")
    return float(sum(r["n"] * abs(r["predicted"] - r["observed"]) for r in rows) / total)


def calibration_figures(probability: np.ndarray, outcome: np.ndarray) -> dict[str, object]:
    """Brier score, ECE and the reliability diagram's points of `probability` for the 0/1 `outcome`."""
    return {
        "brier": brier(probability, outcome),
        "ece": expected_calibration_error(probability, outcome),
        "reliability": reliability_bins(probability, outcome),
    }
