"""Gradient modes against independent truth: closed forms, gradcheck, and each other."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import DEVICES
from ode_helpers import ADAPTIVE, ADJOINTS, MODES, Linear, Logistic, flat_grad, rel_err

from odebench.ode import odeint


def _grad(prob, t, mode, weights=None, **kw):
    sol = odeint(prob.f, prob.y0, t, prob.params, gradient=mode, **kw)
    loss = prob.loss(sol.ys, weights) if weights is not None else prob.loss(sol.ys)
    return flat_grad(torch.autograd.grad(loss, [prob.y0, *prob.params])), sol.stats


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("solver", ADAPTIVE)
def test_linear_analytic_gradient(mode, solver):
    """y' = A y against expm and its Frechet derivative; the loss touches every save time."""
    prob = Linear(dim=3)
    t = torch.linspace(0, 1.5, 4)
    g, _ = _grad(prob, t, mode, solver=solver, rtol=1e-10, atol=1e-10, max_steps=50_000)
    assert rel_err(g, prob.exact(t)) < 1e-6


@pytest.mark.parametrize("mode", MODES)
def test_nonlinear_analytic_gradient_batch(mode):
    """The logistic equation on a (4, 2) batch state, closed form y(t)."""
    prob = Logistic()
    t = torch.tensor([0.0, 0.5, 1.0, 2.0])
    g, _ = _grad(prob, t, mode, rtol=1e-10, atol=1e-10)
    assert rel_err(g, prob.exact(t)) < 1e-7


@pytest.mark.parametrize("mode", MODES)
def test_loss_on_a_subset_of_save_times(mode):
    """Only the middle save time counts: the adjoint jumps there and is zero after it."""
    prob = Linear(dim=3, seed=2)
    t = torch.linspace(0, 2, 5)
    weights = [0.0, 0.0, 1.0, 0.0, 0.0]
    g, _ = _grad(prob, t, mode, weights=weights, rtol=1e-10, atol=1e-10)
    assert rel_err(g, prob.exact(t, weights)) < 1e-7


@pytest.mark.parametrize("mode", ADJOINTS)
@pytest.mark.parametrize("solver", ["dopri5", "tsit5"])
def test_continuous_adjoints_converge_as_tolerance_tightens(mode, solver):
    prob = Linear(dim=4, seed=3)
    t = torch.linspace(0, 2, 3)
    exact = prob.exact(t)
    errors = [rel_err(_grad(prob, t, mode, solver=solver, rtol=tol, atol=tol)[0], exact) for tol in (1e-4, 1e-7, 1e-10)]
    assert errors[0] > errors[1] > errors[2], errors
    assert errors[2] < 1e-7


@pytest.mark.parametrize("solver", ["rk4", "dopri5", "bosh3"])
@pytest.mark.parametrize("budget", [None, 2, 5])
def test_checkpoint_equals_backprop(solver, budget):
    """The discrete adjoint is the exact gradient of the discrete solve: equal to backprop
    up to round-off, whatever the number of checkpoints."""
    prob = Logistic(batch=(3,))
    t = torch.tensor([0.0, 0.3, 1.0, 1.7])
    kw = dict(solver=solver, rtol=1e-5, atol=1e-5) if solver != "rk4" else dict(solver=solver, n_steps=37)
    g_bp, _ = _grad(prob, t, "backprop", **kw)
    g_ck, stats = _grad(prob, t, "checkpoint", checkpoints=budget, **kw)
    assert rel_err(g_ck, g_bp) < 1e-12
    if budget is not None:
        assert stats.checkpoints <= budget


def test_checkpoint_memory_is_sublinear():
    """About sqrt(2N) states are kept for N steps."""
    prob = Logistic(batch=(2,))
    sol = odeint(prob.f, prob.y0, [0.0, 1.0], prob.params, solver="rk4", n_steps=400, gradient="checkpoint")
    s = sol.stats
    assert s.checkpoints * s.checkpoint_stride >= 400
    assert s.checkpoints <= 2 * math.sqrt(2 * 400) and s.checkpoint_stride <= 2 * math.sqrt(400)


