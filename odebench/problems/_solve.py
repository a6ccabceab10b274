"""A problem's tight loss and gradient, computed by the framework that can evaluate it.

The project's own solver in PyTorch (:mod:`._torch`) for a problem written against ``xp`` or
given as a torch model; diffrax with the same settings (:mod:`._jax`) for one only JAX can run
(``Problem.framework == "jax"``). Torch-free itself: each side is imported when it is needed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ._problem import LossGradient, Problem, ProblemError

DISCRETE = ("checkpoint", "backprop")
"""The gradient modes that give the exact gradient of the discrete solve: the only ones diffrax
computes here for a JAX-only problem."""


def loss_and_gradient(
    problem: Problem,
    *,
    solver: str = "dopri8",
    rtol: float = 1e-12,
    atol: float = 1e-12,
    gradient: str = "checkpoint",
    save_at: str | None = "step",
    max_steps: int | None = None,
) -> LossGradient:
    """Loss and gradient (float64, CPU) of the problem's solve at these settings: the exact
    gradient of the discrete solve by default (``gradient="checkpoint"``, stepping onto every
    save time), the reference's setting."""
    if problem.framework == "jax":
        from . import _jax

        if gradient not in DISCRETE:  # no silent substitution of the discrete gradient for another
            raise ProblemError(f"problem {problem.name!r}: a JAX-only problem's gradient is the discrete one "
                               f"({' or '.join(DISCRETE)}), not {gradient!r}")  # fmt: skip
        return _jax.loss_and_gradient(
            problem, solver=solver, rtol=rtol, atol=atol, save_at=save_at, max_steps=max_steps
        )
    from . import _torch

    return _torch.loss_and_gradient(
        problem, solver=solver, rtol=rtol, atol=atol, gradient=gradient, save_at=save_at, max_steps=max_steps
    )


def loss_function(
    problem: Problem,
    *,
    solver: str = "dopri8",
    rtol: float = 1e-12,
    atol: float = 1e-12,
    save_at: str | None = "step",
    max_steps: int | None = None,
) -> Callable[[np.ndarray], float]:
    """``f(x) -> loss`` of the flat inputs ``x`` (:meth:`Problem.flat_inputs` order), for
    finite differences: a forward solve in float64 without a graph."""
    if problem.framework == "jax":
        from ._jax import loss_function as make
    else:
        from ._torch import loss_function as make
    return make(problem, solver=solver, rtol=rtol, atol=atol, save_at=save_at, max_steps=max_steps)
