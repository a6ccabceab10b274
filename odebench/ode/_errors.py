"""Solver failures: exceptions here, ``diverged`` records in the runner (defined torch-free)."""

from .._errors import (  # noqa: F401 - re-exported
    MaxStepsExceeded as MaxStepsExceeded,
    NonFiniteSolution as NonFiniteSolution,
    SolverError as SolverError,
    StepSizeUnderflow as StepSizeUnderflow,
)
