"""The torchdiffeq, diffrax and torchode adapters against independent truth.

Closed-form gradients (the built-in linear system, through the matrix exponential, and
logistic equation on a batch), hand counts of evaluations for fixed steps, each library's own
statistics for adaptive ones, and the contract the runner relies on. Compiled JAX
computations are shared between tests (``_prepared``), as compiling dominates the cost.
"""

from __future__ import annotations

import dataclasses
import functools
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import DEVICES
from problem_helpers import batch_logistic

from odebench import Problem
from odebench._records import COLUMNS, WORK_COUNTERS
from odebench.backends import CaseSpec, Counts, make_method, method_class
from odebench.ode import SolveStats
from odebench.problems import linear

LIBRARIES = {"torchdiffeq": "torchdiffeq", "diffrax": "diffrax", "torchode": "torchode"}
METHODS = [
    "torchdiffeq.backprop",
    "torchdiffeq.adjoint",
    "diffrax.recursive_checkpoint",
    "diffrax.backsolve",
    "diffrax.direct",
    "torchode.autodiff",
    "torchode.backsolve",
]
TORCH_METHODS = [m for m in METHODS if not m.startswith("diffrax")]
DIFFRAX_METHODS = [m for m in METHODS if m.startswith("diffrax")]
TIGHT = CaseSpec(rtol=1e-12, atol=1e-12, dtype="float64", device="cpu")


def _need(method: str) -> None:
    pytest.importorskip(LIBRARIES[method.split(".")[0]])


def rel_err(grads: dict, ref: dict) -> float:
    g = np.concatenate([np.ravel(grads[k]) for k in ref])
    r = np.concatenate([np.ravel(ref[k]) for k in ref])
    return float(np.linalg.norm(g - r) / np.linalg.norm(r))


# --- problems, written once for torch and jax.numpy -------------------------------------

JAX_TRACES = [0]  # vector-field calls with jax.numpy: traces, not evaluations


def _counting_traces(problem: Problem) -> Problem:
    """``problem`` with a vector field that counts its JAX traces (the closed form stays)."""

    def field(t, y, params, xp):
        if xp.__name__.startswith("jax"):
            JAX_TRACES[0] += 1
        return problem.vector_field(t, y, params, xp)

    return dataclasses.replace(problem, vector_field=field)


def _mlp_field(t, y, params, xp):
    return xp.tanh(y @ params["W1"] + params["b1"]) @ params["W2"] + params["b2"]


def _mean_square(ys, xp):
    return (ys**2).mean()


def mlp(width: int = 16) -> Problem:
    """A tiny neural ODE: a tanh MLP on a (3, 2) batch."""
    rng = np.random.default_rng(2)
    params = {
        "W1": rng.standard_normal((2, width)) / 2**0.5, "b1": 0.1 * rng.standard_normal(width),
        "W2": rng.standard_normal((width, 2)) / width**0.5, "b2": 0.1 * rng.standard_normal(2),
    }  # fmt: skip
    y0 = rng.standard_normal((3, 2))
    return Problem(name="mlp", vector_field=_mlp_field, y0=y0, params=params, t=np.linspace(0, 2, 5), loss=_mean_square)


def _nan_field(t, y, params, xp):
    return params["A"] @ y + params["c"] / (y[:1] - y[:1])


def nan_problem() -> Problem:
    return Problem(
        name="nan", vector_field=_nan_field, y0=np.array([1.0, 0.5]), params={"A": -np.eye(2), "c": np.array(1.0)},
        t=np.linspace(0, 1, 3), loss=_mean_square,
    )  # fmt: skip


PROBLEMS = {
    "linear": _counting_traces(linear(dim=3, t_end=1.5, n_save=4)), "logistic": batch_logistic(), "mlp": mlp(),
    "grid": linear(dim=3, t_end=1.0, n_save=5),
}  # fmt: skip


@functools.cache
def _prepared(method: str, problem: str, params: tuple = (("solver", "dopri5"),), spec: CaseSpec = TIGHT):
    """One prepared computation per configuration, shared between tests (JAX compiles)."""
    return make_method(method, dict(params)).prepare(PROBLEMS[problem], spec)


