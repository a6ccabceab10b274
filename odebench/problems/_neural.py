"""Neural vector fields: seeded tanh MLPs, as trained in neural ODEs; tight references."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ._checks import check_int, save_times
from ._losses import mean_square
from ._problem import Problem
from ._registry import register
from ._xp import asarray_like


def mlp(h: Any, params: dict[str, Any], n_layers: int, xp: Any) -> Any:
    """``n_layers`` affine maps ``w{i}, b{i}`` with tanh between them (none after the last)."""
    for i in range(n_layers):
        h = h @ params[f"w{i}"] + params[f"b{i}"]
        if i < n_layers - 1:
            h = xp.tanh(h)
    return h


def init_mlp(
    rng: np.random.Generator, sizes: Sequence[int], weight_std: Callable[[int], float], bias_std: float
) -> dict[str, np.ndarray]:
    """Weights ``w{i}`` of shape ``(sizes[i], sizes[i+1])`` (inputs times outputs) and biases."""
    params = {}
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        params[f"w{i}"] = rng.normal(0.0, weight_std(fan_in), (fan_in, fan_out))
        params[f"b{i}"] = rng.normal(0.0, bias_std, fan_out) if bias_std > 0 else np.zeros(fan_out)
    return params


def lecun_mlp(rng: np.random.Generator, dim: int, width: int, depth: int) -> tuple[dict[str, np.ndarray], Callable]:
    """The parameters (LeCun weights, biases N(0, 0.1**2)) and the field ``y' = mlp(y)`` of a tanh MLP."""
    params = init_mlp(rng, [dim, *[width] * depth, dim], lambda fan_in: fan_in**-0.5, 0.1)

    def vector_field(t: Any, y: Any, params: dict[str, Any], xp: Any) -> Any:
        return mlp(y, params, depth + 1, xp)

    return params, vector_field


@register("neural_mlp")
def neural_mlp(
    *, dim: int = 4, width: int = 32, depth: int = 2, batch: int = 8, seed: int = 0, t_end: float = 1.0, n_save: int = 2
) -> Problem:
    """A neural ODE y' = MLP(y): a seeded tanh network on a batch of initial states.

    The model class of Chen, Rubanova, Bettencourt & Duvenaud ("Neural ordinary
    differential equations", NeurIPS 2018) at initialisation: depth hidden tanh layers
    of the given width and a linear output layer, weights N(0, 1/fan_in) (LeCun scaling,
    so pre-activations and dy/dt are O(1): the state moves by about 40% of its size over
    t_end = 1), biases N(0, 0.1**2), initial states N(0, 1) of shape (batch, dim);
    autonomous, as in most neural-ODE benchmarks (e.g. Kidger, Chen & Lyons, "'Hey,
    that's not an ODE': faster ODE adjoints via seminorms", ICML 2021). It is the parameter-count scaling problem: width and depth set the number of
    parameters (dim*width + (depth-1)*width**2 + width*dim plus biases) at a fixed state,
    which is where adjoint methods earn their memory savings and seminorms their speed.
    Loss: the mean of y**2 over the save times after the start, the batch and the state.

    Args:
        dim: state dimension per sample (1 to 65536).
        width: hidden width (1 to 65536).
        depth: number of hidden layers (1 to 256).
        batch: number of initial states integrated together (1 to 2**20).
        seed: seed of the weights and initial states (an integer >= 0).
        t_end: final time (> 0).
        n_save: number of save times, linspace(0, t_end, n_save) (>= 2).
    """
    name = "neural_mlp"
    dim = check_int(name, "dim", dim, lo=1, hi=65536)
    width = check_int(name, "width", width, lo=1, hi=65536)
    depth = check_int(name, "depth", depth, lo=1, hi=256)
    batch = check_int(name, "batch", batch, lo=1, hi=2**20)
    seed = check_int(name, "seed", seed, lo=0)
    t = save_times(name, t_end, n_save)
    rng = np.random.default_rng(seed)
    params, vector_field = lecun_mlp(rng, dim, width, depth)
    y0 = rng.standard_normal((batch, dim))
    return Problem(name=name, vector_field=vector_field, y0=y0, params=params, t=t, loss=mean_square, stiff=False)


# The ground truth of the torchdiffeq demo: y' = y**3 A with y a row vector.
SPIRAL_A = np.array([[-0.1, 2.0], [-2.0, -0.1]])
SPIRAL_Y0 = np.array([2.0, 0.0])


def _spiral_truth(t: float, y: Any, params: dict[str, Any], xp: Any) -> Any:
    return (y**3) @ params["A"]


def _spiral_model(t: float, y: Any, params: dict[str, Any], xp: Any) -> Any:
    return mlp(y**3, params, 2, xp)


def rk4_numpy(field: Callable, y0: np.ndarray, t: np.ndarray, params: dict[str, Any], max_step: float) -> np.ndarray:
    """Classical RK4 in NumPy with equal steps of at most ``max_step`` between save times."""
    ys = [y0]
    y = y0
    for t0, t1 in zip(t[:-1], t[1:], strict=True):
        n = max(1, int(np.ceil((t1 - t0) / max_step)))
        h = (t1 - t0) / n
        for i in range(n):
            s = t0 + i * h
            k1 = field(s, y, params, np)
            k2 = field(s + h / 2, y + h / 2 * k1, params, np)
            k3 = field(s + h / 2, y + h / 2 * k2, params, np)
            k4 = field(s + h, y + h * k3, params, np)
            y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        ys.append(y)
    return np.stack(ys)


@register("spiral")
def spiral(*, width: int = 50, seed: int = 0, t_end: float = 25.0, n_save: int = 100) -> Problem:
    """Fit a cubic spiral with a neural ODE: the demo of the original neural-ODE paper.

    From torchdiffeq's examples/ode_demo.py (Chen et al., "Neural ordinary differential
    equations", NeurIPS 2018): the data are the trajectory of y' = y**3 A,
    A = [[-0.1, 2], [-2, -0.1]], from y(0) = (2, 0) at n_save equally spaced times on
    [0, t_end] (generated here with RK4 at steps <= 0.0025, error about 1e-8); the model is
    y' = MLP(y**3) with one tanh hidden layer of the given width, weights N(0, 0.1**2) and
    zero biases (the demo's initialisation, here seeded). The loss is the mean squared error
    between the model's trajectory and the data over all save times after the start (the
    demo's L1 loss is replaced by the smooth MSE). It stresses a loss spread over many
    save times, so every adjoint must add a jump at each of them, and a realistic
    training-time gradient.

    Args:
        width: hidden width of the model (1 to 4096).
        seed: seed of the model's weights (an integer >= 0).
        t_end: final time of the data (> 0, <= 100).
        n_save: number of data points and save times (>= 2).
    """
    name = "spiral"
    width = check_int(name, "width", width, lo=1, hi=4096)
    seed = check_int(name, "seed", seed, lo=0)
    t = save_times(name, t_end, n_save, max_t_end=100.0)
    target = rk4_numpy(_spiral_truth, SPIRAL_Y0, t, {"A": SPIRAL_A}, max_step=0.0025)
    params = init_mlp(np.random.default_rng(seed), [2, width, 2], lambda fan_in: 0.1, 0.0)

    def loss(ys: Any, xp: Any) -> Any:
        return xp.mean((ys[1:] - asarray_like(target[1:], ys, xp)) ** 2)

    return Problem(name=name, vector_field=_spiral_model, y0=SPIRAL_Y0, params=params, t=t, loss=loss, stiff=False)
