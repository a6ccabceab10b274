"""The regression gate: check a run against a committed baseline, for CI.

Reads DataFrames only (never torch or jax). ``odebench gate`` is :mod:`odebench.gate._cli`.
"""

from .._cases import (
    MatchedCases as MatchedCases,
    Where as Where,
    case_label as case_label,
    change_ratio as change_ratio,
    match_cases as match_cases,
)
from ._gate import GateResult as GateResult, Violation as Violation, cpu_model as cpu_model, gate as gate
from ._rules import (
    GradRule as GradRule,
    Ignore as Ignore,
    MemoryRule as MemoryRule,
    MissingRule as MissingRule,
    NfeRule as NfeRule,
    Rule as Rule,
    Rules as Rules,
    StatusRule as StatusRule,
    StepsRule as StepsRule,
    Thresholds as Thresholds,
    TimeRule as TimeRule,
    load_rules as load_rules,
    rules_from_dict as rules_from_dict,
)
from ._stats import MannWhitneyResult as MannWhitneyResult, mann_whitney_u as mann_whitney_u

__all__ = [
    "GateResult",
    "GradRule",
    "Ignore",
    "MannWhitneyResult",
    "MatchedCases",
    "MemoryRule",
    "MissingRule",
    "NfeRule",
    "Rule",
    "Rules",
    "StatusRule",
    "StepsRule",
    "Thresholds",
    "TimeRule",
    "Violation",
    "Where",
    "case_label",
    "change_ratio",
    "cpu_model",
    "gate",
    "load_rules",
    "mann_whitney_u",
    "match_cases",
    "rules_from_dict",
]
