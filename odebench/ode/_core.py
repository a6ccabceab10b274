"""The integration loop shared by every gradient mode.

States are flat 1-D tensors here; :mod:`odebench.ode._odeint` reshapes at the boundary.
Times and step sizes are Python floats, so the only host-device synchronisation per
step is the error ratio that decides acceptance (step control truly needs it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import cast

import torch

from ._errors import MaxStepsExceeded, NonFiniteSolution, StepSizeUnderflow
from ._tableau import ButcherTableau

VectorField = Callable[[float, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class StepControl:
    """Tolerances and step-size control of one solve.

    The step-size factor after a step with error ratio ``r`` is ``safety *
    r**-(1/k - 0.75 beta) * r_prev**beta``, clipped to ``[dfactor, ifactor]``, with
    ``k`` the error order (embedded order + 1). ``beta = 0`` (the default) is the
    classical I controller; ``beta = 0.04`` is the PI controller of Hairer, Norsett
    and Wanner (II.4, eq. 4.13a), smoother on mildly stiff problems.
    With ``step_size`` the solve is fixed-step (:func:`~odebench.ode.odeint` turns its
    ``n_steps`` into a step size) and the error estimate, if any, is not used.
    """

    rtol: float = 1e-6
    atol: float = 1e-6
    safety: float = 0.9
    ifactor: float = 10.0
    dfactor: float = 0.2
    beta: float = 0.0
    max_steps: int = 100_000
    step_size: float | None = None
    first_step: float | None = None
    exact_save_times: bool = False

    @property
    def fixed(self) -> bool:
        return self.step_size is not None


class _Coefficients:
    """A tableau's coefficients as tensors of one dtype and device."""

    def __init__(self, tableau: ButcherTableau, dtype: torch.dtype, device: torch.device):
        as_t = lambda x: torch.as_tensor(x, dtype=dtype, device=device)  # noqa: E731
        s = tableau.stages
        self.c = [float(x) for x in tableau.c]
        self.a_rows = [as_t(tableau.a[i, :i]) for i in range(s)]
        self.b = as_t(tableau.b)
        self.b_err = None if tableau.b_err is None else as_t(tableau.b_err)
        self.dense = as_t(tableau.dense)
        self.dense_exponents = as_t(range(1, tableau.dense.shape[1] + 1))


@lru_cache(maxsize=64)
def coefficients(tableau: ButcherTableau, dtype: torch.dtype, device: torch.device) -> _Coefficients:
    return _Coefficients(tableau, dtype, device)


class ErrorNorm:
    """RMS norm of the scaled error, or the max of per-group RMS norms (a mixed norm).

    ``sizes`` splits the flat state into consecutive groups; only the first
    ``n_included`` groups count (the others are left out: the seminorm of Kidger,
    Chen and Lyons 2021). Calling it returns a Python float: the accept/reject
    decision needs the value on the host anyway.
    """

    def __init__(self, sizes: tuple[int, ...], n_included: int | None = None, device=None):
        n_included = len(sizes) if n_included is None else n_included
        self.length = int(sum(sizes[:n_included]))
        self.sizes = tuple(s for s in sizes[:n_included] if s > 0)
        self.inv_sqrt = 1.0 / math.sqrt(max(self.length, 1))
        if len(self.sizes) > 1:
            self.lengths = torch.tensor(self.sizes, device=device)

    def __call__(self, q: torch.Tensor) -> float:
        if q.shape[0] != self.length:
            q = q[: self.length]
        if len(self.sizes) <= 1:
            return float(torch.linalg.vector_norm(q)) * self.inv_sqrt
        # unsafe: the lengths are ours and sum to the length (the check costs more than the sum).
        means = torch.segment_reduce(q * q, "mean", lengths=self.lengths, unsafe=True)
        return math.sqrt(float(means.max()))


@dataclass(slots=True)
class Step:
    """One Runge-Kutta step from ``y`` at ``t`` with size ``h``; ``K`` holds the stages as rows."""

    t: float
    h: float
    y: torch.Tensor
    y1: torch.Tensor
    K: torch.Tensor
    err: torch.Tensor | None


