"""argparse `type=` validators: bad numbers are refused at the edge, by argparse itself (one line, exit 2).

    parser.add_argument("--epochs", type=positive_int, default=100)
    parser.add_argument("--minutes", type=bounded_float(0.0, 30.0, low_inclusive=False), default=4.0)

Each raises `argparse.ArgumentTypeError`, whose text argparse prints as
`mode2 CMD: error: argument --epochs: must be a whole number ≥ 1, got '0'`. NaN and ±inf are never
accepted as floats here: no option of ours means anything with them. Torch-free (the device uses them).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def _int(text: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def bounded_int(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    """Whole numbers in [low, high] (either end open when None)."""

    def parse(text: str) -> int:
        value = _int(text)
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be a whole number {_range(low, high, True, True)}, got {text!r}")
        return value

    parse.__name__ = "whole number"  # argparse names the type in some messages
    return parse


def bounded_float(
    low: float | None = None,
    high: float | None = None,
    *,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> Callable[[str], float]:
    """Finite numbers between low and high (inclusive or not; either end open when None)."""

    def parse(text: str) -> float:
        value = _finite_float(text)
        too_low = low is not None and (value < low or (value == low and not low_inclusive))
        too_high = high is not None and (value > high or (value == high and not high_inclusive))
        if too_low or too_high:
            raise argparse.ArgumentTypeError(
                f"must be a number {_range(low, high, low_inclusive, high_inclusive)}, got {text!r}"
            )
        return value

    parse.__name__ = "number"
    return parse


def _range(low: float | None, high: float | None, low_inclusive: bool, high_inclusive: bool) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'≥' if low_inclusive else '>'} {low:g}")
    if high is not None:
        parts.append(f"{'≤' if high_inclusive else '<'} {high:g}")
    return " and ".join(parts)


positive_int = bounded_int(1)
positive_int.__name__ = "positive whole number"
non_negative_int = bounded_int(0)
non_negative_int.__name__ = "whole number ≥ 0"
positive_float = bounded_float(0.0, low_inclusive=False)
positive_float.__name__ = "positive number"
non_negative_float = bounded_float(0.0)
non_negative_float.__name__ = "number ≥ 0"
finite_float = bounded_float()
finite_float.__name__ = "finite number"
