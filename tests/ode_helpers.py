"""Small ODEs with closed-form solutions, shared by the solver-core tests."""

from __future__ import annotations

import torch

ADAPTIVE = ["bosh3", "dopri5", "tsit5", "dopri8"]
FIXED = ["euler", "midpoint", "rk4"]
MODES = ["backprop", "checkpoint", "backsolve", "interpolated"]
ADJOINTS = ["backsolve", "interpolated"]


def flat_grad(grads) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in grads])


def rel_err(g: torch.Tensor, ref: torch.Tensor) -> float:
    return float((g - ref).norm() / ref.norm())


class Linear:
    """y' = A y. Exact solution expm(A t) y0; its gradient comes from autograd through
    ``torch.linalg.matrix_exp``, whose derivative is the exact Frechet derivative."""

    def __init__(self, dim=3, seed=0, dtype=torch.float64, device="cpu"):
        g = torch.Generator().manual_seed(seed)
        a = torch.randn(dim, dim, generator=g, dtype=torch.float64) / dim**0.5 - 0.5 * torch.eye(
            dim, dtype=torch.float64
        )
        self.A = a.to(dtype=dtype, device=device).requires_grad_(True)
        self.y0 = torch.randn(dim, generator=g, dtype=torch.float64).to(dtype=dtype, device=device).requires_grad_(True)
        self.w = torch.randn(dim, generator=g, dtype=torch.float64).to(dtype=dtype, device=device)

    def f(self, t, y):
        return self.A @ y

    @property
    def params(self):
        return [self.A]

    def loss(self, ys, weights=None):
        """sum_i weights_i * (w . y(t_i) + |y(t_i)|^2 / 2): touches every save time."""
        per_time = ys @ self.w + 0.5 * (ys * ys).sum(-1)
        if weights is not None:
            per_time = per_time * torch.as_tensor(weights, dtype=ys.dtype, device=ys.device)
        return per_time.sum()

    def exact(self, t, weights=None):
        ys = torch.stack([torch.linalg.matrix_exp(self.A * float(ti)) @ self.y0 for ti in t])
        return flat_grad(torch.autograd.grad(self.loss(ys, weights), [self.y0, self.A]))


class Logistic:
    """y' = r y (1 - y / K), elementwise on a batch; y(t) = K y0 e^{rt} / (K + y0 (e^{rt} - 1))."""

    def __init__(self, batch=(4, 2), dtype=torch.float64, device="cpu"):
        g = torch.Generator().manual_seed(1)
        self.r = torch.tensor(1.3, dtype=dtype, device=device, requires_grad=True)
        self.K = torch.tensor(2.0, dtype=dtype, device=device, requires_grad=True)
        self.y0 = (
            (0.2 + torch.rand(batch, generator=g, dtype=torch.float64))
            .to(dtype=dtype, device=device)
            .requires_grad_(True)
        )

    def f(self, t, y):
        return self.r * y * (1 - y / self.K)

    @property
    def params(self):
        return [self.r, self.K]

    def solution(self, t):
        e = torch.exp(self.r * t)
        return self.K * self.y0 * e / (self.K + self.y0 * (e - 1))

    def loss(self, ys):
        return (ys**2).mean(dim=tuple(range(1, ys.dim()))).sum()

    def exact(self, t):
        ys = torch.stack([self.solution(float(ti)) for ti in t])
        return flat_grad(torch.autograd.grad(self.loss(ys), [self.y0, *self.params]))
