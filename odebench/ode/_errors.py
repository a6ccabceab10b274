"""Solver failures: exceptions here, ``diverged`` records in the runner (defined torch-free)."""

from .._errors import (  # noqa: F401 - re-exported
    MaxStepsExceeded as MaxStepsExceeded,
)
from .._errors import (
    NonFiniteSolution as NonFiniteSolution,
)
from .._errors import (
    SolverError as SolverError,
)
from .._errors import (
    StepSizeUnderflow as StepSizeUnderflow,
)
