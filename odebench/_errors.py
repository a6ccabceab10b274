"""Errors shared across layers (torch-free, so every backend can raise them).

Bad user input is a :class:`UsageError` (exit status 2), or a :class:`ProblemError` where a
problem is defined or built; a solve that fails is a :class:`SolverError` (a ``diverged`` record).
"""

from __future__ import annotations


class UsageError(ValueError):
    """Bad input from the user (a suite file, a CLI argument, a results folder).

    The message names what is wrong and what would be right; the CLI prints it and
    exits with status 2.
    """


class ProblemError(ValueError):
    """A problem definition or factory argument that is not valid; the message says why."""


class SolverError(RuntimeError):
    """A solve could not be completed; the message says where and why (a ``diverged`` record)."""


class MaxStepsExceeded(SolverError):
    """More than ``max_steps`` step attempts were needed."""


class StepSizeUnderflow(SolverError):
    """The step size shrank to nothing: the solution is not finite or the problem too stiff."""


class NonFiniteSolution(SolverError):
    """A fixed-step solve produced NaN or Inf."""
