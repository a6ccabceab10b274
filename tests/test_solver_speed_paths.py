"""Pins of the solver's fast paths: a small MLP field, dopri5 and tsit5, every custom mode.

Written against the solver before its per-step overhead was cut (issue 15): the exact
step and evaluation counts here are those of that solver, and the gradients must agree
with plain backprop through the solve (checkpoint: to round-off; the continuous adjoints:
to the tolerance) and with central finite differences of the loss.
"""

from __future__ import annotations

import math

import pytest
import torch
from ode_helpers import flat_grad, rel_err

from odebench.ode import odeint


class MLP:
    """y' = tanh(y W0 + b0) W1 + b1 on a (batch, dim) state, LeCun-scaled seeded weights."""

    def __init__(self, dim=3, width=16, batch=4, seed=0, dtype=torch.float64):
        g = torch.Generator().manual_seed(seed)

        def r(*shape):
            return torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype)

        self.w0 = (r(dim, width) / dim**0.5).requires_grad_(True)
        self.b0 = (0.1 * r(width)).requires_grad_(True)
        self.w1 = (r(width, dim) / width**0.5).requires_grad_(True)
        self.b1 = (0.1 * r(dim)).requires_grad_(True)
        self.y0 = r(batch, dim).requires_grad_(True)

    def f(self, t, y):
        return torch.tanh(y @ self.w0 + self.b0) @ self.w1 + self.b1

    @property
    def params(self):
        return [self.w0, self.b0, self.w1, self.b1]

    @property
    def inputs(self):
        return [self.y0, *self.params]


def _solve(prob, t, mode, solver, tol, inputs=None):
    sol = odeint(prob.f, prob.y0, torch.tensor(t), prob.params, solver=solver, gradient=mode, rtol=tol, atol=tol)
    return sol, (sol.ys[1:] ** 2).mean()


def _grad(prob, t, mode, solver, tol):
    sol, loss = _solve(prob, t, mode, solver, tol)
    return flat_grad(torch.autograd.grad(loss, prob.inputs)), sol.stats


TIMES = {2: [0.0, 1.0], 4: [0.0, 0.3, 0.7, 1.0]}

# (solver, mode, number of save times, tol) -> (nfe_forward, nfe_backward, steps_forward,
# steps_backward, rejected_backward), as counted by the solver before issue 15.
PINNED = {
    ("dopri5", "backprop", 2, 1e-6): (26, 0, 4, 0, 0),
    ("dopri5", "backprop", 2, 1e-9): (74, 0, 12, 0, 0),
    ("dopri5", "backprop", 4, 1e-6): (26, 0, 4, 0, 0),
    ("dopri5", "backprop", 4, 1e-9): (74, 0, 12, 0, 0),
    ("dopri5", "backsolve", 2, 1e-6): (26, 32, 4, 4, 1),
    ("dopri5", "backsolve", 2, 1e-9): (74, 80, 12, 13, 0),
    ("dopri5", "backsolve", 4, 1e-6): (26, 28, 4, 4, 0),
    ("dopri5", "backsolve", 4, 1e-9): (74, 88, 12, 13, 1),
    ("dopri5", "interpolated", 2, 1e-6): (26, 60, 4, 4, 1),
    ("dopri5", "interpolated", 2, 1e-9): (74, 155, 12, 13, 0),
    ("dopri5", "interpolated", 4, 1e-6): (26, 56, 4, 4, 0),
    ("dopri5", "interpolated", 4, 1e-9): (74, 163, 12, 13, 1),
    ("dopri5", "checkpoint", 2, 1e-6): (26, 28, 4, 4, 0),
    ("dopri5", "checkpoint", 2, 1e-9): (74, 75, 12, 12, 0),
    ("dopri5", "checkpoint", 4, 1e-6): (26, 28, 4, 4, 0),
    ("dopri5", "checkpoint", 4, 1e-9): (74, 75, 12, 12, 0),
    ("tsit5", "backprop", 2, 1e-6): (26, 0, 4, 0, 0),
    ("tsit5", "backprop", 2, 1e-9): (68, 0, 11, 0, 0),
    ("tsit5", "backprop", 4, 1e-6): (26, 0, 4, 0, 0),
    ("tsit5", "backprop", 4, 1e-9): (68, 0, 11, 0, 0),
    ("tsit5", "backsolve", 2, 1e-6): (26, 26, 4, 4, 0),
    ("tsit5", "backsolve", 2, 1e-9): (68, 86, 11, 14, 0),
    ("tsit5", "backsolve", 4, 1e-6): (26, 28, 4, 4, 0),
    ("tsit5", "backsolve", 4, 1e-9): (68, 88, 11, 13, 1),
    ("tsit5", "interpolated", 2, 1e-6): (26, 66, 4, 5, 1),
    ("tsit5", "interpolated", 2, 1e-9): (68, 155, 11, 14, 0),
    ("tsit5", "interpolated", 4, 1e-6): (26, 56, 4, 4, 0),
    ("tsit5", "interpolated", 4, 1e-9): (68, 157, 11, 13, 1),
    ("tsit5", "checkpoint", 2, 1e-6): (26, 28, 4, 4, 0),
    ("tsit5", "checkpoint", 2, 1e-9): (68, 69, 11, 11, 0),
    ("tsit5", "checkpoint", 4, 1e-6): (26, 28, 4, 4, 0),
    ("tsit5", "checkpoint", 4, 1e-9): (68, 69, 11, 11, 0),
}


