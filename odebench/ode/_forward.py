"""Forward sensitivities: forward-mode differentiation through the solve."""

from __future__ import annotations

import torch

from ._adjoint import _Mode
from ._core import ErrorNorm, Step


class TooManyInputs(ValueError):
    """Forward sensitivities refused: more input directions than ``max_inputs``."""


class Forward(_Mode):
    """Forward sensitivities: the Jacobian of the discrete solve by forward-mode
    differentiation through every accepted step (the forward sensitivity equations of
    the Runge-Kutta method; Hairer, Norsett and Wanner I, II.16 "internal
    differentiation"; Ma et al. 2021, "A comparison of automatic differentiation and
    continuous sensitivity analysis for derivatives of differential equation solutions").

    The tangent matrix ``S = dy/d(y0, params)`` (``n x K`` columns, ``K = n + p``) rides
    along every step: each stage's ``dk_i = df/dy dY_i + df/dtheta`` along all ``K``
    directions at once, from one double-backward pass batched over the directions. Step
    sizes are taken from the primal solve and treated as constants, as backprop does, so
    the result is the discrete gradient. The forward pass stores ``dys/d(inputs)``; the
    backward pass only contracts it with the loss gradient. Cost grows with ``K``: each
    stage counts ``1 + K`` evaluations (the primal and one per direction).
    """

    def forward(self, y0):
        n = y0.numel()
        k = n + sum(self.param_sizes)
        if k > self.options.max_inputs:
            raise TooManyInputs(
                f"forward sensitivities over {k} inputs (state {n}, parameters {k - n}) exceed "
                f"max_inputs={self.options.max_inputs}; their cost grows with the number of inputs"
            )
        self.k = k
        # Parameter directions: the last p columns, a unit vector per parameter entry.
        eye = torch.eye(k, dtype=y0.dtype, device=y0.device)
        self.param_tangents = []
        offset = n
        for p, size in zip(self.diff_params, self.param_sizes, strict=True):
            self.param_tangents.append(eye[:, offset : offset + size].reshape(k, *p.shape))
            offset += size
        self.sensitivities = [eye[:n]]  # dy/d(inputs) at each save time, (n, K)
        S, dk1 = eye[:n], None

        def on_step(step: Step, f1: torch.Tensor, saved) -> None:
            nonlocal S, dk1
            S1, dK, dk1 = self._tangent_step(step, S, dk1)
            for theta in saved:
                if theta is None:
                    self.sensitivities.append(S1)
                else:
                    w = self.integ.dense_weights(theta)
                    dKf = dK if self.integ.tableau.fsal else torch.cat([dK, dk1.unsqueeze(0)])
                    self.sensitivities.append(S + step.h * torch.einsum("i,ink->nk", w, dKf))
            S = S1

        result = self.integ.solve(self.fn, y0, self.ts, ErrorNorm((n,)), on_step=on_step)
        self._count("forward", result)
        return torch.stack(result.ys)

    def _tangent_step(self, step: Step, S, dk1):
        """The tangent at the step's end, the stage tangents, and the tangent of
        ``f(t1, y1)``: the next step's first stage, as the primal solve reuses it."""
        coef, tab = self.integ.coef, self.integ.tableau
        s, h = tab.stages, step.h
        dK = S.new_empty((s, *S.shape))
        for i in range(s):
            if i == 0 and dk1 is not None:
                dK[0] = dk1
                continue
            dY = S if i == 0 else S + h * torch.einsum("j,jnk->nk", coef.a_rows[i], dK[:i])
            Y = step.y if i == 0 else torch.addmv(step.y, step.K[:i].T, coef.a_rows[i], alpha=h)
            dK[i] = self._jvp(step.t + coef.c[i] * h, Y, dY)
        S1 = S + h * torch.einsum("j,jnk->nk", coef.b, dK)
        dk1 = dK[-1] if tab.fsal else self._jvp(step.t + h, step.y1, S1)
        return S1, dK, dk1

    def _jvp(self, t: float, y: torch.Tensor, dY: torch.Tensor) -> torch.Tensor:
        """``df/dy dY + df/dtheta`` along all K directions (columns of ``dY``), as (n, K).

        ``f`` closes over its parameters, so forward mode cannot perturb them; the JVP is
        the transpose of the VJP ``u -> u^T J`` (linear in ``u``), differentiated once more
        with the K directions batched (double backward).
        """
        shape, k = self.fn.shape, self.k
        self.stats.nfe_forward += k  # one per direction; the primal is counted by the solve
        with torch.enable_grad():
            yv = y.view(shape).detach().requires_grad_(True)
            f = self.fn.func(t, yv)
            if not f.requires_grad:
                return dY.new_zeros(dY.shape)
            u = torch.zeros_like(f, requires_grad=True)
            inputs = (yv, *self.diff_params)
            vjps = torch.autograd.grad(f, inputs, u, create_graph=True, allow_unused=True)
            tangents = (dY.T.reshape(k, *shape), *self.param_tangents)
            pairs = [(v, d) for v, d in zip(vjps, tangents, strict=True) if v is not None and v.requires_grad]
            if not pairs:
                return dY.new_zeros(dY.shape)
            (jv,) = torch.autograd.grad(
                [v for v, _ in pairs], u, [d for _, d in pairs], is_grads_batched=True, allow_unused=True
            )
        if jv is None:
            return dY.new_zeros(dY.shape)
        return jv.reshape(k, -1).T.detach()

    def backward(self, grad_ys):
        J = torch.stack(self.sensitivities)  # (T, n, K)
        g = torch.einsum("tn,tnk->k", grad_ys, J)
        n = grad_ys[0].numel()
        return g[:n], self._split_params(g[n:])
