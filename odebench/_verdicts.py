"""Judgements every layer makes the same way: a gradient's relative error, the accuracy a
dtype and a reference allow, and when an adjoint is inconsistent with its own solve.

The runner (``grad_rel_err``, ``consistency_err``), the report's findings and
:func:`odebench.gradcheck` all call these. NumPy only.
"""

from __future__ import annotations

import numpy as np

#: The smallest relative gradient error each dtype can resolve on these problems.
ERROR_FLOOR: dict[str, float] = {"float64": 1e-12, "float32": 1e-5, "float16": 1e-2, "bfloat16": 1e-1}
#: An adjoint is inconsistent when it departs from discrete backprop of the same solve by
#: more than this many times both the effective tolerance and that solve's own error.
CONSISTENCY_FACTOR = 100.0


def relative_error(g: np.ndarray, ref: np.ndarray) -> float:
    """``||g - ref|| / ||ref||`` (the absolute norm where ``ref`` is zero)."""
    diff = float(np.linalg.norm(g - ref))
    ref_norm = float(np.linalg.norm(ref))
    return diff / ref_norm if ref_norm > 0 else diff


def effective_tolerance(rtol: float, dtype: str, reference_err: float | None = None) -> float:
    """What a gradient error can be held to: ``rtol``, unless the dtype's floor or the
    reference's own error is larger."""
    return max(rtol, ERROR_FLOOR.get(dtype, 0.0), reference_err or 0.0)


def adjoint_inconsistent(consistency: float, tol_eff: float, discrete_err: float | None) -> bool:
    """Whether a method's distance to discrete backprop of the same solve (``consistency``)
    exceeds :data:`CONSISTENCY_FACTOR` times both ``tol_eff`` and that solve's own error."""
    return consistency > CONSISTENCY_FACTOR * max(tol_eff, discrete_err or 0.0)
