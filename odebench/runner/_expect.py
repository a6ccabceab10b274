"""The suite's ``expect`` rules, checked against the records of a run."""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable

from ._suite import Expectation

# Statuses that say nothing about a method's quality (it did not run here).
NOT_RUN = ("unavailable", "skipped")


def _matches(value, pattern) -> bool:
    if isinstance(pattern, str):
        return fnmatch.fnmatchcase(str(value), pattern)
    if isinstance(pattern, list):
        return any(_matches(value, p) for p in pattern)
    try:
        return math.isclose(float(value), float(pattern), rel_tol=1e-12)
    except (TypeError, ValueError):
        return value == pattern


def check_expectations(rules: Iterable[Expectation], frame) -> list[str]:
    """One message per violation: a metric out of bounds, or a matching case that failed."""
    import pandas as pd

    failures: list[str] = []
    for rule in rules:
        mask = frame.index == frame.index
        for column, pattern in rule.where.items():
            mask &= frame[column].map(lambda v, p=pattern: _matches(v, p))
        rows = frame[mask & ~frame["status"].isin(NOT_RUN)]
        for _, row in rows.iterrows():
            case = f"{row['problem']}{row['problem_params']} {row['method']}{row['method_params']} rtol={row['rtol']:g}"
            if row["status"] != "ok":
                failures.append(f"expect[{rule.index}]: {case}: status {row['status']} ({row['error']})")
                continue
            for side, bounds in (("max", rule.max), ("min", rule.min)):
                for metric, bound in bounds.items():
                    value = row[metric]
                    missing = pd.isna(value)
                    if missing or (float(value) > bound if side == "max" else float(value) < bound):
                        shown = "missing" if missing else f"{float(value):.3g}"
                        failures.append(f"expect[{rule.index}]: {case}: {metric} = {shown}, {side} {bound:g}")
    return failures
