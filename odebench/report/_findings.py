"""Findings: what a careful numerical analyst would point out in a run, with the numbers behind it.

Each check reads the per-case points (median over seeds of the successful cases) and
yields at most one :class:`Finding` per problem and method. Every threshold is a
:class:`Threshold` constant below, listed with its meaning in the report's "how to
read" note. A clean run yields no finding.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, replace

import pandas as pd

from .. import _verdicts as verdicts
from .._verdicts import ERROR_FLOOR
from ..backends import FIXED_STEP, REVERSIBLE, STABLE_FAMILIES
from ._data import (
    MIB,
    figure_file,
    format_tolerance,
    points,
    prepare,
    promises_constant_memory,
    sweeps,
)


class Threshold(float):
    """A float constant that carries its own explanation (``__doc__``) into the report."""

    def __new__(cls, value: float, doc: str) -> Threshold:
        obj = super().__new__(cls, value)
        obj.__doc__ = doc
        return obj


TOLERANCE_FACTOR = Threshold(
    100.0,
    "A gradient error above this many times the effective tolerance does not honour the tolerance.",
)
PLATEAU_MIN_SPAN = Threshold(
    100.0,
    "A plateau is judged between two effective tolerances at least this many times apart.",
)
PLATEAU_MAX_SLOPE = Threshold(
    0.25,
    "Plateau: over such a span the error falls more slowly than tolerance^slope "
    "(a well-behaved method follows the tolerance with a slope near 1).",
)
CONSISTENCY_FACTOR = Threshold(
    verdicts.CONSISTENCY_FACTOR,
    "An adjoint is inconsistent with its own forward solve when consistency_err exceeds this many times "
    "both the effective tolerance and the gradient error of the same library's discrete method.",
)
UNSTABLE_FACTOR = Threshold(
    100.0,
    "A backsolve-type method is unstable when its gradient error exceeds this many times both the best "
    "checkpointed/interpolated/discrete method on the same problem and tolerance, and the effective tolerance.",
)
BACKWARD_NFE_FACTOR = Threshold(
    10.0,
    "Backward NFE above this many times the forward NFE is a work anomaly.",
)
PEER_NFE_FACTOR = Threshold(
    10.0,
    "A method needing this many times the total NFE of another method that is at least as accurate "
    "on the same problem is a work anomaly.",
)
WORK_MAX_ERROR = Threshold(
    1.0,
    "NFE-for-accuracy comparisons only consider gradient errors below this: with a relative error "
    "of 1 or more no digit is right, and the accuracy findings say so.",
)
MEMORY_GROWTH_FACTOR = Threshold(
    2.0,
    "Peak memory at the longest horizon above this many times that at the shortest, for a method "
    "that promises horizon-independent memory, is a finding.",
)


#: a dtype whose error floor is this large or larger (float32 and below) is named in the
#: report and drawn in its error panels
SHOWN_FLOOR = 1e-8


def low_precision_floors(dtypes) -> dict[str, float]:
    """The error floor of each dtype among ``dtypes`` that is large enough to show, sorted by dtype."""
    return {d: ERROR_FLOOR[d] for d in sorted(set(dtypes)) if ERROR_FLOOR.get(d, 0.0) >= SHOWN_FLOOR}


THRESHOLDS: dict[str, Threshold] = {name: value for name, value in globals().items() if isinstance(value, Threshold)}

# Finding kinds, the more specific first: the order a report lists them in, and the order
# in which a finding may absorb those it explains.
KINDS: dict[str, str] = {
    "unstable_backward": "unstable backward solve",
    "consistency": "adjoint inconsistent with its forward solve",
    "tolerance": "tolerance not honoured",
    "work": "work anomaly",
    "memory": "memory grows with the horizon",
}

# A finding explains the kinds it subsumes for the same problem and method: an unstable
# backward solve is why the adjoint disagrees with its forward solve and misses its tolerance.
SUBSUMES: dict[str, tuple[str, ...]] = {
    "unstable_backward": ("consistency", "tolerance"),
    "consistency": ("tolerance",),
}


@dataclass(frozen=True)
class Finding:
    """One observation about one method on one problem.

    ``summary`` is a sentence with the numbers; ``evidence`` the per-tolerance lines behind
    it (and the summaries of the findings it subsumes); ``figure`` the relative path of the
    figure that shows it. ``severity`` is the largest ratio behind it (error over tolerance,
    NFE over NFE, ...): comparable between findings of one kind, it names the worst case.
    ``absorbed`` lists the kinds of the findings it subsumes.
    """

    kind: str
    problem: str
    method: str
    summary: str
    evidence: tuple[str, ...]
    figure: str
    severity: float = 0.0
    absorbed: tuple[str, ...] = ()

    @property
    def title(self) -> str:
        return KINDS[self.kind]


def _sci(value: float) -> str:
    return f"{value:.2g}" if 1e-2 <= abs(value) < 1e4 else f"{value:.1e}"


def _span(values: list[float]) -> str:
    low, high = min(values), max(values)
    return _sci(low) if _sci(low) == _sci(high) else f"{_sci(low)} to {_sci(high)}"


def _effective_tolerance(pts: pd.DataFrame) -> pd.Series:
    """Per case, :func:`odebench._verdicts.effective_tolerance`."""
    reference = pts["reference_err"].astype("float64").fillna(0.0)
    values = map(verdicts.effective_tolerance, pts["rtol"].astype("float64"), pts["dtype"], reference)
    return pd.Series(list(values), index=pts.index, dtype="float64")


def _contenders(pts: pd.DataFrame) -> pd.DataFrame:
    """The points of every method but the verification ones (finite differences)."""
    return pts[pts["family"] != "verification"]


def _by_method(pts: pd.DataFrame) -> Iterator[pd.DataFrame]:
    """The points of each problem instance and method, loosest tolerance first."""
    for _, group in pts.groupby(["problem_label", "series"], sort=True):
        yield group.sort_values("rtol", ascending=False)


def _finding(
    kind: str, group: pd.DataFrame, summary: str, evidence: list[str], figure: str, severity: float
) -> Finding:
    """The finding of one problem instance and method (``group``), shown by its problem's ``figure`` kind."""
    first = group.iloc[0]
    return Finding(
        kind,
        first["problem_label"],
        first["series"],
        summary,
        tuple(evidence),
        figure_file(figure, first["problem"]),
        float(severity),
    )


