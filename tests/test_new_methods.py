"""The forward, quadrature, symplectic and reversible gradient modes, and diffrax's forward
mode and implicit solvers, against independent truth: closed forms, finite differences,
and discrete backprop of the same solve."""

from __future__ import annotations

import math
import weakref

import numpy as np
import pytest
import torch
from ode_helpers import ADAPTIVE, FIXED, flat_grad, rel_err

from odebench.backends import CaseSpec, make_method
from odebench.fd import central_gradient
from odebench.ode import TooManyInputs, odeint
from odebench.problems import get_problem

NEW_MODES = ["forward", "quadrature", "symplectic"]
TIGHT = CaseSpec(rtol=1e-10, atol=1e-10, dtype="float64", device="cpu")


def _grad(f, y0, t, params, mode, loss=lambda ys: ys.pow(2).sum(), **kw):
    sol = odeint(f, y0, t, params, gradient=mode, **kw)
    return flat_grad(torch.autograd.grad(loss(sol.ys), [y0, *params])), sol.stats


def _field():
    """A nonlinear, time-dependent field with a matrix and a vector parameter, on a (3, 2) batch."""
    g = torch.Generator().manual_seed(5)
    a = (0.6 * torch.randn(2, 2, generator=g)).requires_grad_(True)
    b = torch.tensor([0.3, -0.2], requires_grad=True)
    y0 = torch.randn(3, 2, generator=g).requires_grad_(True)

    def f(t, y):
        return torch.tanh(y @ a.T) + b * math.cos(2.0 * t) - 0.1 * y

    return f, y0, [a, b]


# -- 0. a field that does not depend on the state -------------------------------------


@pytest.mark.parametrize("mode", ["backsolve", "interpolated", "checkpoint", *NEW_MODES, "reversible"])
def test_state_independent_field_without_parameters(mode):
    """dy/dt = -0.1 exp(-0.1 t): y(T) = y0 + exp(-0.1 T) - 1, so d sum y(T) / d y0 = 1.
    The VJP of an output that does not depend on the input is zero, not an error."""
    y0 = torch.tensor([1.0, 2.0], requires_grad=True)
    kw = {"n_steps": 20} if mode == "reversible" else {}
    sol = odeint(lambda t, y: torch.full_like(y, -0.1 * math.exp(-0.1 * t)), y0, [0.0, 1.0, 2.0], gradient=mode, **kw)
    (g,) = torch.autograd.grad(sol.ys[-1].sum(), y0)
    assert torch.equal(g, torch.ones(2))
    assert float(sol.ys[-1, 0].detach()) == pytest.approx(math.exp(-0.2), rel=1e-5)


# -- closed forms, through the registered methods -------------------------------------


def _outcome(method: str, params: dict, problem, spec=TIGHT):
    prepared = make_method(method, params).prepare(problem, spec)
    return prepared, prepared.outcome(prepared.backward(prepared.forward()))


def _error(grads: dict, exact: dict) -> float:
    g = np.concatenate([grads[k].ravel() for k in exact])
    e = np.concatenate([exact[k].ravel() for k in exact])
    return float(np.linalg.norm(g - e) / np.linalg.norm(e))


PROBLEMS = [("linear", {"dim": 3, "n_save": 4}), ("logistic", {"n_save": 3}), ("stiff_decay", {})]


@pytest.mark.parametrize("problem,problem_params", PROBLEMS)
@pytest.mark.parametrize(
    "method,params,bound",
    [
        ("odebench.forward", {}, 1e-8),
        # The quadrature's error is not controlled: on stiff_decay the backward steps follow
        # the slow adjoint while y(t) in the integrand decays fast (3e-7 with 3 nodes).
        ("odebench.quadrature", {}, 1e-6),
        ("odebench.quadrature", {"nodes": 5, "solver": "dopri8"}, 1e-8),
        ("odebench.symplectic", {}, 1e-8),
        ("odebench.symplectic", {"solver": "tsit5"}, 1e-8),
        ("odebench.reversible", {"n_steps": 4000}, 1e-6),
    ],
)
def test_own_methods_match_closed_forms(problem, problem_params, method, params, bound):
    if method == "odebench.reversible" and problem == "stiff_decay":
        pytest.skip("reversible Heun diverges on a fast decay: test_reversible_heun_diverges_on_a_fast_decay")
    prob = get_problem(problem, problem_params)
    _, outcome = _outcome(method, params, prob)
    assert _error(outcome.grads, prob.exact_gradient()) < bound


