"""Standard problems with trusted reference gradients.

Importing this package registers the built-in problems; it needs NumPy only (torch is
imported when a reference or a closed-form gradient is computed).
"""

from ._analytic import linear as linear, logistic as logistic, oscillator as oscillator, stiff_decay as stiff_decay
from ._classic import (
    brusselator as brusselator,
    lorenz as lorenz,
    lotka_volterra as lotka_volterra,
    robertson as robertson,
    van_der_pol as van_der_pol,
)
from ._neural import neural_mlp as neural_mlp, spiral as spiral
from ._problem import STIFF_WORK as STIFF_WORK, Problem as Problem, ProblemError as ProblemError, is_stiff as is_stiff
from ._reference import (
    REFERENCE_VERSION as REFERENCE_VERSION,
    Reference as Reference,
    ReferenceFailure as ReferenceFailure,
    cache_dir as cache_dir,
    reference_gradient as reference_gradient,
)
from ._registry import (
    ProblemInfo as ProblemInfo,
    get_problem as get_problem,
    list_problems as list_problems,
    problem_names as problem_names,
    register as register,
)

__all__ = [
    "REFERENCE_VERSION",
    "STIFF_WORK",
    "Problem",
    "ProblemError",
    "ProblemInfo",
    "Reference",
    "ReferenceFailure",
    "brusselator",
    "cache_dir",
    "get_problem",
    "is_stiff",
    "linear",
    "list_problems",
    "logistic",
    "lorenz",
    "lotka_volterra",
    "neural_mlp",
    "oscillator",
    "problem_names",
    "reference_gradient",
    "register",
    "robertson",
    "spiral",
    "stiff_decay",
    "van_der_pol",
]