def _run(prepared):
    state = prepared.backward(prepared.forward())
    prepared.sync()
    return prepared.outcome(state)


# --- gradients against closed forms ------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_linear_gradient_matches_matrix_exponential(method):
    _need(method)
    outcome = _run(_prepared(method, "linear"))
    assert rel_err(outcome.grads, PROBLEMS["linear"].exact_gradient()) < 1e-9
    assert set(outcome.grads) == {"y0", "A"}
    assert all(g.dtype == np.float64 for g in outcome.grads.values())


@pytest.mark.parametrize("method", METHODS)
def test_nonlinear_batch_gradient_matches_closed_form(method):
    """The logistic equation on a (4, 2) batch state with scalar parameters."""
    _need(method)
    outcome = _run(_prepared(method, "logistic"))
    exact = PROBLEMS["logistic"].exact_gradient()
    assert rel_err(outcome.grads, exact) < 1e-9
    assert outcome.grads["y0"].shape == (4, 2) and outcome.grads["r"].shape == ()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("method", TORCH_METHODS)
def test_torch_adapters_on_each_device_and_dtype(method, device):
    """float32 on the case's device: tensors live there, the gradient is float32-accurate."""
    _need(method)
    spec = CaseSpec(rtol=1e-6, atol=1e-6, dtype="float32", device=device)
    prepared = make_method(method, {"solver": "dopri5"}).prepare(PROBLEMS["linear"], spec)
    assert prepared.device_handle() == torch.device(device)
    assert prepared.memory_source == ("cuda" if device == "cuda" else "rss")
    assert rel_err(_run(prepared).grads, PROBLEMS["linear"].exact_gradient()) < 1e-4


# --- exact counts --------------------------------------------------------------------------

N = 64  # steps over t in [0, 1] with save times every 0.25: 1/64 is exact in binary


@pytest.mark.parametrize(
    ("method", "solver", "stages", "backward_per_step"),
    [
        ("torchdiffeq.backprop", "euler", 1, 0),
        ("torchdiffeq.backprop", "midpoint", 2, 0),
        ("torchdiffeq.backprop", "heun", 2, 0),
        ("torchdiffeq.backprop", "rk4", 4, 0),
        ("torchdiffeq.adjoint", "rk4", 4, 4),  # the same grid backwards, one VJP per stage
        ("torchode.autodiff", "heun", 2, 0),
        ("torchode.backsolve", "euler", 1, 1),
        ("diffrax.backsolve", "euler", 1, 1),
        ("diffrax.recursive_checkpoint", "euler", 1, 1),  # enough checkpoints: each step recomputed once
    ],
)
def test_fixed_step_nfe_equals_hand_count(method, solver, stages, backward_per_step):
    _need(method)
    params = {"solver": solver, "n_steps": N}
    if method == "diffrax.recursive_checkpoint":
        params["checkpoints"] = N
    counts = _prepared(method, "grid", tuple(params.items())).count()
    assert counts.nfe_forward == stages * N
    assert counts.steps_forward == N and counts.rejected_forward == 0
    assert counts.nfe_backward == backward_per_step * N
    assert counts.steps_backward == (N if backward_per_step else 0)


def test_diffrax_direct_and_few_checkpoints_recompute_steps():
    """Euler evaluates once per step, so backward NFE and recomputed steps agree; fewer
    checkpoints recompute more."""
    _need("diffrax.direct")
    for method, extra in [("diffrax.direct", ()), ("diffrax.recursive_checkpoint", (("checkpoints", 2),))]:
        counts = _prepared(method, "grid", (("solver", "euler"), ("n_steps", N), *extra)).count()
        assert counts.nfe_forward == N
        assert counts.nfe_backward == counts.steps_backward > N


