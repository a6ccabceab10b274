"""Shared by the problem and reference tests: problem lists and an independent solver."""

from __future__ import annotations

import numpy as np

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