def test_quadrature_and_reversible_converge():
    """Quadrature: error falls with the tolerance. Reversible Heun: second order in the step."""
    prob = get_problem("logistic", {"n_save": 3})
    exact = prob.exact_gradient()
    errs = [_error(_outcome("odebench.quadrature", {}, prob, CaseSpec(tol, tol, "float64", "cpu"))[1].grads, exact)
            for tol in (1e-4, 1e-7, 1e-10)]  # fmt: skip
    assert errs[0] > errs[1] > errs[2] and errs[2] < 1e-8, errs
    errs = [_error(_outcome("odebench.reversible", {"n_steps": n}, prob)[1].grads, exact) for n in (100, 200, 400)]
    orders = [math.log2(errs[i] / errs[i + 1]) for i in range(2)]
    assert all(1.8 < p < 2.2 for p in orders), (errs, orders)


def test_forward_matches_finite_differences():
    """odebench.forward on the logistic problem against Richardson central differences of the loss."""
    prob = get_problem("logistic", {"n_save": 3})
    prepared, outcome = _outcome("odebench.forward", {}, prob, CaseSpec(1e-12, 1e-12, "float64", "cpu"))
    sizes = [prob.y0.size] + [np.size(v) for v in prob.params.values()]

    def loss(x):
        parts = np.split(x, np.cumsum(sizes)[:-1])
        params = {k: p.reshape(np.shape(v)) for (k, v), p in zip(prob.params.items(), parts[1:], strict=True)}
        return prepared.loss_at(parts[0].reshape(prob.y0.shape), params)

    x = np.concatenate([prob.y0.ravel(), *[np.ravel(v) for v in prob.params.values()]])
    fd = central_gradient(loss, x, richardson=True)
    g = np.concatenate([outcome.grads["y0"].ravel(), *[outcome.grads[k].ravel() for k in prob.params]])
    assert np.linalg.norm(g - fd) / np.linalg.norm(fd) < 1e-8


# -- exact discrete gradients: equal to backprop of the same solve ---------------------

DISCRETE_CASES = [(s, {"n_steps": 23}) for s in FIXED + ADAPTIVE] + [
    (s, {"rtol": 1e-7, "atol": 1e-7, "save_at": at}) for s in ADAPTIVE for at in ("interpolate", "step")
]


@pytest.mark.parametrize("mode", ["symplectic", "forward"])
@pytest.mark.parametrize("solver,kw", DISCRETE_CASES)
def test_exact_modes_equal_backprop(mode, solver, kw):
    """Every tableau, fixed and adaptive steps, save times inside the interval (read off the
    dense output or stepped onto): the gradient of the discrete solve to round-off."""
    f, y0, params = _field()
    t = [0.0, 0.37, 0.8, 1.5]
    g_bp, s_bp = _grad(f, y0, t, params, "backprop", solver=solver, **kw)
    g, stats = _grad(f, y0, t, params, mode, solver=solver, **kw)
    assert rel_err(g, g_bp) < 1e-10
    assert stats.steps_forward == s_bp.steps_forward


def test_symplectic_counts():
    """Forward: as backprop. Backward per step: s - 1 stage recomputations and one VJP per
    stage with a non-zero cotangent (rk4: 3 + 4)."""
    f, y0, params = _field()
    _, stats = _grad(f, y0, [0.0, 1.0], params, "symplectic", solver="rk4", n_steps=10)
    assert (stats.nfe_forward, stats.steps_forward, stats.checkpoints) == (40, 10, 10)
    assert (stats.nfe_backward, stats.steps_backward) == (70, 10)


def test_forward_counts_one_evaluation_per_direction():
    f, y0, params = _field()
    _, stats = _grad(f, y0, [0.0, 1.0], params, "forward", solver="rk4", n_steps=10)
    k = y0.numel() + sum(p.numel() for p in params)
    # rk4: 4 stages per step, plus f(t1, y1) of the last step (the next first stage).
    assert stats.nfe_forward == 40 + 1 + k * 41 and stats.nfe_backward == 0


