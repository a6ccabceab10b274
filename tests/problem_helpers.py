"""Shared by the problem, reference and adapter tests: problem lists, an independent solver
and the built-in logistic problem on a batch."""

from __future__ import annotations

import dataclasses

import numpy as np

from odebench.problems import Problem, logistic
from odebench.problems._analytic import with_closed_form

REQUIRED = (
    "linear", "oscillator", "logistic", "lotka_volterra", "van_der_pol", "lorenz", "robertson",
    "brusselator", "stiff_decay", "neural_mlp", "spiral",
)  # fmt: skip
ANALYTIC = ("linear", "oscillator", "logistic", "stiff_decay")


def scipy_loss_function(problem, *, rtol: float = 1e-12, atol: float = 1e-12):
    """``f(x) -> loss`` of the flat inputs by SciPy's solve_ivp with the NumPy vector field.

    Independent of the project's solver: DOP853 (Radau for stiff problems), each save
    time reached by restarting the integration there rather than by dense output.
    """
    from scipy.integrate import solve_ivp

    method = "Radau" if problem.stiff else "DOP853"
    shape = problem.y0.shape

    def f(x: np.ndarray) -> float:
        values = problem.unflatten(x)
        params = {k: values[k] for k in problem.params}

        def fun(t, y):
            return np.asarray(problem.vector_field(t, y.reshape(shape), params, np), dtype=np.float64).reshape(-1)

        ys = [values["y0"].reshape(-1)]
        for t0, t1 in zip(problem.t[:-1], problem.t[1:], strict=True):
            sol = solve_ivp(fun, (t0, t1), ys[-1], method=method, rtol=rtol, atol=atol)
            if not sol.success:
                raise RuntimeError(sol.message)
            ys.append(sol.y[:, -1])
        return float(problem.loss(np.stack(ys).reshape(len(problem.t), *shape), np))

    return f


def batch_logistic(shape: tuple[int, ...] = (4, 2)) -> Problem:
    """The built-in ``logistic`` (r = 1.3, K = 2) on a batch state: its field, loss and
    closed form elementwise, so the gradient with respect to the batch is analytic."""
    base = logistic(r=1.3, K=2.0, t_end=2.0, n_save=4)

    def solution(y0, params, t, xp):
        return base.exact_solution(y0.reshape(-1), params, t, xp).reshape(len(t), *y0.shape)

    y0 = 0.2 + np.random.default_rng(1).random(shape)
    batch = dataclasses.replace(base, y0=y0, t=np.array([0.0, 0.5, 1.0, 2.0]), exact_solution=solution)
    return with_closed_form(batch)