class Stages:
    """A stage buffer ``K`` (stages x state) and the transposed views the step's stage
    combinations read, made once per buffer rather than sliced and transposed per stage.

    ``inputs[i]`` is ``K[:i].T`` restricted to the first ``reads`` entries of the state (all
    of it without ``reads``), except at an FSAL method's last stage, whose input is the
    whole new state; ``KT`` is ``K.T``.
    """

    __slots__ = ("K", "KT", "inputs")

    def __init__(self, stages: int, y: torch.Tensor, reads: int | None = None, fsal: bool = False):
        n = y.shape[0]
        self.K = K = y.new_empty((stages, n))
        r = n if reads is None else reads
        # as_strided gives K[:i, :r].T (same strides) in one call instead of three
        self.inputs = [K.as_strided((n if fsal and i == stages - 1 else r, i), (1, n)) for i in range(stages)]
        self.KT = K.as_strided((n, stages), (1, n))


class StagePool:
    """Two stage buffers used in turn by a solve's steps made without a graph.

    A step writes the buffer that does not hold ``k1`` (the last step's FSAL stage), so
    ``k1`` survives a rejected step; :meth:`accept` swaps them. A step's stages stay valid
    until the step after next, which is all a solve loop (and its ``on_step`` hook) needs.
    ``reads`` (see :meth:`Integrator.solve`) is passed on to the buffers.
    """

    __slots__ = ("stages", "reads", "fsal", "buffers", "current")

    def __init__(self, tableau: ButcherTableau, reads: int | None = None):
        self.stages = tableau.stages
        self.fsal = tableau.fsal
        self.reads = reads
        self.buffers: list[Stages | None] = [None, None]
        self.current = 0

    def get(self, y: torch.Tensor) -> Stages:
        buf = self.buffers[self.current]
        if buf is None:
            buf = self.buffers[self.current] = Stages(self.stages, y, self.reads, self.fsal)
        return buf

    def accept(self) -> None:
        self.current ^= 1


class Tape:
    """Accepted steps of a forward solve, and a thinned set of states to restart from.

    States are kept at steps whose index is a multiple of ``stride``. With no
    ``budget`` the stride doubles whenever more than ``2 * stride`` states are kept,
    so about ``sqrt(2 N)`` states of a solve of ``N`` steps are kept and each
    segment between two of them is ``stride ~ sqrt(N / 2)`` steps long: memory
    O(sqrt N) states plus one segment's graph, for one extra forward pass of compute.
    With a ``budget`` of ``B`` states, segments are about ``2 N / B`` steps long.
    With ``keep_all`` every state is kept (segments of one step: O(N) states).
    """

    def __init__(self, budget: int | None = None, *, keep_all: bool = False):
        if budget is not None and budget < 2:
            raise ValueError(f"checkpoint budget must be at least 2 states, got {budget}")
        self.budget = budget
        self.keep_all = keep_all
        self.t0: list[float] = []
        self.h: list[float] = []
        self.states: dict[int, torch.Tensor] = {}
        self.stride = 1
        self._t_end: float | None = None
        # For each save time after the first: (index of the step that produced it, theta),
        # theta None meaning the end of that step.
        self.save_steps: list[tuple[int, float | None]] = []

    def record(self, t: float, h: float, y: torch.Tensor) -> None:
        j = len(self.t0)
        if self.keep_all:
            self.states[j] = y
        elif j % self.stride == 0:
            self.states[j] = y
            limit = self.budget if self.budget is not None else max(4, 2 * self.stride)
            if len(self.states) > limit:
                self.stride *= 2
                self.states = {i: s for i, s in self.states.items() if i % self.stride == 0}
        self.t0.append(t)
        self.h.append(h)

    def note_save(self, theta: float | None) -> None:
        self.save_steps.append((len(self.t0) - 1, theta))

    @property
    def n_steps(self) -> int:
        return len(self.t0)

    def end_time(self, j: int) -> float:
        """The time at which step ``j`` ends (exactly the start of step ``j + 1``)."""
        # the last step's end is set by finish(), which every recording solve calls
        return self.t0[j + 1] if j + 1 < len(self.t0) else cast(float, self._t_end)

    def finish(self, t_end: float) -> None:
        self._t_end = t_end

    def segments(self) -> list[tuple[int, int]]:
        """``(first step, one past the last step)`` of each segment, in time order."""
        starts = sorted(self.states)
        ends = starts[1:] + [self.n_steps]
        return [(s, e) for s, e in zip(starts, ends, strict=True) if e > s]


