"""Finite differences: exactness on polynomials, orders of accuracy, Richardson, directions."""

from __future__ import annotations

import numpy as np
import pytest

from odebench.fd import (
    EPS,
    Directional,
    central_gradient,
    default_rel_step,
    directional_derivatives,
    random_directions,
)

X = np.array([0.3, -1.7, 2.5, 40.0, -0.01])


def quadratic(x):
    A = np.arange(1.0, 26.0).reshape(5, 5) / 10.0
    return 0.5 * x @ (A + A.T) @ x + np.sum(np.arange(1.0, 6.0) * x) + 3.0


def quadratic_grad(x):
    A = np.arange(1.0, 26.0).reshape(5, 5) / 10.0
    return (A + A.T) @ x + np.arange(1.0, 6.0)


def smooth(x):
    return float(np.sum(np.sin(x[:3])) + np.exp(0.1 * x[3]) * x[4] + np.prod(np.cos(x)))


def smooth_grad(x):
    g = np.zeros_like(x)
    g[:3] = np.cos(x[:3])
    g[3] = 0.1 * np.exp(0.1 * x[3]) * x[4]
    g[4] = np.exp(0.1 * x[3])
    c = np.cos(x)
    for i in range(x.size):
        g[i] += -np.sin(x[i]) * np.prod(np.delete(c, i))
    return g


