"""The regression gate: check a run against a committed baseline, for CI.

Reads DataFrames only (never torch or jax). ``odebench gate`` is :mod:`odebench.gate._cli`.
"""

from .._cases import MatchedCases as MatchedCases
from .._cases import Where as Where
from .._cases import case_label as case_label
from .._cases import change_ratio as change_ratio
from .._cases import match_cases as match_cases
from ._gate import GateResult as GateResult
from ._gate import Violation as Violation
from ._gate import cpu_model as cpu_model
from ._gate import gate as gate
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
    StepsRule as StepsRule,
)
from ._rules import (
    Thresholds as Thresholds,
)
from ._rules import (
    TimeRule as TimeRule,
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
