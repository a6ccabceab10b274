"""odebench: how right, how fast and how big is the gradient of an ODE solve?

The public API. Light names are imported eagerly; those that need torch
(``odeint``, ``gradcheck``, ``run_suite``, ``benchmark``) load on first use, so that reports and the
regression gate never import torch or jax.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._errors import UsageError as UsageError
from ._lazy import lazy_getattr
from ._records import COLUMNS as COLUMNS, Record as Record
from ._results import load_results as load_results, load_run_info as load_run_info
from ._version import __version__ as __version__
from .problems import Problem as Problem

_LAZY = {
    "odeint": "odebench.ode",
    "Solution": "odebench.ode",
    "SolveStats": "odebench.ode",
    "gradcheck": "odebench.verify",
    "GradcheckResult": "odebench.verify",
    "run_suite": "odebench.runner",
    "load_suite": "odebench.runner",
    "benchmark": "odebench._benchmark",
}

__all__ = [
    "COLUMNS",
    "GradcheckResult",
    "Problem",
    "Record",
    "Solution",
    "SolveStats",
    "UsageError",
    "__version__",
    "benchmark",
    "gradcheck",
    "load_results",
    "load_run_info",
    "load_suite",
    "odeint",
    "run_suite",
]


__getattr__ = lazy_getattr(globals(), _LAZY)


if TYPE_CHECKING:  # pragma: no cover
    from ._benchmark import benchmark
    from .ode import Solution, SolveStats, odeint
    from .runner import load_suite, run_suite
    from .verify import GradcheckResult, gradcheck
