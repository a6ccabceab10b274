"""The problem library: registry, parameter validation, user factories, one mathematics for all."""

from __future__ import annotations

import inspect
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from problem_helpers import ANALYTIC, REQUIRED

from odebench import Problem as RootProblem
from odebench.backends import method_names
from odebench.problems import (
    Problem,
    ProblemError,
    _registry,
    get_problem,
    linear,
    list_problems,
    problem_names,
    register,
)
from odebench.problems._neural import SPIRAL_A, SPIRAL_Y0

jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)
jnp = jax.numpy

TESTS = Path(__file__).parent
ROOT = TESTS.parent


@pytest.fixture
def user_factories(monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))


# --------------------------------------------------------------------------- registry


def test_required_problems_are_registered():
    assert set(REQUIRED) <= set(problem_names())
    assert list(problem_names()) == sorted(problem_names())
    assert RootProblem is Problem


def test_list_problems_explains_each_problem():
    infos = {info.name: info for info in list_problems()}
    assert set(infos) == set(problem_names())
    for name, info in infos.items():
        assert info.summary and info.summary == info.description.split("\n")[0]
        assert {"t_end", "n_save"} <= set(info.parameters), name
        assert info.analytic == (name in ANALYTIC), name
        # Every docstring cites where the problem comes from.
        assert re.search(r"\b(18|19|20)\d\d\b", info.description), name
        assert info.n_state == get_problem(name).n_state
    assert infos["robertson"].stiff and not infos["lorenz"].stiff
    assert infos["linear"].parameters == {"dim": 4, "seed": 0, "t_end": 1.0, "n_save": 2}


def test_default_sizes():
    sizes = {name: (get_problem(name).n_state, get_problem(name).n_params) for name in REQUIRED}
    assert sizes == {
        "linear": (4, 16),
        "oscillator": (2, 2),
        "logistic": (1, 2),
        "lotka_volterra": (2, 4),
        "van_der_pol": (2, 1),
        "lorenz": (3, 3),
        "robertson": (3, 3),
        "brusselator": (64, 3),
        "stiff_decay": (2, 1),
        "neural_mlp": (32, 1348),
        "spiral": (2, 252),
    }


def test_unknown_name_lists_the_valid_names():
    with pytest.raises(ProblemError) as info:
        get_problem("lorentz")
    message = str(info.value)
    assert "'lorentz'" in message and "did you mean 'lorenz'" in message
    for name in REQUIRED:
        assert name in message
    assert "package.module:function" in message


def test_unknown_parameter_lists_the_valid_ones():
    with pytest.raises(ProblemError, match=r"problem 'linear': unknown parameter 'dims'; valid parameters: dim, seed"):
        get_problem("linear", {"dims": 3})
    with pytest.raises(ProblemError, match="unknown parameter 'width'"):
        linear(width=3)  # the registered function checks its keywords when called directly too


@pytest.mark.parametrize("params", [[1, 2], {1: 2}, "dim=3"])
def test_params_must_be_a_dict_of_names(params):
    with pytest.raises(ProblemError, match="params must be a dict"):
        get_problem("linear", params)


def test_a_name_must_be_a_string():
    with pytest.raises(ProblemError, match="must be a string"):
        get_problem(3)


def test_register_refuses_duplicates_and_bad_names(monkeypatch):
    monkeypatch.setattr(_registry, "_REGISTRY", dict(_registry._REGISTRY))
    with pytest.raises(ValueError, match="already registered"):
        register("linear")(lambda: None)
    with pytest.raises(ValueError, match="identifier"):
        register("not a name")

    @register("tiny")
    def tiny(*, t_end: float = 1.0) -> Problem:
        """A tiny problem (2026)."""
        return linear(dim=1, t_end=t_end)

    assert "tiny" in problem_names()
    assert get_problem("tiny", {"t_end": 2.0}).t[-1] == 2.0
    assert inspect.signature(tiny).parameters.keys() == {"t_end"}


def test_config_records_every_parameter_with_defaults():
    p = get_problem("linear", {"dim": 3})
    assert p.config == {"dim": 3, "seed": 0, "t_end": 1.0, "n_save": 2}
    assert get_problem("linear").config == linear().config == linear(dim=4).config
    assert p.description.startswith("Linear system")


# --------------------------------------------------------------------------- user factories


