"""Problems with a closed-form solution, hence an analytic reference gradient.

Each gives ``exact_solution(y0, params, t, xp)``; :func:`with_closed_form` turns it into
``exact_gradient`` by differentiating the closed form with torch autograd (exact to
rounding: no time stepping is involved).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ._checks import check_float, check_int, save_times
from ._losses import mean_square
from ._problem import Problem, is_stiff
from ._registry import register
from ._xp import asarray_like, expm


def with_closed_form(problem: Problem) -> Problem:
    """``problem`` with ``exact_gradient`` derived from its ``exact_solution``."""

    def exact_gradient() -> dict[str, np.ndarray]:
        from ._torch import closed_form_loss_and_gradient

        return closed_form_loss_and_gradient(problem).grads

    return dataclasses.replace(problem, exact_gradient=exact_gradient)


def _linear_field(t: float, y: Any, params: dict[str, Any], xp: Any) -> Any:
    return params["A"] @ y


def _linear_solution(y0: Any, params: dict[str, Any], t: np.ndarray, xp: Any) -> Any:
    # y(t_k) = exp(A t_k) y0; one batched matrix exponential over the save times.
    A = params["A"]
    tk = asarray_like(t, A, xp)[:, None, None]
    return expm(A[None] * tk, xp) @ y0


@register("linear")
def linear(*, dim: int = 4, seed: int = 0, t_end: float = 1.0, n_save: int = 2) -> Problem:
    """Linear system y' = A y with a seeded random, stable matrix A.

    The simplest ODE with a closed form, y(t) = exp(A t) y0 (Moler & Van Loan, "Nineteen
    dubious ways to compute the exponential of a matrix, twenty-five years later", SIAM
    Review 45, 2003). A = G / sqrt(dim) - I with G standard normal, so its eigenvalues
    fill the unit disc around -1 (circular law): stable, oscillatory, non-normal. The
    reference gradient with respect to y0 and every entry of A is analytic: autograd
    through the matrix exponential, whose derivative is its Frechet derivative (Al-Mohy &
    Higham, SIAM J. Matrix Anal. Appl. 30, 2009). It stresses the plain correctness of a
    gradient method and, through dim, the dense state-to-parameter coupling. Loss: the mean
    of y**2 over the save times after the start.

    Args:
        dim: state dimension (1 to 2048); A has dim**2 parameters.
        seed: seed of A and y0 (an integer >= 0).
        t_end: final time (> 0).
        n_save: number of save times, linspace(0, t_end, n_save) (>= 2).
    """
    name = "linear"
    dim = check_int(name, "dim", dim, lo=1, hi=2048)
    seed = check_int(name, "seed", seed, lo=0)
    t = save_times(name, t_end, n_save)
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((dim, dim)) / np.sqrt(dim) - np.eye(dim)
    y0 = rng.standard_normal(dim)
    return with_closed_form(Problem(
        name=name, vector_field=_linear_field, y0=y0, params={"A": A}, t=t, loss=mean_square,
        exact_solution=_linear_solution, stiff=False,
    ))  # fmt: skip


def _oscillator_matrix(params: dict[str, Any], xp: Any) -> Any:
    omega, zeta = params["omega"], params["zeta"]
    zero = omega * 0.0
    return xp.stack([xp.stack([zero, zero + 1.0], 0), xp.stack([-omega * omega, -2.0 * zeta * omega], 0)], 0)


def _oscillator_field(t: float, y: Any, params: dict[str, Any], xp: Any) -> Any:
    omega, zeta = params["omega"], params["zeta"]
    x, v = y[0], y[1]
    return xp.stack([v, -2.0 * zeta * omega * v - omega * omega * x], 0)


def _oscillator_solution(y0: Any, params: dict[str, Any], t: np.ndarray, xp: Any) -> Any:
    return _linear_solution(y0, {"A": _oscillator_matrix(params, xp)}, t, xp)


@register("oscillator")
def oscillator(*, omega: float = 1.0, zeta: float = 0.1, t_end: float = 10.0, n_save: int = 2) -> Problem:
    """Damped harmonic oscillator x'' + 2 zeta omega x' + omega**2 x = 0.

    The textbook linear second-order system (e.g. Goldstein, "Classical Mechanics",
    Addison-Wesley 1980), as the state (x, v) with x(0) = 1, v(0) = 0:
    under-damped for zeta < 1, critically damped at 1, over-damped above. Its solution is
    the exponential of the 2x2 companion matrix, so the gradient with respect to the
    initial state, omega and zeta is analytic in every regime. With the default horizon
    (about 1.6 periods) it checks phase accuracy and the parameter gradients of an
    oscillatory solution; large omega * t_end makes it long and oscillatory, zeta * omega *
    t_end large makes it decay. Loss: the mean of x**2 + v**2 over the save times after the
    start.

    Args:
        omega: natural angular frequency (> 0, <= 1e4).
        zeta: damping ratio (>= 0, <= 1e4).
        t_end: final time (> 0).
        n_save: number of save times, linspace(0, t_end, n_save) (>= 2).
    """
    name = "oscillator"
    omega = check_float(name, "omega", omega, lo=0.0, hi=1e4, lo_open=True)
    zeta = check_float(name, "zeta", zeta, lo=0.0, hi=1e4)
    t = save_times(name, t_end, n_save)
    rate = omega * (zeta + np.sqrt(max(zeta * zeta - 1.0, 0.0)))  # fastest decay rate
    return with_closed_form(Problem(
        name=name, vector_field=_oscillator_field, y0=np.array([1.0, 0.0]),
        params={"omega": np.float64(omega), "zeta": np.float64(zeta)}, t=t, loss=mean_square,
        exact_solution=_oscillator_solution, stiff=is_stiff(rate, t[-1]),
    ))  # fmt: skip


def _logistic_field(t: float, y: Any, params: dict[str, Any], xp: Any) -> Any:
    return params["r"] * y * (1.0 - y / params["K"])


def _logistic_solution(y0: Any, params: dict[str, Any], t: np.ndarray, xp: Any) -> Any:
    r, K = params["r"], params["K"]
    growth = xp.exp(r * asarray_like(t, y0, xp))[:, None]
    return K * y0 * growth / (K + y0 * (growth - 1.0))


@register("logistic")
def logistic(*, r: float = 1.0, K: float = 1.0, t_end: float = 5.0, n_save: int = 2) -> Problem:
    """Logistic growth y' = r y (1 - y / K) from y(0) = 0.1.

    Verhulst's population model ("Notice sur la loi que la population suit dans son
    accroissement", Corresp. Math. Phys. 10, 1838), with the closed form
    y(t) = K y0 e^(r t) / (K + y0 (e^(r t) - 1)), so the gradient with respect to y0, r and
    K is analytic. A scalar nonlinear problem: the sensitivity to y0 fades as the solution
    saturates at K while that to K grows, so the gradient's parts change scale along the
    horizon. Loss: the mean of y**2 over the save times after the start.

    Args:
        r: growth rate (a finite number, |r| <= 100; negative r decays).
        K: carrying capacity (> 0, <= 1e6).
        t_end: final time (> 0).
        n_save: number of save times, linspace(0, t_end, n_save) (>= 2).
    """
    name = "logistic"
    r = check_float(name, "r", r, lo=-100.0, hi=100.0)
    K = check_float(name, "K", K, lo=0.0, hi=1e6, lo_open=True)
    t = save_times(name, t_end, n_save)
    return with_closed_form(Problem(
        name=name, vector_field=_logistic_field, y0=np.array([0.1]),
        params={"r": np.float64(r), "K": np.float64(K)}, t=t, loss=mean_square,
        exact_solution=_logistic_solution, stiff=is_stiff(abs(r), t[-1]),
    ))  # fmt: skip


def _stiff_decay_field(t: float, y: Any, params: dict[str, Any], xp: Any) -> Any:
    fast = y[0]
    return xp.stack([-params["k"] * fast, fast], 0)


def _stiff_decay_solution(y0: Any, params: dict[str, Any], t: np.ndarray, xp: Any) -> Any:
    k = params["k"]
    decay = xp.exp(-k * asarray_like(t, y0, xp))
    return xp.stack([y0[0] * decay, y0[1] + y0[0] * (1.0 - decay) / k], -1)


def _stiff_decay_loss(ys: Any, xp: Any) -> Any:
    return xp.mean(ys[1:, 1])


@register("stiff_decay")
def stiff_decay(*, k: float = 40.0, t_end: float = 1.0, n_save: int = 2) -> Problem:
    """A fast decaying mode read out through a slow one: y1' = -k y1, y2' = y1.

    From y(0) = (1, 0), y2(T) = (1 - e^(-k T)) / k, and the loss is y2 at the final time
    (the mean of y2 over the save times after the start when n_save > 2), so the gradient
    with respect to y0 and k is analytic. It is the known failure of the backsolve
    adjoint: solving the forward state backwards in time turns the decay e^(-k t) into
    growth e^(k t), and the reconstructed state, hence the gradient, is wrong by a factor
    of order e^(k T) times the solver's error (Gholami, Keutzer & Biros, "ANODE:
    unconditionally accurate memory-efficient gradients for neural ODEs", IJCAI 2019).
    Methods that keep the forward state (backprop, checkpointing, interpolation) are
    unaffected. Raise k or t_end to make it worse.

    Args:
        k: decay rate of the fast mode (> 0, <= 1e6).
        t_end: final time (> 0).
        n_save: number of save times, linspace(0, t_end, n_save) (>= 2).
    """
    name = "stiff_decay"
    k = check_float(name, "k", k, lo=0.0, hi=1e6, lo_open=True)
    t = save_times(name, t_end, n_save)
    return with_closed_form(Problem(
        name=name, vector_field=_stiff_decay_field, y0=np.array([1.0, 0.0]), params={"k": np.float64(k)},
        t=t, loss=_stiff_decay_loss, exact_solution=_stiff_decay_solution, stiff=is_stiff(k, t[-1]),
    ))  # fmt: skip
