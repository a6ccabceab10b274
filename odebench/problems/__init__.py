"""Standard problems with trusted reference gradients.

Importing this package registers the built-in problems; it needs NumPy only (torch is
imported when a reference or a closed-form gradient is computed).
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_getattr
from ._analytic import linear as linear, logistic as logistic, oscillator as oscillator, stiff_decay as stiff_decay
from ._classic import (
    brusselator as brusselator,
    lorenz as lorenz,
    lotka_volterra as lotka_volterra,
    robertson as robertson,
    van_der_pol as van_der_pol,
)
from ._neural import neural_mlp as neural_mlp, spiral as spiral
from ._problem import (
    STIFF_WORK as STIFF_WORK,
    LossGradient as LossGradient,
    Problem as Problem,
    ProblemError as ProblemError,
    is_stiff as is_stiff,
)
from ._reference import (
    REFERENCE_VERSION as REFERENCE_VERSION,
    Reference as Reference,
    ReferenceFailure as ReferenceFailure,
    cache_dir as cache_dir,
    reference_gradient as reference_gradient,
)
from ._registry import (
    ProblemInfo as ProblemInfo,
    call_serving as call_serving,
    get_problem as get_problem,
    is_factory_path as is_factory_path,
    list_problems as list_problems,
    pack_served as pack_served,
    problem_names as problem_names,
    register as register,
    serving as serving,
)
from ._solve import loss_and_gradient as loss_and_gradient, loss_function as loss_function
from ._user import is_equinox_module as is_equinox_module
from ._workloads import cnf as cnf, fit as fit, latent_ode as latent_ode, ode_net as ode_net

# The torch side loads on first use: this package itself needs NumPy only.
__getattr__ = lazy_getattr(globals(), {"odeint_problem": "odebench.problems._torch"})

if TYPE_CHECKING:  # pragma: no cover
    from ._torch import odeint_problem  # noqa: F401

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
