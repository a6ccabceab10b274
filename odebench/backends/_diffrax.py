"""diffrax's ``diffeqsolve`` with each of its adjoints, jitted (``diffrax.*``).

- ``diffrax.recursive_checkpoint``: ``RecursiveCheckpointAdjoint``, the exact gradient of
  the discrete solve with online binomial checkpointing (Stumm & Walther 2010) and
  recomputation; ``checkpoints`` sets how many states it keeps (None: diffrax's default,
  about log(max_steps)).
- ``diffrax.backsolve``: ``BacksolveAdjoint``, the continuous adjoint solved backwards in
  time with the state reconstructed alongside it (Chen et al. 2018).
- ``diffrax.direct``: ``DirectAdjoint``, reverse-mode autodiff straight through diffrax's
  bounded while loop: the exact discrete gradient, with memory that grows with ``max_steps``.
- ``diffrax.forward``: ``ForwardMode``, forward-mode autodiff (``jax.jacfwd``, one JVP per
  input, batched) in one compiled function: the exact discrete gradient, at a cost that
  grows with the number of inputs (``max_inputs`` refuses larger problems). The backward
  phase only hands the gradient on.

Solvers: diffrax's explicit ones, ``reversible_heun`` (``ReversibleHeun``, fixed step with
``n_steps`` as the explicit fixed-step ones; any adjoint), and the implicit ``kvaerno3``,
``kvaerno5`` (ESDIRK, with ``PIDController`` and diffrax's default ``VeryChord`` Newton
iteration at the controller's tolerances).

Adaptive solvers use ``PIDController(rtol, atol)`` (diffrax's default coefficients, an
integral controller); fixed-step ones (euler, midpoint, heun) ``ConstantStepSize`` with
``dt0 = (t_end - t0) / n_steps``; the solution is saved at the problem's times with
``SaveAt(ts=t)``. diffrax has no classical RK4. The gradient is taken by ``jax.vjp`` split
into a forward and a backward function, both compiled ahead of time in ``prepare``.

Counts, from a separate counting build of the same computation in which each
vector-field output and each step decision of the step-size controller is tapped by a
host callback (see :class:`~odebench.backends._jax.EvalTally`):

- NFE forward and backward: exact, primal evaluations that actually execute, including
  those a checkpointing backward pass recomputes and those of the implicit solvers' Newton
  iterations. A Jacobian that an implicit solver builds (``jacfwd`` of the field) counts as
  the one primal evaluation it makes. ``diffrax.forward`` counts ``1 + K`` per evaluation
  (the primal and one JVP per input direction). Checked against hand counts for fixed
  steps and against ``1 + new stages x sol.stats["num_steps"]`` for adaptive solvers.
- steps and rejected steps forward: diffrax's own ``sol.stats``.
- steps and rejected steps backward: the step decisions executed in the backward pass,
  that is the steps of the adjoint solve (backsolve) or the steps recomputed
  (recursive_checkpoint, direct).

No count is None. A solve that reaches ``max_steps`` or the minimum step size raises the
solver core's ``MaxStepsExceeded`` / ``StepSizeUnderflow``; a fixed-step solve that
produces NaN raises ``NonFiniteSolution``. The timed build solves with ``throw=False`` and
returns diffrax's result as flags that are checked in Python after each forward pass:
``throw=True`` adds equinox's runtime-error host callback, which keeps XLA's persistent
compilation cache from storing the gradient's halves. A backward solve (backsolve's adjoint
solve) has no result to return, so its failure is caught by the counting build, which runs
the same computation with ``throw=True`` in every case (the runner always counts, or, on a
warm cache, reuses counts only for a timed build whose gradient is bit-identical to the one
the counting build produced: :mod:`._jax_cache`). For the same reason the timed build turns
diffeqsolve's checks of its set-up (save times increasing and within ``[t0, t1]``, a fixed
step pointing forward), which run at run time with a host callback, into equinox's
``on_error="nan"``; the same conditions are checked on the host first, so the checks cannot
fire (and would make the solve non-finite if they did).
"""