def rel_err(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def test_central_is_exact_on_quadratics():
    # The O(h**2) term vanishes for a quadratic: only rounding is left.
    assert rel_err(central_gradient(quadratic, X), quadratic_grad(X)) < 1e-9
    assert rel_err(central_gradient(quadratic, X, richardson=True), quadratic_grad(X)) < 1e-11


def test_central_error_is_second_order_and_matches_its_leading_term():
    # f = x**3: the central difference is 3x**2 + h**2 exactly, so halving h quarters the error.
    x = np.array([1.5])
    errors = []
    for rel in (1e-2, 5e-3):
        g = central_gradient(lambda v: float(v[0] ** 3), x, rel_step=rel)
        h = rel * 1.5
        assert g[0] - 3 * x[0] ** 2 == pytest.approx(h * h, rel=1e-5)
        errors.append(g[0] - 3 * x[0] ** 2)
    assert errors[0] / errors[1] == pytest.approx(4.0, rel=1e-4)


def test_richardson_is_exact_on_cubics_and_fourth_order_on_quintics():
    x = np.array([1.5, -0.5])

    def cubic(v):
        return float(v[0] ** 3 - 2 * v[0] * v[1] ** 2 + v[1] ** 3)

    exact = np.array([3 * x[0] ** 2 - 2 * x[1] ** 2, -4 * x[0] * x[1] + 3 * x[1] ** 2])
    assert rel_err(central_gradient(cubic, x, richardson=True, rel_step=1e-2), exact) < 1e-12
    errors = [
        central_gradient(lambda v: float(v[0] ** 5), x[:1], richardson=True, rel_step=rel)[0] - 5 * x[0] ** 4
        for rel in (4e-2, 2e-2)
    ]
    assert errors[0] / errors[1] == pytest.approx(16.0, rel=1e-2)


def test_richardson_improves_accuracy_at_the_default_steps():
    plain = rel_err(central_gradient(smooth, X), smooth_grad(X))
    extrapolated = rel_err(central_gradient(smooth, X, richardson=True), smooth_grad(X))
    assert plain < 1e-9
    assert extrapolated < 1e-11
    assert extrapolated < plain / 4
    # At one and the same step, where truncation dominates, it gains orders of magnitude.
    same_plain = rel_err(central_gradient(smooth, X, rel_step=1e-3), smooth_grad(X))
    same_extrapolated = rel_err(central_gradient(smooth, X, rel_step=1e-3, richardson=True), smooth_grad(X))
    assert same_extrapolated < same_plain / 1e3


def test_step_rule_is_relative_with_a_floor_of_one():
    seen = []

    def f(v):
        seen.append(v.copy())
        return float(np.sum(v))

    x = np.array([0.0, 0.5, 200.0])
    central_gradient(f, x, rel_step=1e-3)
    steps = [np.max(np.abs(p - x)) for p in seen]
    assert len(seen) == 2 * x.size
    assert steps[0] == pytest.approx(1e-3) and steps[2] == pytest.approx(1e-3) and steps[4] == pytest.approx(0.2)
    # The step actually taken is exactly representable: x + h - x == h.
    assert all(((x[i] + (seen[2 * i][i] - x[i])) - x[i]) == seen[2 * i][i] - x[i] for i in range(x.size))


def test_default_steps_balance_rounding_and_truncation():
    eps = np.finfo(np.float64).eps
    assert default_rel_step() == pytest.approx(eps ** (1 / 3))
    assert default_rel_step(richardson=True) == pytest.approx(eps ** (1 / 5))
    assert default_rel_step(noise=1e-12) == pytest.approx(1e-4)
    assert default_rel_step(richardson=True, noise=1e-10) == pytest.approx(1e-2)


def test_noise_widens_the_step_so_noisy_functions_still_work():
    rng = np.random.default_rng(0)

    def noisy(v):
        return smooth(v) * (1 + 1e-10 * rng.standard_normal())

    naive = rel_err(central_gradient(noisy, X), smooth_grad(X))
    informed = rel_err(central_gradient(noisy, X, noise=1e-10), smooth_grad(X))
    assert informed < 1e-5
    assert informed < naive


def test_directional_derivatives_match_g_dot_v():
    result = directional_derivatives(smooth, X, 7, seed=3)
    assert isinstance(result, Directional)
    V, dd = result
    assert V.shape == (7, X.size) and dd.shape == (7,)
    np.testing.assert_allclose(np.linalg.norm(V, axis=1), 1.0, rtol=1e-14)
    g = smooth_grad(X)
    assert np.max(np.abs(dd - V @ g)) < 1e-8 * np.linalg.norm(g)
    V2, dd2 = directional_derivatives(smooth, X, 7, seed=3, richardson=True)
    np.testing.assert_array_equal(V, V2)
    assert np.max(np.abs(dd2 - V @ g)) < 1e-11 * np.linalg.norm(g)


def test_directional_derivatives_are_seeded_and_cost_two_evaluations_each():
    calls = []

    def f(v):
        calls.append(1)
        return quadratic(v)

    a = directional_derivatives(f, X, 4, seed=11)
    assert len(calls) == 8
    b = directional_derivatives(f, X, 4, seed=11)
    c = directional_derivatives(f, X, 4, seed=12)
    np.testing.assert_array_equal(a.directions, b.directions)
    np.testing.assert_array_equal(a.derivatives, b.derivatives)
    assert not np.allclose(a.directions, c.directions)


def test_explicit_directions_are_used_as_given():
    V = np.eye(X.size)[:2] * 2.0
    _, dd = directional_derivatives(quadratic, X, V)
    np.testing.assert_allclose(dd, V @ quadratic_grad(X), rtol=1e-8)


def test_random_directions_are_unit_and_reproducible():
    V = random_directions(1000, 3, seed=5)
    np.testing.assert_allclose(np.linalg.norm(V, axis=1), 1.0)
    np.testing.assert_array_equal(V, random_directions(1000, 3, seed=5))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: central_gradient(quadratic, np.zeros((2, 2))), "1-D"),
        (lambda: central_gradient(quadratic, np.array([np.nan])), "finite"),
        (lambda: central_gradient(quadratic, X, rel_step=0.0), "rel_step"),
        (lambda: central_gradient(quadratic, X, noise=2.0), "noise"),
        (lambda: directional_derivatives(quadratic, X, 0), "positive integer"),
        (lambda: directional_derivatives(quadratic, X, np.ones((2, 3))), "shape"),
    ],
)
def test_bad_arguments_are_explained(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# --------------------------------------------------------------------------- the fd.central method


def _fd_method(params: dict, dtype: str = "float64"):
    from odebench.backends import CaseSpec, make_method
    from odebench.problems import get_problem

    problem = get_problem("logistic", {})
    prepared = make_method("fd.central", {"solver": "dopri5", **params}).prepare(
        problem, CaseSpec(rtol=1e-7 if dtype == "float32" else 1e-10, atol=1e-9, dtype=dtype, device="cpu")
    )
    return problem, prepared.outcome(prepared.backward(prepared.forward()))


def test_fd_central_takes_its_rel_step_with_directions_too():
    problem, default = _fd_method({"directions": 2})
    _, wide = _fd_method({"directions": 2, "rel_step": 0.2})
    np.testing.assert_array_equal(default.directions, wide.directions)
    exact = default.directions @ problem.flat_gradient(problem.exact_gradient())
    # A 20% step on a nonlinear loss is off by O(h^2); the default step is not.
    assert np.max(np.abs(default.derivatives - exact)) < 1e-7 * np.max(np.abs(exact))
    assert np.max(np.abs(wide.derivatives - exact)) > 1e-4 * np.max(np.abs(exact))


def test_fd_central_steps_by_the_cases_dtype():
    """In float32 the default step balances float32 rounding (eps32 ** (1/3)), not float64's."""
    errors = {}
    for rel_step in (None, EPS ** (1 / 3)):  # the default, and the float64 step it must not fall back to
        problem, outcome = _fd_method({"rel_step": rel_step}, dtype="float32")
        exact = problem.flat_gradient(problem.exact_gradient())
        errors[rel_step] = np.linalg.norm(problem.flat_gradient(outcome.grads) - exact) / np.linalg.norm(exact)
    # Measured: 1.1e-3 with the float32 step, 1.0e-2 with float64's (rounding of float32 losses over 6e-6 steps).
    assert errors[None] < 3e-3 and errors[None] < errors[EPS ** (1 / 3)] / 5, errors
