"""Losses shared by several problems, written against ``xp``.

Losses read the save times after the start (``ys[1:]``): the state at ``t[0]`` is an
input, not a result. With two save times that is the final state alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def mean_square(ys: Any, xp: Any) -> Any:
    """The mean of ``y**2`` over the save times after the start and every component."""
    return xp.mean(ys[1:] ** 2)


def scaled_mean_square(scale: float) -> Callable[[Any, Any], Any]:
    """:func:`mean_square` of ``ys / scale``, for states whose natural size is ``scale``."""

    def loss(ys: Any, xp: Any) -> Any:
        return xp.mean((ys[1:] / scale) ** 2)

    return loss