from __future__ import annotations

import functools
import re
from abc import abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar, cast

import numpy as np

from ._base import KNOWN_SOLVERS, MAX_STEPS, N_STEPS, SOLVER, CaseSpec, Counts, Method, Option
from ._jax import EvalTally, ForwardGradient, JaxPrepared, JaxProblem, solver_error

#: our solver names -> diffrax's solver classes
SOLVERS: dict[str, str] = {
    "euler": "Euler",
    "midpoint": "Midpoint",
    "heun": "Heun",
    "bosh3": "Bosh3",
    "tsit5": "Tsit5",
    "dopri5": "Dopri5",
    "dopri8": "Dopri8",
    "reversible_heun": "ReversibleHeun",
    "kvaerno3": "Kvaerno3",
    "kvaerno5": "Kvaerno5",
}

_EQX_MESSAGE = re.compile(r"EquinoxRuntimeError: (.+)")
_FAILURES = (("maximum number of solver steps", "MaxStepsExceeded"), ("minimum step size", "StepSizeUnderflow"))
#: diffrax's failed results that the timed build returns as flags, named as in ``diffrax.RESULTS``
_RESULTS = ("max_steps_reached", "dt_min_reached")


#: diffeqsolve's run-time checks of the save times (diffrax 0.7's messages)
_SAVEAT_CHECKS = ("saveat.ts must be increasing or decreasing.", "saveat.ts must lie between t0 and t1.")
#: the start of its run-time check of a fixed step's direction (the message goes on with values)
_DT0_CHECK = "Must have (t1 - t0) * dt0 >= 0"


@contextmanager
def _set_up_checks_without_callback(ts, dt0: float | None) -> Iterator[None]:
    """While diffeqsolve is traced: its checks of its set-up as ``on_error="nan"``.

    diffeqsolve checks at run time (its arguments are traced) that ``saveat.ts`` increases
    and lies within ``[t0, t1]`` and that a fixed step ``dt0`` points from ``t0`` to ``t1``,
    with a host callback that keeps XLA's persistent cache and ``jax.export`` from storing
    the timed build. Here ``t0``, ``t1`` and ``ts`` are the problem's save times and ``dt0``
    is odebench's, all known on the host and checked here: when they pass, the checks
    cannot fire and become callback-free (a NaN solution, and so the timed build's error,
    if they did). When they fail, or diffrax words them otherwise, nothing changes.
    """
    import equinox.internal as eqxi

    t = np.asarray(ts)
    increasing = bool(np.all(t[1:] >= t[:-1]))
    if not increasing:
        yield
        return
    forward_step = dt0 is None or dt0 > 0
    original = eqxi.error_if

    def error_if(x, pred, msg, **kwargs):
        if not kwargs and (msg in _SAVEAT_CHECKS or (forward_step and msg.startswith(_DT0_CHECK))):
            return original(x, pred, msg, on_error="nan")
        return original(x, pred, msg, **kwargs)

    eqxi.error_if = error_if
    try:
        yield
    finally:
        eqxi.error_if = original


@functools.cache
def _counting_controller():
    """A step-size controller that delegates to another and taps each step it decides on."""
    import diffrax
    import equinox as eqx
    import jax.numpy as jnp

    class CountingController(diffrax.AbstractStepSizeController):
        inner: diffrax.AbstractStepSizeController
        tap: Any = eqx.field(static=True)

        def wrap(self, direction):
            return CountingController(self.inner.wrap(direction), self.tap)

        def init(self, *args, **kwargs):
            return self.inner.init(*args, **kwargs)

        def adapt_step_size(self, *args, **kwargs):
            keep, tprev, tnext, made_jump, state, result = self.inner.adapt_step_size(*args, **kwargs)
            # The next step's end is always used, so the tap runs with every step decision.
            return keep, tprev, self.tap(tnext, jnp.asarray(keep)), made_jump, state, result

    return CountingController


