"""Calibrating the model's confidence on held-out data: raw confidence → P(joint error ≤ 20 mm).

Isotonic regression (pool-adjacent-violators, written out here: numpy only) fitted on calibration
sessions, stored as a small piecewise-linear table (`x`, `y`) that the ONNX graph applies and the
runtime can read from the model's metadata. Fit on one set of held-out sessions, report on another.
"""

from __future__ import annotations

import numpy as np

from training.scoring.metrics import ERROR_THRESHOLD_MM


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


def fit_from_errors(confidence: np.ndarray, errors_mm: np.ndarray) -> dict[str, object]:
    table = isotonic_fit(confidence, (errors_mm <= ERROR_THRESHOLD_MM).astype(float))
    return {**table, "target": f"P(mean joint error <= {ERROR_THRESHOLD_MM:g} mm)", "n": len(confidence)}


def brier(probability: np.ndarray, outcome: np.ndarray) -> float:
    return float(np.mean((np.asarray(probability) - np.asarray(outcome, float)) ** 2))
