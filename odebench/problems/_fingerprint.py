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
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._problem import Problem

SEED = 20_240_917  # of the probe inputs and the projections; changing it changes every fingerprint
STEP = 1e-3  # relative size of a probe's move away from y0 and the parameters
FLOOR = 1e-3  # zero entries move by STEP * FLOOR * rms(array), so that terms they multiply count
PROJECTIONS = 4  # random projections per array: a change in any direction moves them
QUANTUM = 1e-10  # resolution of a projection of the unit direction, about 10 significant digits


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


def _uniform(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    # Uniform doubles are exact multiples of 2**-53: the same bits on every platform.
    return 2.0 * rng.random(shape) - 1.0


def _scale(x: np.ndarray) -> np.ndarray:
    finite = x[np.isfinite(x)]
    rms = float(np.sqrt(np.mean(finite**2))) if finite.size else 0.0
    return np.abs(x) + FLOOR * (rms if rms > 0 else 1.0)


def _near(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``x`` moved by about STEP of its size: small, so that stiff fields stay finite."""
    return x + STEP * _scale(x) * _uniform(rng, x.shape)


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
        u, v = _uniform(rng, (2, *y0.shape))
        a, b = (w.reshape(-1, *([1] * y0.ndim)) for w in _uniform(rng, (2, t.size)))
        trajectories.append(y0 + STEP * _scale(y0) * (a * u + b * v))
    return Probes(points=points, trajectories=tuple(trajectories), starts=((ys[1], ps[1]),))


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class _Namespace:
    xp: Any
    array: Callable[[np.ndarray], Any]
    scalar: Callable[[float], Any]
    context: Callable[[], contextlib.AbstractContextManager[Any]]


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


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().double().numpy()
    return np.asarray(value, dtype=np.float64)


def _evaluate(problem: Problem, calls: Callable[[_Namespace], Iterator[Any]]) -> list[np.ndarray] | None:
    """The results of ``calls`` in the first namespace that evaluates all of them, or None."""
    for name in _namespaces(problem):
        try:
            ns = _namespace(name)
            with ns.context(), np.errstate(all="ignore"):
                return [_to_numpy(value) for value in calls(ns)]
        except Exception:  # noqa: BLE001 - user code may raise anything in a namespace it was not written for
            continue
    return None


def _field_values(problem: Problem, probe: Probes) -> Callable[[_Namespace], Iterator[Any]]:
    def calls(ns: _Namespace) -> Iterator[Any]:
        for t, y, params in probe.points:
            inputs = {key: ns.array(value) for key, value in params.items()}
            yield problem.vector_field(ns.scalar(t), ns.array(y), inputs, ns.xp)

    return calls


def _loss_values(problem: Problem, probe: Probes) -> Callable[[_Namespace], Iterator[Any]]:
    def calls(ns: _Namespace) -> Iterator[Any]:
        for ys in probe.trajectories:
            yield problem.loss(ns.array(ys), ns.xp)

    return calls


def _solution_values(
    solution: Callable[..., Any], t: np.ndarray, probe: Probes
) -> Callable[[_Namespace], Iterator[Any]]:
    def calls(ns: _Namespace) -> Iterator[Any]:
        for y0, params in probe.starts:
            inputs = {key: ns.array(value) for key, value in params.items()}
            yield solution(ns.array(y0), inputs, t, ns.xp)

    return calls


# --------------------------------------------------------------------------- digests


def encode(value: Any) -> bytes:
    """An array as bytes that ignore round-off: its shape, where it is not finite, its norm
    to 10 significant digits and :data:`PROJECTIONS` projections of its direction, quantized."""
    array = np.asarray(value, dtype=np.float64)
    flat = array.reshape(-1)
    finite = np.isfinite(flat)
    parts = [repr(array.shape).encode()]
    if not finite.all():
        kinds = np.where(finite, 0, np.where(np.isnan(flat), 1, np.where(flat > 0, 2, 3))).astype(np.uint8)
        parts.append(hashlib.sha256(kinds.tobytes()).digest())
        flat = np.where(finite, flat, 0.0)
    top = float(np.max(np.abs(flat))) if flat.size else 0.0
    if top > 0:
        unit = flat / top  # scaled first: the norm of 1e200s does not overflow
        length = float(np.linalg.norm(unit))
        weights = _uniform(np.random.default_rng(SEED), (PROJECTIONS, flat.size))
        projections = np.rint((weights @ unit) / length / QUANTUM)
        parts += [f"{top * length:.9e}".encode(), projections.astype("<i8").tobytes()]
    else:
        parts.append(b"zero")
    return b"|".join(parts)


def _const(value: Any) -> str:
    """A code constant without addresses (nested code objects by content, sets sorted)."""
    if isinstance(value, types.CodeType):
        return code_digest(value)
    if isinstance(value, (tuple, list)):
        return "(" + ",".join(_const(v) for v in value) + ")"
    if isinstance(value, (frozenset, set)):
        return "{" + ",".join(sorted(_const(v) for v in value)) + "}"
    return repr(value)


def code_digest(code: types.CodeType) -> str:
    """A digest of a code object's bytecode, names and constants, nested code included.

    ``repr(co_consts)`` is not one: a nested function or a generator expression is a code
    constant whose repr holds its memory address.
    """
    text = "|".join([code.co_code.hex(), ",".join(code.co_names), _const(code.co_consts)])
    return hashlib.sha256(text.encode()).hexdigest()


def _names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def _is_array(obj: Any) -> bool:
    """A NumPy array, torch tensor or JAX array (not a class, nor a function named ``detach``)."""
    if isinstance(obj, np.ndarray):
        return True
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(obj, torch.Tensor):
        return True
    jax = sys.modules.get("jax")
    return jax is not None and isinstance(obj, jax.Array)


def function_digest(fn: Any, depth: int = 3) -> str:
    """A digest of a function's code and of what it reads: closure cells, defaults and the
    module globals it names (numbers, arrays, other functions), ``depth`` levels deep; of a
    module, its architecture, its classes' ``forward`` and its state; of another object,
    its class and attributes. No memory address enters it."""
    digest = hashlib.sha256()
    seen: set[int] = set()  # against cycles only; no identity enters the digest

    def visit(obj: Any, level: int) -> None:
        if level > depth:
            return
        if isinstance(obj, (bool, int, float, complex, str, bytes, type(None))):
            digest.update(repr(obj).encode())
        elif _is_array(obj):
            digest.update(encode(_to_numpy(obj)))
        elif isinstance(obj, (list, tuple)):
            for item in obj:
                visit(item, level + 1)
        elif isinstance(obj, dict):
            for key, item in obj.items():
                digest.update(repr(key).encode())
                visit(item, level + 1)
        elif not isinstance(obj, type) and hasattr(obj, "state_dict") and hasattr(obj, "named_modules"):  # an nn.Module
            if id(obj) in seen:
                return
            seen.add(id(obj))
            digest.update(repr(obj).encode())  # the architecture
            for _, sub in obj.named_modules():
                visit(type(sub).forward, level + 1)
            for key, tensor in obj.state_dict().items():
                digest.update(key.encode())
                visit(tensor, level + 1)
        elif isinstance(obj, (types.FunctionType, types.MethodType)):
            if id(obj) in seen:
                return
            seen.add(id(obj))
            func = obj.__func__ if isinstance(obj, types.MethodType) else obj
            if isinstance(obj, types.MethodType):
                visit(obj.__self__, level + 1)
            digest.update(code_digest(func.__code__).encode())
            visit(func.__defaults__, level + 1)
            for cell in func.__closure__ or ():
                with contextlib.suppress(ValueError):  # an empty cell
                    visit(cell.cell_contents, level + 1)
            for name in sorted(_names(func.__code__)):
                if name in func.__globals__:
                    digest.update(name.encode())
                    visit(func.__globals__[name], level + 1)
        elif isinstance(obj, types.ModuleType):
            digest.update(obj.__name__.encode())
        else:  # a class or any other object: what it is and what it holds, not where it lives
            kind = obj if isinstance(obj, type) else type(obj)
            digest.update(f"{kind.__module__}.{kind.__qualname__}".encode())
            if not isinstance(obj, type) and id(obj) not in seen and isinstance(getattr(obj, "__dict__", None), dict):
                seen.add(id(obj))
                visit(vars(obj), level + 1)

    visit(fn, 0)
    return digest.hexdigest()


def fingerprint(problem: Problem, reference: dict[str, Any]) -> str | None:
    """The digest of ``problem``'s mathematics and of the ``reference`` configuration that
    computes its reference gradient (see the module docstring).

    Returns None when no namespace can evaluate the vector field, the loss or the closed
    form at the probe inputs: such a problem has no fingerprint, and its reference is not cached.
    """
    probe = probes(problem)
    groups = [_evaluate(problem, _field_values(problem, probe)), _evaluate(problem, _loss_values(problem, probe))]
    if problem.analytic and problem.exact_solution is not None:  # only an analytic reference uses it
        groups.append(_evaluate(problem, _solution_values(problem.exact_solution, problem.t, probe)))
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
