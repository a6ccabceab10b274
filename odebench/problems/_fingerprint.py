"""The fingerprint of a problem's mathematics, which a cached reference gradient is keyed by.

A digest of:

- the vector field, evaluated in float64 at four probe points ``(t, y, params)``: the
  start ``(t[0], y0, params)`` and three pseudo-random ones (fixed seed) with times in
  ``[t[0], t[-1]]``, states near ``y0`` and parameters near the problem's own;
- the loss, at two probe trajectories near ``y0`` of shape ``(len(t), *y0.shape)``;
- for an analytic reference, the closed form ``exact_solution`` at one probe point near
  ``(y0, params)`` (once: a closed form can cost a third of the reference itself), and a
  digest of the code of ``exact_gradient`` (a function without arguments, so its code and
  what it reads are all that can be known without calling it);
- the data ``y0``, ``params`` and ``t``, the shapes, names and dtype, and the reference
  configuration (its version, solver and tolerances, analytic or tight, framework).

Probing sees what the code computes, wherever the numbers come from: a constant in a
helper module, a captured array, a nested function. Numbers enter the digest rounded to
about 10 significant digits (each array as its norm and a few fixed random projections of
its direction, quantized), so round-off that differs between platforms or libraries does
not change it, while any change of a constant does. NaN and infinities are hashed by
position. Nothing in it depends on a memory address or the process.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ._digest import SEED, encode, function_digest, to_numpy, uniform

if TYPE_CHECKING:  # pragma: no cover
    from ._problem import Problem

STEP = 1e-3  # relative size of a probe's move away from y0 and the parameters
FLOOR = 1e-3  # zero entries move by STEP * FLOOR * rms(array), so that terms they multiply count


@dataclass(frozen=True)
class Probes:
    """The inputs the problem's functions are evaluated at.

    Attributes:
        points: ``(t, y, params)`` for the vector field.
        trajectories: ``ys`` of shape ``(len(t), *y0.shape)`` for the loss.
        starts: ``(y0, params)`` for ``exact_solution``.
    """

    points: tuple[tuple[float, np.ndarray, dict[str, np.ndarray]], ...]
    trajectories: tuple[np.ndarray, ...]
    starts: tuple[tuple[np.ndarray, dict[str, np.ndarray]], ...]


def _scale(x: np.ndarray) -> np.ndarray:
    finite = x[np.isfinite(x)]
    rms = float(np.sqrt(np.mean(finite**2))) if finite.size else 0.0
    return np.abs(x) + FLOOR * (rms if rms > 0 else 1.0)


def _near(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``x`` moved by about STEP of its size: small, so that stiff fields stay finite."""
    return x + STEP * _scale(x) * uniform(rng, x.shape)


def probes(problem: Problem) -> Probes:
    """The probe inputs of ``problem``: fixed for given shapes, data and save times."""
    rng = np.random.default_rng(SEED)
    y0, params, t = problem.y0, problem.params, problem.t
    times = t[0] + (t[-1] - t[0]) * rng.random(2)
    ys = [_near(y0, rng) for _ in range(2)]
    ps = [{key: _near(value, rng) for key, value in params.items()} for _ in range(2)]
    points = ((float(t[0]), y0, params), (float(times[0]), ys[0], params), (float(times[1]), y0, ps[0]),
              (float(t[-1]), ys[1], ps[1]))  # fmt: skip
    trajectories = []
    for _ in range(2):
        # Two random directions mixed with random weights per save time: a cheap path near y0.
        u, v = uniform(rng, (2, *y0.shape))
        a, b = (w.reshape(-1, *([1] * y0.ndim)) for w in uniform(rng, (2, t.size)))
        trajectories.append(y0 + STEP * _scale(y0) * (a * u + b * v))
    return Probes(points=points, trajectories=tuple(trajectories), starts=((ys[1], ps[1]),))


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class _Namespace:
    xp: Any
    array: Callable[[np.ndarray], Any]
    scalar: Callable[[float], Any]
    context: Callable[[], contextlib.AbstractContextManager[Any]]

    def arrays(self, params: dict[str, np.ndarray]) -> dict[str, Any]:
        return {key: self.array(value) for key, value in params.items()}


def _namespace(name: str) -> _Namespace:
    if name == "numpy":
        return _Namespace(np, lambda a: np.array(a, dtype=np.float64), np.float64, contextlib.nullcontext)
    if name == "torch":
        import torch

        return _Namespace(
            torch, lambda a: torch.tensor(np.asarray(a), dtype=torch.float64),
            lambda s: torch.tensor(s, dtype=torch.float64), torch.no_grad,
        )  # fmt: skip
    import jax

    jax.config.update("jax_enable_x64", True)  # as the JAX reference solve does
    import jax.numpy as jnp

    return _Namespace(
        jnp, lambda a: jnp.asarray(a, dtype=jnp.float64), lambda s: jnp.asarray(s, dtype=jnp.float64),
        contextlib.nullcontext,
    )  # fmt: skip


def _namespaces(problem: Problem) -> tuple[str, ...]:
    # NumPy first: it costs microseconds per call where torch costs tens. A problem written
    # against xp that NumPy cannot evaluate (a matrix exponential) falls back to torch.
    return (problem.framework,) if problem.framework else ("numpy", "torch")


def _evaluate(problem: Problem, calls: Callable[[_Namespace], list[Any]]) -> list[np.ndarray] | None:
    """The results of ``calls`` in the first namespace that evaluates all of them, or None."""
    for name in _namespaces(problem):
        try:
            ns = _namespace(name)
            with ns.context(), np.errstate(all="ignore"):
                return [to_numpy(value) for value in calls(ns)]
        except Exception:  # noqa: BLE001 - user code may raise anything in a namespace it was not written for
            continue
    return None


def fingerprint(problem: Problem, reference: dict[str, Any]) -> str | None:
    """The digest of ``problem``'s mathematics and of the ``reference`` configuration that
    computes its reference gradient (see the module docstring).

    Returns None when no namespace can evaluate the vector field, the loss or the closed
    form at the probe inputs: such a problem has no fingerprint, and its reference is not cached.
    """
    probe = probes(problem)
    field, loss, solution = problem.vector_field, problem.loss, problem.exact_solution
    calls = [
        lambda ns: [field(ns.scalar(t), ns.array(y), ns.arrays(p), ns.xp) for t, y, p in probe.points],
        lambda ns: [loss(ns.array(ys), ns.xp) for ys in probe.trajectories],
    ]
    if problem.analytic and solution is not None:  # only an analytic reference uses it
        calls.append(lambda ns: [solution(ns.array(y0), ns.arrays(p), problem.t, ns.xp) for y0, p in probe.starts])
    groups = [_evaluate(problem, call) for call in calls]
    if any(group is None for group in groups):
        return None
    facts = {
        "reference": reference,
        "framework": problem.framework,
        "analytic": problem.analytic,
        "exact_gradient": function_digest(problem.exact_gradient) if problem.exact_gradient else None,
        "exact_solution": problem.analytic and problem.exact_solution is not None,
        "dtype": str(problem.y0.dtype),
        "y0": list(problem.y0.shape),
        "params": [[key, list(value.shape)] for key, value in problem.params.items()],
        "t": list(problem.t.shape),
    }
    digest = hashlib.sha256(json.dumps(facts, sort_keys=True).encode())
    for array in (problem.y0, *problem.params.values(), problem.t):
        digest.update(encode(array))
    for group in groups:
        for values in group or ():
            digest.update(encode(values))
    return digest.hexdigest()