def test_torchdiffeq_adaptive_nfe_matches_its_step_callbacks():
    """dopri5 is FSAL: 2 evaluations to pick the first step of each solve, then 6 per attempt.
    The adjoint solves each interval between save times on its own."""
    _need("torchdiffeq.adjoint")
    counts = _prepared("torchdiffeq.adjoint", "linear").count()
    intervals = len(PROBLEMS["linear"].t) - 1
    assert counts.nfe_forward == 2 + 6 * (counts.steps_forward + counts.rejected_forward)
    assert counts.nfe_backward == 2 * intervals + 6 * (counts.steps_backward + counts.rejected_backward)
    assert counts.steps_forward > 10 and counts.steps_backward > 10


@pytest.mark.parametrize("method", ["torchode.autodiff", "torchode.backsolve"])
def test_torchode_counts_match_its_stats(method):
    _need(method)
    prepared = _prepared(method, "linear", (("solver", "tsit5"),))
    counts = prepared.count()
    stats = prepared.last_stats
    assert counts.nfe_forward == int(stats["n_f_evals"][0]) > 0
    assert counts.steps_forward + counts.rejected_forward == int(stats["n_steps"][0])
    if method == "torchode.backsolve":
        backward = sum(int(s["n_steps"][0]) for s in stats["backsolve"])
        assert counts.steps_backward + counts.rejected_backward == backward > 0
        assert counts.nfe_backward > counts.steps_backward
    else:
        assert counts.nfe_backward == counts.steps_backward == 0


@pytest.mark.parametrize("method", DIFFRAX_METHODS)
def test_diffrax_adaptive_nfe_matches_its_stats(method):
    """dopri5 is FSAL: one evaluation before the first step, then 6 per step attempt
    (diffrax 0.7 picks the first step without evaluating); the step taps agree with
    diffrax's own statistics."""
    _need(method)
    prepared = _prepared(method, "linear")
    counts = prepared.count()
    forward = prepared.tally.counts["forward"]
    attempts = counts.steps_forward + counts.rejected_forward
    assert attempts > 10
    assert counts.nfe_forward == 1 + 6 * attempts
    assert (forward["accepted"], forward["rejected"]) == (counts.steps_forward, counts.rejected_forward)
    assert counts.nfe_backward > 0 and counts.steps_backward > 0


def test_seminorm_lowers_backward_nfe():
    """At a tight tolerance the 82 parameter channels drive the backward error norm; the
    seminorm leaves them out (Kidger, Chen & Lyons 2021). (At loose tolerances the two
    step sequences differ by controller noise and either can be cheaper.)"""
    _need("torchdiffeq.adjoint")
    spec = CaseSpec(rtol=1e-10, atol=1e-10, dtype="float64", device="cpu")
    full = make_method("torchdiffeq.adjoint", {"solver": "dopri5"}).prepare(PROBLEMS["mlp"], spec)
    semi = make_method("torchdiffeq.adjoint", {"solver": "dopri5", "seminorm": True}).prepare(PROBLEMS["mlp"], spec)
    c_full, c_semi = full.count(), semi.count()
    assert c_semi.nfe_forward == c_full.nfe_forward
    assert c_semi.nfe_backward < c_full.nfe_backward
    assert rel_err(_run(semi).grads, _run(full).grads) < 1e-7


# --- the contract the runner relies on -------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_loss_at_and_count_agree_with_the_timed_pass(method):
    _need(method)
    prepared = _prepared(method, "linear")
    problem = PROBLEMS["linear"]
    before = _run(prepared)
    counts = prepared.count()
    after = _run(prepared)
    assert counts.nfe_forward > 0
    assert after.loss == before.loss
    for key in before.grads:
        np.testing.assert_array_equal(after.grads[key], before.grads[key])
    assert prepared.loss_at(problem.y0, problem.params) == pytest.approx(before.loss, rel=1e-12)
    moved = prepared.loss_at(problem.y0 + 0.1, problem.params)
    assert abs(moved - before.loss) > 1e-3


def test_work_counters_have_one_home():
    """Counts, SolveStats and the record's work columns are the counters of WORK_COUNTERS."""
    assert tuple(f.name for f in dataclasses.fields(Counts)) == WORK_COUNTERS
    assert tuple(f.name for f in dataclasses.fields(SolveStats))[: len(WORK_COUNTERS)] == WORK_COUNTERS
    assert set(WORK_COUNTERS) <= set(COLUMNS)
    assert Counts.of(SolveStats(nfe_forward=3)).as_dict() == {**dict.fromkeys(WORK_COUNTERS, 0), "nfe_forward": 3}


