"""The regression gate: check a run against a committed baseline, for CI.

Reads DataFrames only (never torch or jax). ``odebench gate`` is :mod:`odebench.gate._cli`.
"""

from ._gate import GateResult as GateResult
from ._gate import Violation as Violation
from ._gate import gate as gate
from ._match import MatchedCases as MatchedCases
from ._match import case_label as case_label
from ._match import match_cases as match_cases
from ._rules import (
    GradRule as GradRule,
)
from ._rules import (
    Ignore as Ignore,
)
from ._rules import (
    MemoryRule as MemoryRule,
)
from ._rules import (
    MissingRule as MissingRule,
)
from ._rules import (
    NfeRule as NfeRule,
)
from ._rules import (
    Rule as Rule,
)
from ._rules import (
    Rules as Rules,
)
from ._rules import (
    StatusRule as StatusRule,
)
from ._rules import (
    Thresholds as Thresholds,
)
from ._rules import (
    TimeRule as TimeRule,
)
from ._rules import (
    Where as Where,
)
from ._rules import (
    load_rules as load_rules,
)
from ._rules import (
    rules_from_dict as rules_from_dict,
)
from ._stats import MannWhitneyResult as MannWhitneyResult
from ._stats import mann_whitney_u as mann_whitney_u

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
    "Thresholds",
    "TimeRule",
    "Violation",
    "Where",
    "case_label",
    "gate",
    "load_rules",
    "mann_whitney_u",
    "match_cases",
    "rules_from_dict",
]
