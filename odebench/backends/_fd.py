"""Central finite differences of the loss (``fd.central``): slow, but independent of autograd.

The loss is a forward solve with the project's own solver at the case's tolerance; the
"backward" pass is the finite-difference gradient (two solves per coordinate, or per
random direction with ``directions: K``). With ``directions`` the method reports K
directional derivatives, and accuracy is measured on those projections.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np

from ._base import ADAPTIVE, FIXED_STEP, MAX_STEPS, N_STEPS, SOLVER, CaseSpec, Method, Option, Outcome
from ._odebench import OwnSolvePrepared, odeint_kwargs
from ._torch import TorchProblem

if TYPE_CHECKING:
    from ..problems import Problem


class _FDPrepared(OwnSolvePrepared):
    def __init__(self, tp: TorchProblem, method: Central, spec: CaseSpec):
        super().__init__(tp, odeint_kwargs(method, tp.problem, spec))
        self.params = method.params
        self.seed = spec.seed
        self.x0 = tp.problem.flat_inputs()
        self.noise = float(np.finfo(spec.dtype).eps)  # the loss is as accurate as the case's dtype

    def _loss(self, x: np.ndarray) -> float:
        parts = self.tp.problem.unflatten(x)
        return self.loss_at(parts.pop("y0"), parts)

    def forward(self):
        return self._loss(self.x0)

    def backward(self, loss):
        from .. import fd

        p = self.params
        step = {"richardson": p["richardson"], "rel_step": p["rel_step"], "noise": self.noise}
        if p["directions"]:
            directions, derivatives = fd.directional_derivatives(
                self._loss, self.x0, p["directions"], seed=self.seed, **step
            )
            return loss, None, directions, derivatives
        grad = fd.central_gradient(self._loss, self.x0, **step)
        return loss, grad, None, None

    def outcome(self, state) -> Outcome:
        loss, grad, directions, derivatives = state
        if grad is None:
            return Outcome(loss=float(loss), directions=np.asarray(directions), derivatives=np.asarray(derivatives))
        return Outcome(loss=float(loss), grads=self.tp.problem.unflatten(grad))


class Central(Method):
    name = "fd.central"
    family = "verification"
    library = "fd"
    requires = ("torch",)
    solvers = tuple(s for s in (*FIXED_STEP, *ADAPTIVE) if s != "heun")
    consistency = "odebench.backprop"
    description = "central finite differences of the loss (own solver); Richardson and random directions optional"
    options: ClassVar[dict[str, Option]] = {
        "solver": SOLVER,
        "max_steps": MAX_STEPS,
        "n_steps": N_STEPS,
        "richardson": Option(bool, False, "Richardson extrapolation of two step sizes"),
        "directions": Option(int, None, "K random directional derivatives instead of the full gradient", minimum=1),
        "rel_step": Option(
            float, None, "relative step (default: the dtype's epsilon to the 1/3, or 1/5 with Richardson)"
        ),
    }

    def prepare(self, problem: Problem, spec: CaseSpec):
        return _FDPrepared(TorchProblem(problem, spec), self, spec)
