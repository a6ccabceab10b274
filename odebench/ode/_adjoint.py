"""Gradient modes that need a custom backward pass: backsolve, interpolated, checkpoint
here; forward, quadrature, symplectic and reversible in their own modules.

Each mode is a small class with ``forward(y0) -> ys`` (run without a graph) and
``backward(grad_ys) -> (grad_y0, grad_params)``; one ``torch.autograd.Function``
plugs any of them into autograd.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass

import torch
from torch.autograd.function import once_differentiable

from ._core import ErrorNorm, Integrator, Step, Tape
from ._stats import SolveStats

_ENGINE = getattr(torch.autograd.Variable, "_execution_engine", None)


def _concat_flat(tensors) -> torch.Tensor:
    """``torch.cat([x.reshape(-1) for x in tensors])`` (one call where torch has it in C++)."""
    return torch.cat([x.reshape(-1) for x in tensors])


_concat_flat = getattr(torch._C._nn, "flatten_dense_tensors", _concat_flat)


def _vjp_engine(outputs, grad_outputs, inputs):
    """``torch.autograd.grad(outputs, inputs, grad_outputs, allow_unused=True)``, leaner.

    The Python wrapper of ``torch.autograd.grad`` (argument normalisation, logging
    hooks, context stashing) costs about a fifth of a small network's VJP, and the
    backward pass of an adjoint is one VJP per evaluation; so the engine is called
    directly where this PyTorch exposes it, and through the public API otherwise.
    An input the outputs do not depend on gets ``None`` (a zero VJP, materialised by the
    caller), also when no output depends on any input (a field that ignores the state).
    """
    for out in outputs:
        if out.requires_grad:
            break
    else:
        return (None,) * len(inputs)
    if _ENGINE is not None:
        return _ENGINE.run_backward(outputs, grad_outputs, False, False, inputs, True, accumulate_grad=False)
    return torch.autograd.grad(outputs, inputs, grad_outputs, allow_unused=True)  # pragma: no cover


def backward_schedule(grad_ys: torch.Tensor, ts: list[float]):
    """The backward pass's stops, last save time first: ``(i, span)`` pairs where ``i`` is
    the save index whose ``grad_ys[i]`` jumps the adjoint there (None at ``ts[0]`` when it
    has none) and ``span`` the ``[u, next stop]`` to integrate next (None after the last).

    One host sync for the whole pass: which save times carry a cotangent at all.
    """
    jumps = [i for i, nonzero in enumerate(grad_ys.reshape(len(ts), -1).ne(0).any(1).tolist()) if nonzero]
    if not jumps:
        return
    stops = [ts[i] for i in reversed(jumps)]
    if stops[-1] != ts[0]:
        stops.append(ts[0])
    for k, u in enumerate(stops):
        i = jumps[len(jumps) - 1 - k] if k < len(jumps) else None
        yield i, ([u, stops[k + 1]] if k + 1 < len(stops) else None)


class Counted:
    """The user's vector field on flat states, counting evaluations per phase."""

    def __init__(self, func, shape: torch.Size, stats: SolveStats):
        self.func = func
        self.shape = shape
        self.dims = tuple(shape)
        self.flat = len(shape) == 1
        self.stats = stats
        self.phase = "forward"
        self._checked = False

    def shaped(self, t: float, y: torch.Tensor) -> torch.Tensor:
        """Evaluate on a state of the user's shape (no reshaping, so no extra graph nodes)."""
        if self.phase == "forward":
            self.stats.nfe_forward += 1
        else:
            self.stats.nfe_backward += 1
        out = self.func(t, y)
        if not self._checked:
            if not isinstance(out, torch.Tensor) or out.shape != self.shape:
                got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise ValueError(f"the vector field returned {got}; expected a tensor of y's shape {tuple(self.shape)}")
            self._checked = True
        return out

    def unflat(self, y: torch.Tensor) -> torch.Tensor:
        """A flat state as a view of the user's shape (``view(*ints)`` parses faster than
        ``view(torch.Size)``, which matters at a few microseconds per evaluation)."""
        if self.flat:
            return y
        return y.view(*self.dims) if self.dims else y.view(())

    def __call__(self, t: float, y: torch.Tensor) -> torch.Tensor:
        if self.flat:
            return self.shaped(t, y)
        return self.shaped(t, self.unflat(y)).reshape(-1)


