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


def torch_threads_probe(path: str = "") -> Problem:
    """y' = -k y that NumPy cannot evaluate, so the reference's fingerprint evaluates it in
    torch, also in the worker of a JAX method's case; each torch evaluation writes
    ``torch.get_num_threads()`` to ``path``. Exact gradient: the reference solves nothing."""

    def field(t, y, p, xp):
        if xp is np:
            raise TypeError("this field is written for torch and JAX only")
        if xp.__name__ == "torch" and path:
            with open(path, "a") as handle:
                handle.write(f"{xp.get_num_threads()}\n")
        return -p["k"] * y

    y0, k = np.array([1.0, 2.0]), 0.5

    def exact():
        e = np.exp(-2 * k)
        return {"y0": 2 * y0 * e, "k": np.array(-2 * e * float(y0 @ y0))}

    return Problem(
        name="torch_threads_probe", vector_field=field, y0=y0, params={"k": np.array(k)},
        t=np.array([0.0, 1.0]), loss=lambda ys, xp: (ys[-1] ** 2).sum(), exact_gradient=exact,
    )  # fmt: skip
