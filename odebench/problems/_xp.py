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


def conv2d(x: Any, weight: Any, xp: Any) -> Any:
    """A stride-1 2-D convolution with zero "same" padding, in torch, jax or NumPy.

    ``x`` is ``(batch, in_channels, height, width)``, ``weight`` is
    ``(out_channels, in_channels, k, k)`` with k odd; the result has ``x``'s spatial size.
    It is cross-correlation, as in every deep-learning library.
    """
    pad = weight.shape[-1] // 2
    name = xp.__name__
    if name == "torch":
        return xp.nn.functional.conv2d(x, weight, padding=pad)
    if name.startswith("jax"):
        import jax

        return jax.lax.conv_general_dilated(
            x, weight, (1, 1), [(pad, pad), (pad, pad)], dimension_numbers=("NCHW", "OIHW", "NCHW")
        )
    if name == "numpy":
        # Direct: one channel contraction per kernel offset over the padded input.
        height, width = x.shape[-2:]
        padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
        out = 0.0
        for i in range(weight.shape[-2]):
            for j in range(weight.shape[-1]):
                out = out + np.einsum("nchw,oc->nohw", padded[:, :, i : i + height, j : j + width], weight[:, :, i, j])
        return out
    raise TypeError(f"conv2d needs torch, jax.numpy or numpy, got the namespace {name!r}")


def logsumexp(x: Any, xp: Any) -> Any:
    """``log(sum(exp(x)))`` over the last axis, without overflow."""
    top = xp.amax(x, -1)
    return top + xp.log(xp.sum(xp.exp(x - top[..., None]), -1))
