"""Reversible Heun: an algebraically reversible integrator and its O(1)-memory exact gradient."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import torch

from ._adjoint import _Mode, _vjp_engine
from ._core import SolveResult, StepControl
from ._errors import MaxStepsExceeded, NonFiniteSolution

NAME = "reversible_heun"


@dataclass(frozen=True)
class ReversibleHeun:
    """The reversible Heun method (Kidger, Foster, Li and Lyons 2021, "Efficient and
    accurate gradients for neural SDEs", NeurIPS; here its ODE case).

    The state is a pair ``(y, yh)`` with ``yh_0 = y_0``; one step of size ``h`` is::

        yh_{n+1} = 2 y_n - yh_n + h f(t_n, yh_n)
        y_{n+1}  = y_n + h/2 (f(t_n, yh_n) + f(t_{n+1}, yh_{n+1}))

    one new evaluation per step (``f(t_{n+1}, yh_{n+1})`` is the next step's first). It
    is algebraically reversible: ``yh_n = 2 y_{n+1} - yh_{n+1} - h f(t_{n+1}, yh_{n+1})``,
    then ``y_n`` from the second line. Second order. Fixed step: each interval between
    save times gets a whole number of equal steps, as the Runge-Kutta methods do. Its
    stability region on the linear test equation ``y' = lambda y`` is only the segment
    ``h lambda`` in ``[-i, i]`` of the imaginary axis: on a decaying problem the
    ``y - yh`` mode grows, slowly for small ``h |lambda|`` (see docs/solver.md).
    """

    control: StepControl
    order: int = 2
    name: str = NAME

    def grid(self, ts: list[float]) -> tuple[list[tuple[float, float]], list[int]]:
        """Every step's ``(t, h)``, and the index of the step that ends at each save time after the first."""
        ctl = self.control
        h_nominal = cast(float, ctl.step_size)  # odeint requires one for the reversible solver
        steps: list[tuple[float, float]] = []
        ends: list[int] = []
        for t_a, t_b in zip(ts[:-1], ts[1:], strict=True):
            n = max(1, math.ceil(abs(t_b - t_a) / h_nominal - 1e-9))
            h = (t_b - t_a) / n
            steps.extend((t_a + j * h, h) for j in range(n))
            ends.append(len(steps) - 1)
        if len(steps) > ctl.max_steps:
            raise MaxStepsExceeded(f"{len(steps)} steps exceed max_steps={ctl.max_steps}")
        return steps, ends

    def solve(self, fn, y0: torch.Tensor, ts: list[float]) -> tuple[SolveResult, torch.Tensor]:
        """The solution at the save times, and the final ``yh``.

        Differentiable by autograd (discrete backprop through the reversible solver).
        """
        steps, ends = self.grid(ts)
        y, yh = y0, y0
        f0 = fn(ts[0], yh)
        ys = [y0]
        save_index = {j: i for i, j in enumerate(ends, start=1)}
        for j, (_, h) in enumerate(steps):
            yh1 = 2 * y - yh + h * f0
            t1 = ts[save_index[j]] if j in save_index else steps[j + 1][0]
            f1 = fn(t1, yh1)
            y = y + (0.5 * h) * (f0 + f1)
            yh, f0 = yh1, f1
            if j in save_index:
                ys.append(y)
        if not bool(torch.isfinite(y).all()):
            raise NonFiniteSolution(
                f"{NAME} solve produced NaN/Inf by t={ts[-1]:.6g}; reduce the step size "
                "(its stability region is the imaginary segment [-i, i])"
            )
        return SolveResult(ys, h_next=abs(steps[-1][1]), steps=len(steps)), yh


class Reversible(_Mode):
    """Exact gradient of the reversible Heun solve in O(1) memory (Kidger et al. 2021).

    The forward pass keeps only the final ``(y, yh)``. The backward pass rebuilds each
    earlier state from the later one (algebraic reversibility, one evaluation per step)
    and backpropagates through that step as it goes: the evaluation at each ``yh_n`` is
    made with a graph, and its VJP, with the cotangents of both uses of ``f(yh_n)``
    summed, is taken before the next. Equal to backprop through the same solver up to
    the round-off of the reconstruction. Memory: a handful of states and one
    evaluation's graph, whatever the number of steps.
    """

    def forward(self, y0):
        solver = cast(ReversibleHeun, self.integ)  # odeint passes the reversible mode a ReversibleHeun
        result, self.yh_end = solver.solve(self.fn, y0, self.ts)
        self._count("forward", result)
        self.y_end = result.ys[-1]
        return torch.stack(result.ys)

    def _graph(self, t: float, yh: torch.Tensor):
        with torch.enable_grad():
            leaf = yh.view(self.fn.shape).detach().requires_grad_(True)
            return self.fn.shaped(t, leaf), leaf

    def _pull(self, f, leaf, cotangent):
        """``cotangent^T df/d(yh, params)`` through the graph of one evaluation (freed after)."""
        grads = _vjp_engine((f,), (cotangent.view(self.fn.shape),), (leaf, *self.diff_params))
        mu = torch.zeros_like(cotangent) if grads[0] is None else grads[0].reshape(-1)
        parts = [torch.zeros(s, dtype=mu.dtype, device=mu.device) if g is None else g.reshape(-1)
                 for g, s in zip(grads[1:], self.param_sizes, strict=True)]  # fmt: skip
        return mu, (torch.cat(parts) if parts else None)

    def backward(self, grad_ys):
        self.fn.phase = "backward"
        solver = cast(ReversibleHeun, self.integ)
        steps, ends = solver.grid(self.ts)
        save_at_end = {j: idx for idx, j in enumerate(ends, start=1)}
        g = grad_ys.new_zeros(sum(self.param_sizes))
        y, yh = self.y_end, self.yh_end
        lam, lam_h = grad_ys[-1], torch.zeros_like(grad_ys[-1])
        f, leaf = self._graph(self.ts[-1], yh)
        c_f = torch.zeros_like(lam)  # cotangent of f(yh) from the step after it
        for j in range(len(steps) - 1, -1, -1):
            t, h = steps[j]
            # f(yh_{j+1}) enters y_{j+1} with weight h/2; its cotangent is now complete.
            mu, gp = self._pull(f, leaf, c_f + (0.5 * h) * lam)
            if gp is not None:
                g = g + gp
            lam_h = lam_h + mu
            f1 = f.detach().reshape(-1)
            yh_prev = 2 * y - yh - h * f1
            f, leaf = self._graph(t, yh_prev)
            y = y - (0.5 * h) * (f.detach().reshape(-1) + f1)
            yh = yh_prev
            c_f = h * lam_h + (0.5 * h) * lam
            lam, lam_h = lam + 2 * lam_h, -lam_h
            if j - 1 in save_at_end:
                lam = lam + grad_ys[save_at_end[j - 1]]
        mu, gp = self._pull(f, leaf, c_f)
        if gp is not None:
            g = g + gp
        lam_h = lam_h + mu
        self.stats.add("backward", steps=len(steps))
        return lam + lam_h + grad_ys[0], self._split_params(g)
