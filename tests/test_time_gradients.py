"""Gradients with respect to the save times and the start time, in every gradient mode of the
own odeint, against central finite differences of tight solves (independent of the formula)."""

from __future__ import annotations

import math

import pytest
import torch

from odebench.ode import odeint

K = torch.tensor([0.7, -0.4, 1.3], dtype=torch.float64)
WEIGHTS = torch.tensor([0.5, 1.0, -2.0, 1.5], dtype=torch.float64)


def field(t, y):
    t = torch.as_tensor(t, dtype=torch.float64)
    return -K * torch.cos(t) * y + 0.3 * torch.sin(2 * t) + 0.1 * y**2


def loss_of(ys):
    return (WEIGHTS[:, None] * ys**2).sum()  # every save time counts, the start included


Y0 = torch.tensor([1.0, -0.5, 0.8], dtype=torch.float64)
T = [0.2, 0.7, 1.1, 1.9]


def fd_gradient(h=1e-5):
    def loss_at(times):
        return float(loss_of(odeint(field, Y0, times, solver="dopri8", rtol=1e-12, atol=1e-12).ys))

    grads = []
    for i in range(len(T)):
        up, down = list(T), list(T)
        up[i] += h
        down[i] -= h
        grads.append((loss_at(up) - loss_at(down)) / (2 * h))
    return torch.tensor(grads, dtype=torch.float64)


@pytest.fixture(scope="module")
def truth():
    return fd_gradient()


MODES = [
    ("backprop", {}),
    ("backsolve", {}),
    ("interpolated", {}),
    ("checkpoint", {}),
    ("forward", {}),
    ("quadrature", {}),
    ("symplectic", {}),
    ("backprop", {"solver": "rk4", "n_steps": 4000}),
]


@pytest.mark.parametrize("mode,kw", MODES, ids=[f"{m}{'-' + kw['solver'] if kw else ''}" for m, kw in MODES])
def test_time_gradients_match_finite_differences(mode, kw, truth):
    t = torch.tensor(T, dtype=torch.float64, requires_grad=True)
    y0 = Y0.clone().requires_grad_(True)
    options = kw or {"solver": "dopri5", "rtol": 1e-10, "atol": 1e-10}
    sol = odeint(field, y0, t, gradient=mode, **options)
    grad_t, grad_y0 = torch.autograd.grad(loss_of(sol.ys), [t, y0])
    rel = float((grad_t - truth).norm() / truth.norm())
    assert rel < 1e-6, (grad_t.tolist(), truth.tolist())
    # The start time's gradient: minus the field against dL/dy0 through the later states
    # (the total, less the loss's direct dependence on y(t_0) = y0, which t_0 cannot move).
    through_later = grad_y0 - 2 * WEIGHTS[0] * Y0
    assert math.isclose(float(grad_t[0]), -float(field(T[0], Y0) @ through_later), rel_tol=1e-9, abs_tol=1e-12)


def test_times_without_grad_change_nothing():
    t = torch.tensor(T, dtype=torch.float64)
    plain = odeint(field, Y0, T, solver="dopri5", rtol=1e-8, atol=1e-8)
    tensor = odeint(field, Y0, t, solver="dopri5", rtol=1e-8, atol=1e-8)
    assert torch.equal(plain.ys, tensor.ys) and plain.stats.nfe_forward == tensor.stats.nfe_forward


def test_linked_times_leave_the_values_and_counts_alone():
    t = torch.tensor(T, dtype=torch.float64, requires_grad=True)
    plain = odeint(field, Y0, T, solver="dopri5", rtol=1e-8, atol=1e-8)
    linked = odeint(field, Y0, t, solver="dopri5", rtol=1e-8, atol=1e-8)
    assert torch.equal(plain.ys, linked.ys.detach()) and plain.stats.nfe_forward == linked.stats.nfe_forward
