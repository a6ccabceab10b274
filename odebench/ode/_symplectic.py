"""The symplectic adjoint: the exact gradient of an explicit Runge-Kutta solve at O(N + s) memory."""

from __future__ import annotations

from collections import defaultdict
from typing import cast

import torch

from ._adjoint import _Mode
from ._core import ErrorNorm, Tape, coefficients


class Symplectic(_Mode):
    """Symplectic adjoint (Matsubara, Miyatake and Yaguchi 2021, "Symplectic adjoint method
    for exact gradient of neural ODE with minimal memory", NeurIPS).

    The forward pass keeps every accepted step's ``(t, h, y_n)`` and nothing else. The
    backward pass walks the steps in reverse; for each it recomputes the stage states
    ``Y_i`` without a graph (``s - 1`` evaluations) and then applies the step's exact
    discrete adjoint, one vector-Jacobian product per stage in reverse stage order::

        kappa_i = h (b_i lam_1 + sum_q w_i(theta_q) g_q + sum_{m > i} a_mi mu_m)
        mu_i    = kappa_i^T df/dy (t + c_i h, Y_i)      grad_theta += kappa_i^T df/dtheta
        lam_0   = lam_1 + sum_q g_q + sum_i mu_i

    with ``g_q`` the loss gradient at save times read off the step's dense output at
    ``theta_q`` (weights ``w``). This is the adjoint system integrated by the symplectic
    partner of the tableau, written for the stage cotangents ``kappa_i = h b_i Lambda_i``
    instead of the paper's ``Lambda_i``: that removes the division by ``b_i``, so zero
    weights (dopri5, tsit5, bosh3, dopri8) need no special case. It equals backprop
    through the same solve to round-off; memory is the N states, the s stages of one
    step, and the graph of one evaluation.
    """

    def forward(self, y0):
        self.tape = Tape(keep_all=True)
        result = self.integ.solve(self.fn, y0, self.ts, ErrorNorm((y0.numel(),)), tape=self.tape)
        self._count("forward", result)
        self.stats.checkpoints = len(self.tape.states)
        self.stats.checkpoint_stride = 1
        return torch.stack(result.ys)

    def backward(self, grad_ys):
        self.fn.phase = "backward"
        tape = self.tape
        saves: dict[int, list[tuple[int, float | None]]] = defaultdict(list)
        for idx, (j, theta) in enumerate(tape.save_steps, start=1):
            saves[j].append((idx, theta))
        lam = torch.zeros_like(grad_ys[0])
        g = grad_ys.new_zeros(sum(self.param_sizes))
        for j in range(tape.n_steps - 1, -1, -1):
            dense = []
            for idx, theta in saves.get(j, ()):
                if theta is None:
                    lam = lam + grad_ys[idx]
                else:
                    dense.append((theta, grad_ys[idx]))
            lam, g = self._step_adjoint(j, lam, dense, g)
        self.stats.steps_backward += tape.n_steps
        return lam + grad_ys[0], self._split_params(g)

    def _step_adjoint(self, j: int, lam1, dense, g):
        """The cotangent of step ``j``'s start state from that of its end (``lam1``) and the
        dense-output reads ``(theta, cotangent)`` inside it; parameter gradient added to ``g``."""
        tab = self.integ.tableau
        coef = coefficients(tab, lam1.dtype, lam1.device)
        t, h, y = self.tape.t0[j], self.tape.h[j], self.tape.states[j]
        s = tab.stages
        # Dense-output cotangent per stage (and per f1 for methods without FSAL).
        if dense:
            thetas = torch.tensor([th for th, _ in dense], dtype=lam1.dtype, device=lam1.device)
            weights = torch.pow(thetas[:, None], coef.dense_exponents) @ coef.dense.T  # (Q, rows)
            dense_cot = weights.T @ torch.stack([c for _, c in dense])  # (rows, n)
            dense_rows = [bool(x) for x in (weights != 0).any(0).tolist()]
            lam0 = lam1 + torch.stack([c for _, c in dense]).sum(0)
        else:
            dense_cot, dense_rows, lam0 = None, [False] * coef.dense.shape[0], lam1
        f1_needed = not tab.fsal and len(dense_rows) > s and dense_rows[s]

        # Recompute the stage states exactly as the forward step did (same arithmetic).
        Ys = [y]
        with torch.no_grad():
            K = y.new_empty((s, y.shape[0]))
            for i in range(s):
                if i > 0:
                    Ys.append(torch.addmv(y, K[:i].T, coef.a_rows[i], alpha=h))
                if i < s - 1 or f1_needed:  # the last stage's value feeds no other stage
                    K[i] = self.fn(t + coef.c[i] * h, Ys[i])
        if f1_needed:
            y1 = torch.addmv(y, K.T, coef.b, alpha=h)
            # f1_needed implies dense_rows[s], so dense reads exist and dense_cot is set
            _, parts = self._vjp(self.tape.end_time(j), y1, h * cast(torch.Tensor, dense_cot)[s])
            lam1 = lam1 + parts[0]
            lam0 = lam0 + parts[0]
            if len(parts) > 1:
                g = g + torch.cat(parts[1:])

        a, b = tab.a, tab.b
        mus: list[torch.Tensor | None] = [None] * s
        for i in range(s - 1, -1, -1):
            terms = []
            if b[i] != 0:
                terms.append(float(b[i]) * lam1)
            if dense_rows[i]:  # some dense read uses this stage, so dense_cot is set
                terms.append(cast(torch.Tensor, dense_cot)[i])
            for m in range(i + 1, s):
                mu = mus[m]
                if a[m, i] != 0 and mu is not None:
                    terms.append(float(a[m, i]) * mu)
            if not terms:
                continue  # a structurally zero cotangent: no evaluation
            kappa = h * torch.stack(terms).sum(0) if len(terms) > 1 else h * terms[0]
            _, parts = self._vjp(t + coef.c[i] * h, Ys[i], kappa)
            mus[i] = parts[0]
            lam0 = lam0 + parts[0]
            if len(parts) > 1:
                g = g + torch.cat(parts[1:])
        return lam0, g