def _adaptive(pts: pd.DataFrame) -> pd.DataFrame:
    """The points of adaptive solves: a fixed-step solver ignores rtol by design."""
    return pts[~pts["solver"].isin(FIXED_STEP + REVERSIBLE)]


def _tolerance(pts: pd.DataFrame) -> Iterator[Finding]:
    for group in _by_method(_adaptive(_contenders(pts))):
        group = group[group["grad_rel_err"].notna()]
        evidence, summary = [], []
        ratio = group["grad_rel_err"] / group["tol_eff"]
        far = group[ratio > TOLERANCE_FACTOR]
        for rtol, err, r in zip(far["rtol"], far["grad_rel_err"], ratio[far.index]):
            evidence.append(f"rtol={format_tolerance(rtol)}: error {_sci(err)} = {_sci(r)}x the effective tolerance")
        if not far.empty:
            worst = ratio[far.index].idxmax()
            summary.append(
                f"gradient error up to {_sci(ratio[worst])}x its tolerance "
                f"({_sci(far.at[worst, 'grad_rel_err'])} at rtol={format_tolerance(far.at[worst, 'rtol'])})"
            )
        if plateau := _plateau(group):
            evidence.append(plateau)
            summary.append("the error stops falling as the tolerance tightens (plateau)")
        if summary:
            yield _finding("tolerance", group, "; ".join(summary), evidence, "accuracy", ratio.max())


def _plateau(group: pd.DataFrame) -> str:
    """The first span of tolerances over which the error (nearly) stops falling, described; or ``""``."""
    rows = list(zip(group["tol_eff"], group["grad_rel_err"], group["rtol"]))
    for i, (tol_a, err_a, rtol_a) in enumerate(rows):
        for tol_b, err_b, rtol_b in rows[i + 1 :]:
            span = tol_a / tol_b
            if span < PLATEAU_MIN_SPAN or err_a <= 0 or err_b <= 0:
                continue
            slope = math.log(err_a / err_b) / math.log(span)
            if slope < PLATEAU_MAX_SLOPE:
                return (
                    f"rtol {format_tolerance(rtol_a)} -> {format_tolerance(rtol_b)} ({_sci(span)}x tighter): "
                    f"error {_sci(err_a)} -> {_sci(err_b)} (slope {slope:.2f} < {PLATEAU_MAX_SLOPE:g})"
                )
    return ""


