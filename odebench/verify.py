"""``odebench.gradcheck``: is the gradient of an ODE solve right, and if not, why?

Like ``torch.autograd.gradcheck``, but for solves, where a gradient can be wrong for
three different reasons, each with its own cure:

- **the solve is inaccurate**: the method is faithful to its forward solve, but that
  solve is not accurate enough (the same library's discrete backprop is just as far
  from the truth); tighten the tolerance;
- **the adjoint is inconsistent**: the gradient disagrees with the exact gradient of
  its own forward solve (discrete backprop) by far more than that solve's error, as
  backsolve does when reconstructing the state backwards is unstable; use a method
  that reads the forward state (interpolated, checkpoint);
- **the derivative of the vector field is wrong**: the gradient agrees with discrete
  backprop, but both disagree with finite differences of the loss computed without
  autograd; the vector-Jacobian product (a custom autograd Function, say) is wrong.

Four gradients are computed and compared: the method's, the reference (analytic, or a
tight solve), discrete backprop of the same library, solver and tolerance, and central
differences of a tight forward solve (no autograd anywhere).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._verdicts import adjoint_inconsistent, effective_tolerance, relative_error
from .backends import CaseSpec, Method, make_method
from .problems import Problem

# Full central differences up to this many inputs; random directions beyond.
FD_FULL_MAX = 64
FD_DIRECTIONS = 8


@dataclass
class GradcheckResult:
    """The verdict and the figures behind it.

    Attributes:
        passed: the gradient is within ``tolerance`` of the reference.
        diagnosis: ``ok``, ``solve_inaccurate``, ``adjoint_inconsistent``,
            ``derivative_wrong`` or ``unexplained``.
        explanation: what the figures say, in words, with a suggestion.
        error: ``||g - g_ref|| / ||g_ref||`` (directional projections where FD directions are used).
        solve_error: the same for discrete backprop of the same solver and tolerance.
        consistency: ``||g - g_backprop|| / ||g_backprop||``.
        fd_error: ``||g - g_fd|| / ||g_fd||`` against central differences of a tight solve.
        derivative_error: autograd through that tight solve against the same differences:
            large only when the vector field's derivative itself is wrong.
    """

    passed: bool
    diagnosis: str
    explanation: str
    method: str
    tolerance: float
    error: float
    solve_error: float | None
    consistency: float | None
    fd_error: float
    derivative_error: float
    reference_kind: str
    gradients: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        def fmt(x):
            return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2e}"

        head = "PASS" if self.passed else "FAIL"
        return (
            f"gradcheck {head}: {self.method}: {self.diagnosis}\n"
            f"  error vs reference ({self.reference_kind}) {fmt(self.error)} (tolerance {self.tolerance:.1e})\n"
            f"  discrete backprop vs reference (solve error) {fmt(self.solve_error)}\n"
            f"  method vs discrete backprop (consistency)    {fmt(self.consistency)}\n"
            f"  method vs finite differences of a tight solve {fmt(self.fd_error)}\n"
            f"  autograd vs finite differences, tight solve   {fmt(self.derivative_error)}\n"
            f"  {self.explanation}"
        )


class GradcheckError(AssertionError):
    """Raised by ``gradcheck(..., raise_exception=True)`` when the check fails."""


def _problem_from_model(model, y0, t, loss, params) -> Problem:
    """A Problem from a model given with ``y0, t, loss``: an equinox module or (with
    ``params``) a JAX function go to :meth:`Problem.from_jax` when ``y0`` is a JAX array;
    an ``nn.Module`` or a torch function ``f(t, y, params)`` to :meth:`Problem.from_torch`."""
    from .problems import is_equinox_module

    if is_equinox_module(model) or type(y0).__module__.startswith("jax"):
        return Problem.from_jax(model, y0, t, loss, params, name="user")
    return Problem.from_torch(model, y0, t, loss, params, name="user")


def _gradient(method: Method, problem: Problem, spec: CaseSpec) -> np.ndarray:
    prepared = method.prepare(problem, spec)
    return problem.flat_gradient(prepared.outcome(prepared.backward(prepared.forward())).grads)


def _fd_gradient(problem: Problem, n_directions: int | None, seed: int) -> tuple[np.ndarray | None, np.ndarray]:
    """Central differences (Richardson) of a tight forward solve: (directions or None, values)."""
    from . import fd
    from .problems import loss_function

    x0 = problem.flat_inputs()
    loss = loss_function(problem)  # a tight forward solve, no graph

    if n_directions is None and x0.size <= FD_FULL_MAX:
        return None, fd.central_gradient(loss, x0, richardson=True)
    k = n_directions or FD_DIRECTIONS
    directional = fd.directional_derivatives(loss, x0, k, seed=seed, richardson=True)
    return directional.directions, directional.derivatives


DERIVATIVE_TOL = 1e-5  # autograd through a tight solve vs finite differences of it


def _diagnose(error, solve_error, consistency, derivative_error, tolerance, tol_eff, method_name) -> tuple[str, str]:
    slack = 10.0  # how much larger one discrepancy must be than another to explain it
    if derivative_error > max(DERIVATIVE_TOL, tolerance):
        return "derivative_wrong", (
            f"autograd through a tight solve disagrees with finite differences of that solve by {derivative_error:.1e}: "
            "the derivative of the vector field (its vector-Jacobian product, e.g. a custom autograd Function) "
            "is wrong, whatever the gradient method."
        )
    if error <= tolerance:
        return "ok", f"the gradient matches the reference within {tolerance:.1e}."
    if solve_error is not None and consistency is not None:
        if solve_error > tolerance and consistency * slack <= max(solve_error, error):
            return "solve_inaccurate", (
                f"discrete backprop of the same solver and tolerance is off by {solve_error:.1e} as well: the "
                "forward solve is not accurate enough. Tighten rtol/atol."
            )
        if consistency > tolerance and adjoint_inconsistent(consistency, tol_eff, solve_error):
            return "adjoint_inconsistent", (
                f"the gradient differs from the exact gradient of its own forward solve by {consistency:.1e}, "
                f"while that solve's gradient error is {solve_error:.1e}: {method_name} is inconsistent with its "
                "forward solve (backsolve-type methods do this where solving the state backwards is unstable). "
                "Use a method that reads the forward state (interpolated, checkpoint)."
            )
    return "unexplained", "the error is above the tolerance, and no single cause stands out; see the figures."


def _tight_autograd(problem: Problem, reference) -> np.ndarray:
    """Autograd through a tight solve (the tight reference itself, where it is one)."""
    if reference.kind == "tight":
        return reference.flat
    from .problems import loss_and_gradient

    return problem.flat_gradient(loss_and_gradient(problem).grads)


def gradcheck(
    problem: Problem | Any,
    *args: Any,
    method: str | Method | None = None,
    y0=None,
    t=None,
    loss: Callable | None = None,
    params: Mapping[str, Any] | None = None,
    method_params: Mapping[str, Any] | None = None,
    rtol: float = 1e-6,
    atol: float | None = None,
    dtype: str = "float64",
    device: str = "cpu",
    tolerance: float | None = None,
    fd_directions: int | None = None,
    seed: int = 0,
    raise_exception: bool = False,
) -> GradcheckResult:
    """Check the gradient of an ODE solve computed by ``method``, and explain a failure.

    Called as ``gradcheck(problem, method)`` or ``gradcheck(model, y0, t, loss, method=...)``.

    Args:
        problem: a :class:`~odebench.Problem`; or a model given with ``y0``, ``t`` and
            ``loss(ys)`` (positionally or by keyword): an ``nn.Module`` with
            ``forward(t, y)``, an equinox module, or a function ``f(t, y, params)`` with
            ``params`` (a dict of tensors, or of JAX arrays for a JAX function).
        method: a method name (default ``odebench.backsolve``; ``torchdiffeq.adjoint``,
            ``diffrax.backsolve``, ...) with ``method_params``, or a
            :class:`~odebench.backends.Method` instance; second positional argument after a Problem.
        rtol, atol: the tolerances of the solve being checked (atol defaults to rtol).
        tolerance: the largest acceptable relative error (default ``100 * rtol``,
            at least ``1e-8``).
        fd_directions: directional derivatives instead of full finite differences
            (default: full up to 64 inputs, else 8 random directions).
        raise_exception: raise :class:`GradcheckError` with the explanation on failure.

    Returns:
        A :class:`GradcheckResult`; ``bool(result)`` is the verdict, ``str(result)`` the report.

    Raises:
        MethodError: the method cannot run the problem (a model of the other framework).
    """
    from .backends import MethodError
    from .problems import reference_gradient

    if isinstance(problem, Problem):
        if len(args) > 1 or (args and method is not None):
            raise TypeError("gradcheck(problem, method): give the method once, after the problem")
        method = args[0] if args else method
    else:
        if args and isinstance(args[0], (str, Method)):  # gradcheck(field, method, y0=..., ...)
            method, args = args[0], args[1:]
        if len(args) > 3:
            raise TypeError("gradcheck(model, y0, t, loss, method=...): too many positional arguments")
        given = dict(zip(("y0", "t", "loss"), args))
        y0, t, loss = given.get("y0", y0), given.get("t", t), given.get("loss", loss)
        if problem is None or y0 is None or t is None or loss is None:
            raise TypeError("gradcheck needs a Problem, or a model with y0, t and loss (and params for a function)")
        problem = _problem_from_model(problem, y0, t, loss, params)
    method = "odebench.backsolve" if method is None else method
    method = method if isinstance(method, Method) else make_method(method, method_params or {})
    reason = method.unavailable_reason(device, problem)
    if reason:
        raise MethodError(f"gradcheck: {method.name} cannot check problem {problem.name!r}: {reason}")
    atol = rtol if atol is None else atol
    tolerance = tolerance if tolerance is not None else max(100 * rtol, 1e-8)
    spec = CaseSpec(rtol=rtol, atol=atol, dtype=dtype, device=device, seed=seed)

    g = _gradient(method, problem, spec)
    reference = reference_gradient(problem, cache=problem.name != "user")
    g_ref = reference.flat
    twin = method.discrete_twin()
    g_bp = _gradient(twin, problem, spec) if twin is not None else None
    directions, g_fd = _fd_gradient(problem, fd_directions, seed)
    project = (lambda v: v) if directions is None else (lambda v: directions @ v)

    error = relative_error(g, g_ref)
    solve_error = relative_error(g_bp, g_ref) if g_bp is not None else None
    consistency = relative_error(g, g_bp) if g_bp is not None else None
    if g_bp is None and method.family == "discrete":
        solve_error, consistency = error, 0.0  # the method differentiates the discrete solve itself
    fd_error = relative_error(project(g), g_fd)
    derivative_error = relative_error(project(_tight_autograd(problem, reference)), g_fd)
    tol_eff = effective_tolerance(rtol, dtype, reference.error_estimate)
    diagnosis, explanation = _diagnose(
        error, solve_error, consistency, derivative_error, tolerance, tol_eff, method.name
    )
    result = GradcheckResult(
        passed=diagnosis == "ok", diagnosis=diagnosis, explanation=explanation, method=method.label(),
        tolerance=tolerance, error=error, solve_error=solve_error, consistency=consistency, fd_error=fd_error,
        derivative_error=derivative_error, reference_kind=reference.kind,
        gradients={"method": g, "reference": g_ref, **({"backprop": g_bp} if g_bp is not None else {})},
    )  # fmt: skip
    if raise_exception and not result.passed:
        raise GradcheckError(str(result))
    return result
