"""Classic nonlinear test problems from the numerical ODE literature; tight references."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._checks import check_float, check_int, save_times
from ._losses import scaled_mean_square
from ._problem import Problem, is_stiff
from ._registry import register


def _positive(problem: str, hi: float, **values: Any) -> dict[str, np.float64]:
    """Each of ``values`` checked to lie in ``(0, hi]``, as a float64 parameter."""
    return {
        key: np.float64(check_float(problem, key, value, lo=0.0, hi=hi, lo_open=True)) for key, value in values.items()
    }


def _lotka_volterra_field(t: float, y: Any, params: dict[str, Any], xp: Any) -> Any:
    prey, predator = y[0], y[1]
    meet = prey * predator
    return xp.stack(
        [params["alpha"] * prey - params["beta"] * meet, params["delta"] * meet - params["gamma"] * predator], 0
    )


@register("lotka_volterra")
def lotka_volterra(
    *,
    alpha: float = 1.5,
    beta: float = 1.0,
    gamma: float = 3.0,
    delta: float = 1.0,
    t_end: float = 10.0,
    n_save: int = 2,
) -> Problem:
    """Lotka-Volterra predator-prey model x' = alpha x - beta x y, y' = delta x y - gamma y.

    Lotka ("Elements of Physical Biology", 1925) and Volterra (1926); the default
    parameters and y(0) = (1, 1) are those of the DifferentialEquations.jl tutorial and of
    many parameter-estimation benchmarks. The orbits are closed, so errors in phase
    accumulate over the horizon (t_end = 10 is about two cycles) rather than being damped.
    Four named parameters: the small, well-conditioned nonlinear case. Loss: the mean of
    (y / 3)**2 over the save times after the start.

    Args:
        alpha: prey growth rate (> 0, <= 100).
        beta: predation rate (> 0, <= 100).
        gamma: predator death rate (> 0, <= 100).
        delta: predator growth per prey eaten (> 0, <= 100).
        t_end: final time (> 0).
        n_save: number of save times, linspace(0, t_end, n_save) (>= 2).
    """
    name = "lotka_volterra"
    rates = _positive(name, 100.0, alpha=alpha, beta=beta, gamma=gamma, delta=delta)
    t = save_times(name, t_end, n_save)
    return Problem(
        name=name, vector_field=_lotka_volterra_field, y0=np.array([1.0, 1.0]), params=rates, t=t,
        loss=scaled_mean_square(3.0), stiff=False,
    )  # fmt: skip


def _van_der_pol_field(t: float, y: Any, params: dict[str, Any], xp: Any) -> Any:
    x, v = y[0], y[1]
    return xp.stack([v, params["mu"] * (1.0 - x * x) * v - x], 0)


def _first_component_mean_square(ys: Any, xp: Any) -> Any:
    return xp.mean(ys[1:, 0] ** 2)


@register("van_der_pol")
def van_der_pol(*, mu: float = 1.0, t_end: float = 10.0, n_save: int = 2) -> Problem:
    """Van der Pol oscillator x'' - mu (1 - x**2) x' + x = 0, as (x, v) from (2, 0).

    Van der Pol ("On relaxation-oscillations", Phil. Mag. 2, 1926); the standard stiffness
    dial of Hairer & Wanner ("Solving Ordinary Differential Equations II", Springer 1996,
    section IV.1). At mu = 1 a smooth limit cycle of period 6.66; as mu grows the cycle
    becomes a relaxation oscillation with period about 1.61 mu, slow phases where the
    Jacobian has an eigenvalue near -3 mu (stiff from mu ~ 100 with a horizon of a
    period) and fast jumps that force tiny steps. It stresses step-size control and, for
    large mu, explicit solvers and adjoints alike. Loss: the mean of x**2 over the save
    times after the start (x stays within about [-2, 2] for every mu, v does not).

    Args:
        mu: nonlinearity and stiffness (>= 0, <= 1e6; 0 is the harmonic oscillator).
        t_end: final time (> 0).
        n_save: number of save times, linspace(0, t_end, n_save) (>= 2).
    """
    name = "van_der_pol"
    mu = check_float(name, "mu", mu, lo=0.0, hi=1e6)
    t = save_times(name, t_end, n_save)
    return Problem(
        name=name, vector_field=_van_der_pol_field, y0=np.array([2.0, 0.0]), params={"mu": np.float64(mu)}, t=t,
        loss=_first_component_mean_square, stiff=is_stiff(3.0 * mu, t[-1]),
    )  # fmt: skip


def _lorenz_field(t: float, y: Any, params: dict[str, Any], xp: Any) -> Any:
    x, v, z = y[0], y[1], y[2]
    return xp.stack([params["sigma"] * (v - x), x * (params["rho"] - z) - v, x * v - params["beta"] * z], 0)


@register("lorenz")
def lorenz(
    *, sigma: float = 10.0, rho: float = 28.0, beta: float = 8.0 / 3.0, t_end: float = 1.0, n_save: int = 2
) -> Problem:
    """Lorenz system x' = sigma (y - x), y' = x (rho - z) - y, z' = x y - beta z.

    Lorenz ("Deterministic nonperiodic flow", J. Atmos. Sci. 20, 1963), with his
    parameters and the initial value (-8, 8, 27) used by Hairer, Norsett & Wanner
    ("Solving Ordinary Differential Equations I", Springer 1993, section I.16). Chaotic:
    the largest Lyapunov exponent is about 0.9, so the true gradient grows like
    e^(0.9 t_end) and so does every solver's error in it. Sweep t_end to see where each
    gradient method loses accuracy, and where even the tight reference does (its error
    estimate says so). Loss: the mean of (y / 10)**2 over the save times after the start.

    Args:
        sigma: Prandtl number (> 0, <= 1e3).
        rho: Rayleigh number (> 0, <= 1e3).
        beta: geometric factor (> 0, <= 1e3).
        t_end: final time (> 0, <= 100).
        n_save: number of save times, linspace(0, t_end, n_save) (>= 2).
    """
    name = "lorenz"
    params = _positive(name, 1e3, sigma=sigma, rho=rho, beta=beta)
    t = save_times(name, t_end, n_save, max_t_end=100.0)
    return Problem(
        name=name, vector_field=_lorenz_field, y0=np.array([-8.0, 8.0, 27.0]), params=params, t=t,
        loss=scaled_mean_square(10.0), stiff=False,
    )  # fmt: skip


# The middle species stays near 1e-5; it is carried as 1e4 * y2 so that one absolute
# tolerance suits all three (a common rescaling; the dynamics are unchanged).
_ROBERTSON_SCALE = 1e4


def _robertson_field(t: float, y: Any, params: dict[str, Any], xp: Any) -> Any:
    k = xp.exp(params["log_k"])
    s = _ROBERTSON_SCALE
    y1, z2, y3 = y[0], y[1], y[2]
    slow = k[0] * y1
    exchange = (k[2] / s) * z2 * y3
    pairing = (k[1] / (s * s)) * z2 * z2
    return xp.stack([exchange - slow, s * (slow - exchange - pairing), pairing], 0)


@register("robertson")
def robertson(*, k1: float = 0.04, k2: float = 3e7, k3: float = 1e4, t_end: float = 1.0, n_save: int = 2) -> Problem:
    """Robertson's stiff chemical kinetics: three species, rates 0.04, 3e7 and 1e4.

    Robertson ("The solution of a set of reaction rate equations", in Numerical Analysis,
    Academic Press 1966); the classic stiff test problem of Hairer & Wanner ("Solving
    Ordinary Differential Equations II", Springer 1996, section IV.1).
    y1' = -k1 y1 + k3 y2 y3, y2' = k1 y1 - k3 y2 y3 - k2 y2**2, y3' = k2 y2**2, from
    (1, 0, 0). After a transient of about 1e-4 the Jacobian has an eigenvalue of order
    -1e3 to -1e4, so explicit solvers take steps limited by stability, not accuracy: the
    default horizon keeps that to about a thousand steps. The state is (y1, 1e4 y2, y3) so
    that all three components are O(1) under one absolute tolerance; the parameters are
    the log-rates log_k = (log k1, log k2, log k3), which puts rates that differ by nine
    orders of magnitude on one scale. Loss: the mean of the squared scaled state over the
    save times after the start.

    Args:
        k1: rate of A -> B (> 0, <= 1e3).
        k2: rate of 2B -> B + C (> 0, <= 1e10).
        k3: rate of B + C -> A + C (> 0, <= 1e8).
        t_end: final time (> 0, <= 1e3; explicit solvers need about 1000 steps per unit time).
        n_save: number of save times, linspace(0, t_end, n_save) (>= 2).
    """
    name = "robertson"
    rates = {**_positive(name, 1e3, k1=k1), **_positive(name, 1e10, k2=k2), **_positive(name, 1e8, k3=k3)}
    t = save_times(name, t_end, n_save, max_t_end=1e3)
    return Problem(
        name=name, vector_field=_robertson_field, y0=np.array([1.0, 0.0, 0.0]),
        params={"log_k": np.log(np.array(list(rates.values())))}, t=t, loss=scaled_mean_square(1.0), stiff=True,
        max_steps=1_000_000,
    )  # fmt: skip


def _laplacian(w: Any, boundary: Any, xp: Any) -> Any:
    """Second difference of a grid function with the value ``boundary`` at both ends."""
    edge = xp.ones_like(w[:1]) * boundary
    return xp.concatenate([edge, w[:-1]], 0) - 2.0 * w + xp.concatenate([w[1:], edge], 0)


def _brusselator_field(t: float, y: Any, params: dict[str, Any], xp: Any) -> Any:
    a, b = params["A"], params["B"]
    n = y.shape[0] // 2
    u, v = y[:n], y[n:]
    # Dirichlet data at the homogeneous equilibrium (A, B/A): (1, 3) at the defaults.
    c = params["alpha"] * (n + 1) ** 2
    reaction = u * u * v
    du = a + reaction - (b + 1.0) * u + c * _laplacian(u, a, xp)
    dv = b * u - reaction + c * _laplacian(v, b / a, xp)
    return xp.concatenate([du, dv], 0)


@register("brusselator")
def brusselator(
    *, n: int = 32, A: float = 1.0, B: float = 3.0, alpha: float = 0.02, t_end: float = 10.0, n_save: int = 2
) -> Problem:
    """The 1-D Brusselator reaction-diffusion system on n grid points (state size 2n).

    Prigogine & Lefever's autocatalytic reaction ("Symmetry breaking instabilities in
    dissipative systems II", J. Chem. Phys. 48, 1968), discretised in space by the method
    of lines exactly as the BRUSS problem of Hairer & Wanner ("Solving Ordinary
    Differential Equations II", Springer 1996, section IV.1):
    u_i' = A + u_i**2 v_i - (B + 1) u_i + alpha (n+1)**2 (u_(i-1) - 2 u_i + u_(i+1)),
    v_i' = B u_i - u_i**2 v_i + alpha (n+1)**2 (v_(i-1) - 2 v_i + v_(i+1)), on x_i = i/(n+1)
    with u(x, 0) = 1 + sin(2 pi x), v(x, 0) = 3 and boundary values (A, B/A). The state
    is (u, v) flattened. It is the state-size scaling problem: n sets the dimension while
    the parameters stay three (A, B, alpha). Diffusion makes it stiff as n grows (the
    fastest rate is about 4 alpha (n+1)**2); at the defaults it is not, and explicit
    solvers do well. Loss: the mean of (y / 3)**2 over the save times after the start.

    Args:
        n: number of interior grid points (1 to 100000); the state has 2n components.
        A: feed rate (> 0, <= 100).
        B: reaction rate (> 0, <= 100).
        alpha: diffusion coefficient (> 0, <= 10).
        t_end: final time (> 0).
        n_save: number of save times, linspace(0, t_end, n_save) (>= 2).
    """
    name = "brusselator"
    n = check_int(name, "n", n, lo=1, hi=100_000)
    params = {**_positive(name, 100.0, A=A, B=B), **_positive(name, 10.0, alpha=alpha)}
    t = save_times(name, t_end, n_save)
    x = np.arange(1, n + 1) / (n + 1)
    y0 = np.concatenate([1.0 + np.sin(2.0 * np.pi * x), np.full(n, 3.0)])
    rate = 4.0 * params["alpha"] * (n + 1) ** 2
    return Problem(
        name=name, vector_field=_brusselator_field, y0=y0, params=params, t=t, loss=scaled_mean_square(3.0),
        stiff=is_stiff(rate, t[-1]),
    )  # fmt: skip