def _consistency(pts: pd.DataFrame) -> Iterator[Finding]:
    discrete = pts.groupby(["problem_label", "method", "solver", "rtol", "dtype"])["grad_rel_err"].min()
    # Finite differences are no adjoint: their distance to backprop is their step's error.
    for group in _by_method(_contenders(pts)):
        evidence, worst = [], (0.0, "")
        for row in group[group["consistency_err"].notna()].itertuples():
            own = discrete.get((row.problem_label, row.consistency_method, row.solver, row.rtol, row.dtype), math.nan)
            own = None if math.isnan(own) else own
            if verdicts.adjoint_inconsistent(row.consistency_err, row.tol_eff, own):
                versus = f", {row.consistency_method} error {_sci(own)}" if own is not None else ""
                line = (
                    f"rtol={format_tolerance(row.rtol)}: consistency_err {_sci(row.consistency_err)} "
                    f"vs effective tolerance {_sci(row.tol_eff)}{versus}"
                )
                evidence.append(line)
                worst = max(worst, (row.consistency_err / max(row.tol_eff, own or 0.0), line))
        if evidence:
            summary = (
                f"disagrees with discrete backprop of the same solve by up to {_sci(worst[0])}x the solver's own "
                f"error ({worst[1]}): the adjoint, not the forward solve, is off"
            )
            yield _finding("consistency", group, summary, evidence, "accuracy", worst[0])


def _unstable_backward(pts: pd.DataFrame) -> Iterator[Finding]:
    stable = pts[pts["family"].isin(STABLE_FAMILIES) & pts["grad_rel_err"].notna()]
    best = stable.sort_values("grad_rel_err").groupby(["problem_label", "rtol", "dtype"]).first()
    for group in _by_method(pts[pts["family"] == "backsolve"]):
        evidence, errors, references, ratios = [], [], [], []
        for row in group[group["grad_rel_err"].notna()].itertuples():
            key = (row.problem_label, row.rtol, row.dtype)
            if key not in best.index:
                continue
            ref = best.loc[key]
            bound = max(ref["grad_rel_err"], row.tol_eff)
            if row.grad_rel_err > UNSTABLE_FACTOR * bound:
                errors.append(row.grad_rel_err)
                references.append(ref["grad_rel_err"])
                ratios.append(row.grad_rel_err / bound)
                evidence.append(
                    f"rtol={format_tolerance(row.rtol)}: error {_sci(row.grad_rel_err)} vs "
                    f"{_sci(ref['grad_rel_err'])} for {ref['series']}"
                )
        if evidence:
            summary = (
                f"gradient error {_span(errors)} where the best checkpointed/discrete method reaches "
                f"{_span(references)} at the same tolerances: solving the state backwards is unstable here"
            )
            yield _finding("unstable_backward", group, summary, evidence, "accuracy", max(ratios))


def _work(pts: pd.DataFrame) -> Iterator[Finding]:
    pts = _contenders(pts)
    for group in _by_method(pts):
        evidence, summary = [], []
        ratio = group["nfe_backward"] / group["nfe_forward"].where(group["nfe_forward"] > 0)
        heavy = group[ratio > BACKWARD_NFE_FACTOR]
        for rtol, fwd, bwd in zip(heavy["rtol"], heavy["nfe_forward"], heavy["nfe_backward"]):
            line = f"rtol={format_tolerance(rtol)}: backward NFE {bwd:.0f}, {bwd / fwd:.1f}x the forward NFE {fwd:.0f}"
            evidence.append(line)
        if not heavy.empty:
            summary.append(f"backward NFE up to {ratio.max():.1f}x the forward NFE")
        first = group.iloc[0]
        peers = pts[(pts["problem_label"] == first["problem_label"]) & (pts["series"] != first["series"])]
        peers = peers[peers["nfe_total"] > 0]
        worst = 0.0
        for row in group[(group["grad_rel_err"] < WORK_MAX_ERROR) & (group["nfe_total"] > 0)].itertuples():
            better = peers[peers["grad_rel_err"] <= row.grad_rel_err]
            if better.empty:
                continue
            cheapest = better.loc[better["nfe_total"].idxmin()]
            factor = row.nfe_total / cheapest["nfe_total"]
            if factor > PEER_NFE_FACTOR:
                worst = max(worst, factor)
                evidence.append(
                    f"rtol={format_tolerance(row.rtol)}: {row.nfe_total:.0f} NFE for error {_sci(row.grad_rel_err)}; "
                    f"{cheapest['series']} reaches {_sci(cheapest['grad_rel_err'])} with "
                    f"{cheapest['nfe_total']:.0f} (rtol={format_tolerance(cheapest['rtol'])})"
                )
        if worst:
            summary.append(f"up to {worst:.0f}x the NFE of a method that is at least as accurate")
        if summary:
            # The NFE figure shows a heavy backward pass; the work-precision one a costly method.
            figure = "nfe" if not heavy.empty else "wp_nfe"
            severity = max(worst, ratio[heavy.index].max() if not heavy.empty else 0.0)
            yield _finding("work", group, "; ".join(summary), evidence, figure, severity)


