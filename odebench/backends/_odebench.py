"""The project's own solver and gradient modes (``odebench.*``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, cast

from ._base import ADAPTIVE, FIXED_STEP, MAX_STEPS, N_STEPS, REVERSIBLE, SOLVER, CaseSpec, Counts, Method, Option
from ._torch import TorchPrepared, TorchProblem

if TYPE_CHECKING:
    from ..ode import SolveStats
    from ..problems import Problem

#: the explicit Runge-Kutta tableaux of the own solver
OWN_SOLVERS = tuple(s for s in (*FIXED_STEP, *ADAPTIVE) if s != "heun")
#: mode-specific parameters passed through to :func:`odebench.odeint`
MODE_OPTIONS = ("seminorm", "checkpoints", "nodes", "max_inputs")


def odeint_kwargs(method: Method, problem: Problem, spec: CaseSpec, **extra: Any) -> dict[str, Any]:
    """Keyword arguments of :func:`odebench.odeint` for a method's parameters and a case."""
    kwargs: dict[str, Any] = dict(
        solver=method.params["solver"], rtol=spec.rtol, atol=spec.atol, max_steps=method.max_steps(problem), **extra
    )
    if method.fixed_step(problem) is not None:
        kwargs["n_steps"] = method.params["n_steps"]
    return kwargs


class OwnSolvePrepared(TorchPrepared):
    """A computation whose solve is the own solver's, with ``odeint`` keyword arguments ``kwargs``."""

    def __init__(self, tp: TorchProblem, kwargs: dict[str, Any]):
        super().__init__(tp)
        self.kwargs = kwargs
        self.last_stats: SolveStats | None = None

    def solve(self, y0, params):
        from ..problems import odeint_problem

        sol = odeint_problem(self.tp.problem, y0, params, field=self.tp.field(params), t=self.tp.t, **self.kwargs)
        self.last_stats = sol.stats
        return sol.ys


class _OdebenchPrepared(OwnSolvePrepared):
    def count(self) -> Counts:
        super().count()  # the counted forward + backward pass
        # The solver's own tally: the same evaluations as the field's counter, except that
        # forward sensitivities count one evaluation per tangent direction (docs/solver.md).
        return Counts.of(cast("SolveStats", self.last_stats))  # count() follows a solve()


class _Own(Method):
    library: ClassVar[str] = "odebench"
    requires: ClassVar[tuple[str, ...]] = ("torch",)
    solvers: ClassVar[tuple[str, ...]] = OWN_SOLVERS
    options: ClassVar[dict[str, Option]] = {"solver": SOLVER, "max_steps": MAX_STEPS, "n_steps": N_STEPS}
    consistency: ClassVar[str | None] = "odebench.backprop"
    gradient: ClassVar[str]

    def prepare(self, problem: Problem, spec: CaseSpec):
        extra = {k: self.params[k] for k in MODE_OPTIONS if k in self.params}
        kwargs = odeint_kwargs(self, problem, spec, gradient=self.gradient, **extra)
        return _OdebenchPrepared(TorchProblem(problem, spec), kwargs)


class Backprop(_Own):
    name = "odebench.backprop"
    gradient = "backprop"
    solvers = OWN_SOLVERS + REVERSIBLE  # reversible_heun: the discrete twin of odebench.reversible
    consistency = None
    description = "own solver, autograd through every step (O(steps) memory)"


class Backsolve(_Own):
    name = "odebench.backsolve"
    family = "backsolve"
    constant_memory = True
    gradient = "backsolve"
    options = {**_Own.options, "seminorm": Option(bool, False, "leave parameter channels out of the backward norm")}
    description = "own continuous adjoint, state solved backwards (Chen et al. 2018)"


class Interpolated(_Own):
    name = "odebench.interpolated"
    family = "stored"
    gradient = "interpolated"
    options = {
        **_Own.options,
        "seminorm": Option(bool, False, "leave parameter channels out of the backward norm"),
        "checkpoints": Option(int, None, "forward states kept (default about sqrt(2N))", minimum=2),
    }
    description = "own continuous adjoint, forward state from checkpoints and dense output"


class Checkpoint(_Own):
    name = "odebench.checkpoint"
    gradient = "checkpoint"
    options = {**_Own.options, "checkpoints": Option(int, None, "states kept (default about sqrt(2N))", minimum=2)}
    description = "own discrete adjoint: exact gradient of the discrete solve, O(sqrt N) memory"


class Forward(_Own):
    name = "odebench.forward"
    gradient = "forward"
    options = {
        **_Own.options,
        "max_inputs": Option(int, 10_000, "refuse problems with more inputs (state + parameters) than this", minimum=1),
    }
    description = (
        "own forward sensitivities: forward mode through every step, cost grows with the number of inputs "
        "(Ma et al. 2021)"
    )


class Quadrature(_Own):
    name = "odebench.quadrature"
    family = "stored"
    gradient = "quadrature"
    options = {
        **_Own.options,
        "nodes": Option(int, 3, "Gauss-Legendre nodes per backward step", minimum=1),
        "checkpoints": Option(int, None, "forward states kept (default about sqrt(2N))", minimum=2),
    }
    description = (
        "own quadrature adjoint: adjoint state backwards from the stored forward state, parameter gradient "
        "by Gauss-Legendre quadrature (SciMLSensitivity's QuadratureAdjoint; Kim et al. 2021)"
    )


class Symplectic(_Own):
    name = "odebench.symplectic"
    gradient = "symplectic"
    description = (
        "own symplectic adjoint: exact gradient of the Runge-Kutta solve at O(N + s) memory "
        "(Matsubara, Miyatake and Yaguchi, NeurIPS 2021)"
    )


class Reversible(_Own):
    name = "odebench.reversible"
    family = "reversible"
    constant_memory = True
    gradient = "reversible"
    solvers = REVERSIBLE
    options = {
        **_Own.options,
        "solver": Option(str, "reversible_heun", "the reversible integrator", choices=REVERSIBLE),
        "n_steps": Option(int, 100, "fixed steps over the whole horizon", minimum=1),
    }
    description = (
        "own reversible Heun: exact gradient of an algebraically reversible solve in O(1) memory "
        "(Kidger, Foster, Li and Lyons, NeurIPS 2021)"
    )
