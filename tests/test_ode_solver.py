"""The forward solver: tableaux, convergence orders, dense output, step control, statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import DEVICES
from ode_helpers import ADAPTIVE, FIXED, Linear

from odebench.ode import (
    TABLEAUX,
    Integrator,
    MaxStepsExceeded,
    NonFiniteSolution,
    SolverNameError,
    StepControl,
    StepSizeUnderflow,
    odeint,
)


@pytest.mark.parametrize("name", list(TABLEAUX))
def test_tableau_order_conditions(name):
    """Order conditions up to order 4 (or the method's order), row sums, and dense(1) == b."""
    tab = TABLEAUX[name]
    a, b, c = tab.a, tab.b, tab.c
    np.testing.assert_allclose(a.sum(1), c, atol=1e-14)
    conditions = [
        (1, lambda: b.sum(), 1.0),
        (2, lambda: b @ c, 1 / 2),
        (3, lambda: b @ c**2, 1 / 3),
        (3, lambda: b @ a @ c, 1 / 6),
        (4, lambda: b @ c**3, 1 / 4),
        (4, lambda: b @ (c * (a @ c)), 1 / 8),
        (4, lambda: b @ a @ c**2, 1 / 12),
        (4, lambda: b @ a @ a @ c, 1 / 24),
    ]
    for order, value, expected in conditions:
        if tab.order >= order:
            assert value() == pytest.approx(expected, abs=1e-13)
    weights_at_1 = tab.dense.sum(1)
    expected = b if tab.fsal else np.concatenate([b, [0.0]])
    np.testing.assert_allclose(weights_at_1, expected, atol=1e-11)
    if tab.b_err is not None:
        assert abs(tab.b_err.sum()) < 1e-13  # the embedded solution is consistent too


def test_unknown_solver_lists_valid_names():
    with pytest.raises(SolverNameError, match="must be one of.*dopri5"):
        odeint(lambda t, y: -y, torch.ones(2), [0.0, 1.0], solver="rk45")


def test_fixed_step_solver_needs_a_step():
    with pytest.raises(ValueError, match="give step_size or n_steps"):
        odeint(lambda t, y: -y, torch.ones(2), [0.0, 1.0], solver="rk4")


def _growth_error(solver, n_steps):
    """Error at t=2 of y' = cos(t) y (non-autonomous, so the nodes c_i matter): y = e^{sin t}."""
    sol = odeint(lambda t, y: y * math.cos(t), torch.tensor([1.0]), [0.0, 2.0], solver=solver, n_steps=n_steps)
    return abs(float(sol.ys[-1, 0]) - math.exp(math.sin(2.0)))


@pytest.mark.parametrize("name", list(TABLEAUX))
def test_convergence_order(name):
    """Halving the step divides the error by about 2**order (every method, fixed steps)."""
    order = TABLEAUX[name].order
    n = {1: 64, 2: 32, 3: 16, 4: 16, 5: 16, 8: 4}[order]
    e1, e2 = _growth_error(name, n), _growth_error(name, 2 * n)
    observed = math.log2(e1 / e2)
    assert order - 0.3 <= observed <= order + 0.9, (observed, e1, e2)


@pytest.mark.parametrize("name", list(TABLEAUX))
def test_dense_output_order(name):
    """Inside one step of size h the interpolant's error is O(h^(q+1)), q its order."""
    tab = TABLEAUX[name]
    integ = Integrator(tab, StepControl(step_size=0.1), torch.float64, torch.device("cpu"))

    def f(t, y):
        return y * math.cos(t)

    def error(h):
        y0 = torch.tensor([1.0])
        step = integ.step(f, 0.0, y0, h, f(0.0, y0))
        f1 = f(h, step.y1)
        return max(abs(float(integ.dense(step, th * h, f1)[0]) - math.exp(math.sin(th * h))) for th in (0.3, 0.7))

    observed = math.log2(error(0.2) / error(0.1))
    assert observed >= tab.dense_order + 1 - 0.3, observed


@pytest.mark.parametrize("solver", ADAPTIVE)
@pytest.mark.parametrize("device", DEVICES)
def test_adaptive_accuracy_tracks_tolerance(solver, device):
    prob = Linear(dim=4, device=device)
    t = torch.linspace(0, 2, 5, dtype=torch.float64)
    exact = torch.stack([torch.linalg.matrix_exp(prob.A.detach() * float(ti)) @ prob.y0.detach() for ti in t])
    errors = []
    for tol in (1e-4, 1e-7, 1e-10):
        sol = odeint(prob.f, prob.y0.detach(), t, solver=solver, rtol=tol, atol=tol, max_steps=200_000)
        errors.append(float((sol.ys.detach() - exact).abs().max()))
    for tol, err in zip((1e-4, 1e-7, 1e-10), errors, strict=True):
        assert err < 300 * tol, errors
    assert errors[2] < errors[0]


@pytest.mark.parametrize("solver", FIXED + ADAPTIVE)
def test_fixed_step_nfe_is_the_hand_count(solver):
    """N fixed steps of an s-stage method cost s*N evaluations (s-1 per step after the
    first for FSAL methods)."""
    tab = TABLEAUX[solver]
    n = 10
    sol = odeint(lambda t, y: -y, torch.ones(3), torch.linspace(0, 1, 6), solver=solver, n_steps=n)
    expected = tab.stages * n if not tab.fsal else 1 + (tab.stages - 1) * n
    assert sol.stats.nfe_forward == expected
    assert sol.stats.steps_forward == n


def test_adaptive_nfe_is_exact():
    """dopri5 (FSAL): 2 evaluations to start (f0 and the initial-step probe), then 6 per
    attempted step."""
    calls = [0]

    def f(t, y):
        calls[0] += 1
        return torch.stack([y[1], -y[0]])

    sol = odeint(f, torch.tensor([1.0, 0.0]), [0.0, 10.0], rtol=1e-8, atol=1e-8)
    s = sol.stats
    assert s.nfe_forward == calls[0] == 2 + 6 * (s.steps_forward + s.rejected_forward)


def test_save_times_hit_exactly_with_step_mode():
    t = torch.tensor([0.0, 0.1, 0.35, 1.0])
    sol = odeint(lambda t, y: torch.full_like(y, t), torch.zeros(1), t, save_at="step")
    # y = t^2 / 2 is quartic-free: dopri5 is exact for it, up to round-off.
    np.testing.assert_allclose(sol.ys[:, 0].numpy(), (t**2 / 2).numpy(), atol=1e-15)


def test_decreasing_time():
    sol = odeint(lambda t, y: -y, torch.ones(1), [1.0, 0.0], rtol=1e-10, atol=1e-10)
    assert float(sol.ys[-1, 0]) == pytest.approx(math.e, rel=1e-8)


def test_batch_state_shape_and_float32():
    y0 = torch.rand(5, 3, dtype=torch.float32)
    sol = odeint(lambda t, y: -y, y0, torch.linspace(0, 1, 4), rtol=1e-5, atol=1e-6)
    assert sol.ys.shape == (4, 5, 3)
    assert sol.ys.dtype == torch.float32
    torch.testing.assert_close(sol.ys[-1], y0 * math.exp(-1.0), rtol=1e-4, atol=1e-5)


def test_max_steps_is_an_error_not_a_hang():
    with pytest.raises(MaxStepsExceeded, match="max_steps=50"):
        odeint(lambda t, y: -1000.0 * y, torch.ones(1), [0.0, 100.0], rtol=1e-10, atol=1e-10, max_steps=50)


def test_nan_vector_field_is_diverged():
    with pytest.raises(StepSizeUnderflow, match="not finite"):
        odeint(lambda t, y: y * float("nan"), torch.ones(2), [0.0, 1.0])
    with pytest.raises(NonFiniteSolution):
        odeint(lambda t, y: y * float("nan"), torch.ones(2), [0.0, 1.0], solver="rk4", n_steps=4)


def test_wrong_vector_field_shape_is_a_clear_error():
    with pytest.raises(ValueError, match=r"expected a tensor of y's shape \(2,\)"):
        odeint(lambda t, y: y.sum(), torch.ones(2), [0.0, 1.0])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"t": [0.0]}, "at least 2"),
        ({"t": [0.0, 1.0, 0.5]}, "strictly increasing"),
        ({"rtol": -1.0}, "rtol must be a positive"),
        ({"gradient": "adjoint"}, "must be one of backprop"),
        ({"save_at": "dense"}, "save_at"),
        ({"n_steps": 0, "solver": "rk4"}, "n_steps"),
        ({"controller": {"gamma": 0.5}}, "unknown setting 'gamma'; must be one of safety, ifactor, dfactor, beta"),
        ({"controller": {"dfactor": 1.5}}, "dfactor must be a number with 0 < dfactor <= 1, got 1.5"),
        ({"controller": {"beta": float("nan")}}, "beta must be a number"),
        ({"controller": {"safety": True}}, "safety must be a number"),
    ],
)
def test_bad_arguments(kwargs, match):
    args = {"t": [0.0, 1.0]}
    args.update(kwargs)
    t = args.pop("t")
    with pytest.raises(ValueError, match=match):
        odeint(lambda t, y: -y, torch.ones(2), t, **args)