@pytest.mark.parametrize("method", METHODS)
def test_consistency_names_the_same_librarys_discrete_gradient(method):
    cls = method_class(method)
    expected = {"torchdiffeq": "torchdiffeq.backprop", "diffrax": "diffrax.direct", "torchode": "torchode.autodiff"}
    want = expected[cls.library]
    assert cls.consistency == (None if want == method else want)
    if cls.consistency is not None:
        assert method_class(cls.consistency).library == cls.library


def test_unsupported_solver_and_missing_library_need_no_import():
    """Listing and validating import none of the libraries (a fresh interpreter)."""
    code = """
import sys
from odebench.backends import make_method
cases = {"torchdiffeq.adjoint": "tsit5", "diffrax.backsolve": "rk4", "torchode.autodiff": "dopri8"}
for name, solver in cases.items():
    reason = make_method(name, {"solver": solver}).unavailable_reason("cpu")
    assert solver in reason and "does not provide" in reason, reason
loaded = sorted(m for m in ("torch", "jax", "torchdiffeq", "diffrax", "torchode", "equinox") if m in sys.modules)
print(",".join(loaded) or "none")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "none"


@pytest.mark.parametrize("method", METHODS)
def test_missing_library_is_named(method, monkeypatch):
    cls = method_class(method)
    monkeypatch.setattr(cls, "requires", ("torch", "no_such_ode_library"))
    reason = make_method(method).unavailable_reason("cpu")
    assert "no_such_ode_library" in reason and "not installed" in reason


@pytest.mark.parametrize("method", METHODS)
def test_solvers_are_what_each_library_provides(method):
    cls = method_class(method)
    provided = {
        "torchdiffeq": {"euler", "midpoint", "heun", "rk4", "bosh3", "dopri5", "dopri8"},
        "diffrax": {"euler", "midpoint", "heun", "bosh3", "tsit5", "dopri5", "dopri8"}
        | {"reversible_heun", "kvaerno3", "kvaerno5"},
        "torchode": {"euler", "heun", "dopri5", "tsit5"},
    }
    assert set(cls.solvers) == provided[cls.library]
    assert "max_steps" in cls.options and "n_steps" in cls.options


def test_diffrax_compiles_ahead_of_time_and_never_retraces():
    _need("diffrax.recursive_checkpoint")
    prepared = _prepared("diffrax.recursive_checkpoint", "linear")
    assert prepared.compile_time_s > 0
    assert prepared.memory_source == "rss"
    assert prepared.device_handle().platform == "cpu"
    _run(prepared)
    traces = JAX_TRACES[0]
    for _ in range(3):
        _run(prepared)
    assert JAX_TRACES[0] == traces


def test_diffrax_float32():
    """The case's dtype reaches every array; float64 stays enabled for other cases."""
    _need("diffrax.recursive_checkpoint")
    spec = CaseSpec(rtol=1e-6, atol=1e-6, dtype="float32", device="cpu")
    prepared = make_method("diffrax.recursive_checkpoint").prepare(PROBLEMS["linear"], spec)
    loss, grads = prepared.backward(prepared.forward())
    assert loss.dtype == np.float32 and grads[0].dtype == np.float32
    assert rel_err(prepared.outcome((loss, grads)).grads, PROBLEMS["linear"].exact_gradient()) < 1e-4


def test_diffrax_cuda_without_a_gpu_says_so():
    _need("diffrax.recursive_checkpoint")
    import jax

    try:
        jax.devices("gpu")
    except RuntimeError:
        spec = CaseSpec(rtol=1e-6, atol=1e-6, dtype="float64", device="cuda")
        with pytest.raises(RuntimeError, match="cuda was asked for but JAX has no GPU"):
            make_method("diffrax.recursive_checkpoint").prepare(PROBLEMS["linear"], spec)
    else:
        spec = CaseSpec(rtol=1e-10, atol=1e-10, dtype="float64", device="cuda")
        prepared = make_method("diffrax.recursive_checkpoint").prepare(PROBLEMS["linear"], spec)
        assert prepared.device_handle().platform == "gpu"
        assert rel_err(_run(prepared).grads, PROBLEMS["linear"].exact_gradient()) < 1e-8


