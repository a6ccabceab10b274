"""JAX-only problems (``Problem.from_jax``) solved by diffrax: the tight reference and the
finite-difference loss, mirroring :mod:`._torch` for problems torch cannot evaluate.

The same settings as the own solver's reference: the same Runge-Kutta pair (dopri8 or
tsit5) at the same tolerances, stepping onto every save time (``save_at="step"``), in
float64, and the exact gradient of that discrete solve (``RecursiveCheckpointAdjoint``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from ._problem import LossGradient, Problem

_SOLVERS = {"dopri5": "Dopri5", "dopri8": "Dopri8", "tsit5": "Tsit5", "bosh3": "Bosh3"}


@functools.lru_cache(maxsize=8)
def _loss_fn(problem: Problem, solver: str, save_at: str | None, max_steps: int | None):
    """``loss(y0, params, rtol, atol) -> (loss, steps)`` of one diffrax solve, jitted (jax
    imported, x64 enabled); cached, so that solves at other tolerances share one compilation."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import diffrax
    import jax.numpy as jnp

    t = jnp.asarray(problem.t)
    term = diffrax.ODETerm(lambda s, y, params: problem.vector_field(s, y, params, jnp))

    def loss(y0, params, rtol, atol):
        controller: Any = diffrax.PIDController(rtol=rtol, atol=atol)
        if save_at == "step":
            controller = diffrax.ClipStepSizeController(controller, step_ts=t)
        sol = diffrax.diffeqsolve(
            term, getattr(diffrax, _SOLVERS[solver])(), t[0], t[-1], None, y0, args=params,
            saveat=diffrax.SaveAt(ts=t), stepsize_controller=controller,
            max_steps=max_steps or problem.max_steps, adjoint=diffrax.RecursiveCheckpointAdjoint(),
        )  # fmt: skip
        return problem.loss(sol.ys, jnp), sol.stats["num_accepted_steps"]

    return jax.jit(loss), jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))


def _inputs(problem: Problem, values: dict[str, Any] | None = None):
    import jax.numpy as jnp

    source = {"y0": problem.y0, **problem.params, **(values or {})}
    return jnp.asarray(source["y0"]), {k: jnp.asarray(np.asarray(source[k])) for k in problem.params}


def loss_and_gradient(
    problem: Problem, *, solver: str, rtol: float, atol: float, save_at: str | None, max_steps: int | None
) -> LossGradient:
    """Loss and exact gradient of the discrete diffrax solve (float64, CPU)."""

    from .._errors import MaxStepsExceeded

    _, gradient_fn = _loss_fn(problem, solver, save_at, max_steps)
    y0, params = _inputs(problem)
    try:
        (value, steps), (g_y0, g_params) = gradient_fn(y0, params, rtol, atol)
    except Exception as exc:  # noqa: BLE001 - equinox's runtime error, wrapped by JAX
        if "maximum number of solver steps" in str(exc):
            raise MaxStepsExceeded(f"problem {problem.name!r}: {solver} at rtol={rtol:g}: {exc}") from exc
        raise
    grads = {"y0": np.asarray(g_y0, dtype=np.float64)}
    grads.update({k: np.asarray(g_params[k], dtype=np.float64) for k in problem.params})
    return LossGradient(loss=float(value), grads=grads, stats={"steps_forward": int(steps)})


def loss_function(
    problem: Problem, *, solver: str, rtol: float, atol: float, save_at: str | None, max_steps: int | None
) -> Callable[[np.ndarray], float]:
    """``f(x) -> loss`` of the flat inputs (:meth:`Problem.flat_inputs` order), for finite differences."""
    loss, _ = _loss_fn(problem, solver, save_at, max_steps)

    def f(x: np.ndarray) -> float:
        y0, params = _inputs(problem, problem.unflatten(x))
        return float(loss(y0, params, rtol, atol)[0])

    return f