#: Called after each accepted step with the step, ``f(t1, y1)`` and the save times read off
#: it (``theta`` in [0, 1] for a dense-output read, None for the step's end), in order.
StepHook = Callable[[Step, torch.Tensor, list], None]


@dataclass
class SolveResult:
    ys: list[torch.Tensor]
    h_next: float
    steps: int = 0
    rejected: int = 0


class Integrator:
    """An explicit Runge-Kutta method with its step control, for one dtype and device."""

    def __init__(self, tableau: ButcherTableau, control: StepControl, dtype, device):
        self.tableau = tableau
        self.control = control
        self.coef = coefficients(tableau, dtype, device)
        if control.fixed and control.step_size is not None and control.step_size <= 0:
            raise ValueError(f"step_size must be positive, got {control.step_size}")
        if not control.fixed and not tableau.adaptive:
            raise ValueError(
                f"solver {tableau.name!r} is fixed-step: give step_size or n_steps "
                "(or choose an adaptive solver: bosh3, dopri5, tsit5, dopri8)"
            )
        k = tableau.error_order or tableau.order
        self.exp_accept = 1.0 / k - 0.75 * control.beta
        self.exp_reject = 1.0 / k

    # -- one step -----------------------------------------------------------------
    def step(
        self,
        fn: VectorField,
        t: float,
        y: torch.Tensor,
        h: float,
        k1: torch.Tensor,
        pool: StagePool | None = None,
        *,
        estimate: bool = True,
    ) -> Step:
        """One step. Without a graph the stages go to a buffer of ``pool`` (a fresh one
        without a pool), and with the pool's ``reads`` the stage inputs are just the state's
        first ``reads`` entries; ``estimate=False`` skips the error estimate (a replay needs
        none)."""
        coef, tab = self.coef, self.tableau
        s = tab.stages
        y1 = None
        if torch.is_grad_enabled() and (y.requires_grad or k1.requires_grad):
            # Under autograd: stack stages anew (in-place writes would chain CopySlices nodes).
            ks = [k1]
            for i in range(1, s):
                yi = torch.addmv(y, torch.stack(ks).T, coef.a_rows[i], alpha=h)
                if tab.fsal and i == s - 1:
                    y1 = yi  # the FSAL stage is evaluated at exactly y1
                ks.append(fn(t + coef.c[i] * h, yi))
            K = torch.stack(ks)
            KT = K.T
        else:
            # No graph: one buffer, each stage written once (same layout, so same bits).
            buf = Stages(s, y, None, tab.fsal) if pool is None else pool.get(y)
            K, inputs, a_rows, c = buf.K, buf.inputs, coef.a_rows, coef.c
            # A field that reads only the first entries gets stage inputs of just those.
            y_in = y if pool is None or pool.reads is None else y[: pool.reads]
            K[0] = k1
            for i in range(1, s):
                yi = torch.addmv(y if tab.fsal and i == s - 1 else y_in, inputs[i], a_rows[i], alpha=h)
                K[i] = fn(t + c[i] * h, yi)
            if tab.fsal:
                y1 = yi
            KT = buf.KT
        if y1 is None:
            y1 = torch.addmv(y, KT, coef.b, alpha=h)
        err = None
        if estimate and coef.b_err is not None and not self.control.fixed:
            err = torch.mv(KT.detach(), coef.b_err)  # step control only: no graph
        return Step(t, h, y, y1, K, err)

    def dense(self, step: Step, t: float, f1: torch.Tensor | None = None) -> torch.Tensor:
        """The method's interpolant inside ``step`` at time ``t``."""
        # without FSAL the caller passes f1, the field at the step's end
        K = step.K if self.tableau.fsal else torch.cat([step.K, cast(torch.Tensor, f1).unsqueeze(0)])
        return torch.addmv(step.y, K.T, self.dense_weights((t - step.t) / step.h), alpha=step.h)

    def dense_weights(self, theta: float) -> torch.Tensor:
        """The interpolant's weight of each stage (and of ``f1`` without FSAL) at ``theta``."""
        return torch.mv(self.coef.dense, torch.pow(theta, self.coef.dense_exponents))

    def error_ratio(self, step: Step, norm: ErrorNorm) -> float:
        ctl = self.control
        # Detached (no graph), and in place on the step's own error estimate.
        scale = torch.maximum(step.y.detach().abs(), step.y1.detach().abs()).mul_(ctl.rtol).add_(ctl.atol)
        # only adaptive solves (an error estimate on every step) ask for the ratio
        return norm(cast(torch.Tensor, step.err).div_(scale)) * abs(step.h)

    def initial_step(
        self,
        fn: VectorField,
        t0: float,
        y0: torch.Tensor,
        f0: torch.Tensor,
        direction: float,
        norm: ErrorNorm,
        t_span: float,
    ) -> float:
        """Hairer, Norsett, Wanner I, II.4: one extra evaluation."""
        ctl = self.control
        with torch.no_grad():
            scale = y0.abs().mul(ctl.rtol).add_(ctl.atol)
            d0 = norm(y0 / scale)
            d1 = norm(f0 / scale)
            h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
            h0 = min(h0, abs(t_span))
            f1 = fn(t0 + direction * h0, y0 + (direction * h0) * f0)
            d2 = norm((f1 - f0) / scale) / h0
            # The error estimate's order sets the exponent, as in scipy's RK45.
            k = self.tableau.error_order or self.tableau.order + 1
            if max(d1, d2) <= 1e-15:
                h1 = max(1e-6, h0 * 1e-3)
            else:
                h1 = (0.01 / max(d1, d2)) ** (1.0 / k)
            return min(100 * h0, h1, abs(t_span))

    # -- whole solves ---------------------------------------------------------------
    def solve(
        self,
        fn: VectorField,
        y0: torch.Tensor,
        ts: list[float],
        norm: ErrorNorm,
        *,
        h0: float | None = None,
        tape: Tape | None = None,
        on_step: StepHook | None = None,
        reads: int | None = None,
    ) -> SolveResult:
        """Integrate from ``ts[0]`` through every save time; ``ts`` may decrease.

        ``on_step`` sees every accepted step (with ``f(t1, y1)``, evaluated for it where
        the method is not FSAL and then reused as the next step's first stage).
        ``reads``: the field depends on the state's first ``reads`` entries only (the
        others are carried along, as an adjoint's parameter gradient is): stage inputs
        made without a graph are then just those entries, which saves most of the stage
        combinations' work when the carried part is large. The field must then accept
        either the whole state or its first ``reads`` entries.
        """
        pool = StagePool(self.tableau, reads)
        if self.control.fixed:
            return self._solve_fixed(fn, y0, ts, tape=tape, on_step=on_step, pool=pool)
        return self._solve_adaptive(fn, y0, ts, norm, h0=h0, tape=tape, on_step=on_step, pool=pool)

    def _solve_fixed(self, fn, y0, ts, *, tape, on_step, pool) -> SolveResult:
        ctl, tab = self.control, self.tableau
        h_nominal = cast(float, ctl.step_size)  # fixed: set
        y, ys, steps = y0, [y0], 0
        k1: torch.Tensor | None = None
        for i in range(len(ts) - 1):
            t_a, t_b = ts[i], ts[i + 1]
            n = max(1, math.ceil(abs(t_b - t_a) / h_nominal - 1e-9))
            h = (t_b - t_a) / n
            for j in range(n):
                t = t_a + j * h
                if k1 is None:
                    k1 = fn(t, y)
                if tape is not None:
                    tape.record(t, h, y)
                step = self.step(fn, t, y, h, k1, pool)
                pool.accept()
                steps += 1
                if steps > ctl.max_steps:
                    raise MaxStepsExceeded(f"exceeded max_steps={ctl.max_steps} at t={t:.6g}")
                k1 = step.K[-1] if tab.fsal else None
                if on_step is not None:
                    if k1 is None:
                        k1 = fn(t_b if j == n - 1 else t_a + (j + 1) * h, step.y1)
                    on_step(step, k1, [None] if j == n - 1 else [])
                y = step.y1
            if tape is not None:
                tape.note_save(None)
            ys.append(y)
        if not bool(torch.isfinite(y).all()):
            raise NonFiniteSolution(
                f"fixed-step {tab.name} solve produced NaN/Inf by t={ts[-1]:.6g}; "
                "reduce the step size or use an adaptive solver"
            )
        if tape is not None:
            tape.finish(ts[-1])
        h_out = (ts[-1] - ts[-2]) / max(1, math.ceil(abs(ts[-1] - ts[-2]) / h_nominal - 1e-9))
        return SolveResult(ys, h_next=abs(h_out), steps=steps, rejected=0)

    def _solve_adaptive(self, fn, y0, ts, norm, *, h0, tape, on_step, pool) -> SolveResult:
        ctl, tab = self.control, self.tableau
        direction = 1.0 if ts[-1] > ts[0] else -1.0
        t, y = ts[0], y0
        k1 = fn(t, y)
        if h0 is None:
            h0 = ctl.first_step or self.initial_step(fn, t, y, k1, direction, norm, ts[-1] - ts[0])
        h = direction * abs(h0)
        ys, idx, n = [y0], 1, len(ts)
        exact = ctl.exact_save_times
        steps = rejected = 0
        r_prev = 1e-4
        while idx < n:
            # Stepping onto save times clips the step; interpolating lets the last step
            # pass the final time and reads every save time off the dense output.
            target = ts[idx]
            remaining = target - t
            clipped = exact and direction * (h - remaining) >= -1e-12 * abs(remaining)
            h_try = remaining if clipped else h
            step = self.step(fn, t, y, h_try, k1, pool)
            r = self.error_ratio(step, norm)
            if steps + rejected >= ctl.max_steps:
                raise MaxStepsExceeded(
                    f"exceeded max_steps={ctl.max_steps} at t={t:.6g} (step size {abs(h_try):.3g}); "
                    "the problem may be stiff or the tolerance too tight for an explicit method"
                )
            if r <= 1.0:  # NaN compares false: rejected
                pool.accept()
                t_new = target if clipped else t + h_try
                if tape is not None:
                    tape.record(t, h_try, y)
                f1 = step.K[-1] if tab.fsal else None
                saved = []
                while idx < n and direction * (ts[idx] - t_new) <= 0:
                    if ts[idx] == t_new:
                        ys.append(step.y1)
                        theta = None
                    else:
                        if f1 is None:
                            f1 = fn(t_new, step.y1)
                        ys.append(self.dense(step, ts[idx], f1))
                        theta = (ts[idx] - t) / h_try
                    if tape is not None:
                        tape.note_save(theta)
                    saved.append(theta)
                    idx += 1
                if on_step is not None:
                    if f1 is None:
                        f1 = fn(t_new, step.y1)
                    on_step(step, f1, saved)
                k1 = f1
                if k1 is None and idx < n:
                    k1 = fn(t_new, step.y1)
                steps += 1
                r = max(r, 1e-10)
                factor = ctl.safety * r**-self.exp_accept * r_prev**ctl.beta
                factor = min(ctl.ifactor, max(ctl.dfactor, factor))
                h_next = h_try * factor
                if clipped and abs(h_next) < abs(h):
                    h_next = h  # landing on a save time must not shrink the next step
                r_prev = r
                t, y, h = t_new, step.y1, h_next
            else:
                rejected += 1
                if math.isfinite(r):
                    factor = max(ctl.dfactor, min(1.0, ctl.safety * r**-self.exp_reject))
                else:
                    factor = ctl.dfactor
                h = h_try * factor
                if abs(h) <= 1e-14 * max(1.0, abs(t)) or not math.isfinite(h):
                    raise StepSizeUnderflow(
                        f"step size underflow at t={t:.6g} (error ratio {r:.3g}): the solution is "
                        "not finite there or the problem is too stiff for this solver"
                    )
        if tape is not None:
            tape.finish(t)
        return SolveResult(ys, h_next=abs(h), steps=steps, rejected=rejected)

    def replay(
        self,
        fn: VectorField,
        y: torch.Tensor,
        tape: Tape,
        first: int,
        last: int,
    ) -> tuple[list[Step], list[torch.Tensor]]:
        """Redo the accepted steps ``first .. last - 1`` from ``y`` with the recorded sizes.

        Returns the steps and, per step, ``f(t1, y1)`` (a stage of FSAL methods; evaluated for
        the others, as the dense output needs it and the next step starts from it).
        Identical arithmetic to the forward pass, so the states agree bit for bit.
        """
        fsal = self.tableau.fsal
        steps, f1s = [], []
        k1 = None
        for j in range(first, last):
            if k1 is None:
                k1 = fn(tape.t0[j], y)
            step = self.step(fn, tape.t0[j], y, tape.h[j], k1, estimate=False)
            k1 = step.K[-1] if fsal else fn(tape.end_time(j), step.y1)
            steps.append(step)
            f1s.append(k1)
            y = step.y1
        return steps, f1s
