"""odebench.gradcheck: right gradients pass; wrong ones fail with the right explanation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import odebench
from odebench import Problem
from odebench.problems import get_problem
from odebench.verify import GradcheckError


class _Decay(torch.autograd.Function):
    """f(y) = -k y with a hand-written VJP; ``sign=-1`` flips it (a deliberate bug)."""

    @staticmethod
    def forward(ctx, y, k, sign):
        ctx.save_for_backward(y, k)
        ctx.sign = sign
        return -k * y

    @staticmethod
    def backward(ctx, grad):
        y, k = ctx.saved_tensors
        s = ctx.sign
        return s * (-k * grad), s * (-(grad * y).sum()).reshape(k.shape), None


def _decay_problem(sign: float) -> Problem:
    y0, k, t_end = np.array([1.0, 2.0]), 0.7, 1.5

    def field(t, y, p, xp):
        if xp is torch:
            return _Decay.apply(y, p["k"], sign)
        return -p["k"] * y

    def exact():
        e = np.exp(-2 * k * t_end)
        return {"y0": 2 * y0 * e, "k": np.array(-2 * t_end * e * float(y0 @ y0))}

    return Problem(
        name=f"decay_vjp_{'right' if sign > 0 else 'flipped'}",
        vector_field=field,
        y0=y0,
        params={"k": np.array(k)},
        t=np.array([0.0, t_end]),
        loss=lambda ys, xp: (ys[-1] ** 2).sum(),
        exact_gradient=exact,
    )


def test_right_gradient_passes():
    result = odebench.gradcheck(get_problem("linear"), "odebench.checkpoint", rtol=1e-8)
    assert result.passed and result.diagnosis == "ok", str(result)
    assert result.error < 1e-6 and result.consistency < 1e-10 and result.derivative_error < 1e-6
    assert bool(result) and "PASS" in str(result)


def test_backsolve_on_stiff_decay_is_an_inconsistent_adjoint():
    result = odebench.gradcheck(get_problem("stiff_decay"), "odebench.backsolve", rtol=1e-6)
    assert not result.passed
    assert result.diagnosis == "adjoint_inconsistent", str(result)
    assert result.solve_error < 1e-5 and result.consistency > 1e3
    assert "interpolated" in result.explanation
    # The cure it suggests works.
    assert odebench.gradcheck(get_problem("stiff_decay"), "odebench.interpolated", rtol=1e-6).passed


def test_loose_tolerance_is_an_inaccurate_solve():
    result = odebench.gradcheck(get_problem("lorenz", {"t_end": 2.0}), "odebench.checkpoint", rtol=1e-3, tolerance=1e-6)
    assert result.diagnosis == "solve_inaccurate", str(result)
    assert "Tighten" in result.explanation


def test_flipped_vjp_is_caught_as_a_wrong_derivative():
    for method in ("odebench.backprop", "odebench.backsolve", "odebench.interpolated"):
        result = odebench.gradcheck(_decay_problem(-1.0), method, rtol=1e-9)
        assert not result.passed, method
        assert result.diagnosis == "derivative_wrong", str(result)
        assert result.derivative_error > 0.1
    right = odebench.gradcheck(_decay_problem(1.0), "odebench.backsolve", rtol=1e-9)
    assert right.passed, str(right)


def test_raise_exception_and_other_libraries():
    with pytest.raises(GradcheckError, match="adjoint_inconsistent"):
        odebench.gradcheck(get_problem("stiff_decay"), "torchdiffeq.adjoint", rtol=1e-6, raise_exception=True)
    assert odebench.gradcheck(get_problem("linear"), "torchdiffeq.adjoint", rtol=1e-9).passed


def test_torch_vector_field_form():
    a = torch.tensor([[-0.2, 1.0], [-1.0, -0.3]])

    def field(t, y, p):
        return torch.tanh(p["A"] @ y)

    result = odebench.gradcheck(
        field, "odebench.interpolated", y0=torch.tensor([0.5, -0.4]), t=torch.linspace(0, 1, 3),
        params={"A": a}, loss=lambda ys: (ys**2).sum(), rtol=1e-8,
    )  # fmt: skip
    assert result.passed and result.reference_kind == "tight", str(result)
    with pytest.raises(TypeError, match="needs a Problem"):
        odebench.gradcheck(field)
