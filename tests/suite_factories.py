"""Problem factories for the suite tests ("suite_factories:NAME")."""

from __future__ import annotations

import time

import numpy as np

from odebench import Problem


def reference_hangs() -> Problem:
    """No exact gradient, so the reference is a tight solve, and the field never returns."""

    def field(t, y, p, xp):
        time.sleep(3600)
        return -p["k"] * y

    return Problem(
        name="reference_hangs", vector_field=field, y0=np.array([1.0]), params={"k": np.array(0.5)},
        t=np.array([0.0, 1.0]), loss=lambda ys, xp: (ys[-1] ** 2).sum(),
    )  # fmt: skip
