"""The one interface every gradient method implements, whatever library it wraps.

A :class:`Method` is a method *name* with validated parameters (``solver``, ...). For
one case it ``prepare``s a :class:`Prepared` computation: the problem converted to the
library's arrays on the case's device, everything built and compiled. The runner then
calls only ``forward``, ``backward``, ``sync`` (timed), and ``outcome``, ``count``,
``loss_at`` (untimed), and never learns which library is behind it.
"""

from __future__ import annotations

import importlib
import importlib.util
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, cast

import numpy as np

from .._cases import label
from .._records import PHASES, WORK_COUNTERS

if TYPE_CHECKING:
    from ..problems import Problem


class MethodError(ValueError):
    """Bad method parameters; the message names the parameter and what is valid."""


class DeviceUnavailable(RuntimeError):
    """The case's device is valid but not present here (``cuda`` on a machine without
    one): the case is recorded as ``unavailable``, not failed."""


@dataclass(frozen=True)
class Option:
    """One parameter a method accepts, with its type, default and documentation."""

    kind: type | tuple[type, ...]
    default: Any
    doc: str
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None

    def check(self, method: str, name: str, value: Any) -> Any:
        kinds = self.kind if isinstance(self.kind, tuple) else (self.kind,)
        if value is None and self.default is None:
            return None
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        # bool is an int subclass: True must not pass as a step count.
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise MethodError(f"method {method}: parameter {name!r} must be {names}, got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise MethodError(
                f"method {method}: parameter {name!r} must be one of {', '.join(map(str, self.choices))}, got {value!r}"
            )
        # cast: the isinstance check above narrowed value to object; it is a number here
        if self.minimum is not None and cast(Any, value) < self.minimum:
            raise MethodError(f"method {method}: parameter {name!r} must be >= {self.minimum}, got {value!r}")
        return value


SOLVER = Option(str, "dopri5", "the Runge-Kutta method (dopri5, tsit5, bosh3, dopri8, rk4, euler, ...)")
MAX_STEPS = Option(
    int, None, "step attempts allowed before the solve counts as diverged (default: the problem's)", minimum=1
)
N_STEPS = Option(int, 100, "steps over the whole horizon for fixed-step solvers (euler, midpoint, rk4)", minimum=1)

# Every solver name any backend knows; a name outside this set is bad input, a name in
# it that a backend cannot do makes that backend's cases ``unavailable``. (Literal, so
# that checking a suite imports no solver library.)
FIXED_STEP: tuple[str, ...] = ("euler", "midpoint", "heun", "rk4")
ADAPTIVE: tuple[str, ...] = ("bosh3", "dopri5", "tsit5", "dopri8")
# Only some backends have these: an algebraically reversible method (fixed step, as the
# explicit ones above) and implicit ones for stiff problems (adaptive).
REVERSIBLE: tuple[str, ...] = ("reversible_heun",)
IMPLICIT: tuple[str, ...] = ("kvaerno3", "kvaerno5")
KNOWN_SOLVERS: tuple[str, ...] = FIXED_STEP + ADAPTIVE + REVERSIBLE + IMPLICIT


@dataclass(frozen=True)
class CaseSpec:
    """What a method needs to know of a case besides the problem."""

    rtol: float
    atol: float
    dtype: str  # float32 | float64
    device: str  # cpu | cuda
    seed: int = 0


@dataclass
class Counts:
    """Exact work of one forward + backward pass (``WORK_COUNTERS``); ``None`` where a library hides it."""

    nfe_forward: int | None = None
    nfe_backward: int | None = None
    steps_forward: int | None = None
    steps_backward: int | None = None
    rejected_forward: int | None = None
    rejected_backward: int | None = None

    @classmethod
    def from_phases(cls, **kinds: Mapping[str, int]) -> Counts:
        """From per-phase tallies by kind: ``from_phases(nfe={"forward": 6, "backward": 4})``."""
        return cls(**{f"{kind}_{phase}": tally[phase] for kind, tally in kinds.items() for phase in PHASES})

    @classmethod
    def of(cls, source: Any) -> Counts:
        """The counters read off ``source``'s attributes (a :class:`~odebench.ode.SolveStats`)."""
        return cls(**{name: getattr(source, name) for name in WORK_COUNTERS})

    def as_dict(self) -> dict[str, int | None]:
        return {name: getattr(self, name) for name in WORK_COUNTERS}


