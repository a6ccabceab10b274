"""Gradient methods behind one interface: own modes, torchdiffeq, diffrax, torchode, finite differences."""

from ._base import (
    CaseSpec as CaseSpec,
    Counts as Counts,
    DeviceUnavailable as DeviceUnavailable,
    Method as Method,
    MethodError as MethodError,
    Option as Option,
    Outcome as Outcome,
    Prepared as Prepared,
    KNOWN_SOLVERS as KNOWN_SOLVERS,
)
from ._registry import make_method as make_method, method_class as method_class, method_names as method_names

__all__ = [
    "KNOWN_SOLVERS",
    "CaseSpec",
    "Counts",
    "DeviceUnavailable",
    "Method",
    "MethodError",
    "Option",
    "Outcome",
    "Prepared",
    "make_method",
    "method_class",
    "method_names",
]
