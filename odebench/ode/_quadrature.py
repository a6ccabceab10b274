"""The quadrature adjoint: the adjoint state alone backwards, the parameter gradient by quadrature."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from ._adjoint import _Taped, _Trajectory, backward_schedule
from ._core import ErrorNorm, Step


@lru_cache(maxsize=16)
def gauss_legendre(nodes: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Gauss-Legendre nodes and weights on [0, 1] (exact for polynomials of degree 2 nodes - 1)."""
    x, w = np.polynomial.legendre.leggauss(nodes)
    return tuple(float(v) for v in (x + 1) / 2), tuple(float(v) for v in w / 2)


class Quadrature(_Taped):
    """Quadrature adjoint (the QuadratureAdjoint / GaussAdjoint of SciMLSensitivity:
    Rackauckas et al. 2020, "Universal differential equations for scientific machine
    learning"; Kim et al. 2021, "Stiff neural ordinary differential equations").

    The forward pass keeps checkpoints as :class:`~odebench.ode._adjoint.Interpolated`
    does. Backwards, only the adjoint state ``a`` is integrated, ``da/dt = -a^T df/dy``,
    with ``y(t)`` from the forward solution's dense output; the backward error norm so
    sees ``a`` alone. The parameter gradient ``dL/dtheta = int a^T df/dtheta dt`` is a
    Gauss-Legendre quadrature with ``nodes`` points over each accepted backward step,
    ``a`` at the nodes read off the backward solver's dense output: ``nodes`` VJPs per
    backward step, for an integral of order ``2 nodes``.
    """

    def backward(self, grad_ys):
        self.fn.phase = "backward"
        ts = self.ts
        direction = 1.0 if ts[-1] > ts[0] else -1.0
        n = grad_ys[0].numel()
        norm = ErrorNorm((n,))
        trajectory = _Trajectory(self.integ, self.tape, self.fn, direction)
        integ_back = self.integ_back
        x, w = gauss_legendre(self.options.nodes)
        g = grad_ys.new_zeros(sum(self.param_sizes))

        def adjoint(t, a):
            _, parts = self._vjp(t, trajectory(t), -a)
            return parts[0]

        def quadrature(step: Step, f1: torch.Tensor, saved) -> None:
            nonlocal g
            if not self.diff_params:
                return
            for node, weight in zip(x, w, strict=True):
                t = step.t + node * step.h
                a = integ_back.dense(step, t, f1)
                _, parts = self._vjp(t, trajectory(t), a, state=False)
                # Backwards, h < 0: h * sum w (a^T df/dtheta) accumulates int_t^T a^T df/dtheta.
                g = g - (weight * step.h) * torch.cat(parts)

        a = grad_ys.new_zeros(n)
        h = None
        for i, span in backward_schedule(grad_ys, ts):
            if i is not None:
                a = a + grad_ys[i]
            if span is not None:
                result = integ_back.solve(adjoint, a, span, norm, h0=h, on_step=quadrature)
                self._count("backward", result)
                h, a = result.h_next, result.ys[-1]
        return a, self._split_params(g)
