"""``odeint``: the public entry point of the solver core."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import torch

from ._adjoint import AdjointFunction, Backsolve, Checkpoint, Counted, Interpolated, ModeOptions
from ._core import ErrorNorm, Integrator, StepControl
from ._forward import Forward
from ._quadrature import Quadrature
from ._reversible import NAME as REVERSIBLE_HEUN, Reversible, ReversibleHeun
from ._stats import SolveStats
from ._symplectic import Symplectic
from ._tableau import TABLEAUX, ButcherTableau, SolverNameError, get_tableau

MODES = {
    "backsolve": Backsolve,
    "interpolated": Interpolated,
    "checkpoint": Checkpoint,
    "forward": Forward,
    "quadrature": Quadrature,
    "symplectic": Symplectic,
    "reversible": Reversible,
}
GRADIENT_MODES = ("backprop", *MODES)


@dataclass
class Solution:
    """The result of :func:`odeint`.

    Attributes:
        ys: the solution at the save times, shape ``(len(t), *y0.shape)``; differentiable.
        t: the save times (a float64 tensor on the CPU).
        stats: exact counts; the backward ones fill in when ``.backward()`` runs.
    """

    ys: torch.Tensor
    t: torch.Tensor
    stats: SolveStats


def _as_times(t) -> list[float]:
    if isinstance(t, torch.Tensor):
        values = t.detach().to("cpu", torch.float64).reshape(-1).tolist()
        if t.dim() != 1:
            raise ValueError(f"t must be 1-D, got shape {tuple(t.shape)}")
    else:
        values = [float(x) for x in t]
    if len(values) < 2:
        raise ValueError(f"t needs at least 2 save times (start and end), got {len(values)}")
    if not all(math.isfinite(v) for v in values):
        raise ValueError("t must be finite")
    diffs = [b - a for a, b in zip(values[:-1], values[1:], strict=True)]
    if not (all(d > 0 for d in diffs) or all(d < 0 for d in diffs)):
        raise ValueError("t must be strictly increasing (or strictly decreasing)")
    return values


#: the controller settings ``odeint`` takes: the range each must lie in, and a test for it
CONTROLLER_RANGES: dict[str, tuple[str, Callable[[float], bool]]] = {
    "safety": ("0 < safety <= 1", lambda v: 0 < v <= 1),
    "ifactor": ("ifactor >= 1", lambda v: v >= 1),
    "dfactor": ("0 < dfactor <= 1", lambda v: 0 < v <= 1),
    "beta": ("0 <= beta <= 0.2", lambda v: 0 <= v <= 0.2),
}


def _controller(settings: Mapping[str, float] | None) -> dict[str, Any]:
    """``odeint``'s ``controller`` checked (known keys, finite numbers in range), as
    :class:`StepControl` fields."""
    out: dict[str, Any] = {}
    for key, value in (settings or {}).items():
        if key not in CONTROLLER_RANGES:
            raise ValueError(f"controller: unknown setting {key!r}; must be one of {', '.join(CONTROLLER_RANGES)}")
        allowed, test = CONTROLLER_RANGES[key]
        number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not number or not test(float(value)):
            raise ValueError(f"controller: {key} must be a number with {allowed}, got {value!r}")
        out[key] = float(value)
    return out


def odeint(
    func: Callable[[float, torch.Tensor], torch.Tensor],
    y0: torch.Tensor,
    t,
    params: Iterable[torch.Tensor] | None = None,
    *,
    solver: str | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-6,
    gradient: str = "backprop",
    seminorm: bool = False,
    step_size: float | None = None,
    n_steps: int | None = None,
    max_steps: int = 100_000,
    first_step: float | None = None,
    save_at: str | None = None,
    checkpoints: int | None = None,
    adjoint_rtol: float | None = None,
    adjoint_atol: float | None = None,
    nodes: int = 3,
    max_inputs: int = 10_000,
    controller: Mapping[str, float] | None = None,
) -> Solution:
    """Solve ``dy/dt = func(t, y)`` and return the solution at the save times ``t``.

    Args:
        func: the vector field ``func(t, y) -> dy/dt``; ``t`` is a Python float, ``y`` a
            tensor of ``y0``'s shape (any shape; a leading batch axis is fine).
        y0: the initial state (float32 or float64, CPU or CUDA).
        t: save times, strictly monotone; ``t[0]`` is the start time. A tensor that
            requires grad gets gradients (every mode): ``dL/dt_i = f(t_i, y_i) . dL/dy_i``
            for a save time and ``-f(t_0, y_0) . dL/dy_0`` (the total) for the start time;
            this costs one evaluation of ``func`` per save time, not counted in the NFE.
        params: the tensors to differentiate with respect to besides ``y0``; the
            adjoint modes need them. Default: ``func.parameters()`` for an
            ``nn.Module``, else none.
        solver: ``euler``, ``midpoint``, ``rk4`` (fixed step: give ``step_size`` or
            ``n_steps``), ``bosh3``, ``dopri5``, ``tsit5``, ``dopri8`` (adaptive), or
            ``reversible_heun`` (fixed step; ``backprop`` and ``reversible`` only).
            Default: ``reversible_heun`` for ``gradient="reversible"``, else ``dopri5``.
        rtol, atol: tolerances of the mixed error norm ``|err| / (atol + rtol |y|)``.
        gradient: ``backprop`` (autograd through every step), ``backsolve`` (continuous
            adjoint, state solved backwards), ``interpolated`` (continuous adjoint, state
            from checkpoints and dense output), ``checkpoint`` (exact gradient of the
            discrete solve with O(sqrt N) memory), ``forward`` (forward sensitivities,
            cost grows with the number of inputs), ``quadrature`` (adjoint state
            backwards, parameter gradient by Gauss-Legendre quadrature), ``symplectic``
            (exact gradient of the Runge-Kutta solve, O(N + s) memory), ``reversible``
            (exact gradient of the reversible Heun solve, O(1) memory).
        seminorm: leave the parameter-gradient channels out of the backward error norm
            (backsolve and interpolated).
        step_size, n_steps: fixed stepping (``n_steps`` spans the whole interval); each
            interval between save times gets a whole number of equal steps.
        max_steps: step attempts allowed before :class:`MaxStepsExceeded` is raised.
        first_step: the initial step size; estimated (one evaluation) when omitted.
        save_at: ``"interpolate"`` (dense output) or ``"step"`` (step exactly onto each
            save time); by default the solver's choice (dopri8 and fixed-step methods step).
        checkpoints: states kept by ``checkpoint``/``interpolated``; default about sqrt(2N).
        adjoint_rtol, adjoint_atol: tolerances of the backward solve (default rtol, atol).
        nodes: Gauss-Legendre nodes per backward step of ``quadrature``.
        max_inputs: ``forward`` refuses more inputs (state size plus parameter entries)
            than this, raising :class:`~odebench.ode.TooManyInputs`.
        controller: the step-size controller's settings, forward and backward:
            ``safety`` (0.9), ``ifactor`` (10), ``dfactor`` (0.2) and ``beta`` (0; 0.04 is
            the PI controller of Hairer, Norsett and Wanner). See :class:`StepControl`.

    Returns:
        A :class:`Solution` with ``ys`` of shape ``(len(t), *y0.shape)`` and ``stats``.
    """
    _check_numbers(gradient, y0, save_at, rtol, atol, n_steps, max_steps, nodes)
    solver, tableau = _solver(solver, gradient, step_size, n_steps)
    ts = _as_times(t)
    if n_steps is not None:
        step_size = abs(ts[-1] - ts[0]) / n_steps
    tuning = _controller(controller)
    exact = (tableau is None or tableau.exact_save_times) if save_at is None else save_at == "step"
    control = StepControl(
        rtol=float(rtol), atol=float(atol), max_steps=int(max_steps), step_size=step_size,
        first_step=first_step, exact_save_times=exact, **tuning,
    )  # fmt: skip
    back_control = StepControl(
        rtol=float(adjoint_rtol or rtol), atol=float(adjoint_atol or atol), max_steps=int(max_steps),
        step_size=step_size, exact_save_times=True, **tuning,
    )  # fmt: skip
    params = _params(func, params)
    timed = isinstance(t, torch.Tensor) and t.requires_grad and torch.is_grad_enabled()
    if timed:
        y0 = _start_time_link(func, y0, t, ts)

    stats = SolveStats()
    fn = Counted(func, y0.shape, stats)
    integ: Integrator | ReversibleHeun
    integ_back: Integrator | ReversibleHeun
    if tableau is None:  # reversible
        integ = integ_back = ReversibleHeun(control)
    else:
        integ = Integrator(tableau, control, y0.dtype, y0.device)
        integ_back = Integrator(tableau, back_control, y0.dtype, y0.device)
    y0_flat = y0.reshape(-1)
    if gradient == "backprop":
        if isinstance(integ, ReversibleHeun):  # reversible
            result = integ.solve(fn, y0_flat, ts)[0]
        else:
            result = integ.solve(fn, y0_flat, ts, ErrorNorm((y0_flat.numel(),)))
        stats.add("forward", steps=result.steps, rejected=result.rejected)
        ys = torch.stack(result.ys)
    else:
        options = ModeOptions(seminorm=seminorm, checkpoints=checkpoints, nodes=int(nodes), max_inputs=max_inputs)
        # cast: the reversible mode takes its ReversibleHeun where the others take an Integrator
        mode = MODES[gradient](fn, cast(Integrator, integ), cast(Integrator, integ_back), ts, params, options)
        ys = AdjointFunction.apply(mode, y0_flat, *params)
    t_out = torch.tensor(ts, dtype=torch.float64)
    ys = ys.view(len(ts), *y0.shape)
    if timed:
        ys = _save_time_link(func, ys, t, ts)
    return Solution(ys=ys, t=t_out, stats=stats)


# Gradients with respect to the times. The flow map gives them in closed form, for every
# gradient mode alike: a save time moves its own state along the field,
# dy(t_i)/dt_i = f(t_i, y_i), and the start time moves every later state as a start state
# moved against the field, dy(t)/dt_0 = Phi(t, t_0) (-f(t_0, y_0)). Each is attached as a
# term whose value is zero and whose derivative is that (t - t.detach()) * f, with f
# evaluated once per save time outside the counted solve (not in the NFE).


def _field_at(func, t: float, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return func(t, y.detach())


def _start_time_link(func, y0: torch.Tensor, t: torch.Tensor, ts: list[float]) -> torch.Tensor:
    """``y0`` with dy0/dt_0 = -f(t_0, y0): the solve from it then carries dL/dt_0 = -a(t_0) . f."""
    shift = t[0] - t[0].detach()
    return y0 - shift.to(y0.dtype) * _field_at(func, ts[0], y0)


def _save_time_link(func, ys: torch.Tensor, t: torch.Tensor, ts: list[float]) -> torch.Tensor:
    """``ys`` with dy_i/dt_i = f(t_i, y_i) (which cancels the start link at i = 0, where y_0 is fixed)."""
    fields = torch.stack([_field_at(func, ti, y) for ti, y in zip(ts, ys, strict=True)])
    shift = (t - t.detach()).to(ys.dtype).reshape(-1, *([1] * (ys.dim() - 1)))
    return ys + shift * fields


def _check_numbers(gradient, y0, save_at, rtol, atol, n_steps, max_steps, nodes) -> None:
    """ValueError or TypeError naming the first argument of :func:`odeint` out of range."""
    if gradient not in GRADIENT_MODES:
        raise ValueError(f"unknown gradient mode {gradient!r}; must be one of {', '.join(GRADIENT_MODES)}")
    if not isinstance(y0, torch.Tensor) or not torch.is_floating_point(y0):
        raise TypeError(f"y0 must be a floating-point torch.Tensor, got {type(y0).__name__}")
    if save_at not in (None, "interpolate", "step"):
        raise ValueError(f"save_at must be 'interpolate' or 'step', got {save_at!r}")
    for name, value in (("rtol", rtol), ("atol", atol)):
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    if n_steps is not None and (int(n_steps) != n_steps or n_steps < 1):
        raise ValueError(f"n_steps must be a positive integer, got {n_steps!r}")
    if max_steps < 1:
        raise ValueError(f"max_steps must be positive, got {max_steps}")
    if int(nodes) != nodes or nodes < 1:
        raise ValueError(f"nodes must be a positive integer, got {nodes!r}")


def _solver(solver: str | None, gradient: str, step_size, n_steps) -> tuple[str, ButcherTableau | None]:
    """The solver's name and tableau (None for reversible Heun), checked against the gradient mode."""
    if solver is None:
        solver = REVERSIBLE_HEUN if gradient == "reversible" else "dopri5"
    reversible = solver == REVERSIBLE_HEUN
    if reversible and gradient not in ("backprop", "reversible"):
        raise ValueError(f"solver {solver!r} supports gradient 'backprop' or 'reversible', not {gradient!r}")
    if gradient == "reversible" and not reversible:
        raise ValueError(f"gradient 'reversible' needs solver {REVERSIBLE_HEUN!r}, got {solver!r}")
    if reversible and step_size is None and n_steps is None:
        raise ValueError(f"solver {solver!r} is fixed-step: give step_size or n_steps")
    if not reversible and solver not in TABLEAUX:
        raise SolverNameError(f"unknown solver {solver!r}; must be one of {', '.join((*TABLEAUX, REVERSIBLE_HEUN))}")
    return solver, None if reversible else get_tableau(solver)


def _params(func, params) -> tuple[torch.Tensor, ...]:
    """The tensors to differentiate besides ``y0``: as given, else a module's parameters."""
    if params is None:
        params = tuple(func.parameters()) if isinstance(func, torch.nn.Module) else ()
    params = tuple(params)
    for p in params:
        if not isinstance(p, torch.Tensor):
            raise TypeError(f"params must be tensors, got {type(p).__name__}")
    return params