def _memory(pts: pd.DataFrame) -> Iterator[Finding]:
    for sweep in sweeps(pts):
        if not sweep.is_horizon:
            continue
        rows = sweep.frame[sweep.frame["method"].map(promises_constant_memory)]
        rows = rows[rows["peak_memory_bytes"] > 0]
        for (group, series), sub in rows.groupby(["group", "series"], sort=True):
            evidence, worst = [], 0.0
            for rtol, line in sub.groupby("rtol", sort=False):
                if line["x"].nunique() < 2:
                    continue
                low, high = line.loc[line["x"].idxmin()], line.loc[line["x"].idxmax()]
                growth = high["peak_memory_bytes"] / low["peak_memory_bytes"]
                if growth > MEMORY_GROWTH_FACTOR:
                    worst = max(worst, growth)
                    evidence.append(
                        f"rtol={format_tolerance(rtol)}: {low['peak_memory_bytes'] / MIB:.3g} MiB at "
                        f"{sweep.key}={low['x']:g} -> {high['peak_memory_bytes'] / MIB:.3g} MiB at "
                        f"{sweep.key}={high['x']:g} ({growth:.1f}x)"
                    )
            if evidence:
                summary = f"peak memory grows {worst:.1f}x over the {sweep.key} sweep; the method promises it will not"
                figure = figure_file(f"memory_vs_{sweep.key}")
                yield Finding("memory", group, series, summary, tuple(evidence), figure, worst)


CHECKS = (_unstable_backward, _consistency, _tolerance, _work, _memory)


def _fold(findings: list[Finding]) -> list[Finding]:
    """Let each finding absorb the ones it explains (see ``SUBSUMES``) as evidence."""
    kept = {(f.problem, f.method, f.kind): f for f in findings}
    for kind in KINDS:  # most specific first, so a kind still here was absorbed by none
        for problem, method, _ in [key for key in kept if key[2] == kind]:
            absorbed = [kept.pop((problem, method, s)) for s in SUBSUMES.get(kind, ()) if (problem, method, s) in kept]
            if absorbed:
                finding = kept[(problem, method, kind)]
                also = tuple(f"also {a.title}: {a.summary}" for a in absorbed)
                kinds = tuple(k for a in absorbed for k in (a.kind, *a.absorbed))
                kept[(problem, method, kind)] = replace(
                    finding, evidence=finding.evidence + also, absorbed=finding.absorbed + kinds
                )
    order = list(KINDS)
    return sorted(kept.values(), key=lambda f: (f.problem, f.method, order.index(f.kind)))


def findings_in(pts: pd.DataFrame) -> list[Finding]:
    """The findings of per-case points (as :func:`odebench.report._data.points` returns)."""
    if pts.empty:
        return []
    pts = pts.assign(tol_eff=_effective_tolerance(pts))
    return _fold([finding for check in CHECKS for finding in check(pts)])


def find_findings(frame: pd.DataFrame) -> list[Finding]:
    """What the numbers of a records frame say, per problem and method (empty on a clean run)."""
    return findings_in(points(prepare(frame)))


# --- grouped: one line per problem and kind ------------------------------------------------------

# Kinds judged per problem instance against the methods run on it; a memory finding belongs to
# a sweep (several instances) and is never a property of one instance.
_PER_INSTANCE = ("unstable_backward", "consistency", "tolerance", "work")


@dataclass(frozen=True)
class FindingGroup:
    """The findings of one kind on one problem instance (or sweep).

    ``of_problem``: every method run on the problem shares the finding (directly, or absorbed
    by a more specific one), so it says something about the problem, not about a method;
    ``n_methods`` is how many methods (verification ones left out) have results there.
    """

    kind: str
    problem: str
    findings: tuple[Finding, ...]
    of_problem: bool
    n_methods: int

    @property
    def title(self) -> str:
        return KINDS[self.kind]

    @property
    def worst(self) -> Finding:
        return max(self.findings, key=lambda f: f.severity)

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(f.method for f in self.findings)


def group_findings(findings: list[Finding], pts: pd.DataFrame) -> list[FindingGroup]:
    """Findings grouped by (problem, kind), in the order of :data:`KINDS` within each problem.

    ``pts`` (the points the findings came from) tells which methods ran on each problem.
    """
    ran = {problem: set(rows["series"]) for problem, rows in _contenders(pts).groupby("problem_label")}
    order = list(KINDS)
    by_key: dict[tuple[str, str], list[Finding]] = defaultdict(list)
    for finding in sorted(findings, key=lambda f: (f.problem, order.index(f.kind))):
        by_key[(finding.problem, finding.kind)].append(finding)
    groups = []
    for (problem, kind), members in by_key.items():
        methods = ran.get(problem, set())
        sharing = {f.method for f in findings if f.problem == problem and (f.kind == kind or kind in f.absorbed)}
        of_problem = kind in _PER_INSTANCE and len(methods) > 1 and methods <= sharing
        groups.append(FindingGroup(kind, problem, tuple(members), of_problem, len(methods)))
    return groups