@pytest.mark.parametrize("gradient", ["backprop", "backsolve"])
def test_the_controller_reaches_both_solves_and_keeps_the_accuracy(gradient):
    """controller= reaches the step control forward and backward: a PI controller
    (beta=0.04) takes other steps than the default I controller, and a cautious one
    (safety 0.5, ifactor 2) more; the solution and gradient stay within tolerance."""
    prob = Linear(dim=4)
    t = torch.linspace(0, 2, 5, dtype=torch.float64)
    exact = torch.stack([torch.linalg.matrix_exp(prob.A.detach() * float(ti)) @ prob.y0.detach() for ti in t])

    def solve(controller):
        y0 = prob.y0.detach().clone().requires_grad_(True)
        sol = odeint(prob.f, y0, t, params=prob.params, gradient=gradient, rtol=1e-7, atol=1e-7, controller=controller)
        sol.ys.square().sum().backward()
        return sol, float((sol.ys.detach() - exact).abs().max()), y0.grad

    default, err0, g0 = solve(None)
    pi, err_pi, g_pi = solve({"beta": 0.04})
    cautious, err_c, g_c = solve({"safety": 0.5, "ifactor": 2.0})
    assert default.stats.steps_forward != pi.stats.steps_forward or default.stats.nfe_forward != pi.stats.nfe_forward
    assert cautious.stats.steps_forward > default.stats.steps_forward
    if gradient == "backsolve":
        assert cautious.stats.steps_backward > default.stats.steps_backward  # the backward solve is tuned too
    for err in (err0, err_pi, err_c):
        assert err < 300 * 1e-7
    assert torch.allclose(g_pi, g0, rtol=1e-4) and torch.allclose(g_c, g0, rtol=1e-4)
    same, _, g_same = solve({"safety": 0.9, "ifactor": 10.0, "dfactor": 0.2, "beta": 0.0})  # the defaults
    assert same.stats.nfe_forward == default.stats.nfe_forward and torch.equal(g_same, g0)
