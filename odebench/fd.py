"""Finite-difference gradients: central differences, Richardson extrapolation, random directions.

Pure NumPy. ``f`` maps a flat float64 vector to a float (e.g. a problem's loss through a
solve, see ``odebench.problems``).

Step rule. Coordinate ``i`` is perturbed by ``h_i = rel_step * max(|x_i|, 1)``, rounded
so that ``x_i + h_i`` is exactly representable (``h_i = (x_i + h_i) - x_i``). A central
difference has truncation error ``O(h**2)`` and rounding error ``O(noise / h)``, where
``noise`` is the relative accuracy of ``f``; the two balance at
``rel_step = noise**(1/3)``, which is the default, with ``noise`` machine epsilon
(``rel_step ~ 6e-6``, error about ``eps**(2/3) ~ 4e-11`` relative to f's scale). Richardson extrapolation combines steps
``h`` and ``h/2`` to cancel the ``h**2`` term (4 evaluations per coordinate, truncation
``O(h**4)``), so its balanced step is ``noise**(1/5)`` (``~7e-4``, error about ``eps**(4/5) ~ 3e-13``).
Pass ``noise`` when ``f`` is less accurate than that (float32 arithmetic: ``noise=1e-7``;
a stochastic or iterative ``f``: its tolerance). An adaptive ODE solve needs no such
allowance in practice: its step sequence depends smoothly on the inputs except where an
accept/reject decision flips, which tiny perturbations rarely cause, so differences of a
solve at ``rtol = 1e-12`` behave as if ``f`` were exact to rounding (the measured error of
Richardson differences of such solves is about ``1e-10`` relative).

Directional derivatives take ``K`` random unit directions ``v`` (seeded Gaussian,
normalised) and difference along each with one step ``h = rel_step * max(1, rms(x))``:
two evaluations per direction instead of two per coordinate, for problems with many
parameters. ``V @ g`` is then compared with the returned derivatives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

EPS = float(np.finfo(np.float64).eps)


class Directional(NamedTuple):
    """Directional derivatives: ``derivatives[k] ~ directions[k] @ grad f(x)``."""

    directions: np.ndarray  # (K, n), unit rows
    derivatives: np.ndarray  # (K,)


def default_rel_step(*, richardson: bool = False, noise: float | None = None) -> float:
    """``noise**(1/3)`` (``noise**(1/5)`` with Richardson); ``noise`` defaults to machine epsilon."""
    noise = EPS if noise is None else float(noise)
    if not (0 < noise < 1):
        raise ValueError(f"noise must be in (0, 1), got {noise!r}")
    return noise ** (1 / 5 if richardson else 1 / 3)


def _as_vector(x) -> np.ndarray:
    x = np.array(x, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"x must be a non-empty 1-D vector, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("x must be finite")
    return x


def _rel_step(rel_step: float | None, richardson: bool, noise: float | None) -> float:
    if rel_step is None:
        return default_rel_step(richardson=richardson, noise=noise)
    rel_step = float(rel_step)
    if not (0 < rel_step < 1):
        raise ValueError(f"rel_step must be in (0, 1), got {rel_step!r}")
    return rel_step


def _difference(f: Callable[[np.ndarray], float], x: np.ndarray, step: np.ndarray, h: float) -> float:
    """``(f(x + step) - f(x - step)) / (2 h)``."""
    return (float(f(x + step)) - float(f(x - step))) / (2.0 * h)


def _along(f: Callable[[np.ndarray], float], x: np.ndarray, direction: np.ndarray, h: float, richardson: bool):
    """The derivative of ``f`` at ``x`` along ``direction`` by a step ``h``; with Richardson,
    also by ``h/2``, and ``(4 D(h/2) - D(h)) / 3`` cancels the ``h**2`` error term."""
    d_h = _difference(f, x, h * direction, h)
    if not richardson:
        return d_h
    return (4.0 * _difference(f, x, 0.5 * h * direction, 0.5 * h) - d_h) / 3.0


def central_gradient(
    f: Callable[[np.ndarray], float],
    x,
    *,
    richardson: bool = False,
    rel_step: float | None = None,
    noise: float | None = None,
) -> np.ndarray:
    """The gradient of ``f`` at ``x`` by central differences, one coordinate at a time.

    Args:
        f: maps a flat float64 vector to a float.
        x: the point (a 1-D vector).
        richardson: extrapolate from steps ``h`` and ``h/2`` (4 evaluations per
            coordinate instead of 2; error ``O(h**4)`` instead of ``O(h**2)``).
        rel_step: the relative step (see the module docstring); default from ``noise``.
        noise: the relative accuracy of ``f`` (default machine epsilon).

    Returns:
        The gradient, a float64 vector of ``x``'s shape.
    """
    x = _as_vector(x)
    rel = _rel_step(rel_step, richardson, noise)
    grad = np.empty_like(x)
    unit = np.zeros_like(x)
    for i in range(x.size):
        # The step actually taken: (x + h) - x == h exactly, so no rounding error enters h.
        h = (x[i] + rel * max(abs(x[i]), 1.0)) - x[i]
        unit[i] = 1.0
        grad[i] = _along(f, x, unit, h, richardson)
        unit[i] = 0.0
    return grad


def random_directions(n: int, k: int, *, seed: int = 0) -> np.ndarray:
    """``k`` seeded random unit vectors in ``R^n`` (normalised Gaussians), shape ``(k, n)``."""
    if int(k) != k or k < 1:
        raise ValueError(f"the number of directions must be a positive integer, got {k!r}")
    v = np.random.default_rng(seed).standard_normal((int(k), int(n)))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def directional_derivatives(
    f: Callable[[np.ndarray], float],
    x,
    directions: int | np.ndarray,
    *,
    seed: int = 0,
    richardson: bool = False,
    rel_step: float | None = None,
    noise: float | None = None,
) -> Directional:
    """Derivatives of ``f`` at ``x`` along ``directions`` (2 or 4 evaluations each).

    Args:
        f: maps a flat float64 vector to a float.
        x: the point (a 1-D vector of size n).
        directions: ``K`` for K seeded random unit directions, or a ``(K, n)`` array of
            directions (used as given; their norms scale the derivatives).
        seed: seed of the random directions.
        richardson, rel_step, noise: as for :func:`central_gradient`.

    Returns:
        ``Directional(directions, derivatives)``, so that ``derivatives ~ directions @ grad``.
    """
    x = _as_vector(x)
    rel = _rel_step(rel_step, richardson, noise)
    if isinstance(directions, (int, np.integer)) and not isinstance(directions, bool):
        V = random_directions(x.size, int(directions), seed=seed)
    else:
        V = np.array(directions, dtype=np.float64)
        if V.ndim != 2 or V.shape[1] != x.size or V.shape[0] < 1:
            raise ValueError(f"directions must be a count or an array of shape (K, {x.size}), got {V.shape}")
    h = rel * max(1.0, float(np.sqrt(np.mean(x * x))))
    dd = np.array([_along(f, x, v, h, richardson) for v in V])
    return Directional(directions=V, derivatives=dd)
