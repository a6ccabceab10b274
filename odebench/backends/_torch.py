"""What every PyTorch-based method shares: the problem as tensors, counting, timing hooks."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ._base import CaseSpec, Counts, Outcome, Prepared

if TYPE_CHECKING:
    from ..problems import Problem


class EvalCounter:
    """Counts vector-field evaluations per phase while ``on``; free when off."""

    def __init__(self):
        self.on = False
        self.phase = "forward"
        self.calls = {"forward": 0, "backward": 0}

    def reset(self) -> None:
        self.calls = {"forward": 0, "backward": 0}
        self.phase = "forward"


def time_tensor(t, y) -> Any:
    """``t`` as a 0-d tensor: unchanged if it is one, else of ``y``'s dtype on the CPU
    (a 0-d CPU tensor combines with tensors on any device, with no copy to the device)."""
    import torch

    if isinstance(t, torch.Tensor):
        return t
    return torch.full((), t, dtype=y.dtype)


class TorchProblem:
    """A :class:`~odebench.Problem` as torch tensors of one dtype and device."""

    def __init__(self, problem: Problem, spec: CaseSpec):
        import torch

        self.torch = torch
        self.problem = problem
        self.dtype = getattr(torch, spec.dtype)
        self.device = torch.device(spec.device)
        self.y0 = self.tensor(problem.y0).requires_grad_(True)
        self.params = {k: self.tensor(v).requires_grad_(True) for k, v in problem.params.items()}
        self.t = self.tensor(problem.t)
        self.counter = EvalCounter()

    def tensor(self, array) -> Any:
        return self.torch.tensor(np.asarray(array), dtype=self.dtype, device=self.device)

    @property
    def inputs(self) -> list:
        return [self.y0, *self.params.values()]

    def evaluate(self, t, y, params: Mapping[str, Any]) -> Any:
        """One evaluation of the vector field, counted while the counter is on.

        ``t`` reaches the field as a 0-d tensor whichever torch library calls it (the own
        solver passes a Python float), so ``xp.sin(t)`` works in every backend.
        """
        counter = self.counter
        if counter.on:
            counter.calls[counter.phase] += 1
        return self.problem.vector_field(time_tensor(t, y), y, params, self.torch)

    def field(self, params: Mapping[str, Any]):
        """The vector field ``f(t, y)`` closed over ``params``, counted while the counter is on."""
        evaluate = self.evaluate

        def f(t, y):
            return evaluate(t, y, params)

        return f

    def require_finite(self, ys, what: str) -> None:
        """Raise :class:`~odebench.ode.NonFiniteSolution` when a solve produced NaN or Inf.

        Libraries stop an adaptive solve that blows up, but a fixed-step one runs on
        with NaN; this makes both an exception.
        """
        if not bool(self.torch.isfinite(ys).all()):
            from ..ode import NonFiniteSolution

            raise NonFiniteSolution(f"{what}: the solution contains NaN or Inf")

    def loss(self, ys) -> Any:
        return self.problem.loss(ys, self.torch)

    def grads_dict(self, grads) -> dict[str, np.ndarray]:
        names = ("y0", *self.params)
        out = {}
        for name, g, x in zip(names, grads, self.inputs, strict=True):
            g = self.torch.zeros_like(x) if g is None else g
            out[name] = g.detach().to("cpu", self.torch.float64).numpy().reshape(x.shape)
        return out


class TorchPrepared(Prepared):
    """A torch computation: subclasses give ``solve(y0, params) -> ys`` (with a graph)."""

    def __init__(self, tp: TorchProblem):
        self.tp = tp
        self.memory_source = "cuda" if tp.device.type == "cuda" else "rss"

    @abstractmethod
    def solve(self, y0, params: Mapping[str, Any]) -> Any:
        """The solution at the save times, shape (len(t), *y0.shape), differentiable."""

    def steps(self) -> Mapping[str, Mapping[str, int]]:
        """Step counts of the last counted pass by kind and phase (``{"steps": {"forward": 9, ...},
        "rejected": ...}``, as :meth:`Counts.from_phases` takes them), where the library exposes them."""
        return {}

    def forward(self):
        return self.tp.loss(self.solve(self.tp.y0, self.tp.params))

    def backward(self, loss):
        grads = self.tp.torch.autograd.grad(loss, self.tp.inputs, allow_unused=True)
        return loss, grads

    def outcome(self, state) -> Outcome:
        loss, grads = state
        return Outcome(loss=float(loss.detach()), grads=self.tp.grads_dict(grads))

    def sync(self) -> None:
        if self.tp.device.type == "cuda":
            self.tp.torch.cuda.synchronize(self.tp.device)

    def count(self) -> Counts:
        counter = self.tp.counter
        counter.reset()
        counter.on = True
        try:
            loss = self.forward()
            counter.phase = "backward"
            self.backward(loss)
        finally:
            counter.on = False
        return Counts.from_phases(nfe=counter.calls, **self.steps())

    def loss_at(self, y0: np.ndarray, params: Mapping[str, np.ndarray]) -> float:
        tp = self.tp
        with tp.torch.no_grad():
            p = {k: tp.tensor(params[k]) for k in tp.params}
            return float(tp.loss(self.solve(tp.tensor(y0), p)))

    def torch_module(self):
        return self.tp.torch

    def device_handle(self):
        return self.tp.device
