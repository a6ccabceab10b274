"""torchode's adjoints (``torchode.*``), the batched parallel solver of Lienen & Günnemann (2022).

- ``torchode.autodiff``: ``AutoDiffAdjoint``, autograd through every step of torchode's loop
  (discretise-then-optimise).
- ``torchode.backsolve``: ``BacksolveAdjoint``, the continuous adjoint solved backwards in
  time between save times, with the state reconstructed alongside it (Chen et al. 2018).

torchode solves batches of flat states: the problem's state is flattened to a batch of
one, ``(1, n)``, with the save times as ``t_eval`` of shape ``(1, len(t))``, and the
solution reshaped back. Solvers under our names: dopri5, tsit5 (adaptive, torchode's
``PIDController`` with the coefficients ``solve_ivp`` uses) and euler, heun (fixed,
``FixedStepController`` with ``dt0 = (t_end - t0) / n_steps``). torchode advances time by
adding ``dt``, so where the sum falls short of ``t_end`` by rounding it takes one more
(tiny) step: the counts show it. The vector field is an ``nn.Module`` holding the
parameters, as ``BacksolveAdjoint`` finds them with ``named_parameters``.

Counts, all exact, none None:

- NFE: calls of the vector field per phase (cross-checked against torchode's
  ``n_f_evals`` forward; in the backsolve pass torchode's count stays 0, ours does not).
- steps: torchode's ``stats``: ``n_accepted`` and ``n_steps - n_accepted`` forward, and
  their sums over the backward solves of ``BacksolveAdjoint`` (``stats["backsolve"]``);
  autodiff's backward pass takes no steps.

``max_steps`` bounds each solve (the forward one, and each backward one between two save
times of the backsolve). A status other than success raises the solver core's
exception: ``MaxStepsExceeded``, ``StepSizeUnderflow``, ``NonFiniteSolution``.
"""

from __future__ import annotations

import functools
from abc import abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, cast

from ._base import ADAPTIVE, FIXED_STEP, MAX_STEPS, N_STEPS, SOLVER, CaseSpec, Method, Option
from ._torch import TorchPrepared, TorchProblem

if TYPE_CHECKING:
    from ..problems import Problem

#: our solver names -> torchode's step methods
SOLVERS: dict[str, str] = {"euler": "Euler", "heun": "Heun", "dopri5": "Dopri5", "tsit5": "Tsit5"}

#: torchode's status codes (torchode.status_codes) -> the solver core's exceptions
_STATUS = {2: "StepSizeUnderflow", 3: "MaxStepsExceeded", 4: "NonFiniteSolution"}


@functools.cache
def _field_module():
    """The vector field as an ``nn.Module`` on torchode's flat states (defined on first use:
    this module must not import torch)."""
    import torch

    class FieldModule(torch.nn.Module):
        """``f(t, y)`` on a batch of one flat state, the parameters registered on the module."""

        def __init__(self, tp: TorchProblem, params: Mapping[str, Any]):
            super().__init__()
            self.tp = tp
            self.names = tuple(params)
            self.values = torch.nn.ParameterList(
                [torch.nn.Parameter(v.detach(), requires_grad=v.requires_grad) for v in params.values()]
            )

        def forward(self, t, y):
            # Batch of one: t has shape (1,), or () inside the backsolve's vmap.
            params = dict(zip(self.names, self.values, strict=True))
            return self.tp.evaluate(t.reshape(()), y.reshape(self.tp.y0.shape), params).reshape(y.shape)

    return FieldModule


def _raise_status(status: int, label: str, where: str, max_steps: int) -> None:
    from .. import ode

    kind = _STATUS.get(status, "SolverError")
    message = f"{label}: torchode stopped the {where} with status {status} ({kind}; max_steps={max_steps})"
    raise getattr(ode, kind)(message)


