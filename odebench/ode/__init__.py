"""The solver core: explicit Runge-Kutta methods, reversible Heun, and eight gradient modes. Imports torch only."""

from ._core import ErrorNorm as ErrorNorm, Integrator as Integrator, StepControl as StepControl, Tape as Tape
from ._errors import (
    MaxStepsExceeded as MaxStepsExceeded,
    NonFiniteSolution as NonFiniteSolution,
    SolverError as SolverError,
    StepSizeUnderflow as StepSizeUnderflow,
)
from ._forward import TooManyInputs as TooManyInputs
from ._odeint import GRADIENT_MODES as GRADIENT_MODES, Solution as Solution, odeint as odeint
from ._stats import SolveStats as SolveStats
from ._tableau import (
    ADAPTIVE_SOLVERS as ADAPTIVE_SOLVERS,
    FIXED_SOLVERS as FIXED_SOLVERS,
    TABLEAUX as TABLEAUX,
    ButcherTableau as ButcherTableau,
    SolverNameError as SolverNameError,
    get_tableau as get_tableau,
)

__all__ = [
    "ADAPTIVE_SOLVERS",
    "FIXED_SOLVERS",
    "GRADIENT_MODES",
    "TABLEAUX",
    "ButcherTableau",
    "ErrorNorm",
    "Integrator",
    "MaxStepsExceeded",
    "NonFiniteSolution",
    "Solution",
    "SolveStats",
    "SolverError",
    "SolverNameError",
    "StepControl",
    "StepSizeUnderflow",
    "Tape",
    "TooManyInputs",
    "get_tableau",
    "odeint",
]