def test_user_factory_by_import_path(user_factories):
    p = get_problem("problem_factories:decay", {"rate": 2.0})
    assert isinstance(p, Problem)
    assert p.params["rate"] == 2.0
    assert p.config == {"rate": 2.0, "t_end": 1.0}
    assert p.description.startswith("Exponential decay")
    # A factory taking **kwargs accepts any keyword.
    assert get_problem("problem_factories:takes_anything", {"rate": 3.0, "other": 1}).params["rate"] == 3.0


@pytest.mark.parametrize(
    ("path", "params", "match"),
    [
        ("problem_factories:", {}, "must look like 'package.module:function'"),
        (":decay", {}, "must look like 'package.module:function'"),
        ("no_such_module_for_odebench:decay", {}, "cannot import module 'no_such_module_for_odebench'"),
        ("problem_factories_import_error:decay", {}, "importing module .* raised RuntimeError: this module cannot"),
        ("problem_factories:missing", {}, "module 'problem_factories' has no attribute 'missing'"),
        ("problem_factories:NOT_CALLABLE", {}, "'NOT_CALLABLE' is a int, not a callable factory"),
        ("problem_factories:broken", {}, "the factory raised RuntimeError: the factory is broken"),
        ("problem_factories:not_a_problem", {}, "returned dict, expected an odebench.Problem"),
        ("problem_factories:decay", {"speed": 1.0}, "unknown parameter 'speed'; valid parameters: rate, t_end"),
        ("problem_factories:decay", {"t_end": -1.0}, "problem 'decay': save times t must be .* increasing"),
    ],
)
def test_user_factory_failures_are_problem_errors(user_factories, path, params, match):
    with pytest.raises(ProblemError, match=match) as info:
        get_problem(path, params)
    assert str(info.value).startswith(f"problem {path!r}: ")


# --------------------------------------------------------------------------- validation

COMMON_BAD = [("t_end", 0.0), ("t_end", -1.0), ("t_end", "1"), ("t_end", math.nan), ("n_save", 1), ("n_save", 2.0)]
BAD = [
    ("linear", "dim", 0), ("linear", "dim", 2.5), ("linear", "dim", True), ("linear", "dim", "4"),
    ("linear", "dim", 10**6), ("linear", "seed", -1),
    ("oscillator", "omega", 0.0), ("oscillator", "omega", math.inf), ("oscillator", "zeta", -0.1),
    ("logistic", "r", "fast"), ("logistic", "r", 1e3), ("logistic", "K", 0.0),
    ("lotka_volterra", "alpha", 0.0), ("lotka_volterra", "beta", -1.0), ("lotka_volterra", "gamma", None),
    ("lotka_volterra", "delta", 1e9),
    ("van_der_pol", "mu", -1.0),
    ("lorenz", "sigma", 0.0), ("lorenz", "rho", -28.0), ("lorenz", "beta", "8/3"), ("lorenz", "t_end", 1000.0),
    ("robertson", "k1", None), ("robertson", "k2", -3e7), ("robertson", "k3", 0.0), ("robertson", "t_end", 1e5),
    ("brusselator", "n", 0), ("brusselator", "n", 3.0), ("brusselator", "A", -1.0), ("brusselator", "B", 0.0),
    ("brusselator", "alpha", 0.0),
    ("stiff_decay", "k", 0.0), ("stiff_decay", "k", math.nan),
    ("neural_mlp", "dim", 1.0), ("neural_mlp", "width", 0), ("neural_mlp", "depth", 0), ("neural_mlp", "batch", 0),
    ("neural_mlp", "seed", "0"),
    ("spiral", "width", 0), ("spiral", "seed", -3), ("spiral", "t_end", 500.0),
] + [(name, key, value) for name in REQUIRED for key, value in COMMON_BAD]  # fmt: skip


@pytest.mark.parametrize(("name", "param", "value"), BAD)
def test_bad_parameters_are_explained(name, param, value):
    with pytest.raises(ProblemError) as info:
        get_problem(name, {param: value})
    message = str(info.value)
    assert f"problem {name!r}" in message
    assert f"parameter {param!r}" in message
    assert f"got {value!r}" in message or f"got {float(value)!r}" in message
    assert "must be" in message


def test_every_factory_parameter_has_a_bad_value_tested():
    tested = {(name, param) for name, param, _ in BAD}
    for name in REQUIRED:
        for param in inspect.signature(_registry._REGISTRY[name]).parameters:
            assert (name, param) in tested, (name, param)


# --------------------------------------------------------------------------- the problems