@dataclass(frozen=True)
class ModeOptions:
    """The settings of the custom gradient modes (each reads its own)."""

    seminorm: bool = False  # backsolve, interpolated
    checkpoints: int | None = None  # interpolated, checkpoint, quadrature
    nodes: int = 3  # quadrature: Gauss-Legendre nodes per backward step
    max_inputs: int = 10_000  # forward: refuse more tangent directions than this


class _Mode:
    """What the custom modes share: the solve's pieces and the parameter VJP."""

    def __init__(
        self,
        fn: Counted,
        integ: Integrator,
        integ_back: Integrator,
        ts: list[float],
        params: tuple[torch.Tensor, ...],
        options: ModeOptions,
    ):
        self.fn = fn
        self.integ = integ
        self.integ_back = integ_back
        self.ts = ts
        self.params = params
        # Only parameters that require grad take part in the VJP (autograd.grad refuses others).
        self.diff = [i for i, p in enumerate(params) if p.requires_grad]
        self.diff_params = tuple(params[i] for i in self.diff)
        self.param_sizes = tuple(p.numel() for p in self.diff_params)
        self.part_sizes = (fn.shape.numel(), *self.param_sizes)
        self._zeros: list[torch.Tensor] | None = None
        self.options = options
        self.seminorm = options.seminorm
        self.checkpoints = options.checkpoints
        self.stats = fn.stats

    def _vjp(
        self, t: float, y: torch.Tensor, minus_a: torch.Tensor, *, state: bool = True
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``f(t, y)`` and ``-a^T df/d(y, params)``, each part flattened (the
        parameter parts alone with ``state=False``)."""
        fn = self.fn
        with torch.enable_grad():
            yv = fn.unflat(y).detach().requires_grad_(state)
            f = fn.shaped(t, yv)
            inputs = (yv, *self.diff_params) if state else self.diff_params
            grads = _vjp_engine((f,), (fn.unflat(minus_a),), inputs) if inputs else ()
        if self._zeros is None:
            self._zeros = [torch.zeros(size, dtype=y.dtype, device=y.device) for size in self.part_sizes]
        zeros = self._zeros if state else self._zeros[1:]
        parts = [z if g is None else g.reshape(-1) for g, z in zip(grads, zeros, strict=True)]
        return f.detach().reshape(-1), parts

    def _vjp_flat(self, t: float, y: torch.Tensor, minus_a: torch.Tensor, *, with_f: bool) -> torch.Tensor:
        """``-a^T df/d(y, params)`` as one flat tensor, led by ``f(t, y)`` with ``with_f``:
        the right-hand side of an augmented adjoint state, in one concatenation."""
        fn = self.fn
        with torch.enable_grad():
            yv = fn.unflat(y).detach().requires_grad_(True)
            f = fn.shaped(t, yv)
            grads = _vjp_engine((f,), (fn.unflat(minus_a),), (yv, *self.diff_params))
        for g in grads:
            if g is None:  # a part the field does not depend on: a zero VJP
                if self._zeros is None:
                    self._zeros = [torch.zeros(size, dtype=y.dtype, device=y.device) for size in self.part_sizes]
                grads = [z if g is None else g for g, z in zip(grads, self._zeros, strict=True)]
                break
        return _concat_flat((f.detach(), *grads) if with_f else grads)

    def _split_params(self, flat: torch.Tensor) -> list[torch.Tensor | None]:
        out: list[torch.Tensor | None] = [None] * len(self.params)
        offset = 0
        for i, size in zip(self.diff, self.param_sizes, strict=True):
            out[i] = flat[offset : offset + size].view_as(self.params[i])
            offset += size
        return out

    def _count(self, phase: str, result) -> None:
        self.stats.add(phase, steps=result.steps, rejected=result.rejected)

    def forward(self, y0: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def backward(self, grad_ys: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
        raise NotImplementedError


class Backsolve(_Mode):
    """Continuous adjoint with the state solved backwards (Chen et al. 2018, NeurIPS).

    The augmented state ``(y, a, g)`` is integrated from the last save time to the
    first, one vector-Jacobian product per evaluation, with the adjoint jumping by
    ``dL/dy(t_i)`` at each save time and ``y`` reset to its forward value there. With
    ``seminorm`` the parameter channels are left out of the error norm (Kidger, Chen
    and Lyons 2021, "Hey, that's not an ODE").
    """

    def forward(self, y0):
        result = self.integ.solve(self.fn, y0, self.ts, ErrorNorm((y0.numel(),)))
        self._count("forward", result)
        self.ys = result.ys
        return torch.stack(result.ys)

    def backward(self, grad_ys):
        self.fn.phase = "backward"
        ys, ts = self.ys, self.ts
        n = ys[0].numel()
        sizes = (n, n, *self.param_sizes)
        norm = ErrorNorm(sizes, n_included=2 if self.seminorm else None, device=ys[0].device)

        def augmented(t, z):
            return self._vjp_flat(t, z[:n], -z[n : 2 * n], with_f=True)

        z = torch.cat([ys[-1], grad_ys[-1], ys[0].new_zeros(sum(self.param_sizes))])
        h = None
        for i in range(len(ts) - 1, 0, -1):
            # The field reads (y, a); the parameter gradient is carried along.
            result = self.integ_back.solve(augmented, z, [ts[i], ts[i - 1]], norm, h0=h, reads=2 * n)
            self._count("backward", result)
            h, z = result.h_next, result.ys[-1]
            z = torch.cat([ys[i - 1], z[n : 2 * n] + grad_ys[i - 1], z[2 * n :]])
        return z[n : 2 * n], self._split_params(z[2 * n :])


class _Taped(_Mode):
    """Forward solve that keeps a :class:`Tape` of steps and thinned checkpoints."""

    def forward(self, y0):
        self.tape = Tape(self.checkpoints)
        result = self.integ.solve(self.fn, y0, self.ts, ErrorNorm((y0.numel(),)), tape=self.tape)
        self._count("forward", result)
        self.stats.checkpoints = len(self.tape.states)
        self.stats.checkpoint_stride = self.tape.stride
        return torch.stack(result.ys)


class Checkpoint(_Taped):
    """Discrete adjoint: the exact gradient of the forward solve, with bounded memory.

    Keeps ~sqrt(2N) states (see :class:`Tape`); the backward pass recomputes each
    segment from its checkpoint with the recorded step sizes (bit-identical to the
    forward pass) and backpropagates through it. Equal to ``backprop`` up to
    round-off, for O(sqrt N) memory and one extra forward pass of compute
    (Griewank and Walther, "Evaluating Derivatives", 2008, ch. 12).
    """

    def backward(self, grad_ys):
        self.fn.phase = "backward"
        tape, integ = self.tape, self.integ
        saves: dict[int, list[tuple[int, float | None]]] = defaultdict(list)
        for idx, (j, theta) in enumerate(tape.save_steps, start=1):
            saves[j].append((idx, theta))
        pgrads: list[torch.Tensor | None] = [None] * len(self.diff_params)  # summed over segments
        a = None
        for first, last in reversed(tape.segments()):
            with torch.enable_grad():
                y_start = tape.states[first].detach().requires_grad_(True)
                steps, f1s = integ.replay(self.fn, y_start, tape, first, last)
                outs, gouts = [], []
                if a is not None:
                    outs.append(steps[-1].y1)
                    gouts.append(a)
                for j in range(first, last):
                    step = steps[j - first]
                    for idx, theta in saves.get(j, ()):
                        y_out = step.y1 if theta is None else integ.dense(step, self.ts[idx], f1s[j - first])
                        outs.append(y_out)
                        gouts.append(grad_ys[idx])
                if not outs:
                    a = torch.zeros_like(y_start)
                    continue
                grads = _vjp_engine(tuple(outs), tuple(gouts), (y_start, *self.diff_params))
            a = grads[0] if grads[0] is not None else torch.zeros_like(y_start)
            for k, g in enumerate(grads[1:]):
                if g is not None:
                    pgrads[k] = g if pgrads[k] is None else pgrads[k] + g  # not in place: g may alias
            self.stats.steps_backward += last - first
        out: list[torch.Tensor | None] = [None] * len(self.params)
        for k, i in enumerate(self.diff):
            out[i] = torch.zeros_like(self.params[i]) if pgrads[k] is None else pgrads[k]
        return a + grad_ys[0], out


class _Trajectory:
    """The forward solution ``y(t)`` from checkpoints, re-solved one segment at a time.

    A query replays (without a graph) the segment holding ``t`` from its checkpoint with
    the recorded steps and reads the method's dense output. The two most recent
    segments are kept: a backward step may straddle a boundary, and its stages need not
    come in time order (dopri8's nodes are not monotone).
    """

    def __init__(self, integ: Integrator, tape: Tape, fn: Counted, direction: float):
        self.integ, self.tape, self.fn, self.direction = integ, tape, fn, direction
        self.step_keys = [direction * t for t in tape.t0]
        self.segments = tape.segments()
        self.segment_keys = [direction * tape.t0[first] for first, _ in self.segments]
        self.cache: dict[int, tuple[list[Step], list[torch.Tensor]]] = {}
        self.order: list[int] = []

    def _segment(self, i: int):
        if i not in self.cache:
            first, last = self.segments[i]
            with torch.no_grad():
                self.cache[i] = self.integ.replay(self.fn, self.tape.states[first], self.tape, first, last)
            self.order.append(i)
            if len(self.order) > 2:
                del self.cache[self.order.pop(0)]
        return self.cache[i]

    def __call__(self, t: float) -> torch.Tensor:
        key = self.direction * t
        j = min(max(bisect_right(self.step_keys, key) - 1, 0), len(self.step_keys) - 1)
        i = bisect_right(self.segment_keys, self.direction * self.tape.t0[j]) - 1
        steps, f1s = self._segment(i)
        k = j - self.segments[i][0]
        return self.integ.dense(steps[k], t, f1s[k])


class Interpolated(_Taped):
    """Continuous adjoint that reads the forward state instead of solving it backwards.

    The forward pass keeps checkpoints (see :class:`Tape`). Backwards, the adjoint
    ``(a, g)`` is integrated from the last save time to the first, with ``y(t)`` from
    the method's dense output over segments re-solved from their checkpoints: no
    backward state integration, so it stays accurate where the forward dynamics
    contract and backsolve's reconstruction blows up (the InterpolatingAdjoint of
    Rackauckas et al. 2020, "Universal differential equations for scientific machine
    learning"; see also Gholami et al. 2019, "ANODE"). The backward solve stops only at
    save times where the loss gradient is non-zero.
    """

    def backward(self, grad_ys):
        self.fn.phase = "backward"
        ts = self.ts
        direction = 1.0 if ts[-1] > ts[0] else -1.0
        n = grad_ys[0].numel()
        sizes = (n, *self.param_sizes)
        norm = ErrorNorm(sizes, n_included=1 if self.seminorm else None, device=grad_ys.device)
        trajectory = _Trajectory(self.integ, self.tape, self.fn, direction)

        def adjoint(t, z):
            return self._vjp_flat(t, trajectory(t), -z[:n], with_f=False)

        z = grad_ys.new_zeros(n + sum(self.param_sizes))
        h = None
        for i, span in backward_schedule(grad_ys, ts):
            if i is not None:
                z = torch.cat([z[:n] + grad_ys[i], z[n:]])
            if span is not None:
                result = self.integ_back.solve(adjoint, z, span, norm, h0=h, reads=n)
                self._count("backward", result)
                h, z = result.h_next, result.ys[-1]
        return z[:n], self._split_params(z[n:])


class AdjointFunction(torch.autograd.Function):
    """Plugs a gradient mode into autograd: inputs ``(mode, y0, *params)``, output ``ys``."""

    @staticmethod
    def forward(ctx, mode: _Mode, y0: torch.Tensor, *params: torch.Tensor) -> torch.Tensor:
        ctx.mode = mode
        return mode.forward(y0.detach())

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_ys: torch.Tensor):
        grad_y0, grad_params = ctx.mode.backward(grad_ys.contiguous())
        return (None, grad_y0, *grad_params)