class _TorchodePrepared(TorchPrepared):
    def __init__(self, tp: TorchProblem, method: _Torchode, spec: CaseSpec):
        super().__init__(tp)
        import torch

        p = method.params
        self.method = method
        self.spec = spec
        self.label = f"{method.name} ({p['solver']})"
        self.max_steps = method.max_steps(tp.problem)
        self.t_eval = tp.t[None]
        step = method.fixed_step(tp.problem)
        self.dt0 = None if step is None else torch.full((1,), step, dtype=tp.t.dtype, device=tp.device)
        module = _field_module()(tp, tp.params)
        # Gradients are taken with respect to the parameters torchode sees.
        tp.params = dict(zip(module.names, module.values, strict=True))
        self.adjoint = self._build(module)
        self.last_stats: dict[str, Any] | None = None

    def _build(self, module):
        """torchode's adjoint (an ``nn.Module``) for a vector field, on the case's device."""
        import torchode

        term = torchode.ODETerm(module)
        step = getattr(torchode, SOLVERS[self.method.params["solver"]])(term=term)
        if self.dt0 is not None:
            controller = torchode.FixedStepController()
        else:
            controller = torchode.PIDController(
                atol=self.spec.atol, rtol=self.spec.rtol, pcoeff=0.2, icoeff=0.5, dcoeff=0.0, term=term
            )
        adjoint = self.method.adjoint(term, step, controller, self.max_steps)
        return adjoint.to(self.tp.device)

    def solve(self, y0, params):
        import torchode

        tp = self.tp
        adjoint = self.adjoint if params is tp.params else self._build(_field_module()(tp, params))
        t = self.t_eval
        problem = torchode.InitialValueProblem(y0=y0.reshape(1, -1), t_start=t[:, 0], t_end=t[:, -1], t_eval=t)
        sol = adjoint.solve(problem, dt0=self.dt0)
        self.last_stats = sol.stats
        status = int(sol.status.max())
        if status != 0:
            _raise_status(status, self.label, "forward solve", self.max_steps)
        ys = sol.ys[0].reshape(len(tp.problem.t), *tp.y0.shape)
        tp.require_finite(ys, self.label)
        return ys

    def backward(self, loss):
        state = super().backward(loss)
        # BacksolveAdjoint keeps no status for its backward solves; their step counts tell.
        last_stats = cast("dict[str, Any]", self.last_stats)  # set by forward(), which backward follows
        for stats in last_stats.get("backsolve", ()):
            if int(stats["n_steps"].max()) >= self.max_steps:
                _raise_status(3, self.label, "backward solve", self.max_steps)
        return state

    def steps(self) -> dict[str, dict[str, int]]:
        stats = cast("dict[str, Any]", self.last_stats)  # set by the last forward()
        solves = {"forward": [stats], "backward": stats.get("backsolve", ())}
        attempts = {phase: sum(int(s["n_steps"][0]) for s in runs) for phase, runs in solves.items()}
        accepted = {phase: sum(int(s["n_accepted"][0]) for s in runs) for phase, runs in solves.items()}
        return {"steps": accepted, "rejected": {phase: attempts[phase] - accepted[phase] for phase in solves}}


class _Torchode(Method):
    library: ClassVar[str] = "torchode"
    requires: ClassVar[tuple[str, ...]] = ("torch", "torchode")
    solvers: ClassVar[tuple[str, ...]] = tuple(s for s in (*FIXED_STEP, *ADAPTIVE) if s in SOLVERS)
    options: ClassVar[dict[str, Option]] = {"solver": SOLVER, "max_steps": MAX_STEPS, "n_steps": N_STEPS}
    consistency: ClassVar[str | None] = "torchode.autodiff"

    @abstractmethod
    def adjoint(self, term, step, controller, max_steps: int):
        """torchode's adjoint for this method (imports torchode)."""

    def prepare(self, problem: Problem, spec: CaseSpec):
        return _TorchodePrepared(TorchProblem(problem, spec), self, spec)


class AutoDiff(_Torchode):
    """Autograd through torchode's solver loop (Lienen & Günnemann 2022)."""

    name = "torchode.autodiff"
    consistency = None
    description = "torchode AutoDiffAdjoint: autograd through every step (Lienen & Günnemann 2022)"

    def adjoint(self, term, step, controller, max_steps: int):
        import torchode

        return torchode.AutoDiffAdjoint(step, controller, max_steps=max_steps)


class Backsolve(_Torchode):
    """torchode's continuous adjoint (Chen et al. 2018; Lienen & Günnemann 2022)."""

    name = "torchode.backsolve"
    family = "backsolve"
    constant_memory = True
    description = "torchode BacksolveAdjoint: continuous adjoint, state solved backwards (Chen et al. 2018)"

    def adjoint(self, term, step, controller, max_steps: int):
        import torchode

        adjoint = torchode.BacksolveAdjoint(term, step, controller)
        # Its constructor takes no step budget; both of its solver loops accept one.
        adjoint.forward_adjoint.max_steps = max_steps
        adjoint.backward_adjoint.max_steps = max_steps
        return adjoint
