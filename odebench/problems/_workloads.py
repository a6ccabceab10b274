"""The workloads people train: a continuous normalizing flow, a latent ODE's decoder, the
ODE block of an image classifier, and a parameter fit to data. Tight references.

Each is written once against ``xp`` like every other problem, at sizes that are
parameters; their data (samples, targets, observations) are fixed by a seed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._checks import check_choice, check_float, check_int, check_odd, save_times
from ._classic import _lotka_volterra_field
from ._neural import lecun_mlp, rk4_numpy
from ._problem import Problem
from ._registry import register
from ._xp import asarray_like, conv2d, logsumexp

# --------------------------------------------------------------------------- cnf

CNF_ESTIMATORS = ("auto", "exact", "hutchinson")
HUTCHINSON_MIN_DIM = 8  # "auto" switches from the exact trace to Hutchinson's estimator here


def eight_gaussians(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """``n`` samples of the 8-Gaussians density (FFJORD's toy data): means on a circle of
    radius 2 in the first two coordinates, standard deviation 0.3 in every coordinate."""
    angle = 2 * np.pi * rng.integers(0, 8, n) / 8
    x = 0.3 * rng.standard_normal((n, dim))
    x[:, 0] += 2.0 * np.cos(angle)
    x[:, 1] += 2.0 * np.sin(angle)
    return x


def _cnf_field(probes: np.ndarray | None):
    """``[z, delta] -> [f(z, t), -tr(df/dz)]`` for f(z, t) = tanh(z W0 + t c + b0) W1 + b1.

    With ``s = 1 - tanh(u)**2`` the Jacobian is ``W1^T diag(s) W0^T``, so the exact trace is
    ``s . d`` with ``d_k = sum_i W0[i, k] W1[k, i]``; Hutchinson's estimate ``e^T J e`` for a
    probe ``e`` is ``sum_k s_k (e W0)_k (e W1^T)_k``. Both are closed forms: no autograd
    inside the field, so every backend evaluates the same mathematics.
    """

    def field(t: Any, y: Any, params: dict[str, Any], xp: Any) -> Any:
        w0, w1 = params["w0"], params["w1"]
        z = y[:, :-1]
        hidden = xp.tanh(z @ w0 + t * params["c"] + params["b0"])
        dz = hidden @ w1 + params["b1"]
        slope = 1.0 - hidden * hidden
        if probes is None:
            trace = slope @ xp.sum(w0 * w1.T, 0)
        else:
            e = asarray_like(probes, y, xp)
            trace = xp.sum(slope * (e @ w0) * (e @ w1.T), 1)
        return xp.concatenate([dz, -trace[:, None]], 1)

    return field


def _cnf_loss(dim: int):
    log_2pi = float(np.log(2 * np.pi))

    def loss(ys: Any, xp: Any) -> Any:
        # log p(x) = log N(z(T)) - delta(T), delta' = -tr(df/dz) from delta(0) = 0 (FFJORD's convention).
        z, delta = ys[-1][:, :-1], ys[-1][:, -1]
        log_base = -0.5 * xp.sum(z * z, 1) - 0.5 * dim * log_2pi
        return -xp.mean(log_base - delta)

    return loss


@register("cnf")
def cnf(
    *,
    dim: int = 2,
    width: int = 32,
    batch: int = 64,
    estimator: str = "auto",
    seed: int = 0,
    t_end: float = 1.0,
    n_save: int = 2,
) -> Problem:
    """A continuous normalizing flow (FFJORD) on a 2-D density: the state is [z, log p].

    Chen et al. ("Neural ordinary differential equations", NeurIPS 2018) and Grathwohl et
    al. ("FFJORD: free-form continuous dynamics for scalable reversible generative models",
    ICLR 2019). A fixed sample of the 8-Gaussians density (batch points, FFJORD's toy data;
    in dim > 2 the extra coordinates are N(0, 0.3**2)) flows under z' = tanh(z W0 + t c + b0) W1 + b1,
    a time-dependent tanh MLP of the given width, while the log-density changes by
    -tr(df/dz). The trace is exact in closed form, or (estimator hutchinson, the default
    from dim 8) Hutchinson's estimate with one fixed Rademacher probe per sample, so the
    problem stays deterministic. Loss: the negative log-likelihood of the sample under a
    standard normal base at t_end. It stresses an augmented state whose last channel feeds
    only the loss, and a field that carries its own Jacobian.

    Args:
        dim: dimension of the data (2 to 4096).
        width: hidden width (1 to 8192).
        batch: number of data points (1 to 65536).
        estimator: auto (exact below dim 8, hutchinson from 8), exact or hutchinson.
        seed: seed of the weights, the data and the probes (an integer >= 0).
        t_end: final time (> 0, <= 100).
        n_save: number of save times, linspace(0, t_end, n_save) (>= 2); the loss reads the last.
    """
    name = "cnf"
    dim = check_int(name, "dim", dim, lo=2, hi=4096)
    width = check_int(name, "width", width, lo=1, hi=8192)
    batch = check_int(name, "batch", batch, lo=1, hi=65536)
    seed = check_int(name, "seed", seed, lo=0)
    estimator = check_choice(name, "estimator", estimator, CNF_ESTIMATORS)
    t = save_times(name, t_end, n_save, max_t_end=100.0)
    rng = np.random.default_rng(seed)
    params = {
        "w0": rng.normal(0.0, dim**-0.5, (dim, width)),
        "c": rng.normal(0.0, 1.0, width),
        "b0": rng.normal(0.0, 0.1, width),
        "w1": rng.normal(0.0, 0.5 * width**-0.5, (width, dim)),
        "b1": np.zeros(dim),
    }
    x = eight_gaussians(rng, batch, dim)
    y0 = np.concatenate([x, np.zeros((batch, 1))], 1)
    hutchinson = estimator == "hutchinson" or (estimator == "auto" and dim >= HUTCHINSON_MIN_DIM)
    probes = rng.choice([-1.0, 1.0], (batch, dim)) if hutchinson else None
    return Problem(
        name=name, vector_field=_cnf_field(probes), y0=y0, params=params, t=t, loss=_cnf_loss(dim),
        max_steps=10_000,
    )  # fmt: skip


# --------------------------------------------------------------------------- latent_ode


@register("latent_ode")
def latent_ode(
    *,
    latent: int = 16,
    width: int = 64,
    depth: int = 1,
    obs_dim: int = 4,
    batch: int = 16,
    seed: int = 0,
    t_end: float = 5.0,
    n_save: int = 50,
) -> Problem:
    """The decoder ODE of a latent ODE: irregular observation times, a loss at every one.

    Rubanova, Chen & Duvenaud ("Latent ODEs for irregularly-sampled time series", NeurIPS
    2019) and Chen et al. 2018: a batch of latent initial states (as an encoder would
    give, here N(0, 1)) evolves under z' = MLP(z), a tanh network with depth hidden layers
    of the given width (LeCun initialisation); a fixed linear decoder maps the latent
    state to obs_dim observables, compared with fixed targets (noisy sinusoids with random
    frequencies and phases) by the mean squared error at n_save irregular save times
    (sorted, drawn uniformly on [0, t_end] with a fixed seed, the first at 0). It stresses
    many, unevenly spaced save times, where every adjoint takes a jump and some solvers
    must step onto each.

    Args:
        latent: latent state dimension (1 to 4096).
        width: hidden width (1 to 8192).
        depth: number of hidden layers (1 to 64).
        obs_dim: number of decoded observables (1 to 4096).
        batch: number of sequences (1 to 65536).
        seed: seed of the weights, the times, the decoder and the targets (an integer >= 0).
        t_end: final time (> 0, <= 1000).
        n_save: number of save times (>= 2), irregular on [0, t_end].
    """
    name = "latent_ode"
    latent = check_int(name, "latent", latent, lo=1, hi=4096)
    width = check_int(name, "width", width, lo=1, hi=8192)
    depth = check_int(name, "depth", depth, lo=1, hi=64)
    obs_dim = check_int(name, "obs_dim", obs_dim, lo=1, hi=4096)
    batch = check_int(name, "batch", batch, lo=1, hi=65536)
    seed = check_int(name, "seed", seed, lo=0)
    regular = save_times(name, t_end, n_save, max_t_end=1000.0)  # checks t_end and n_save
    rng = np.random.default_rng(seed)
    t = np.concatenate([[0.0], np.sort(rng.uniform(0.0, regular[-1], regular.size - 1))])
    if np.any(np.diff(t) <= 0):  # a repeated draw (probability zero in practice): fall back to even spacing
        t = regular
    params, vector_field = lecun_mlp(rng, latent, width, depth)
    y0 = rng.standard_normal((batch, latent))
    decoder = rng.normal(0.0, latent**-0.5, (latent, obs_dim))
    frequency = rng.uniform(0.5, 2.0, (batch, obs_dim))
    phase = rng.uniform(0.0, 2 * np.pi, (batch, obs_dim))
    target = np.sin(frequency * t[:, None, None] + phase) + 0.1 * rng.standard_normal((t.size, batch, obs_dim))

    def loss(ys: Any, xp: Any) -> Any:
        return xp.mean((ys @ asarray_like(decoder, ys, xp) - asarray_like(target, ys, xp)) ** 2)

    return Problem(name=name, vector_field=vector_field, y0=y0, params=params, t=t, loss=loss, max_steps=20_000)


# --------------------------------------------------------------------------- ode_net


def _ode_net_field(t: Any, y: Any, params: dict[str, Any], xp: Any) -> Any:
    channel = (slice(None), None, None)  # a per-channel vector over (channels, height, width)
    hidden = xp.tanh(conv2d(y, params["k0"], xp) + (params["b0"] + t * params["c0"])[channel])
    return conv2d(hidden, params["k1"], xp) + params["b1"][channel]


@register("ode_net")
def ode_net(
    *,
    channels: int = 8,
    size: int = 8,
    batch: int = 32,
    kernel: int = 3,
    classes: int = 10,
    seed: int = 0,
    t_end: float = 1.0,
    n_save: int = 2,
) -> Problem:
    """The ODE block of an image classifier (ODE-Net): a convolutional field on feature maps.

    Chen et al. ("Neural ordinary differential equations", NeurIPS 2018, the MNIST
    ODE-Net) after He et al.'s residual networks (CVPR 2016): h' = conv(tanh(conv(h) + b0 +
    t c0)) + b1 on a batch of feature maps of the given channels and size (32 x 8 x 8 x 8,
    about 16k states, at the defaults), 3 x 3 kernels with zero padding, LeCun-scaled;
    the initial maps are N(0, 1). Loss: the cross-entropy of fixed labels under a fixed
    linear head on the global average pool of h(t_end). It is the large-state,
    few-parameters case (the convolutions share weights across the map), where the
    adjoint's O(1) memory in the state matters most.

    Args:
        channels: feature channels (1 to 1024).
        size: height and width of the maps (1 to 1024).
        batch: number of images (1 to 65536).
        kernel: kernel size, odd (1 to 15).
        classes: number of classes of the head (2 to 10000).
        seed: seed of the weights, the maps, the head and the labels (an integer >= 0).
        t_end: final time (> 0, <= 100).
        n_save: number of save times, linspace(0, t_end, n_save) (>= 2); the loss reads the last.
    """
    name = "ode_net"
    channels = check_int(name, "channels", channels, lo=1, hi=1024)
    size = check_int(name, "size", size, lo=1, hi=1024)
    batch = check_int(name, "batch", batch, lo=1, hi=65536)
    kernel = check_odd(name, "kernel", kernel, lo=1, hi=15)
    classes = check_int(name, "classes", classes, lo=2, hi=10000)
    seed = check_int(name, "seed", seed, lo=0)
    t = save_times(name, t_end, n_save, max_t_end=100.0)
    rng = np.random.default_rng(seed)
    fan_in = channels * kernel * kernel
    params = {
        "k0": rng.normal(0.0, fan_in**-0.5, (channels, channels, kernel, kernel)),
        "b0": rng.normal(0.0, 0.1, channels),
        "c0": rng.normal(0.0, 0.1, channels),
        "k1": rng.normal(0.0, fan_in**-0.5, (channels, channels, kernel, kernel)),
        "b1": np.zeros(channels),
    }
    y0 = rng.standard_normal((batch, channels, size, size))
    head = rng.normal(0.0, channels**-0.5, (channels, classes))
    labels = rng.integers(0, classes, batch)
    picked = np.eye(classes)[labels]

    def loss(ys: Any, xp: Any) -> Any:
        logits = xp.mean(ys[-1], (2, 3)) @ asarray_like(head, ys, xp)
        return xp.mean(logsumexp(logits, xp) - xp.sum(logits * asarray_like(picked, ys, xp), 1))

    return Problem(name=name, vector_field=_ode_net_field, y0=y0, params=params, t=t, loss=loss, max_steps=10_000)


# --------------------------------------------------------------------------- fit

LV_TRUE = {"alpha": 1.5, "beta": 1.0, "gamma": 3.0, "delta": 1.0}


@register("fit")
def fit(*, noise: float = 0.1, offset: float = 0.2, seed: int = 0, t_end: float = 10.0, n_save: int = 100) -> Problem:
    """Fit Lotka-Volterra parameters to noisy observations: the misfit's gradient, mid-fit.

    The parameter-estimation benchmark of the DifferentialEquations.jl tutorials (and of
    Rackauckas et al., "Universal differential equations for scientific machine
    learning", 2020): observations are the Lotka-Volterra trajectory with alpha = 1.5,
    beta = 1, gamma = 3, delta = 1 from (1, 1), at n_save equally spaced times on
    [0, t_end] (computed with RK4 at steps <= 0.001), plus Gaussian noise of standard
    deviation noise (fixed seed). The parameters are where a fit might stand: each true
    value times exp(offset * N(0, 1)) (same seed). Loss: the mean squared misfit over all
    save times. It stresses a loss spread over many save times on an orbit whose phase
    errors grow with t_end.

    Args:
        noise: standard deviation of the observation noise (>= 0, <= 10).
        offset: log-scale spread of the parameters around the truth (>= 0, <= 2).
        seed: seed of the noise and of the parameters (an integer >= 0).
        t_end: final time (> 0, <= 1000).
        n_save: number of observations and save times (>= 2).
    """
    name = "fit"
    noise = check_float(name, "noise", noise, lo=0.0, hi=10.0)
    offset = check_float(name, "offset", offset, lo=0.0, hi=2.0)
    seed = check_int(name, "seed", seed, lo=0)
    t = save_times(name, t_end, n_save, max_t_end=1000.0)
    y0 = np.array([1.0, 1.0])
    truth = {k: np.float64(v) for k, v in LV_TRUE.items()}
    clean = rk4_numpy(_lotka_volterra_field, y0, t, truth, max_step=0.001)
    rng = np.random.default_rng(seed)
    observed = clean + noise * rng.standard_normal(clean.shape)
    params = {k: np.float64(v * np.exp(offset * rng.standard_normal())) for k, v in truth.items()}

    def loss(ys: Any, xp: Any) -> Any:
        return xp.mean((ys - asarray_like(observed, ys, xp)) ** 2)

    return Problem(name=name, vector_field=_lotka_volterra_field, y0=y0, params=params, t=t, loss=loss)
