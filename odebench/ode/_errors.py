"""Solver failures. They are exceptions here and ``diverged`` records in the runner."""

from __future__ import annotations


class SolverError(RuntimeError):
    """The integration could not be completed; the message says where and why."""


class MaxStepsExceeded(SolverError):
    """More than ``max_steps`` step attempts were needed."""


class StepSizeUnderflow(SolverError):
    """The step size shrank to nothing: the solution is not finite or the problem too stiff."""


class NonFiniteSolution(SolverError):
    """A fixed-step solve produced NaN or Inf."""
