"""Method names -> adapter classes, imported on demand.

Adapter modules import their library only inside ``prepare``, so listing and validating
methods works with any subset of torchdiffeq, diffrax and torchode installed.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from ._base import Method, MethodError

_METHODS: dict[str, str] = {
    "odebench.backprop": "odebench.backends._odebench:Backprop",
    "odebench.backsolve": "odebench.backends._odebench:Backsolve",
    "odebench.interpolated": "odebench.backends._odebench:Interpolated",
    "odebench.checkpoint": "odebench.backends._odebench:Checkpoint",
    "odebench.forward": "odebench.backends._odebench:Forward",
    "odebench.quadrature": "odebench.backends._odebench:Quadrature",
    "odebench.symplectic": "odebench.backends._odebench:Symplectic",
    "odebench.reversible": "odebench.backends._odebench:Reversible",
    "torchdiffeq.backprop": "odebench.backends._torchdiffeq:Backprop",
    "torchdiffeq.adjoint": "odebench.backends._torchdiffeq:Adjoint",
    "diffrax.recursive_checkpoint": "odebench.backends._diffrax:RecursiveCheckpoint",
    "diffrax.backsolve": "odebench.backends._diffrax:Backsolve",
    "diffrax.direct": "odebench.backends._diffrax:Direct",
    "diffrax.forward": "odebench.backends._diffrax:Forward",
    "torchode.autodiff": "odebench.backends._torchode:AutoDiff",
    "torchode.backsolve": "odebench.backends._torchode:Backsolve",
    "fd.central": "odebench.backends._fd:Central",
}


def method_names() -> tuple[str, ...]:
    return tuple(_METHODS)


def method_class(name: str) -> type[Method]:
    """The adapter class of a method name; an unknown name lists the valid ones."""
    try:
        target = _METHODS[name]
    except KeyError:
        raise MethodError(f"unknown method {name!r}; must be one of {', '.join(_METHODS)}") from None
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


def make_method(name: str, params: Mapping[str, Any] | None = None) -> Method:
    """A method with validated parameters (defaults filled in)."""
    return method_class(name)(params)