class _DiffraxPrepared(JaxPrepared):
    def __init__(self, jp: JaxProblem, method: _Diffrax, spec: CaseSpec):
        p = method.params
        self.method = method
        self.spec = spec
        self.solver = p["solver"]
        self.max_steps = method.max_steps(jp.problem)
        self.dt0 = method.fixed_step(jp.problem)
        super().__init__(jp)

    @property
    def label(self) -> str:
        return f"{self.method.name} ({self.solver})"

    def timed_build(self):
        # Both halves: backsolve's adjoint solve is a diffeqsolve traced with the backward pass.
        return _set_up_checks_without_callback(self.jp.t, self.dt0)

    def cache_facts(self) -> dict[str, Any]:
        spec = self.spec
        return {
            "method": self.method.name, "params": dict(self.method.params), "solver": self.solver,
            "max_steps": self.max_steps, "dt0": self.dt0, "rtol": spec.rtol, "atol": spec.atol, "dtype": spec.dtype,
            "device": spec.device, "seed": spec.seed, "gradient": self.gradient.__name__,
            "prepared": type(self).__qualname__,
        }  # fmt: skip

    def loss_fn(self, tally: EvalTally | None):
        import diffrax
        import equinox as eqx
        import jax.numpy as jnp

        jp = self.jp
        solver = getattr(diffrax, SOLVERS[self.solver])()
        controller: diffrax.AbstractStepSizeController
        if self.dt0 is None:
            controller = diffrax.PIDController(rtol=self.spec.rtol, atol=self.spec.atol)
            if isinstance(solver, diffrax.AbstractImplicitSolver):
                # What diffeqsolve does for an adaptive controller, done here because the
                # counting wrapper hides the controller's tolerances from it.
                solver = eqx.tree_at(
                    lambda s: (s.root_finder.rtol, s.root_finder.atol, s.root_finder.norm),
                    solver,
                    (controller.rtol, controller.atol, controller.norm),
                )
        else:
            controller = diffrax.ConstantStepSize()
        if tally is not None:
            controller = _counting_controller()(controller, tally.step)
        term = diffrax.ODETerm(jp.field(tally))
        saveat = diffrax.SaveAt(ts=jp.t)
        t0, t1 = jp.t[0], jp.t[-1]
        adjoint, dt0, max_steps = self.method.adjoint(), self.dt0, self.max_steps

        # Only the counting build throws (module docstring): it checks the backward solve.
        throw = tally is not None

        def loss(y0, params):
            sol = diffrax.diffeqsolve(
                term, solver, t0, t1, dt0, y0, args=params, saveat=saveat, stepsize_controller=controller,
                adjoint=adjoint, max_steps=max_steps, throw=throw,
            )  # fmt: skip
            aux = {
                "finite": jnp.all(jnp.isfinite(sol.ys)),
                "accepted": sol.stats["num_accepted_steps"],
                "rejected": sol.stats["num_rejected_steps"],
                "successful": sol.result == diffrax.RESULTS.successful,
            }
            aux.update({key: sol.result == getattr(diffrax.RESULTS, key) for key in _RESULTS})
            return jp.loss(sol.ys), aux

        return loss

    def counts(self, tally: EvalTally, aux: Mapping[str, Any]) -> Counts:
        forward, backward = tally.counts["forward"], tally.counts["backward"]
        return Counts(
            nfe_forward=forward["nfe"],
            nfe_backward=backward["nfe"],
            steps_forward=int(aux["accepted"]),
            steps_backward=backward["accepted"],
            rejected_forward=int(aux["rejected"]),
            rejected_backward=backward["rejected"],
        )

    def check(self, aux: Mapping[str, Any]) -> None:
        if not bool(aux["successful"]):
            import diffrax

            failed = [key for key in _RESULTS if bool(aux[key])]
            # cast: RESULTS is an equinox Enumeration, indexed through its metaclass
            results = cast(Any, diffrax.RESULTS)
            message = results[getattr(results, failed[0])] if failed else "the solve did not succeed"
            raise self._error(str(message))
        super().check(aux)

    def _error(self, message: str) -> Exception:
        kind = next((k for text, k in _FAILURES if text in message), "SolverError")
        return solver_error(kind, f"{self.label}: {message} (max_steps={self.max_steps})")

    @contextmanager
    def failures(self):
        try:
            yield
        except Exception as exc:  # noqa: BLE001 - JAX wraps equinox's error in its own runtime error
            found = _EQX_MESSAGE.search(str(exc))
            if found is None:
                raise
            raise self._error(found.group(1).strip()) from exc


