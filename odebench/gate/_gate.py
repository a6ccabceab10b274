"""The regression gate: checks a run against a baseline, case by case.

Most of what odebench measures is deterministic (status, gradient error, NFE, CUDA and
JAX memory peaks), so those are gated tightly. Time is not: it is gated relative to the
other methods measured in the same runs, and only when the stored samples show the
slowdown (a one-sided Mann-Whitney test), so that a noisy or slower runner does not fail;
between different CPU models it is only reported.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .. import _markdown as md
from .._cases import (
    Row,
    Where,
    case_fields,
    case_label,
    change_ratio,
    identity,
    match_cases,
    method_label,
    number,
    problem_key,
    value,
)
from ._rules import GradRule, MemoryRule, NfeRule, Rules, StepsRule, Thresholds, TimeRule
from ._stats import mann_whitney_u, smallest_pvalue

# Machine epsilon per dtype name, for the gradient-error floor.
MACHINE_EPSILON = {
    "float64": 2.220446049250313e-16,
    "float32": 1.1920928955078125e-07,
    "float16": 9.765625e-04,
    "bfloat16": 7.8125e-03,
}
FLOOR_EPSILONS = 100
DETERMINISTIC_MEMORY = ("cuda", "jax")


@dataclass(frozen=True)
class Violation:
    """One regression of one case: what was checked, both values and the rule broken."""

    case: str
    check: str
    baseline: Any
    now: Any
    ratio: float | None
    rule: str
    unit: str = ""
    identity: Mapping[str, Any] = field(default_factory=dict, compare=False)
    detail: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "check": self.check,
            "baseline": _json_value(self.baseline),
            "now": _json_value(self.now),
            "ratio": _json_value(self.ratio),
            "rule": self.rule,
            "unit": self.unit,
            "identity": dict(self.identity),
            "detail": {k: _json_value(v) for k, v in self.detail.items()},
        }


@dataclass(frozen=True)
class GateResult:
    """The outcome of :func:`gate`: the violations and what was (not) checked.

    ``informational`` holds time changes beyond the rule that do not fail the gate
    (``time: {informational: true}``, or run and baseline on different CPU models).
    """

    violations: tuple[Violation, ...]
    checked: int
    ignored: int
    new_cases: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    informational: tuple[Violation, ...] = ()

    @property
    def passed(self) -> bool:
        return not self.violations

    @property
    def verdict(self) -> str:
        """One line: PASS or FAIL and the counts."""
        if self.passed:
            shown = len(self.informational)
            extra = f" ({shown} time change{'s' * (shown != 1)} reported, not gated)" if shown else ""
            return f"PASS: {self.checked} cases checked, no regression{extra}"
        cases = len({v.case for v in self.violations})
        n = len(self.violations)
        return f"FAIL: {n} regression{'s' * (n != 1)} in {cases} of {self.checked} cases"

    def to_markdown(self, context: Sequence[str] = (), max_rows: int = 200) -> str:
        """A CI job summary: the verdict, ``context`` lines, the violations table, the notes.

        The table stops after ``max_rows`` violations (the JSON output holds them all).
        """
        parts = [f"### odebench gate: {self.verdict}"]
        if context:
            parts.append("\n".join(f"- {line}" for line in context))
        if self.violations:
            parts.append(_table(self.violations[:max_rows]))
        if self.informational:
            parts.append("#### Time changes (informational, not gated)")
            parts.append(_table(self.informational[:max_rows]))
        notes = list(self.notes)
        for name, found in (("violations", self.violations), ("time changes", self.informational)):
            if len(found) > max_rows:
                notes.insert(0, f"{len(found) - max_rows} more {name} are left out of this table (see --json).")
        if self.ignored:
            notes.append(f"{self.ignored} cases ignored by the rules.")
        if self.new_cases:
            notes.append(f"{len(self.new_cases)} cases are new in the run (not in the baseline) and were not gated.")
        if notes:
            parts.append("\n".join(f"- {note}" for note in notes))
        return "\n\n".join(parts) + "\n"

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "verdict": self.verdict,
            "checked": self.checked,
            "ignored": self.ignored,
            "new_cases": list(self.new_cases),
            "notes": list(self.notes),
            "violations": [v.to_dict() for v in self.violations],
            "informational": [v.to_dict() for v in self.informational],
        }


def _table(violations: Sequence[Violation]) -> str:
    rows = [
        (v.case, v.check, md.number(v.baseline, v.unit), md.number(v.now, v.unit), md.ratio(v.ratio), v.rule)
        for v in violations
    ]
    return md.table(("case", "what", "baseline", "now", "ratio", "rule"), rows)


def _json_value(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def gate(
    run, baseline, rules: Rules | None = None, *, run_cpu: str | None = None, baseline_cpu: str | None = None
) -> GateResult:
    """Check the records of ``run`` against those of ``baseline`` (both DataFrames).

    ``run_cpu`` and ``baseline_cpu`` are the CPU models from each ``run.json``: where
    both are known and differ, time changes are informational unless the rule says
    ``enforce_on_other_cpu``. Raises :class:`~odebench.UsageError` if either run holds a
    case twice or a ``*_params`` cell that is not JSON.
    """
    rules = rules or Rules()
    matched = match_cases(baseline, run, names=("baseline", "run"))
    other_cpu = bool(run_cpu and baseline_cpu and run_cpu != baseline_cpu)
    tally = _Tally()
    for row in matched.only_first:
        _check_missing(row, rules, tally)
    gated = [(base, new) for base, new in matched.pairs if not tally.ignores(base, rules)]
    timing = _Timing([(b, n) for b, n in gated if _ok(b) and _ok(n)])
    for base, new in gated:
        _check_case(base, new, rules.for_case(case_fields(base)), timing, other_cpu, tally)
    new_cases = tuple(case_label(row) for row in matched.only_second if not rules.ignored(case_fields(row)))
    every_case = [row for pair in matched.pairs for row in pair] + [*matched.only_first, *matched.only_second]
    return GateResult(
        violations=tuple(tally.violations),
        checked=tally.checked,
        ignored=tally.ignored,
        new_cases=new_cases,
        notes=_cpu_notes(run_cpu, baseline_cpu) + timing.notes() + _unmatched_rules(rules, every_case),
        informational=tuple(tally.informational),
    )


@dataclass
class _Tally:
    """What :func:`gate` found so far."""

    violations: list[Violation] = field(default_factory=list)
    informational: list[Violation] = field(default_factory=list)
    checked: int = 0
    ignored: int = 0

    def ignores(self, row: Row, rules: Rules) -> bool:
        """Whether the rules leave ``row`` out (counted), else count it as checked."""
        if rules.ignored(case_fields(row)):
            self.ignored += 1
            return True
        self.checked += 1
        return False


def _check_missing(row: Row, rules: Rules, tally: _Tally) -> None:
    """A baseline case the run does not hold."""
    if tally.ignores(row, rules):
        return
    rule = rules.for_case(case_fields(row)).missing
    if not rule.skip:
        text = f"every baseline case must be in the run [{rule.origin}]"
        tally.violations.append(_violation(row, "missing", value(row, "status"), None, None, text))


def _check_case(base: Row, new: Row, thresholds: Thresholds, timing: _Timing, other_cpu: bool, tally: _Tally) -> None:
    """Every check of one case held by both runs."""
    tally.violations += _check_status(base, new, thresholds)
    if not (_ok(base) and _ok(new)):
        return
    tally.violations += _check_grad(base, new, thresholds.grad_rel_err)
    tally.violations += _check_counts(base, new, thresholds.nfe, ("nfe_forward", "nfe_backward"))
    tally.violations += _check_counts(base, new, thresholds.steps, ("steps_forward", "steps_backward"))
    tally.violations += _check_memory(base, new, thresholds.memory)
    slower = _check_time(base, new, thresholds.time, timing)
    why = _time_not_gated(thresholds.time, other_cpu)
    if why:
        tally.informational += [replace(v, rule=f"{v.rule} ({why})") for v in slower]
    else:
        tally.violations += slower


def cpu_model(run_info: Mapping[str, Any]) -> str | None:
    """The CPU model a run measured on, from its run.json (``None`` where not recorded)."""
    cpu = run_info.get("cpu")
    return (cpu.get("model") if isinstance(cpu, Mapping) else None) or None


def _time_not_gated(rule: TimeRule, other_cpu: bool) -> str:
    """Why time changes of a case are informational, or ``""`` where they are gated."""
    if rule.informational:
        return "informational by rule"
    if other_cpu and not rule.enforce_on_other_cpu:
        return "informational: another CPU"
    return ""


def _cpu_notes(run_cpu: str | None, baseline_cpu: str | None) -> tuple[str, ...]:
    if not (run_cpu and baseline_cpu) or run_cpu == baseline_cpu:
        return ()
    return (
        f"The run's CPU ({run_cpu}) is not the baseline's ({baseline_cpu}): time changes are informational"
        " (not gated) unless a rule sets `time: {enforce_on_other_cpu: true}`; refresh the baseline on this"
        " kind of machine to gate time again.",
    )


def _unmatched_rules(rules: Rules, rows: Sequence[Row]) -> tuple[str, ...]:
    """A note per rule or ignore entry that matches no case of either run: it checks nothing."""
    fields = [case_fields(row) for row in rows]
    entries: list[tuple[str, Where]] = [(rule.origin, rule.where) for rule in rules.rules]
    entries += [(entry.origin or "ignore", entry.where) for entry in rules.ignore]
    return tuple(
        f"Rule `{origin}` (where {where}) matches no case of the run or the baseline: it checks nothing."
        for origin, where in entries
        if not any(where.matches(f) for f in fields)
    )


def _ok(row: Row) -> bool:
    return value(row, "status") == "ok"


def _violation(
    row: Row, check: str, baseline: Any, now: Any, ratio: float | None, rule: str, unit: str = "", **detail: Any
) -> Violation:
    return Violation(case_label(row), check, baseline, now, ratio, rule, unit, identity(row), detail)


def _exceeds(
    base: Row, new: Row, column: str, limit: Callable[[float], float], check: str, rule: str, unit: str = ""
) -> list[Violation]:
    """A violation if ``column`` is above ``limit(baseline)``, or was measured in the baseline and is not now."""
    b, n = number(base, column), number(new, column)
    if b is None or (n is not None and n <= limit(b)):
        return []
    ratio = change_ratio(n, b) if n is not None else None
    return [_violation(new, check, b, n, ratio, rule, unit)]


def _percent(fraction: float) -> str:
    return f"≤ +{fraction * 100:g}%"


def _check_status(base: Row, new: Row, thresholds: Thresholds) -> list[Violation]:
    rule = thresholds.status
    if rule.skip or not _ok(base) or _ok(new):
        return []
    status, error = value(new, "status"), value(new, "error") or ""
    now = f"{status}: {error[:120]}" if error else status
    return [_violation(new, "status", "ok", now, None, f"a case that was ok must stay ok [{rule.origin}]", error=error)]


def _check_grad(base: Row, new: Row, rule: GradRule) -> list[Violation]:
    if rule.skip:
        return []
    floor = rule.floor
    if floor is None:
        floor = FLOOR_EPSILONS * MACHINE_EPSILON.get(value(new, "dtype") or "", MACHINE_EPSILON["float64"])
    text = f"≤ {rule.factor:g} × baseline + {floor:.3g} [{rule.origin}]"
    return _exceeds(base, new, "grad_rel_err", lambda b: rule.factor * b + floor, "grad_rel_err", text)


def _check_counts(base: Row, new: Row, rule: NfeRule | StepsRule, columns: tuple[str, ...]) -> list[Violation]:
    if rule.skip:
        return []
    text = f"{_percent(rule.max_increase)} [{rule.origin}]"
    return [
        violation
        for column in columns
        for violation in _exceeds(base, new, column, lambda b: b * (1 + rule.max_increase), column, text)
    ]


def _check_memory(base: Row, new: Row, rule: MemoryRule) -> list[Violation]:
    source = value(new, "memory_source") or ""
    if rule.skip or source != (value(base, "memory_source") or ""):
        return []  # peaks measured differently do not compare
    limit = rule.max_increase if source in DETERMINISTIC_MEMORY else rule.rss_max_increase if source == "rss" else None
    if limit is None:
        return []
    text = f"{_percent(limit)} [{rule.origin}]"
    check = f"peak_memory_bytes ({source})"
    return _exceeds(base, new, "peak_memory_bytes", lambda b: b * (1 + limit), check, text, unit="B")


# ---------------------------------------------------------------- time


@dataclass(frozen=True)
class _Normalised:
    """A case's time change once machine speed is divided out, and how that was done."""

    change: float
    base_samples: tuple[float, ...]
    new_samples: tuple[float, ...]
    how: str


