"""User factories loaded by import path in the registry tests ("problem_factories:decay")."""

from __future__ import annotations

import numpy as np

from odebench.problems import Problem

NOT_CALLABLE = 3


def _decay_field(t, y, params, xp):
    return -params["rate"] * y


def _final_square(ys, xp):
    return xp.mean(ys[-1] ** 2)


def decay(*, rate: float = 1.0, t_end: float = 1.0) -> Problem:
    """Exponential decay y' = -rate y, a user-defined problem."""
    return Problem(
        name="decay", vector_field=_decay_field, y0=np.array([1.0, 2.0]), params={"rate": np.float64(rate)},
        t=np.array([0.0, t_end]), loss=_final_square,
    )  # fmt: skip


def takes_anything(**kwargs) -> Problem:
    """Accepts any keyword (so no keyword is unknown to the registry)."""
    return decay(rate=float(kwargs.get("rate", 1.0)))


def not_a_problem():
    return {"name": "decay"}


def broken():
    raise RuntimeError("the factory is broken")
