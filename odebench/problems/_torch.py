"""Problems in PyTorch: inputs as tensors, the loss through the project's solver, gradients out.

Imported lazily (by references, closed-form gradients, the own solver's methods and tests), so that
``odebench.problems`` itself needs NumPy only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from ..ode import Solution, odeint
from ._problem import LossGradient, Problem, ProblemError


def torch_inputs(
    problem: Problem, values: dict[str, Any] | None = None, *, requires_grad: bool = True
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``(y0, params)`` as fresh float64 leaf tensors on the CPU; ``values`` overrides the problem's own."""
    source = {"y0": problem.y0, **problem.params, **(values or {})}

    def leaf(key: str) -> torch.Tensor:
        return torch.tensor(np.asarray(source[key]), dtype=torch.float64, requires_grad=requires_grad)

    return leaf("y0"), {key: leaf(key) for key in problem.params}


def _gradient_dict(problem: Problem, loss: torch.Tensor, y0: torch.Tensor, params: dict[str, torch.Tensor]):
    inputs = [y0, *params.values()]
    grads = torch.autograd.grad(loss, inputs, allow_unused=True)
    return {
        key: np.zeros(tuple(x.shape)) if g is None else g.detach().to("cpu", torch.float64).numpy().copy()
        for key, x, g in zip(problem.gradient_names, inputs, grads, strict=True)
    }


def odeint_problem(
    problem: Problem,
    y0: torch.Tensor,
    params: Mapping[str, torch.Tensor],
    *,
    field: Callable[[float, torch.Tensor], torch.Tensor] | None = None,
    t: Any = None,
    max_steps: int | None = None,
    **kwargs: Any,
) -> Solution:
    """The one road from a problem to the own solver: its vector field with ``params``
    (``field`` in its place, such as a backend's counting one) through :func:`odebench.ode.odeint`
    at the save times ``t`` (default ``problem.t``); ``max_steps`` defaults to the problem's."""

    def func(s: float, y: torch.Tensor) -> torch.Tensor:
        # A 0-d tensor, as every torch backend passes it (see backends._torch.time_tensor).
        return problem.vector_field(torch.full((), s, dtype=y.dtype), y, params, torch)

    return odeint(
        func if field is None else field, y0, problem.t if t is None else t, params=list(params.values()),
        max_steps=max_steps or problem.max_steps, **kwargs,
    )  # fmt: skip


def solve_loss(problem: Problem, y0: torch.Tensor, params: dict[str, torch.Tensor], **kwargs: Any):
    """The problem's loss through :func:`odeint_problem`; returns ``(loss, Solution)``."""
    solution = odeint_problem(problem, y0, params, **kwargs)
    return problem.loss(solution.ys, torch), solution


def loss_and_gradient(
    problem: Problem,
    *,
    solver: str,
    rtol: float,
    atol: float,
    gradient: str,
    save_at: str | None,
    max_steps: int | None,
) -> LossGradient:
    """:func:`._solve.loss_and_gradient` by the project's ``odeint``."""
    y0, params = torch_inputs(problem)
    loss, solution = solve_loss(
        problem, y0, params, solver=solver, rtol=rtol, atol=atol, gradient=gradient, save_at=save_at,
        max_steps=max_steps,
    )  # fmt: skip
    grads = _gradient_dict(problem, loss, y0, params)
    return LossGradient(loss=float(loss.detach()), grads=grads, stats=solution.stats.as_dict())


def closed_form_loss_and_gradient(problem: Problem) -> LossGradient:
    """Loss and gradient of the problem's ``exact_solution``, differentiated by autograd."""
    if problem.exact_solution is None:
        raise ProblemError(f"problem {problem.name!r} has no exact_solution")
    y0, params = torch_inputs(problem)
    loss = problem.loss(problem.exact_solution(y0, params, problem.t, torch), torch)
    grads = _gradient_dict(problem, loss, y0, params)
    return LossGradient(loss=float(loss.detach()), grads=grads, stats={})


def loss_function(
    problem: Problem, *, solver: str, rtol: float, atol: float, save_at: str | None, max_steps: int | None
) -> Callable[[np.ndarray], float]:
    """:func:`._solve.loss_function` by the project's ``odeint``: no graph."""

    def f(x: np.ndarray) -> float:
        y0, params = torch_inputs(problem, problem.unflatten(x), requires_grad=False)
        with torch.no_grad():
            loss, _ = solve_loss(
                problem, y0, params, solver=solver, rtol=rtol, atol=atol, save_at=save_at, max_steps=max_steps
            )
        return float(loss)

    return f