@dataclass
class Outcome:
    """The loss and its gradient, as float64 NumPy arrays keyed ``y0`` and parameter names.

    A method that estimates directional derivatives instead of the full gradient (such
    as ``fd.central`` with ``directions``) gives ``directions`` (K x n, rows in the
    gradient's flat order) and ``derivatives`` (K) and leaves ``grads`` empty.
    """

    loss: float
    grads: dict[str, np.ndarray] = field(default_factory=dict)
    directions: np.ndarray | None = None
    derivatives: np.ndarray | None = None


class Prepared(ABC):
    """One case's computation, set up and ready to time."""

    #: where peak memory is read: rss (CPU), cuda (the torch allocator) or jax.
    memory_source: str = "rss"
    #: JIT/compilation seconds spent in ``prepare`` (``None`` where nothing compiles).
    compile_time_s: float | None = None

    @abstractmethod
    def forward(self) -> Any:
        """Compute the loss (and whatever the backward pass needs); timed."""

    @abstractmethod
    def backward(self, state: Any) -> Any:
        """Compute the gradient from ``forward``'s state; timed. Returns the new state."""

    @abstractmethod
    def outcome(self, state: Any) -> Outcome:
        """The loss and gradient from ``backward``'s state, as NumPy (untimed)."""

    def sync(self) -> None:
        """Wait for queued device work (inside the timer)."""

    @abstractmethod
    def count(self) -> Counts:
        """One untimed forward + backward pass that counts evaluations and steps."""

    @abstractmethod
    def loss_at(self, y0: np.ndarray, params: Mapping[str, np.ndarray]) -> float:
        """The loss of a forward solve at other inputs (for finite-difference checks)."""

    def torch_module(self):
        """The torch module when the computation runs in torch (for CUDA memory); else None."""
        return None

    def device_handle(self):
        """The device object the memory probe needs (torch.device or a jax device)."""
        return None


FAMILIES: dict[str, str] = {
    "discrete": "differentiates the discrete solve (backprop, checkpointing, forward mode): exact for it",
    "stored": "continuous adjoint on the stored or interpolated forward trajectory",
    "backsolve": "continuous adjoint that solves the state backwards too: can be unstable",
    "reversible": "an algebraically reversible solver: the state is rebuilt exactly, step by step",
    "verification": "finite differences: the difference step, not the tolerance, sets the error",
}
"""The families of gradient methods (:attr:`Method.family`)."""

STABLE_FAMILIES = ("discrete", "stored")
"""Families that take the forward state from storage: the yardstick for backsolve-type methods."""


