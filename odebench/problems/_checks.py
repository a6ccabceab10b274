"""Validation of factory arguments: one error message shape for every problem.

Each check names the problem, the parameter, the bad value and what would be valid,
e.g. ``problem 'linear': parameter 'dim' must be an integer >= 1, got 0``.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from ._problem import ProblemError


def _fail(problem: str, name: str, valid: str, value: Any) -> ProblemError:
    return ProblemError(f"problem {problem!r}: parameter {name!r} must be {valid}, got {value!r}")


def _bounds(lo: float | None, hi: float | None, lo_open: bool) -> str:
    parts = []
    if lo is not None:
        parts.append(f"{'>' if lo_open else '>='} {lo:g}")
    if hi is not None:
        parts.append(f"<= {hi:g}")
    return " and ".join(parts)


def check_int(problem: str, name: str, value: Any, *, lo: int | None = None, hi: int | None = None) -> int:
    """An integer in ``[lo, hi]`` (bools and floats are refused: ``dim: 4.5`` is a typo, not 4)."""
    valid = "an integer" + (" " + _bounds(lo, hi, False) if lo is not None or hi is not None else "")
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise _fail(problem, name, valid, value)
    value = int(value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise _fail(problem, name, valid, value)
    return value


def check_float(
    problem: str,
    name: str,
    value: Any,
    *,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
) -> float:
    """A finite real number in ``[lo, hi]``, or ``(lo, hi]`` with ``lo_open``."""
    bounds = _bounds(lo, hi, lo_open)
    valid = "a finite number" + (" " + bounds if bounds else "")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _fail(problem, name, valid, value)
    value = float(value)
    if not math.isfinite(value):
        raise _fail(problem, name, valid, value)
    if lo is not None and (value < lo or (lo_open and value == lo)):
        raise _fail(problem, name, valid, value)
    if hi is not None and value > hi:
        raise _fail(problem, name, valid, value)
    return value


def save_times(problem: str, t_end: Any, n_save: Any, *, max_t_end: float = 1e6) -> np.ndarray:
    """``linspace(0, t_end, n_save)`` after checking both arguments."""
    t_end = check_float(problem, "t_end", t_end, lo=0.0, hi=max_t_end, lo_open=True)
    n_save = check_int(problem, "n_save", n_save, lo=2, hi=100_000)
    return np.linspace(0.0, t_end, n_save)


def check_choice(problem: str, name: str, value: Any, choices: tuple[Any, ...]) -> Any:
    """One of ``choices``."""
    if isinstance(value, bool) or value not in choices:
        raise _fail(problem, name, "one of " + ", ".join(map(str, choices)), value)
    return value


def check_odd(problem: str, name: str, value: Any, *, lo: int, hi: int) -> int:
    """An odd integer in ``[lo, hi]``."""
    value = check_int(problem, name, value, lo=lo, hi=hi)
    if value % 2 == 0:
        raise _fail(problem, name, f"an odd integer >= {lo} and <= {hi}", value)
    return value
