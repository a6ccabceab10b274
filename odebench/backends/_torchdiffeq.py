"""torchdiffeq's ``odeint`` and ``odeint_adjoint`` (``torchdiffeq.*``).

- ``torchdiffeq.backprop``: ``odeint``, autograd through every operation of the solve
  (discretise-then-optimise).
- ``torchdiffeq.adjoint``: ``odeint_adjoint``, the continuous adjoint solved backwards in
  time with the state reconstructed alongside it (Chen et al. 2018); ``seminorm: true``
  leaves the parameter channels out of the backward error norm (Kidger, Chen & Lyons 2021).

Solvers under our names: dopri5, bosh3, dopri8 (adaptive) and euler, midpoint, heun
(torchdiffeq's ``heun2``), rk4 (fixed grid). A fixed-step solve takes ``n_steps`` equal
steps over the whole horizon (the backward solve of the adjoint as many over each
interval between save times, rounded) and reads the save times off torchdiffeq's linear
interpolation between grid points. The grid is given as a ``grid_constructor`` rather
than ``step_size``: torchdiffeq's step-size grid has ``ceil(T / h + 1)`` points, which
adds a sliver step whenever ``T / h`` rounds up past ``n_steps``.

Counts, all exact, none None:

- NFE: calls of the vector field per phase; backprop's backward pass evaluates nothing.
- steps: torchdiffeq's own step callbacks (``callback_step``, ``callback_accept_step``,
  ``callback_reject_step``, and their ``_adjoint`` twins in the adjoint's backward solve).
  Fixed-grid steps are all accepted; backprop's backward pass takes no steps.

``max_steps`` bounds the step attempts of each solve (forward, and the adjoint's
backward pass as a whole), enforced from ``callback_step``; torchdiffeq's own
``max_num_steps`` counts per interval between save times. Failures raise the solver
core's exceptions: ``MaxStepsExceeded``, ``StepSizeUnderflow``, ``NonFiniteSolution``.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar, cast

from ._base import FIXED_STEP, MAX_STEPS, N_STEPS, SOLVER, CaseSpec, Method, Option
from ._torch import TorchPrepared, TorchProblem

if TYPE_CHECKING:
    from ..problems import Problem

#: our solver names -> torchdiffeq's
SOLVERS: dict[str, str] = {
    "euler": "euler",
    "midpoint": "midpoint",
    "heun": "heun2",
    "rk4": "rk4",
    "bosh3": "bosh3",
    "dopri5": "dopri5",
    "dopri8": "dopri8",
}

# torchdiffeq reports failures as AssertionError; the message says which.
_FAILURES = (
    ("max_num_steps", "MaxStepsExceeded"),
    ("underflow in dt", "StepSizeUnderflow"),
    ("non-finite", "NonFiniteSolution"),
)


class _StepTally:
    """Step attempts, accepted and rejected steps per phase; enforces ``max_steps``."""

    def __init__(self, max_steps: int, label: str):
        self.max_steps = max_steps
        self.label = label
        self.reset()

    def reset(self) -> None:
        self.attempts = {"forward": 0, "backward": 0}
        self.accepted = {"forward": 0, "backward": 0}
        self.rejected = {"forward": 0, "backward": 0}

    def attempt(self, phase: str) -> None:
        self.attempts[phase] += 1
        if self.attempts[phase] > self.max_steps:
            from ..ode import MaxStepsExceeded

            raise MaxStepsExceeded(f"{self.label}: more than max_steps={self.max_steps} step attempts ({phase} pass)")


class _Field:
    """The vector field as torchdiffeq calls it, with the step callbacks it looks up."""

    def __init__(self, f, tally: _StepTally):
        self.f = f
        self.tally = tally

    def __call__(self, t, y):
        return self.f(t, y)

    def callback_step(self, t0, y0, dt) -> None:
        self.tally.attempt("forward")

    def callback_step_adjoint(self, t0, y0, dt) -> None:
        self.tally.attempt("backward")


class _AdaptiveField(_Field):
    """With the accept/reject callbacks, which only adaptive solvers call (fixed-grid
    solvers warn about callbacks they do not support)."""

    def callback_accept_step(self, t0, y0, dt) -> None:
        self.tally.accepted["forward"] += 1

    def callback_reject_step(self, t0, y0, dt) -> None:
        self.tally.rejected["forward"] += 1

    def callback_accept_step_adjoint(self, t0, y0, dt) -> None:
        self.tally.accepted["backward"] += 1

    def callback_reject_step_adjoint(self, t0, y0, dt) -> None:
        self.tally.rejected["backward"] += 1


def _uniform_grid(step: float):
    """A ``grid_constructor``: equal steps from ``t[0]`` to ``t[-1]``, as close to ``step``
    as a whole number of them allows (exactly ``n_steps`` over the whole horizon)."""

    def grid(func, y0, t):
        import torch

        # Decreasing in the adjoint's backward solves (torchdiffeq negates time around it).
        n = max(1, round(abs(float(t[-1] - t[0])) / step))
        out = t[0] + (t[-1] - t[0]) * (torch.arange(n + 1, dtype=t.dtype, device=t.device) / n)
        out[-1] = t[-1]
        return out

    return grid


@contextmanager
def _library_errors(label: str):
    try:
        yield
    except AssertionError as exc:
        kind = next((k for text, k in _FAILURES if text in str(exc)), None)
        if kind is None:
            raise
        from .. import ode

        raise getattr(ode, kind)(f"{label}: {exc}") from exc


class _TorchdiffeqPrepared(TorchPrepared):
    def __init__(self, tp: TorchProblem, method: _Torchdiffeq, spec: CaseSpec):
        super().__init__(tp)
        p = method.params
        self.adjoint = method.adjoint
        self.label = f"{method.name} ({p['solver']})"
        self.fixed = p["solver"] in FIXED_STEP
        self.tally = _StepTally(method.max_steps(tp.problem), self.label)
        options: dict[str, Any] = {}
        if self.fixed:
            # a fixed-step solver has a step size
            options["grid_constructor"] = _uniform_grid(cast(float, method.fixed_step(tp.problem)))
        self.kwargs: dict[str, Any] = dict(rtol=spec.rtol, atol=spec.atol, method=SOLVERS[p["solver"]], options=options)
        if self.adjoint:
            # Given explicitly, the adjoint options replace the forward ones: repeat the grid.
            adjoint_options = dict(options)
            if p["seminorm"]:
                adjoint_options["norm"] = "seminorm"
            self.kwargs["adjoint_options"] = adjoint_options

    def solve(self, y0, params):
        import torchdiffeq

        self.tally.reset()
        field = (_Field if self.fixed else _AdaptiveField)(self.tp.field(params), self.tally)
        with _library_errors(self.label):
            if self.adjoint:
                adjoint_params = tuple(params.values())
                ys = torchdiffeq.odeint_adjoint(field, y0, self.tp.t, adjoint_params=adjoint_params, **self.kwargs)
            else:
                ys = torchdiffeq.odeint(field, y0, self.tp.t, **self.kwargs)
        self.tp.require_finite(ys, self.label)
        return ys

    def backward(self, loss):
        with _library_errors(self.label):
            return super().backward(loss)

    def steps(self) -> dict[str, dict[str, int]]:
        return {"steps": self.tally.attempts if self.fixed else self.tally.accepted, "rejected": self.tally.rejected}


class _Torchdiffeq(Method):
    library: ClassVar[str] = "torchdiffeq"
    requires: ClassVar[tuple[str, ...]] = ("torch", "torchdiffeq")
    solvers: ClassVar[tuple[str, ...]] = tuple(SOLVERS)
    options: ClassVar[dict[str, Option]] = {"solver": SOLVER, "max_steps": MAX_STEPS, "n_steps": N_STEPS}
    consistency: ClassVar[str | None] = "torchdiffeq.backprop"
    adjoint: ClassVar[bool]

    def prepare(self, problem: Problem, spec: CaseSpec):
        return _TorchdiffeqPrepared(TorchProblem(problem, spec), self, spec)


class Backprop(_Torchdiffeq):
    """``odeint`` differentiated by autograd through every step."""

    name = "torchdiffeq.backprop"
    adjoint = False
    consistency = None
    description = "odeint, autograd through every step (O(steps) memory)"


class Adjoint(_Torchdiffeq):
    """``odeint_adjoint``: continuous adjoint (Chen et al. 2018), seminorm optional (Kidger et al. 2021)."""

    name = "torchdiffeq.adjoint"
    family = "backsolve"
    constant_memory = True
    adjoint = True
    options = {
        **_Torchdiffeq.options,
        "seminorm": Option(bool, False, "leave parameter channels out of the backward error norm (Kidger et al. 2021)"),
    }
    description = "odeint_adjoint: continuous adjoint, state solved backwards (Chen et al. 2018)"