class Method(ABC):
    """A gradient method: a name, the library behind it, and its parameters."""

    name: ClassVar[str]
    library: ClassVar[str]
    requires: ClassVar[tuple[str, ...]] = ("torch",)
    solvers: ClassVar[tuple[str, ...]] = ()
    devices: ClassVar[tuple[str, ...]] = ("cpu", "cuda")
    options: ClassVar[dict[str, Option]] = {"solver": SOLVER}
    #: the method whose gradient is "discrete backprop of the same solve", or None
    consistency: ClassVar[str | None] = None
    description: ClassVar[str] = ""
    #: how the gradient is had, one of :data:`FAMILIES`; findings compare within and across them
    family: ClassVar[str] = "discrete"
    #: whether the method promises memory independent of the number of steps (the horizon)
    constant_memory: ClassVar[bool] = False

    def __init__(self, params: Mapping[str, Any] | None = None):
        self.params = self.validate(params or {})

    @classmethod
    def validate(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        """Check the parameters and fill in defaults; unknown names list the valid ones."""
        if not isinstance(params, Mapping):
            raise MethodError(f"method {cls.name}: params must be a mapping, got {type(params).__name__}")
        unknown = sorted(set(params) - set(cls.options))
        if unknown:
            raise MethodError(
                f"method {cls.name}: unknown parameter {unknown[0]!r}; valid parameters: {', '.join(cls.options)}"
            )
        out = {}
        for key, option in cls.options.items():
            out[key] = option.check(cls.name, key, params[key]) if key in params else option.default
        solver = out.get("solver")
        if solver is not None and solver not in KNOWN_SOLVERS:
            raise MethodError(
                f"method {cls.name}: unknown solver {solver!r}; must be one of {', '.join(KNOWN_SOLVERS)}"
            )
        return out

    @classmethod
    def missing_dependency(cls) -> str | None:
        """Why the library cannot be imported here, or None (checked without importing)."""
        for module in cls.requires:
            try:
                found = importlib.util.find_spec(module) is not None
            except (ImportError, ValueError):
                found = False
            except Exception as exc:  # a broken install or import hook: unavailable, with the reason
                return f"{module} cannot be looked up: {type(exc).__name__}: {exc}"
            if not found:
                return f"{module} is not installed (pip install odebench[{cls.library}])"
        return None

    @classmethod
    def framework(cls) -> str:
        """The array framework this method evaluates vector fields in: ``jax`` or ``torch``."""
        return "jax" if "jax" in cls.requires else "torch"

    def unavailable_reason(self, device: str, problem: Problem | None = None) -> str | None:
        """Why this method cannot run here as configured (without importing the library),
        or cannot run ``problem`` (a model of the other framework, ``Problem.framework``)."""
        missing = self.missing_dependency()
        if missing:
            return missing
        needs = getattr(problem, "framework", None)
        if needs is not None and needs != self.framework():
            return f"{needs}-only problem: {self.name} evaluates vector fields in {self.framework()}"
        solver = self.params.get("solver")
        if self.solvers and solver is not None and solver not in self.solvers:
            return f"{self.name} does not provide solver {solver!r} (it has {', '.join(self.solvers)})"
        if device not in self.devices:
            return f"{self.name} does not run on {device} (it runs on {', '.join(self.devices)})"
        return None

    def skip_reason(self, problem: Problem) -> str | None:
        """Why this method, as configured, declines ``problem`` (``skipped``), or None: a
        forward-mode method refuses more inputs than its ``max_inputs``, since its cost
        grows with them."""
        limit = self.params.get("max_inputs")
        inputs = problem.n_state + problem.n_params
        if limit is not None and inputs > limit:
            return (f"{inputs} inputs (state {problem.n_state}, parameters {problem.n_params}) exceed "
                    f"max_inputs={limit}; forward mode costs one JVP per input")  # fmt: skip
        return None

    @abstractmethod
    def prepare(self, problem: Problem, spec: CaseSpec) -> Prepared:
        """Build the computation for one case (imports the library; may compile)."""

    def discrete_twin(self) -> Method | None:
        """The :attr:`consistency` method with this one's solver settings, or None."""
        if self.consistency is None:
            return None
        cls = method_class(self.consistency)
        shared = ("solver", "n_steps", "max_steps")
        return cls({k: v for k, v in self.params.items() if k in shared and k in cls.options})

    def max_steps(self, problem: Problem) -> int:
        """The step budget: the ``max_steps`` parameter, else the problem's own."""
        return self.params.get("max_steps") or problem.max_steps

    def fixed_step(self, problem: Problem) -> float | None:
        """The step size of a fixed-step solver (``n_steps`` over the horizon), else None."""
        if self.params.get("solver") not in FIXED_STEP + REVERSIBLE:
            return None
        return float(problem.t[-1] - problem.t[0]) / self.params["n_steps"]

    def label(self) -> str:
        """A readable name with the parameters that differ from the defaults."""
        changed = {k: v for k, v in self.params.items() if self.options[k].default != v or k == "solver"}
        return label(self.name, changed)


# ---------------------------------------------------------------- the catalogue
# Method names -> adapter classes, imported on demand. Adapter modules import their
# library only inside ``prepare``, so listing and validating methods works with any
# subset of torchdiffeq, diffrax and torchode installed.

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
