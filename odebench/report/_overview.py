"""The report's first screen: problems x methods at a glance, and which method to use where.

:func:`overview_grid` lays every problem instance against every method at the problem's
tightest tolerance (gradient error, time relative to the fastest, peak memory, and a glyph
for a case without numbers); :func:`recommend` picks, per problem instance, the fastest
method that reaches the target accuracy, the leanest one nearly as fast, and the methods
the findings rule out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ._data import Prepared
from ._findings import ERROR_FLOOR, Finding, FindingGroup

DEFAULT_TARGET = 1e-6
"""The gradient error a method must reach to be recommended, when the suite states none."""

LEAN_TIME_FACTOR = 2.0
"""The least-memory pick may take up to this many times the fastest pick's time."""

# The glyph of a case without numbers, by status; a case that ran shows its numbers instead.
GLYPHS = {"failed": "x", "diverged": "x", "timeout": "T", "unavailable": "-", "skipped": "-"}


@dataclass(frozen=True)
class Target:
    """The gradient error to reach, and where it comes from (for the report to say)."""

    grad_rel_err: float
    source: str


def target_accuracy(run_info: Sequence[tuple[str, Mapping[str, Any]]], dtypes: Sequence[str] = ()) -> Target:
    """The suite's target: the smallest ``max: {grad_rel_err: ...}`` of its ``expect`` rules,
    else 1e-6, or the error floor of the run's dtypes where every one of them has a higher
    floor (a float32 run is not asked for an error float32 cannot resolve)."""
    found = []
    for name, info in run_info:
        suite = info.get("suite") if isinstance(info, Mapping) else None
        rules = suite.get("expect") if isinstance(suite, Mapping) else None
        for rule in rules if isinstance(rules, list) else ():
            limits = rule.get("max") if isinstance(rule, Mapping) else None
            bound = limits.get("grad_rel_err") if isinstance(limits, Mapping) else None
            if isinstance(bound, (int, float)) and not isinstance(bound, bool) and math.isfinite(bound) and bound > 0:
                found.append((float(bound), name))
    if not found:
        floor = min((ERROR_FLOOR.get(d, 0.0) for d in dtypes), default=0.0)
        if floor > DEFAULT_TARGET:
            return Target(floor, f"the error floor of {', '.join(sorted(set(dtypes)))}: no expect rule of the "
                                 "suite bounds grad_rel_err")  # fmt: skip
        return Target(DEFAULT_TARGET, "the default: no expect rule of the suite bounds grad_rel_err")
    bound, name = min(found)
    return Target(bound, f"from the expect rules of run {name}")


@dataclass(frozen=True)
class OverviewGrid:
    """Problem instances (rows) x series (columns), each problem at its tightest tolerance.

    ``error`` (relative gradient error), ``time_ratio`` (time over the fastest series on that
    row) and ``memory_bytes`` (peak memory) are NaN where a case has no number; ``glyph`` holds the mark of a
    case that did not succeed (:data:`GLYPHS`), ``""`` elsewhere; ``rtol`` the tolerance of each row.
    """

    error: pd.DataFrame
    time_ratio: pd.DataFrame
    memory_bytes: pd.DataFrame
    glyph: pd.DataFrame
    rtol: pd.Series

    @property
    def empty(self) -> bool:
        return self.error.empty


def overview_grid(prepared: Prepared, pts: pd.DataFrame) -> OverviewGrid:
    """The :class:`OverviewGrid` of a report (``pts`` as :func:`odebench.report._data.points` returns)."""
    frame = prepared.frame[prepared.frame["rtol"].notna()]
    rows = sorted(frame["problem_label"].unique())
    columns = sorted(frame["series"].unique())
    rtol = frame.groupby("problem_label")["rtol"].min().reindex(rows)

    def empty(fill: Any, dtype: str) -> pd.DataFrame:
        return pd.DataFrame(
            fill, index=pd.Index(rows, name="problem"), columns=pd.Index(columns, name="method"), dtype=dtype
        )

    error, time, memory, glyph = (
        empty(math.nan, "float64"),
        empty(math.nan, "float64"),
        empty(math.nan, "float64"),
        empty("", "object"),
    )
    at = pts[pts["rtol"] == pts["problem_label"].map(rtol)] if len(pts) else pts
    for row in at.itertuples():
        error.loc[row.problem_label, row.series] = row.grad_rel_err
        time.loc[row.problem_label, row.series] = row.time_total_s
        memory.loc[row.problem_label, row.series] = row.peak_memory_bytes
    tight = frame[frame["rtol"] == frame["problem_label"].map(rtol)]
    for (problem, series), cases in tight.groupby(["problem_label", "series"]):
        if not (cases["status"] == "ok").any():
            glyph.loc[problem, series] = GLYPHS.get(str(cases["status"].iloc[0]), "x")
    fastest = time.where(time > 0).min(axis=1)
    return OverviewGrid(error, time.div(fastest, axis=0), memory, glyph, rtol)


@dataclass(frozen=True)
class Choice:
    """One case of a recommendation: a series at one tolerance, with its numbers."""

    series: str
    rtol: float
    grad_rel_err: float
    time_total_s: float
    peak_memory_bytes: float


@dataclass(frozen=True)
class Recommendation:
    """What to use on one problem instance.

    ``fastest``: the fastest case whose gradient error reaches the target; ``leanest``: the
    case of least peak memory within :data:`LEAN_TIME_FACTOR` x that time (also reaching the
    target); both ``None`` when no case reaches it, and ``closest`` is then the most accurate
    case. ``avoid`` pairs each method ruled out with the findings that rule it out.
    """

    problem: str
    target: float
    fastest: Choice | None
    leanest: Choice | None
    closest: Choice | None
    avoid: tuple[tuple[str, tuple[Finding, ...]], ...]


def _choice(row: pd.Series) -> Choice:
    return Choice(row["series"], row["rtol"], row["grad_rel_err"], row["time_total_s"], row["peak_memory_bytes"])


def recommend(pts: pd.DataFrame, groups: Sequence[FindingGroup], target: float) -> list[Recommendation]:
    """One :class:`Recommendation` per problem instance with successful cases.

    Verification methods (finite differences) are never recommended. A finding every method
    on the problem shares (:attr:`FindingGroup.of_problem`) rules none of them out.
    """
    found = []
    contenders = pts[pts["family"] != "verification"] if len(pts) else pts
    for problem, rows in contenders.groupby("problem_label", sort=True):
        timed = rows[rows["time_total_s"].notna() & rows["grad_rel_err"].notna()]
        good = timed[timed["grad_rel_err"] <= target]
        fastest = leanest = closest = None
        if not good.empty:
            best = good.sort_values(["time_total_s", "peak_memory_bytes", "grad_rel_err"]).iloc[0]
            fastest = _choice(best)
            near = good[good["time_total_s"] <= LEAN_TIME_FACTOR * best["time_total_s"]]
            near = near[near["peak_memory_bytes"].notna()]
            if not near.empty:
                leanest = _choice(near.sort_values(["peak_memory_bytes", "time_total_s"]).iloc[0])
        elif not timed.empty:
            closest = _choice(timed.sort_values(["grad_rel_err", "time_total_s"]).iloc[0])
        ruled: dict[str, list[Finding]] = {}
        for group in groups:
            if group.problem == problem and not group.of_problem:
                for finding in group.findings:
                    ruled.setdefault(finding.method, []).append(finding)
        avoid = tuple((series, tuple(ruled[series])) for series in sorted(ruled))
        found.append(Recommendation(problem, target, fastest, leanest, closest, avoid))
    return found
