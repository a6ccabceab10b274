"""Gradient methods behind one interface: own modes, torchdiffeq, diffrax, torchode, finite differences."""

from ._base import (
    KNOWN_SOLVERS as KNOWN_SOLVERS,
)
from ._base import (
    CaseSpec as CaseSpec,
)
from ._base import (
    Counts as Counts,
)
from ._base import (
    DeviceUnavailable as DeviceUnavailable,
)
from ._base import (
    Method as Method,
)
from ._base import (
    MethodError as MethodError,
)
from ._base import (
    Option as Option,
)
from ._base import (
    Outcome as Outcome,
)
from ._base import (
    Prepared as Prepared,
)
from ._registry import make_method as make_method
from ._registry import method_class as method_class
from ._registry import method_names as method_names

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