@pytest.mark.parametrize("name", REQUIRED)
def test_horizon_and_save_times_are_swept(name):
    p = get_problem(name, {"t_end": 0.5, "n_save": 7})
    np.testing.assert_array_equal(p.t, np.linspace(0.0, 0.5, 7))


@pytest.mark.parametrize("name", REQUIRED)
def test_default_problem_is_well_formed(name):
    p = get_problem(name)
    params = dict(p.params)
    f = np.asarray(p.vector_field(float(p.t[0]), p.y0, params, np))
    assert f.shape == p.y0.shape and np.all(np.isfinite(f))
    ys = np.stack([p.y0] * len(p.t))
    loss = p.loss(ys, np)
    assert np.ndim(loss) == 0 and np.isfinite(loss)
    assert p.gradient_names == ("y0", *p.params)
    x = p.flat_inputs()
    assert x.shape == (p.n_state + p.n_params,)
    back = p.unflatten(x)
    np.testing.assert_array_equal(back["y0"], p.y0)
    for key, value in p.params.items():
        np.testing.assert_array_equal(back[key], value)
    assert p.description and p.config and p.name == name


def test_unflatten_checks_the_size():
    with pytest.raises(ProblemError, match=r"expected a flat vector of shape \(20,\)"):
        get_problem("linear").unflatten(np.zeros(3))


def _trajectory(p, rng):
    """A plausible trajectory of the right shape: y0 plus growing perturbations."""
    scale = np.maximum(np.abs(p.y0), 0.1)
    return np.stack([p.y0 + 0.1 * k * scale * rng.standard_normal(p.y0.shape) for k in range(len(p.t))])


def _params_near(p, rng):
    return {k: v * (1 + 0.05 * rng.standard_normal(v.shape)) for k, v in p.params.items()}


@pytest.mark.parametrize("name", REQUIRED)
def test_numpy_torch_and_jax_compute_the_same_numbers(name):
    p = get_problem(name, {"n_save": 5})
    rng = np.random.default_rng(0)
    y = p.y0 + 0.1 * rng.standard_normal(p.y0.shape)
    params = _params_near(p, rng)
    ys = _trajectory(p, rng)
    want_f = np.asarray(p.vector_field(0.25, y, params, np))
    want_loss = float(p.loss(ys, np))

    def torch_values():
        t = {k: torch.tensor(v) for k, v in params.items()}
        return p.vector_field(0.25, torch.tensor(y), t, torch).numpy(), float(p.loss(torch.tensor(ys), torch))

    def jax_values():
        # Jitted, as diffrax runs it: the field must trace, with t as an array.
        field = jax.jit(lambda t, y, q: p.vector_field(t, y, q, jnp))
        j = {k: jnp.asarray(v) for k, v in params.items()}
        loss = jax.jit(lambda ys: p.loss(ys, jnp))
        return np.asarray(field(jnp.asarray(0.25), jnp.asarray(y), j)), float(loss(jnp.asarray(ys)))

    for got_f, got_loss in (torch_values(), jax_values()):
        assert got_f.dtype == np.float64
        np.testing.assert_allclose(got_f, want_f, rtol=1e-13, atol=1e-13 * np.abs(want_f).max())
        assert got_loss == pytest.approx(want_loss, rel=1e-13)


