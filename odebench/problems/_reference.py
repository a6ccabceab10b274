"""Reference gradients: analytic where a closed form exists, else a tight solve; cached on disk.

A tight reference is the exact gradient of the discrete solve by the project's ``odeint``
with the 8th-order Dormand-Prince pair at ``rtol = atol = 1e-12`` in float64, stepping onto
every save time (``gradient="checkpoint"`` differentiates that discrete solve exactly).
Its own error is estimated by two more solves, and is the larger relative difference of
the gradients: dopri8 at ten times looser tolerances (under tolerance proportionality
that difference is the looser solve's error, about 10x the reference's), and Tsitouras'
5(4) pair at the same tolerances (a different method, which still differs where the save
times, not the tolerance, dictate the steps, so that both dopri8 solves take the same
steps and agree to rounding). On the problems with closed forms the estimate bounds the
true error, typically by a factor of 3 to 15.

References are cached under ``$ODEBENCH_CACHE/references/`` (default
``~/.cache/odebench``), keyed by the fingerprint of the problem's mathematics and of the
reference configuration (:func:`fingerprint`: the vector field, the loss and any closed
form evaluated at fixed probe inputs, the data, the shapes, the solver, the tolerances and
:data:`REFERENCE_VERSION`), so that an edited constant anywhere the vector field reads it
gets a new reference, and an unchanged problem the same one in every process. The file
stores the fingerprint; one that disagrees, or cannot be read, is recomputed. Files are
written atomically, so concurrent workers are safe. A problem that cannot be probed has
no fingerprint, and its reference is computed every time.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import SolverError  # not odebench.ode's re-export: that imports torch
from . import _fingerprint
from ._problem import Problem
from ._solve import loss_and_gradient

# Bump whenever the way references are computed changes: old cache entries are then ignored.
REFERENCE_VERSION = "1"

TIGHT: dict[str, Any] = {"solver": "dopri8", "rtol": 1e-12, "atol": 1e-12, "gradient": "checkpoint", "save_at": "step"}
CHECKS: tuple[dict[str, Any], ...] = ({**TIGHT, "rtol": 1e-11, "atol": 1e-11}, {**TIGHT, "solver": "tsit5"})


class ReferenceFailure(RuntimeError):
    """The reference solve failed (step budget exhausted, non-finite values)."""


@dataclass(frozen=True, eq=False)
class Reference:
    """The trusted gradient of a problem.

    Attributes:
        grads: ``{"y0": ..., <param>: ...}`` as float64 arrays of the inputs' shapes.
        flat: the same, concatenated in ``problem.gradient_names`` order.
        loss: the loss at the problem's inputs (from the closed form when analytic).
        kind: ``"analytic"`` or ``"tight"``.
        error_estimate: estimated relative error ``||g - g_true|| / ||g_true||``; 0 when analytic.
        method: how it was computed, in words.
        seconds: wall time of the computation (of the original one, for a cache hit).
        cached: whether it was read from the cache.
    """

    grads: dict[str, np.ndarray]
    flat: np.ndarray
    loss: float
    kind: str
    error_estimate: float
    method: str
    seconds: float
    cached: bool = False


def cache_dir() -> Path:
    """Where references are cached: ``$ODEBENCH_CACHE/references`` (default ``~/.cache/odebench``)."""
    root = os.environ.get("ODEBENCH_CACHE") or os.path.join("~", ".cache", "odebench")
    return Path(root).expanduser() / "references"


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def fingerprint(problem: Problem) -> str | None:
    """The cache key of ``problem``'s reference: the digest of its mathematics (see
    :mod:`._fingerprint`) and of how references are computed (:data:`REFERENCE_VERSION`,
    :data:`TIGHT`, :data:`CHECKS`); None when the problem cannot be probed."""
    return _fingerprint.fingerprint(problem, {"version": REFERENCE_VERSION, "tight": TIGHT, "checks": list(CHECKS)})


def _cache_path(problem: Problem, key: str) -> Path:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", problem.name)[:64]
    return cache_dir() / f"{stem}-{key[:32]}.json"


def _read(path: Path, problem: Problem, key: str) -> Reference | None:
    """The cached reference, or None when absent, unreadable or of other mathematics."""
    try:
        entry = json.loads(path.read_text())
        if entry["fingerprint"] != key or entry["version"] != REFERENCE_VERSION:
            return None
        grads = {name: np.asarray(entry["grads"][name], dtype=np.float64) for name in problem.gradient_names}
        flat = problem.flat_gradient(grads)  # checks every shape
        if not np.all(np.isfinite(flat)):
            return None
        return Reference(
            grads=grads, flat=flat, loss=float(entry["loss"]), kind=str(entry["kind"]),
            error_estimate=float(entry["error_estimate"]), method=str(entry["method"]),
            seconds=float(entry["seconds"]), cached=True,
        )  # fmt: skip
    except Exception:  # absent, truncated, corrupt or stale: recompute
        return None


def _write(path: Path, problem: Problem, key: str, ref: Reference) -> None:
    entry = {
        "fingerprint": key,
        "version": REFERENCE_VERSION,
        "problem": problem.name,
        "config": _jsonable(problem.config),
        "grads": {name: ref.grads[name].tolist() for name in problem.gradient_names},
        "loss": ref.loss,
        "kind": ref.kind,
        "error_estimate": ref.error_estimate,
        "method": ref.method,
        "seconds": ref.seconds,
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(entry, handle)
            os.replace(tmp, path)  # atomic: readers see the old file or the new one, never half
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        pass  # a read-only or full cache costs a recomputation next time, nothing more


def _describe(settings: dict[str, Any]) -> str:
    return (
        f"odebench.ode {settings['solver']} rtol={settings['rtol']:g} atol={settings['atol']:g} "
        f"gradient={settings['gradient']} save_at={settings['save_at']}"
    )


def _tight(problem: Problem) -> tuple[dict[str, np.ndarray], float, float, str]:
    try:
        tight = loss_and_gradient(problem, **TIGHT)
    except SolverError as exc:
        raise ReferenceFailure(
            f"problem {problem.name!r}: the tight reference solve failed ({type(exc).__name__}: {exc})"
        ) from exc
    g = problem.flat_gradient(tight.grads)
    if not (np.all(np.isfinite(g)) and math.isfinite(tight.loss)):
        raise ReferenceFailure(f"problem {problem.name!r}: the tight reference gradient is not finite")
    scale = float(np.linalg.norm(g)) or 1.0
    errors = []
    for settings in CHECKS:
        try:
            check = problem.flat_gradient(loss_and_gradient(problem, **settings).grads)
            error = float(np.linalg.norm(g - check)) / scale
        except SolverError:
            error = math.inf  # a check that cannot finish vouches for nothing
        errors.append(error if math.isfinite(error) else math.inf)
    compared = ", ".join(f"{e:.1e} vs {_describe(c)}" for e, c in zip(errors, CHECKS, strict=True))
    method = (
        f"{_describe(TIGHT)} (exact gradient of the discrete solve, {tight.stats['steps_forward']} steps); "
        f"error estimate: the larger of {compared}"
    )
    return tight.grads, tight.loss, max(errors), method


def _analytic(problem: Problem) -> tuple[dict[str, np.ndarray], float, float, str]:
    from ._torch import closed_form_loss_and_gradient

    assert problem.exact_gradient is not None  # called only for problem.analytic
    grads = {k: np.asarray(v, dtype=np.float64) for k, v in problem.exact_gradient().items()}
    if problem.exact_solution is not None:
        loss = closed_form_loss_and_gradient(problem).loss
        method = "analytic: exact_gradient; loss from the closed-form solution"
    else:
        loss = loss_and_gradient(problem, **TIGHT).loss
        method = f"analytic: exact_gradient; loss from a tight solve, {_describe(TIGHT)}"
    return grads, loss, 0.0, method


def reference_gradient(problem: Problem, *, cache: bool = True) -> Reference:
    """The reference gradient of ``problem`` with respect to ``y0`` and every parameter.

    Analytic when ``problem.exact_gradient`` is given (``error_estimate`` 0), else a tight
    solve with an estimated error (see the module docstring). With ``cache`` the result is
    read from and written to :func:`cache_dir`, under the problem's :func:`fingerprint`.

    Raises:
        ReferenceFailure: the tight solve failed or gave non-finite values.
    """
    key = fingerprint(problem) if cache else None
    if key is not None:
        hit = _read(_cache_path(problem, key), problem, key)
        if hit is not None:
            return hit
    start = time.perf_counter()
    kind = "analytic" if problem.analytic else "tight"
    grads, loss, error, method = _analytic(problem) if problem.analytic else _tight(problem)
    ref = Reference(
        grads=grads, flat=problem.flat_gradient(grads), loss=float(loss), kind=kind, error_estimate=error,
        method=method, seconds=time.perf_counter() - start,
    )  # fmt: skip
    if key is not None:
        _write(_cache_path(problem, key), problem, key, ref)
    return ref
