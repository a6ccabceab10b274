"""Standard problems with trusted reference gradients.

Importing this package registers the built-in problems; it needs NumPy only (torch is
imported when a reference or a closed-form gradient is computed).
"""

from ._analytic import linear as linear
from ._analytic import logistic as logistic
from ._analytic import oscillator as oscillator
from ._analytic import stiff_decay as stiff_decay
from ._classic import (
    brusselator as brusselator,
)
from ._classic import (
    lorenz as lorenz,
)
from ._classic import (
    lotka_volterra as lotka_volterra,
)
from ._classic import (
    robertson as robertson,
)
from ._classic import (
    van_der_pol as van_der_pol,
)
from ._neural import neural_mlp as neural_mlp
from ._neural import spiral as spiral
from ._problem import STIFF_WORK as STIFF_WORK
from ._problem import Problem as Problem
from ._problem import ProblemError as ProblemError
from ._problem import is_stiff as is_stiff
from ._reference import (
    REFERENCE_VERSION as REFERENCE_VERSION,
)
from ._reference import (
    Reference as Reference,
)
from ._reference import (
    ReferenceFailure as ReferenceFailure,
)
from ._reference import (
    cache_dir as cache_dir,
)
from ._reference import (
    reference_gradient as reference_gradient,
)
from ._registry import (
    ProblemInfo as ProblemInfo,
)
from ._registry import (
    get_problem as get_problem,
)
from ._registry import (
    list_problems as list_problems,
)
from ._registry import (
    problem_names as problem_names,
)
from ._registry import (
    register as register,
)
from ._workloads import cnf as cnf
from ._workloads import fit as fit
from ._workloads import latent_ode as latent_ode
from ._workloads import ode_net as ode_net

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
    "cnf",
    "fit",
    "get_problem",
    "is_stiff",
    "latent_ode",
    "linear",
    "list_problems",
    "logistic",
    "lorenz",
    "lotka_volterra",
    "neural_mlp",
    "ode_net",
    "oscillator",
    "problem_names",
    "reference_gradient",
    "register",
    "robertson",
    "spiral",
    "stiff_decay",
    "van_der_pol",
]