@pytest.mark.parametrize("name", ANALYTIC)
def test_closed_forms_agree_in_torch_and_jax(name):
    p = get_problem(name, {"n_save": 4})
    want = p.exact_solution(torch.tensor(p.y0), {k: torch.tensor(v) for k, v in p.params.items()}, p.t, torch)
    got = p.exact_solution(jnp.asarray(p.y0), {k: jnp.asarray(v) for k, v in p.params.items()}, p.t, jnp)
    assert tuple(want.shape) == (len(p.t), *p.y0.shape)
    np.testing.assert_allclose(np.asarray(got), want.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(want.numpy()[0], p.y0, rtol=1e-14, atol=1e-15)


def test_seeds_make_problems_reproducible_and_distinct():
    for name in ("linear", "neural_mlp", "spiral"):
        a, b, c = get_problem(name), get_problem(name), get_problem(name, {"seed": 1})
        np.testing.assert_array_equal(a.flat_inputs(), b.flat_inputs())
        assert not np.array_equal(a.flat_inputs(), c.flat_inputs())


def test_size_parameters_set_the_sizes():
    assert get_problem("brusselator", {"n": 100}).n_state == 200
    assert get_problem("linear", {"dim": 7}).n_params == 49
    p = get_problem("neural_mlp", {"dim": 3, "width": 16, "depth": 3, "batch": 5})
    assert p.y0.shape == (5, 3)
    assert p.n_params == (3 * 16 + 16) + 2 * (16 * 16 + 16) + (16 * 3 + 3)


def test_neural_mlp_dynamics_are_order_one():
    # LeCun scaling: dy/dt is O(1), so over t_end = 1 the state moves but does not blow up.
    p = get_problem("neural_mlp", {"width": 256, "depth": 3})
    f = p.vector_field(0.0, p.y0, p.params, np)
    assert 0.1 < np.sqrt(np.mean(f**2)) < 3.0


def test_stiff_flags_follow_the_parameters():
    assert not get_problem("van_der_pol").stiff
    assert get_problem("van_der_pol", {"mu": 1000.0, "t_end": 3000.0}).stiff
    assert get_problem("robertson").stiff
    assert not get_problem("brusselator").stiff
    assert get_problem("brusselator", {"n": 500}).stiff
    assert get_problem("stiff_decay", {"k": 1e5}).stiff and not get_problem("stiff_decay").stiff


def test_spiral_data_follow_the_true_dynamics():
    from scipy.integrate import solve_ivp

    p = get_problem("spiral", {"t_end": 5.0, "n_save": 11})
    sol = solve_ivp(
        lambda t, y: (y**3) @ SPIRAL_A, (0.0, 5.0), SPIRAL_Y0, method="DOP853", t_eval=p.t, rtol=1e-12, atol=1e-12
    )
    assert p.loss(sol.y.T, np) < 1e-14  # the data are that trajectory, to RK4's accuracy
    assert p.loss(np.stack([p.y0] * len(p.t)), np) > 0.1


def test_stiff_decay_loss_is_the_slow_mode_at_the_end():
    p = get_problem("stiff_decay")
    ys = np.array([[1.0, 0.0], [0.5, 0.25]])
    assert p.loss(ys, np) == 0.25


def test_problems_import_without_torch_or_jax():
    code = (
        "import sys\n"
        "import odebench.problems as p, odebench.fd\n"
        "[p.get_problem(n) for n in p.problem_names()]\n"
        "p.list_problems()\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'jax', 'jaxlib', 'scipy'))\n"
        "print(','.join(heavy) or 'none')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "none", out.stdout[:500]


# --------------------------------------------------------------------------- time, as every backend gives it


def _time_dependent_problem() -> Problem:
    """y' = a cos(t) y: y(T) = y0 exp(a sin T); loss |y(T)|^2, gradient in closed form.

    (Not sin(t): with f(t0, y0) = 0, torchode's initial step estimate divides by a zero
    norm and its autodiff gradient is NaN, a library quirk rather than a time question.)
    """
    y0, a, t_end = np.array([1.0, -0.5]), 0.8, 2.0
    growth = np.exp(a * np.sin(t_end))

    def exact():
        return {"y0": 2 * growth**2 * y0, "a": np.array(2 * np.sin(t_end) * growth**2 * float(y0 @ y0))}

    return Problem(
        name="cos_growth", vector_field=lambda t, y, p, xp: p["a"] * xp.cos(t) * y, y0=y0,
        params={"a": np.array(a)}, t=np.array([0.0, 1.0, t_end]), loss=lambda ys, xp: xp.sum(ys[-1] ** 2),
        exact_gradient=exact,
    )  # fmt: skip


@pytest.mark.parametrize("method", method_names())
def test_time_reaches_every_backend_as_its_own_differentiable_scalar(method):
    # xp.sin(t) needs t as an array of the backend (torch.sin refuses a Python float), and
    # torchdiffeq's adjoint differentiates the field with respect to t as well.
    from odebench.backends import CaseSpec, make_method

    problem = _time_dependent_problem()
    fixed = {"n_steps": 4000} if "n_steps" in make_method(method).options else {}  # for fixed-step-only methods
    m = make_method(method, fixed)
    if m.unavailable_reason("cpu", problem):
        pytest.skip(m.unavailable_reason("cpu", problem))
    prepared = m.prepare(problem, CaseSpec(rtol=1e-10, atol=1e-10, dtype="float64", device="cpu"))
    outcome = prepared.outcome(prepared.backward(prepared.forward()))
    want = problem.flat_gradient(problem.exact_gradient())
    if outcome.directions is not None:  # directional finite differences
        got, want = np.asarray(outcome.derivatives), outcome.directions @ want
    else:
        got = problem.flat_gradient(outcome.grads)
    np.testing.assert_allclose(got, want, rtol=1e-5)