# --- failures are exceptions ---------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_exceeding_max_steps_raises(method):
    _need(method)
    from odebench.ode import MaxStepsExceeded

    prepared = _prepared(method, "linear", (("solver", "dopri5"), ("max_steps", 3)))
    with pytest.raises(MaxStepsExceeded, match="max_steps=3"):
        _run(prepared)


def test_torchdiffeq_adjoint_budget_holds_for_the_backward_pass():
    """The backward solve takes more steps than the forward one here: a budget between the
    two fails in the backward pass, through autograd, with the solver core's exception."""
    _need("torchdiffeq.adjoint")
    from odebench.ode import MaxStepsExceeded

    spec = CaseSpec(rtol=1e-8, atol=1e-8, dtype="float64", device="cpu")
    counts = make_method("torchdiffeq.adjoint").prepare(PROBLEMS["linear"], spec).count()
    budget = counts.steps_forward + counts.rejected_forward + 1
    assert counts.steps_backward + counts.rejected_backward > budget
    prepared = make_method("torchdiffeq.adjoint", {"max_steps": budget}).prepare(PROBLEMS["linear"], spec)
    state = prepared.forward()
    with pytest.raises(MaxStepsExceeded, match="backward pass"):
        prepared.backward(state)


def test_diffrax_backsolve_budget_holds_for_the_backward_pass():
    """The timed build solves with ``throw=False`` (cacheable) and cannot see its backward
    solve fail; the counting build, which every case runs, must. stiff_decay(k=40) takes 32
    step attempts forward and over 100 backward: a budget of 50 fails only backwards."""
    _need("diffrax.backsolve")
    from odebench.ode import MaxStepsExceeded
    from odebench.problems import get_problem
    from odebench.runner._measure import classify

    problem = get_problem("stiff_decay", {"k": 40.0})
    spec = CaseSpec(rtol=1e-6, atol=1e-6, dtype="float64", device="cpu")
    prepared = make_method("diffrax.backsolve", {"max_steps": 50}).prepare(problem, spec)
    _run(prepared)  # silently short: what the timed build cannot know
    with pytest.raises(MaxStepsExceeded, match="max_steps=50") as failure:
        prepared.count()
    assert classify(failure.value) == "diverged"


def test_diffrax_forward_failure_is_read_from_the_result_without_throw():
    """The timed build's forward pass reports max_steps from diffrax's result flags."""
    _need("diffrax.recursive_checkpoint")
    from odebench.ode import MaxStepsExceeded

    prepared = _prepared("diffrax.recursive_checkpoint", "linear", (("solver", "dopri5"), ("max_steps", 3)))
    with pytest.raises(MaxStepsExceeded, match="maximum number of solver steps.*max_steps=3"):
        prepared.forward()
    with pytest.raises(MaxStepsExceeded, match="max_steps=3"):
        prepared.loss_at(PROBLEMS["linear"].y0, PROBLEMS["linear"].params)


@pytest.mark.parametrize(
    ("method", "solver"),
    [
        ("torchdiffeq.backprop", "euler"),
        ("torchdiffeq.adjoint", "dopri5"),
        ("torchode.autodiff", "euler"),
        ("torchode.backsolve", "dopri5"),
        ("diffrax.recursive_checkpoint", "euler"),
    ],
)
def test_nan_raises(method, solver):
    """A fixed-step solve runs on through NaN; an adaptive one fails to step. Both raise.
    (diffrax rejects NaN steps until ``max_steps``: the test above covers that.)"""
    _need(method)
    from odebench.ode import SolverError

    prepared = make_method(method, {"solver": solver, "n_steps": 8}).prepare(nan_problem(), TIGHT)
    with pytest.raises(SolverError, match=method):
        _run(prepared)