def _times(row: Row) -> tuple[float | None, tuple[float, ...]]:
    t = number(row, "time_total_s")
    samples = value(row, "time_samples_s") or ()
    return (t if t is not None and t > 0 else None), tuple(float(s) for s in samples)


@dataclass(frozen=True)
class _Timed:
    """One case timed in both runs."""

    method: str
    label: str
    solver: str
    problem: tuple
    ratio: float  # run time / baseline time


class _Timing:
    """The cases timed in both runs, to estimate how much faster or slower the run's machine is.

    By default (no reference method) the speed factor for a case is the median
    run/baseline time ratio of every other method on the same problem (problem, its
    parameters, dtype and device), pooled over tolerances and seeds: no one method's
    noise, or its own sensitivity to the machine, decides for the others. With a
    reference method, it is that method's median ratio on the problem (the same solver
    where present), and the reference itself is compared with the other methods. Where
    a problem has none of these, the same over the whole run.
    """

    def __init__(self, pairs: list[tuple[Row, Row]]):
        self.timed: list[_Timed] = []
        self._speeds: dict[tuple, tuple[float, str] | None] = {}  # cases of one method and problem share it
        for base, new in pairs:
            tb, tn = _times(base)[0], _times(new)[0]
            if tb is not None and tn is not None:
                method, solver = value(base, "method"), value(base, "solver") or ""
                self.timed.append(_Timed(method, method_label(base), solver, problem_key(base), tn / tb))

    def speed(self, base: Row, reference: str | None) -> tuple[float, str] | None:
        """The speed factor for ``base`` and what it was measured on; ``None`` if nothing to compare with."""
        key = (value(base, "method"), method_label(base), problem_key(base), value(base, "solver") or "", reference)
        if key not in self._speeds:
            self._speeds[key] = self._speed(*key)
        return self._speeds[key]

    def _speed(
        self, method: str, label: str, problem: tuple, solver: str, reference: str | None
    ) -> tuple[float, str] | None:
        refs = [t for t in self.timed if t.method == reference]
        others = [t for t in self.timed if t.label != label]
        chain = []
        if reference is not None and method != reference:
            for scope, pool in (("on this problem", [t for t in refs if t.problem == problem]), ("over the run", refs)):
                chosen = [t for t in pool if t.solver == solver] or pool
                names = sorted({t.label for t in chosen})
                chain.append((chosen, f"relative to {names[0] if len(names) == 1 else reference} {scope}"))
        chain.append(([t for t in others if t.problem == problem], "relative to the other methods on this problem"))
        chain.append((others, "relative to the other methods over the run"))
        for pool, how in chain:
            if pool:
                factor = statistics.median(t.ratio for t in pool)
                return factor, f"{how} (run ×{factor:.3g})"
        return None

    def notes(self) -> tuple[str, ...]:
        if not self.timed:
            return ()
        overall = statistics.median(t.ratio for t in self.timed)
        note = f"Run/baseline time, median over {len(self.timed)} timed cases: ×{overall:.3g}."
        if not 0.8 <= overall <= 1.25:
            note += (
                " Relative time checks discount a change shared by all methods (a slower machine, or everything"
                " slower); set time mode absolute or both on a dedicated runner to gate that too."
            )
        return (note,)

    def normalise(self, base: Row, new: Row, rule: TimeRule, mode: str) -> _Normalised | None:
        (tb, sb), (tn, sn) = _times(base), _times(new)
        if tb is None or tn is None:
            return None
        speed = self.speed(base, rule.reference) if mode == "relative" else None
        if speed is None:
            how = "absolute" if mode == "absolute" else "absolute (nothing timed to compare with)"
            return _Normalised(tn / tb, sb, sn, how)
        factor, how = speed
        return _Normalised(tn / tb / factor, sb, tuple(s / factor for s in sn), how)


def _check_time(base: Row, new: Row, rule: TimeRule, timing: _Timing) -> list[Violation]:
    if rule.skip:
        return []
    tn = _times(new)[0]
    if tn is None or tn < rule.min_time_s:
        return []
    modes = ("relative", "absolute") if rule.mode == "both" else (rule.mode,)
    found = []
    for mode in modes:
        norm = timing.normalise(base, new, rule, mode)
        if norm is None or norm.change <= rule.factor:
            continue
        n_base, n_new = len(norm.base_samples), len(norm.new_samples)
        p = None
        if n_base and n_new and smallest_pvalue(n_base, n_new) <= rule.alpha:
            p = mann_whitney_u(norm.new_samples, norm.base_samples, alternative="greater").pvalue
            if p >= rule.alpha:
                continue  # the samples overlap too much to call it a slowdown
        evidence = f"p={p:.2g} < {rule.alpha:g}" if p is not None else "too few samples for a test"
        text = f"{norm.how}: ≤ ×{rule.factor:g} ({evidence}) [{rule.origin}]"
        was = number(base, "time_total_s")
        found.append(_violation(new, f"time ({mode})", was, tn, norm.change, text, "s", pvalue=p, normalised=norm.how))
    return found