def test_forward_refuses_too_many_inputs():
    f, y0, params = _field()
    with pytest.raises(TooManyInputs, match="max_inputs=5"):
        odeint(f, y0, [0.0, 1.0], params, gradient="forward", max_inputs=5)


def test_reversible_equals_backprop_through_the_reversible_solver():
    """Algebraic reversibility: the O(1)-memory gradient is discrete backprop, to round-off;
    one evaluation per step forward and one per step backward."""
    f, y0, params = _field()
    t = [0.0, 0.37, 0.8, 1.5]
    g_bp, s_bp = _grad(f, y0, t, params, "backprop", solver="reversible_heun", n_steps=200)
    g, stats = _grad(f, y0, t, params, "reversible", n_steps=200)
    assert rel_err(g, g_bp) < 1e-10
    assert stats.nfe_forward == s_bp.nfe_forward == stats.steps_forward + 1
    assert stats.nfe_backward == stats.steps_backward + 1


def test_reversible_heun_diverges_on_a_fast_decay():
    """Its stability region is the imaginary segment [-i, i]: on y' = -k y the parasitic
    mode of the (y, yh) pair grows like e^(k T) whatever the step, so the solve (not just
    its gradient) is right for k T = 1 and useless for k T = 40."""

    def final_error(k: float) -> float:
        sol = odeint(lambda t, y: -k * y, torch.ones(1), [0.0, 1.0], solver="reversible_heun", n_steps=1000)
        return abs(float(sol.ys[-1, 0]) - math.exp(-k))

    assert final_error(1.0) < 1e-6
    assert final_error(40.0) > 1.0


def test_reversible_solver_is_refused_with_other_modes():
    f, y0, params = _field()
    with pytest.raises(ValueError, match="reversible_heun"):
        odeint(f, y0, [0.0, 1.0], params, solver="reversible_heun", n_steps=10, gradient="checkpoint")
    with pytest.raises(ValueError, match="fixed-step"):
        odeint(f, y0, [0.0, 1.0], params, gradient="reversible")


def test_own_counts_are_the_solver_tally():
    """The adapter reports the solver's own counts: the field's call counter for the
    existing modes, one evaluation per direction for forward sensitivities."""
    prob = get_problem("linear", {"dim": 2})
    for method in ("odebench.checkpoint", "odebench.quadrature", "odebench.symplectic", "odebench.forward"):
        prepared = make_method(method, {"solver": "rk4", "n_steps": 10}).prepare(prob, TIGHT)
        counts = prepared.count()
        if method == "odebench.forward":
            assert counts.nfe_forward == 41 * (1 + 2 + 4)
        else:
            assert counts.nfe_forward == prepared.tp.counter.calls["forward"]
            assert counts.nfe_backward == prepared.tp.counter.calls["backward"]


def test_registered_and_consistent():
    for name in ("odebench.forward", "odebench.quadrature", "odebench.symplectic"):
        twin = make_method(name, {"solver": "tsit5"}).discrete_twin()
        assert twin.name == "odebench.backprop" and twin.params["solver"] == "tsit5"
    twin = make_method("odebench.reversible", {"n_steps": 50}).discrete_twin()
    assert (twin.name, twin.params["solver"], twin.params["n_steps"]) == ("odebench.backprop", "reversible_heun", 50)
    assert twin.unavailable_reason("cpu") is None
    assert "does not provide" in make_method("odebench.checkpoint", {"solver": "reversible_heun"}).unavailable_reason(
        "cpu"
    )


# -- memory: a deterministic proxy ----------------------------------------------------


class _Held:
    __slots__ = ("tensor", "__weakref__")

    def __init__(self, tensor):
        self.tensor = tensor


class SavedBytes:
    """Peak bytes of tensors saved for backward and alive at the same time (each saved
    tensor counted from when autograd packs it until its graph frees it)."""

    def __init__(self):
        self.live = self.peak = 0

    def _free(self, size: int) -> None:
        self.live -= size

    def _pack(self, tensor):
        size = tensor.numel() * tensor.element_size()
        self.live += size
        self.peak = max(self.peak, self.live)
        held = _Held(tensor)
        weakref.finalize(held, self._free, size)
        return held

    def __enter__(self):
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda held: held.tensor)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc):
        self._hooks.__exit__(*exc)


