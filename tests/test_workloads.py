"""The training workloads (cnf, latent_ode, ode_net, fit): sizes, one mathematics in every
namespace, closed-form traces against autograd, and gradients against finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from problem_helpers import scipy_loss_function

from odebench.problems import ProblemError, get_problem, list_problems, loss_and_gradient

jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)
jnp = jax.numpy

WORKLOADS = ("cnf", "latent_ode", "ode_net", "fit")
# Small sizes, so that a tight solve and finite differences take a second or two.
SMALL = {
    "cnf": {"width": 8, "batch": 5},
    "cnf_hutchinson": {"dim": 8, "width": 6, "batch": 3},
    "latent_ode": {"latent": 4, "width": 8, "obs_dim": 2, "batch": 3, "n_save": 12, "t_end": 2.0},
    "ode_net": {"channels": 2, "size": 4, "batch": 2, "classes": 3},
    "fit": {"n_save": 20, "t_end": 3.0},
}


def small(key: str):
    return get_problem(key.split("_hutchinson")[0], SMALL[key])


def test_workloads_are_listed_with_their_parameters():
    infos = {info.name: info for info in list_problems()}
    assert set(WORKLOADS) <= set(infos)
    assert infos["ode_net"].n_state == 32 * 8 * 8 * 8  # batch 32 of 8 channels x 8 x 8
    assert infos["latent_ode"].parameters["latent"] == 16 and infos["latent_ode"].parameters["n_save"] == 50
    assert infos["fit"].parameters["n_save"] == 100
    for name in WORKLOADS:
        assert get_problem(name).max_steps >= 10_000


def test_latent_ode_save_times_are_irregular_sorted_and_fixed():
    p, q = get_problem("latent_ode"), get_problem("latent_ode")
    np.testing.assert_array_equal(p.t, q.t)
    assert p.t.size == 50 and p.t[0] == 0.0 and np.all(np.diff(p.t) > 0)
    assert np.std(np.diff(p.t)) > 0.3 * np.mean(np.diff(p.t))  # not an even grid


def test_fit_observations_are_the_true_orbit_plus_noise():
    clean = get_problem("fit", {"noise": 0.0, "offset": 0.0})
    assert clean.loss(np.stack([clean.y0] * 100), np) > 0.1
    # At the true parameters and without noise, the solved orbit fits the observations.
    assert loss_and_gradient(clean, rtol=1e-10, atol=1e-10).loss < 1e-12
    noisy = get_problem("fit")
    assert loss_and_gradient(noisy, rtol=1e-8, atol=1e-8).loss > 0.01


@pytest.mark.parametrize("key", list(SMALL))
def test_numpy_torch_and_jax_compute_the_same_numbers(key):
    p = small(key)
    rng = np.random.default_rng(1)
    y = p.y0 + 0.1 * rng.standard_normal(p.y0.shape)
    ys = np.stack([p.y0 + 0.1 * k * rng.standard_normal(p.y0.shape) for k in range(len(p.t))])
    want_f, want_loss = np.asarray(p.vector_field(0.3, y, p.params, np)), float(p.loss(ys, np))
    tp = {k: torch.tensor(v) for k, v in p.params.items()}
    got_torch = p.vector_field(torch.tensor(0.3, dtype=torch.float64), torch.tensor(y), tp, torch).numpy()
    field = jax.jit(lambda t, y, q: p.vector_field(t, y, q, jnp))
    got_jax = np.asarray(field(jnp.asarray(0.3), jnp.asarray(y), {k: jnp.asarray(v) for k, v in p.params.items()}))
    for got in (got_torch, got_jax):
        np.testing.assert_allclose(got, want_f, rtol=1e-12, atol=1e-12 * np.abs(want_f).max())
    assert float(p.loss(torch.tensor(ys), torch)) == pytest.approx(want_loss, rel=1e-12)
    assert float(p.loss(jnp.asarray(ys), jnp)) == pytest.approx(want_loss, rel=1e-12)


@pytest.mark.parametrize("key", ["cnf", "cnf_hutchinson"])
def test_cnf_trace_matches_the_autograd_jacobian(key):
    p = small(key)
    params = {k: torch.tensor(v) for k, v in p.params.items()}
    y = torch.tensor(p.y0)
    t = torch.tensor(0.7, dtype=torch.float64)
    out = p.vector_field(t, y, params, torch)
    dim = y.shape[1] - 1

    def velocity(z):
        return p.vector_field(t, torch.cat([z, y[:, dim:]], 1), params, torch)[:, :dim]

    jac = torch.autograd.functional.jacobian(velocity, y[:, :dim])  # (batch, dim, batch, dim)
    probes = p.vector_field.__closure__[0].cell_contents  # None for the exact trace
    for b in range(y.shape[0]):
        if probes is None:
            want = torch.trace(jac[b, :, b, :])
        else:
            e = torch.tensor(probes[b])
            want = e @ jac[b, :, b, :] @ e
        assert float(-out[b, -1]) == pytest.approx(float(want), rel=1e-12, abs=1e-13)
    assert (probes is None) == (key == "cnf")


@pytest.mark.parametrize("key", list(SMALL))
def test_gradient_agrees_with_finite_differences_of_an_independent_solver(key):
    p = small(key)
    g = p.flat_gradient(loss_and_gradient(p, rtol=1e-11, atol=1e-11).grads)
    loss = scipy_loss_function(p, rtol=1e-11, atol=1e-11)
    x0 = p.flat_inputs()
    rng = np.random.default_rng(0)
    for _ in range(2):
        v = rng.standard_normal(x0.size)
        v /= np.linalg.norm(v)
        h = 1e-4
        fd = (loss(x0 + h * v) - loss(x0 - h * v)) / (2 * h)
        assert g @ v == pytest.approx(fd, rel=2e-5, abs=1e-8 * np.linalg.norm(g))


@pytest.mark.parametrize(
    ("name", "param", "value"),
    [("cnf", "dim", 1), ("cnf", "estimator", "hutch"), ("latent_ode", "latent", 0), ("ode_net", "kernel", 4),
     ("ode_net", "channels", 2.0), ("fit", "noise", -1.0), ("fit", "n_save", 1)],
)  # fmt: skip
def test_bad_parameters_are_explained(name, param, value):
    with pytest.raises(ProblemError, match=rf"problem '{name}': parameter '{param}' must be .*got {value!r}"):
        get_problem(name, {param: value})


def test_neural_mlp_takes_large_sizes():
    p = get_problem("neural_mlp", {"dim": 8, "width": 10_000, "depth": 1, "batch": 100_000})
    assert p.n_state == 800_000 and p.n_params == 8 * 10_000 + 10_000 + 10_000 * 8 + 8
