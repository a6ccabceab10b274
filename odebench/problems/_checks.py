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


def _valid(kind: str, lo: float | None, hi: float | None, lo_open: bool = False) -> str:
    """``kind`` with its bounds, as the messages say it: ``an integer >= 1 and <= 10``."""
    bounds = []
    if lo is not None:
        bounds.append(f"{'>' if lo_open else '>='} {lo:g}")
    if hi is not None:
        bounds.append(f"<= {hi:g}")
    return f"{kind} {' and '.join(bounds)}" if bounds else kind


def check_int(problem: str, name: str, value: Any, *, lo: int | None = None, hi: int | None = None) -> int:
    """An integer in ``[lo, hi]`` (bools and floats are refused: ``dim: 4.5`` is a typo, not 4)."""
    valid = _valid("an integer", lo, hi)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise _fail(problem, name, valid, value)
    value = int(value)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise _fail(problem, name, valid, value)
    return value


def check_float(
    problem: str, name: str, value: Any, *, lo: float | None = None, hi: float | None = None, lo_open: bool = False
) -> float:
    """A finite real number in ``[lo, hi]``, or ``(lo, hi]`` with ``lo_open``."""
    valid = _valid("a finite number", lo, hi, lo_open)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _fail(problem, name, valid, value)
    value = float(value)
    below = lo is not None and (value < lo or (lo_open and value == lo))
    if not math.isfinite(value) or below or (hi is not None and value > hi):
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
