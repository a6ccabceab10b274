"""The solver core: explicit Runge-Kutta methods, reversible Heun, and eight gradient modes. Imports torch only."""

from ._core import ErrorNorm as ErrorNorm
from ._core import Integrator as Integrator
from ._core import StepControl as StepControl
from ._core import Tape as Tape
from ._errors import (
    MaxStepsExceeded as MaxStepsExceeded,
)
from ._errors import (
    NonFiniteSolution as NonFiniteSolution,
)
from ._errors import (
    SolverError as SolverError,
)
from ._errors import (
    StepSizeUnderflow as StepSizeUnderflow,
)
from ._forward import TooManyInputs as TooManyInputs
from ._odeint import GRADIENT_MODES as GRADIENT_MODES
from ._odeint import Solution as Solution
from ._odeint import odeint as odeint
from ._stats import SolveStats as SolveStats
from ._tableau import (
    ADAPTIVE_SOLVERS as ADAPTIVE_SOLVERS,
)
from ._tableau import (
    FIXED_SOLVERS as FIXED_SOLVERS,
)
from ._tableau import (
    TABLEAUX as TABLEAUX,
)
from ._tableau import (
    ButcherTableau as ButcherTableau,
)
from ._tableau import (
    SolverNameError as SolverNameError,
)
from ._tableau import (
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