@pytest.mark.parametrize("mode", MODES)
def test_torch_gradcheck_fixed_step(mode):
    """torch.autograd.gradcheck in float64: exact for the discrete modes; the continuous
    adjoints differ from the discrete gradient by O(h^4), far below gradcheck's tolerance."""
    a = torch.tensor([[-0.3, 0.8], [-0.7, -0.2]], requires_grad=True)
    b = torch.tensor([0.1, -0.2], requires_grad=True)
    y0 = torch.tensor([0.5, 1.0], requires_grad=True)

    def fun(y0, a, b):
        f = lambda t, y: torch.tanh(a @ y) + b * math.cos(t)  # noqa: E731
        return odeint(f, y0, [0.0, 0.4, 1.0], [a, b], solver="rk4", n_steps=200, gradient=mode).ys

    assert torch.autograd.gradcheck(fun, (y0, a, b), eps=1e-6, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("mode", MODES)
def test_torch_gradcheck_adaptive(mode):
    """Adaptive solves at tight tolerance: step selection is piecewise constant in the
    inputs, so finite differences see the smooth part only."""
    a = torch.tensor([[-0.3, 0.8], [-0.7, -0.2]], requires_grad=True)
    y0 = torch.tensor([0.5, 1.0], requires_grad=True)

    def fun(y0, a):
        return odeint(lambda t, y: torch.tanh(a @ y), y0, [0.0, 1.0], [a], rtol=1e-11, atol=1e-11, gradient=mode).ys

    assert torch.autograd.gradcheck(fun, (y0, a), eps=1e-6, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("mode", MODES)
def test_float32(mode):
    prob = Logistic(batch=(3,), dtype=torch.float32)
    t = torch.tensor([0.0, 1.0])
    g, _ = _grad(prob, t, mode, rtol=1e-5, atol=1e-6)
    assert g.dtype == torch.float32
    assert rel_err(g.double(), prob.exact(t).double()) < 1e-3


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("device", DEVICES)
def test_devices(mode, device):
    prob = Linear(dim=3, device=device)
    t = torch.linspace(0, 1, 3, device=device)
    g, _ = _grad(prob, t, mode, rtol=1e-9, atol=1e-9)
    assert g.device.type == device
    assert rel_err(g, prob.exact(t)) < 1e-6


def _mlp_field(seed: int, width: int = 64) -> torch.nn.Module:
    """A 2-width-width-2 tanh MLP vector field (4,482 parameters at width 64), default initialisation."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Linear(2, width),
        torch.nn.Tanh(),
        torch.nn.Linear(width, width),
        torch.nn.Tanh(),
        torch.nn.Linear(width, 2),
    ).double()

    class Field(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, t, y):
            return self.net(y)

    return Field()


def test_nn_module_parameters_are_found():
    field = _mlp_field(seed=0, width=8)
    y0 = torch.tensor([0.3, -0.5])
    grads = {}
    for mode in MODES:
        field.zero_grad()
        sol = odeint(field, y0, [0.0, 1.0], rtol=1e-10, atol=1e-10, gradient=mode)
        sol.ys[-1].pow(2).sum().backward()
        grads[mode] = torch.cat([p.grad.reshape(-1) for p in field.parameters()])
    for mode in MODES[1:]:
        assert rel_err(grads[mode], grads["backprop"]) < 1e-7


def test_unused_and_frozen_parameters():
    """A parameter the field ignores gets a zero gradient; one without requires_grad none."""
    used = torch.tensor(0.7, requires_grad=True)
    unused = torch.tensor(2.0, requires_grad=True)
    frozen = torch.tensor(1.0)
    for mode in MODES:
        sol = odeint(lambda t, y: -used * y * frozen, torch.ones(2), [0.0, 1.0], [used, unused, frozen], gradient=mode)
        g_used, g_unused = torch.autograd.grad(sol.ys[-1].sum(), [used, unused], allow_unused=True)
        assert float(g_used) == pytest.approx(-2 * math.exp(-0.7), rel=1e-5)
        assert g_unused is None or float(g_unused) == 0.0


@pytest.mark.parametrize("mode", ADJOINTS)
def test_seminorm_lowers_backward_nfe(mode):
    """Kidger, Chen and Lyons 2021: leaving the parameter-gradient channels out of the
    backward error norm saves evaluations without hurting the gradient. Five seeded
    fields: never more evaluations, fewer in total."""
    totals = {False: 0, True: 0}
    t = torch.linspace(0, 2, 3)
    for seed in range(5):
        field = _mlp_field(seed)
        torch.manual_seed(100 + seed)
        y0 = torch.randn(1, 2)
        field.zero_grad()
        ref = odeint(field, y0, t, rtol=1e-12, atol=1e-12)
        ref.ys.pow(2).mean().backward()
        g_ref = torch.cat([p.grad.reshape(-1) for p in field.parameters()])
        nfe = {}
        for semi in (False, True):
            field.zero_grad()
            sol = odeint(field, y0, t, rtol=1e-8, atol=1e-8, gradient=mode, seminorm=semi)
            sol.ys.pow(2).mean().backward()
            nfe[semi] = sol.stats.nfe_backward
            totals[semi] += nfe[semi]
            assert rel_err(torch.cat([p.grad.reshape(-1) for p in field.parameters()]), g_ref) < 1e-5
        assert nfe[True] <= nfe[False]
    assert totals[True] < 0.95 * totals[False], totals


def _stiff_decay(k=40.0):
    kt = torch.tensor(k, requires_grad=True)
    y0 = torch.tensor([1.0, 0.0], requires_grad=True)
    exact = flat_grad(torch.autograd.grad(y0[1] + y0[0] * (1 - torch.exp(-kt)) / kt, [y0, kt]))
    return kt, y0, exact


@pytest.mark.parametrize("mode", MODES)
def test_stiff_decay_failure_of_backsolve(mode):
    """y1' = -k y1, y2' = y1, L = y2(1), k = 40, rtol 1e-6: integrating y backwards
    amplifies its error by e^{40}; backsolve is far off while the modes that read the
    forward state (interpolated) or differentiate the discrete solve stay right."""
    kt, y0, exact = _stiff_decay()
    sol = odeint(
        lambda t, y: torch.stack([-kt * y[0], y[0]]), y0, [0.0, 1.0], [kt], rtol=1e-6, atol=1e-6, gradient=mode
    )
    err = rel_err(flat_grad(torch.autograd.grad(sol.ys[-1, 1], [y0, kt])), exact)
    if mode == "backsolve":
        assert err > 1e3
    else:
        assert err < 1e-5


def test_backward_stats_fill_in():
    prob = Linear(dim=3)
    for mode in MODES:
        sol = odeint(prob.f, prob.y0, [0.0, 1.0], prob.params, gradient=mode)
        before = sol.stats.nfe_backward
        prob.loss(sol.ys).backward()
        assert before == 0
        if mode == "backprop":
            assert sol.stats.nfe_backward == 0
        else:
            assert sol.stats.nfe_backward > 0 and sol.stats.steps_backward > 0