@pytest.mark.parametrize(("solver", "mode", "n_save", "tol"), list(PINNED))
def test_counts_are_pinned(solver, mode, n_save, tol):
    """Step and evaluation counts, forward and backward, exactly as before the speed-up."""
    _, stats = _grad(MLP(), TIMES[n_save], mode, solver, tol)
    got = (stats.nfe_forward, stats.nfe_backward, stats.steps_forward, stats.steps_backward, stats.rejected_backward)
    assert got == PINNED[(solver, mode, n_save, tol)]
    assert stats.rejected_forward == 0


@pytest.mark.parametrize("solver", ["dopri5", "tsit5"])
@pytest.mark.parametrize("n_save", [2, 4])
def test_checkpoint_equals_backprop_to_round_off(solver, n_save):
    """The discrete adjoint is the gradient of the same discrete solve."""
    ref, _ = _grad(MLP(), TIMES[n_save], "backprop", solver, 1e-7)
    g, _ = _grad(MLP(), TIMES[n_save], "checkpoint", solver, 1e-7)
    assert rel_err(g, ref) < 1e-12


@pytest.mark.parametrize("solver", ["dopri5", "tsit5"])
@pytest.mark.parametrize("mode", ["backsolve", "interpolated"])
@pytest.mark.parametrize("n_save", [2, 4])
def test_continuous_adjoints_agree_with_backprop(solver, mode, n_save):
    """Continuous adjoints differ from the discrete gradient by the solve's error only."""
    ref, _ = _grad(MLP(), TIMES[n_save], "backprop", solver, 1e-10)
    g, _ = _grad(MLP(), TIMES[n_save], mode, solver, 1e-10)
    assert rel_err(g, ref) < 1e-8


@pytest.mark.parametrize("solver", ["dopri5", "tsit5"])
@pytest.mark.parametrize("mode", ["backprop", "backsolve", "checkpoint", "interpolated"])
def test_gradient_matches_finite_differences(solver, mode):
    """Directional derivatives of the loss along random directions, by central differences."""
    t, tol, eps = TIMES[4], 1e-11, 1e-5
    prob = MLP()
    g, _ = _grad(prob, t, mode, solver, tol)
    gen = torch.Generator().manual_seed(7)
    for _ in range(2):
        direction = [torch.randn(x.shape, generator=gen, dtype=x.dtype) for x in prob.inputs]
        losses = []
        for sign in (1.0, -1.0):
            shifted = MLP()
            with torch.no_grad():
                for x, v in zip(shifted.inputs, direction, strict=True):
                    x.add_(sign * eps * v)
                losses.append(float(_solve(shifted, t, "backprop", solver, tol)[1]))
        fd = (losses[0] - losses[1]) / (2 * eps)
        exact = float(g @ flat_grad(direction))
        assert abs(exact - fd) <= 1e-6 * abs(fd), (exact, fd)


@pytest.mark.parametrize("solver", ["dopri5", "tsit5"])
@pytest.mark.parametrize("mode", ["backsolve", "checkpoint", "interpolated"])
def test_float32_runs_in_float32(solver, mode):
    """The fast paths keep the state's dtype (coefficients cast to it, no float64 leak)."""
    prob = MLP(dtype=torch.float32)
    ref, _ = _grad(MLP(), TIMES[4], "backprop", solver, 1e-6)
    sol, loss = _solve(prob, TIMES[4], mode, solver, 1e-5)
    assert sol.ys.dtype == torch.float32
    grads = torch.autograd.grad(loss, prob.inputs)
    assert all(x.dtype == torch.float32 for x in grads)
    assert rel_err(flat_grad(grads).double(), ref) < 1e-3


@pytest.mark.parametrize("solver", ["dopri5", "tsit5", "bosh3", "dopri8"])
def test_stage_buffers_survive_rejected_steps(solver):
    """Steps without a graph reuse two stage buffers; the FSAL stage that starts the next
    step must survive rejected attempts. The field speeds up twentyfold around t = 0.5, so
    steps are rejected after accepted ones; the buffered solve must equal the graph path
    (fresh tensors per stage) bit for bit."""
    prob = MLP()

    def f(t, y):
        return prob.f(t, y) * (1.0 + 20.0 / (1.0 + math.exp(-60.0 * (t - 0.5))))

    t = torch.tensor([0.0, 0.5, 1.0])
    kw = dict(solver=solver, rtol=1e-8, atol=1e-8)
    graph = odeint(f, prob.y0, t, prob.params, **kw)
    with torch.no_grad():
        buffered = odeint(f, prob.y0, t, prob.params, **kw)
    assert graph.stats.rejected_forward > 0
    assert graph.stats.as_dict() == buffered.stats.as_dict()
    assert torch.equal(graph.ys.detach(), buffered.ys)


@pytest.mark.parametrize("solver", ["euler", "midpoint", "rk4", "bosh3", "dopri8"])
@pytest.mark.parametrize("mode", ["backsolve", "interpolated"])
def test_adjoint_stage_inputs_of_the_read_part_only(solver, mode):
    """The adjoints form stage inputs only for the part of the augmented state the field
    reads (FSAL or not, fixed or adaptive); their gradients still match backprop."""
    kw = dict(n_steps=200) if solver in ("euler", "midpoint", "rk4") else dict(rtol=1e-10, atol=1e-10)
    tol = {"euler": 5e-2, "midpoint": 1e-4}.get(solver, 1e-7)
    t = torch.tensor(TIMES[4])
    grads = []
    for gradient in ("backprop", mode):
        p = MLP()
        sol = odeint(p.f, p.y0, t, p.params, solver=solver, gradient=gradient, **kw)
        grads.append(flat_grad(torch.autograd.grad((sol.ys[1:] ** 2).mean(), p.inputs)))
    assert rel_err(grads[1], grads[0]) < tol
