"""The few places where torch, jax.numpy and numpy differ, for code written against ``xp``.

Problem code sticks to the common subset (``xp.stack(arrays, axis)`` positionally,
``xp.concatenate``, ``xp.exp``, ``xp.tanh``, ``@``, indexing, ``xp.mean``); what lies outside
it lives here, so each problem is still written once.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def asarray_like(value: Any, like: Any, xp: Any) -> Any:
    """``value`` (NumPy data) as an ``xp`` array with ``like``'s dtype and device."""
    if xp.__name__ == "torch":
        return xp.as_tensor(np.asarray(value), dtype=like.dtype, device=like.device)
    return xp.asarray(value, dtype=like.dtype)


def expm(matrix: Any, xp: Any) -> Any:
    """The matrix exponential of a square matrix (or a stack of them), in torch or jax."""
    name = xp.__name__
    if name == "torch":
        return xp.linalg.matrix_exp(matrix)
    if name.startswith("jax"):
        import jax.scipy.linalg

        return jax.scipy.linalg.expm(matrix)
    raise TypeError(f"the matrix exponential needs torch or jax.numpy, got the namespace {name!r}")
