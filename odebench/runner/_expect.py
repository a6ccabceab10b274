"""The suite's ``expect`` rules, checked against the records of a run.

A rule fails where a case it matches is out of bounds or did not finish, and also where
it matches no case, or only cases that did not run here: a check that cannot fail is a
defect. Cases are matched by :class:`odebench._cases.Where`, the gate's matcher.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from .._cases import Where, case_fields, case_label, number, value
from ._suite import Expectation

# Statuses that say nothing about a method's quality (it did not run here).
NOT_RUN = ("unavailable", "skipped")


def check_expectations(rules: Iterable[Expectation], frame, *, subset: bool = False) -> list[str]:
    """One message per violation: a metric out of bounds, a matching case that failed, or a
    rule that checked nothing.

    ``subset``: the run holds a selection of the suite's cases (``--only``), so a rule
    may rightly match none of them.
    """
    rows = frame.to_dict("records")
    fields = [case_fields(row) for row in rows]
    failures: list[str] = []
    for rule in rules:
        where = Where.of(rule.where)
        matched = [row for row, f in zip(rows, fields, strict=True) if where.matches(f)]
        ran = [row for row in matched if value(row, "status") not in NOT_RUN]
        name = f"expect[{rule.index}] (where {where})"
        if not matched:
            if not subset:
                failures.append(f"{name}: matches no case; a rule that checks nothing is a mistake")
            continue
        if not ran:
            counts = Counter(value(row, "status") for row in matched)
            statuses = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
            failures.append(f"{name}: matched only cases that did not run ({statuses})")
            continue
        for row in ran:
            failures += _case_failures(rule, row)
    return failures


def _case_failures(rule: Expectation, row: Mapping[str, Any]) -> list[str]:
    case = f"expect[{rule.index}]: {case_label(row)}"
    status = value(row, "status")
    if status != "ok":
        return [f"{case}: status {status} ({value(row, 'error') or 'no message'})"]
    found = []
    for side, bounds in (("max", rule.max), ("min", rule.min)):
        for metric, bound in bounds.items():
            v = number(row, metric)
            if v is None or (v > bound if side == "max" else v < bound):
                shown = "missing" if v is None else f"{v:.3g}"
                found.append(f"{case}: {metric} = {shown}, {side} {bound:g}")
    return found