def _memory(mode: str, steps: int) -> tuple[int, int]:
    """Peak saved-for-backward bytes and the bytes of the states the mode keeps, for one
    solve and its gradient."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 32), torch.nn.Tanh(), torch.nn.Linear(32, 4))
    y0 = torch.randn(8, 4)
    solver = "reversible_heun" if mode == "reversible" else "rk4"
    with SavedBytes() as probe:
        sol = odeint(lambda t, y: net(y), y0, [0.0, 1.0], list(net.parameters()), solver=solver, n_steps=steps,
                     gradient=mode)  # fmt: skip
        sol.ys[-1].pow(2).sum().backward()
    return probe.peak, sol.stats.checkpoints * y0.numel() * y0.element_size()


def test_memory_growth_with_steps():
    """50, 200, 800 steps. backprop's graph grows linearly. The symplectic adjoint keeps
    exactly the N states plus one evaluation's graph at a time (O(N + s): its graph part is
    flat, and a state is a small fraction of a step's graph). Reversible Heun keeps nothing
    that grows: flat."""
    steps = (50, 200, 800)
    mem = {mode: [_memory(mode, n) for n in steps] for mode in ("backprop", "symplectic", "reversible")}
    graph = {mode: [m[0] for m in ms] for mode, ms in mem.items()}
    kept = {mode: [m[1] for m in ms] for mode, ms in mem.items()}
    assert 15 < graph["backprop"][-1] / graph["backprop"][0] < 17, mem
    assert graph["symplectic"][0] == graph["symplectic"][1] == graph["symplectic"][2], mem
    assert kept["symplectic"] == [n * 8 * 4 * 8 for n in steps], mem
    assert sum(mem["symplectic"][-1]) < 0.02 * graph["backprop"][-1], mem
    assert mem["reversible"][0] == mem["reversible"][1] == mem["reversible"][2], mem
    assert kept["reversible"][0] == 0


# -- diffrax: forward mode and implicit solvers ----------------------------------------


@pytest.mark.parametrize(
    "method,params,problem,bound",
    [
        ("diffrax.forward", {}, "linear", 1e-8),
        ("diffrax.forward", {"solver": "kvaerno5"}, "stiff_decay", 1e-7),
        ("diffrax.recursive_checkpoint", {"solver": "kvaerno5"}, "linear", 1e-7),
        ("diffrax.direct", {"solver": "kvaerno3"}, "stiff_decay", 1e-7),
    ],
)
def test_diffrax_forward_and_implicit_match_closed_forms(method, params, problem, bound):
    pytest.importorskip("diffrax")
    prob = get_problem(problem, {"dim": 2} if problem == "linear" else {})
    _, outcome = _outcome(method, params, prob)
    assert _error(outcome.grads, prob.exact_gradient()) < bound


def test_diffrax_reversible_heun_backsolve():
    """Second order: about 4x smaller error for twice the steps, on the linear problem."""
    pytest.importorskip("diffrax")
    prob = get_problem("linear", {"dim": 2})
    exact = prob.exact_gradient()
    errs = [_error(_outcome("diffrax.backsolve", {"solver": "reversible_heun", "n_steps": n}, prob)[1].grads, exact)
            for n in (100, 200)]  # fmt: skip
    assert 3.0 < errs[0] / errs[1] < 5.0, errs


def test_diffrax_forward_counts_and_refusal():
    """One JVP per input direction on top of each primal evaluation (euler, 10 steps: 10 primal)."""
    pytest.importorskip("diffrax")
    prob = get_problem("linear", {"dim": 2})
    prepared = make_method("diffrax.forward", {"solver": "euler", "n_steps": 10}).prepare(prob, TIGHT)
    counts = prepared.count()
    assert (counts.nfe_forward, counts.nfe_backward, counts.steps_forward) == (10 * (1 + 2 + 4), 0, 10)
    with pytest.raises(ValueError, match="max_inputs=3"):
        make_method("diffrax.forward", {"max_inputs": 3}).prepare(prob, TIGHT)