class _Diffrax(Method):
    library: ClassVar[str] = "diffrax"
    requires: ClassVar[tuple[str, ...]] = ("jax", "diffrax", "equinox")
    solvers: ClassVar[tuple[str, ...]] = tuple(s for s in KNOWN_SOLVERS if s in SOLVERS)
    options: ClassVar[dict[str, Option]] = {"solver": SOLVER, "max_steps": MAX_STEPS, "n_steps": N_STEPS}
    consistency: ClassVar[str | None] = "diffrax.direct"

    @abstractmethod
    def adjoint(self) -> Any:
        """diffrax's adjoint object for this method (imports diffrax)."""

    def prepare(self, problem, spec: CaseSpec):
        return _DiffraxPrepared(JaxProblem(problem, spec), self, spec)


class RecursiveCheckpoint(_Diffrax):
    """Exact discrete gradient with online checkpointing (Stumm & Walther 2010); diffrax's default."""

    name = "diffrax.recursive_checkpoint"
    options = {
        **_Diffrax.options,
        "checkpoints": Option(int, None, "states kept (default: diffrax's, about log(max_steps))", minimum=1),
    }
    description = "diffeqsolve + RecursiveCheckpointAdjoint: exact discrete gradient, online checkpointing"

    def adjoint(self):
        import diffrax

        return diffrax.RecursiveCheckpointAdjoint(checkpoints=self.params["checkpoints"])


class Backsolve(_Diffrax):
    """Continuous adjoint solved backwards in time (Chen et al. 2018)."""

    name = "diffrax.backsolve"
    family = "backsolve"
    constant_memory = True
    description = "diffeqsolve + BacksolveAdjoint: continuous adjoint, state solved backwards (Chen et al. 2018)"

    def adjoint(self):
        import diffrax

        return diffrax.BacksolveAdjoint()


class Direct(_Diffrax):
    """Reverse-mode autodiff through diffrax's bounded while loop: the exact discrete gradient."""

    name = "diffrax.direct"
    consistency = None
    description = "diffeqsolve + DirectAdjoint: autodiff through the bounded loop (memory grows with max_steps)"

    def adjoint(self):
        import diffrax

        return diffrax.DirectAdjoint()


class _ForwardPrepared(_DiffraxPrepared):
    gradient = ForwardGradient

    def counts(self, tally: EvalTally, aux: Mapping[str, Any]) -> Counts:
        # The tap sees each primal evaluation once; jacfwd differentiates every one of them
        # along all K input directions, and one JVP counts as one evaluation (docs/solver.md).
        counts = super().counts(tally, aux)
        directions = self.jp.y0.size + sum(p.size for p in self.jp.params.values())
        counts.nfe_forward *= 1 + directions
        return counts


class Forward(_Diffrax):
    """Forward-mode autodiff through the solve (``ForwardMode``): the exact discrete
    gradient by ``jax.jacfwd``, one JVP per input, batched."""

    name = "diffrax.forward"
    options = {
        **_Diffrax.options,
        "max_inputs": Option(int, 10_000, "refuse problems with more inputs (state + parameters) than this", minimum=1),
    }
    description = "diffeqsolve + ForwardMode: forward-mode autodiff (jacfwd), cost grows with the number of inputs"

    def adjoint(self):
        import diffrax

        return diffrax.ForwardMode()

    def prepare(self, problem, spec: CaseSpec):
        reason = self.skip_reason(problem)  # the runner skips such a case before it gets here
        if reason:
            raise ValueError(f"{self.name}: {reason}")
        return _ForwardPrepared(JaxProblem(problem, spec), self, spec)
