"""The Problem: one ODE, its parameters, save times and loss, written once against ``xp``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._errors import ProblemError as ProblemError

# Stiff means that stability alone would cost an explicit solver thousands of steps:
# (fastest decay rate) x (horizon) against the stability interval (~3) of dopri5.
STIFF_WORK = 1e4


def is_stiff(rate: float, t_span: float) -> bool:
    """The rule behind :attr:`Problem.stiff`: ``rate * t_span >= STIFF_WORK``."""
    return bool(rate * t_span >= STIFF_WORK)


#: ``Problem.framework``: None (written against ``xp``), or the one framework that can run it
FRAMEWORKS = (None, "torch", "jax")


@dataclass(frozen=True)
class LossGradient:
    """A loss value, its gradient (``{"y0": ..., <param>: ...}``) and the solve's counts."""

    loss: float
    grads: dict[str, np.ndarray]
    stats: dict[str, int]


@dataclass(frozen=True, eq=False)
class Problem:
    """An ODE ``dy/dt = vector_field(t, y, params, xp)`` with a scalar loss on its solution.

    The vector field and the loss are written against an array namespace ``xp``
    (``torch``, ``jax.numpy`` or ``numpy``), so every backend integrates the very same
    mathematics.

    Time reaches the vector field as the backend's own scalar: a 0-d tensor in every torch
    backend (the own solver's Python float is turned into one, of ``y``'s dtype, on the
    CPU), a traced scalar in diffrax. Write time dependence with ``xp`` functions
    (``xp.sin(t) * y``): it then works, and stays differentiable in ``t``, everywhere.

    A model of one framework is a problem too: :meth:`from_torch` takes an ``nn.Module``
    with ``forward(t, y)`` (or a callable and a dict of tensors), :meth:`from_jax` a JAX
    function or an equinox module. Such a problem has a :attr:`framework`, and methods of
    the other framework record it as ``unavailable``.

    Attributes:
        name: registry name (or the factory path) of the problem.
        vector_field: ``f(t, y, params, xp) -> dy/dt``; ``params`` maps names to arrays.
        y0: initial state, any shape (a leading batch axis is allowed).
        params: the parameters the gradient is taken with respect to.
        t: save times, strictly increasing; ``t[0]`` is the start time.
        loss: ``loss(ys, xp) -> scalar`` with ``ys`` of shape ``(len(t), *y0.shape)``.
        exact_gradient: ``() -> {"y0": array, <param>: array}`` where a closed form exists.
        exact_solution: ``(y0, params, t, xp) -> ys``, the closed-form solution at the save
            times ``t`` (a NumPy array), where one exists; written against ``xp`` like the
            vector field, so it can be differentiated (``xp=torch``) or checked.
        description: one paragraph: what it is, where it comes from, what it stresses.
        stiff: whether explicit methods need many steps for stability rather than accuracy.
        max_steps: a step budget generous enough for explicit solvers at tight tolerances.
        config: the keyword arguments the factory was called with (for caching and reports).
        framework: ``None`` for a problem written against ``xp`` (every backend runs it);
            ``"torch"`` or ``"jax"`` for one that only that framework can evaluate
            (its ``vector_field`` and ``loss`` ignore ``xp``).
    """

    name: str
    vector_field: Callable[..., Any]
    y0: np.ndarray
    params: dict[str, Any]  # float64 arrays once built; the constructor also takes numbers, NumPy scalars, lists
    t: np.ndarray
    loss: Callable[..., Any]
    exact_gradient: Callable[[], dict[str, np.ndarray]] | None = None
    description: str = ""
    stiff: bool = False
    max_steps: int = 100_000
    config: dict[str, Any] = field(default_factory=dict)
    exact_solution: Callable[..., Any] | None = None
    framework: str | None = None

    def __post_init__(self) -> None:
        y0 = np.asarray(self.y0, dtype=np.float64)
        t = np.asarray(self.t, dtype=np.float64)
        if y0.ndim == 0 or y0.size == 0:
            raise ProblemError(f"problem {self.name!r}: y0 must be a non-empty array, got shape {y0.shape}")
        if t.ndim != 1 or t.size < 2:
            raise ProblemError(
                f"problem {self.name!r}: t must be a 1-D array of at least 2 save times, got shape {t.shape}"
            )
        if not np.all(np.isfinite(t)) or not np.all(np.diff(t) > 0):
            raise ProblemError(f"problem {self.name!r}: save times t must be finite and strictly increasing")
        if not isinstance(self.params, dict):
            raise ProblemError(
                f"problem {self.name!r}: params must be a dict of arrays, got {type(self.params).__name__}"
            )
        params = {}
        for key, value in self.params.items():
            if key == "y0":
                raise ProblemError(f"problem {self.name!r}: 'y0' is reserved and cannot be a parameter name")
            params[str(key)] = np.asarray(value, dtype=np.float64)
        if not callable(self.vector_field) or not callable(self.loss):
            raise ProblemError(f"problem {self.name!r}: vector_field and loss must be callable")
        for key in ("exact_gradient", "exact_solution"):
            value = getattr(self, key)
            if value is not None and not callable(value):
                raise ProblemError(f"problem {self.name!r}: {key} must be callable or None, got {type(value).__name__}")
        if self.framework not in FRAMEWORKS:
            raise ProblemError(
                f"problem {self.name!r}: framework must be one of {', '.join(map(str, FRAMEWORKS))}, "
                f"got {self.framework!r}"
            )
        if not isinstance(self.config, dict):
            raise ProblemError(f"problem {self.name!r}: config must be a dict, got {type(self.config).__name__}")
        object.__setattr__(self, "y0", y0)
        object.__setattr__(self, "t", t)
        object.__setattr__(self, "params", params)

    @classmethod
    def from_torch(
        cls, field: Any, y0: Any, t: Any, loss: Callable[[Any], Any], params: dict[str, Any] | None = None, **info: Any
    ) -> Problem:
        """A problem from a PyTorch model (runs on the torch backends only).

        Args:
            field: an ``nn.Module`` whose ``forward(t, y)`` is the vector field (the
                torchdiffeq convention; its trainable parameters are the problem's, under
                their ``named_parameters`` names), or a callable ``f(t, y, params)`` given
                with ``params``.
            y0, t: the initial state and the save times (tensors or arrays).
            loss: ``loss(ys) -> scalar`` on a tensor of shape ``(len(t), *y0.shape)``.
            params: with a callable field, the dict of tensors it takes (default none).
            info: other :class:`Problem` fields (``name``, ``description``, ``max_steps``, ...).
        """
        from ._user import torch_model

        return cls(**torch_model(field, y0, t, loss, params, **info))

    @classmethod
    def from_jax(
        cls, field: Any, y0: Any, t: Any, loss: Callable[[Any], Any], params: Any = None, **info: Any
    ) -> Problem:
        """A problem from a JAX model (runs on the JAX backends only).

        Args:
            field: a function ``f(t, y, params)`` given with ``params`` (a dict of arrays),
                or an equinox module called as ``module(t, y)`` (its array leaves, split
                off by ``eqx.partition``, are the parameters).
            y0, t: the initial state and the save times (arrays).
            loss: ``loss(ys) -> scalar`` on a JAX array of shape ``(len(t), *y0.shape)``.
            params: with a function, the dict of arrays it takes.
            info: other :class:`Problem` fields (``name``, ``description``, ``max_steps``, ...).
        """
        from ._user import jax_model

        return cls(**jax_model(field, y0, t, loss, params, **info))

    @property
    def n_state(self) -> int:
        return int(self.y0.size)

    @property
    def n_params(self) -> int:
        return int(sum(p.size for p in self.params.values()))

    @property
    def analytic(self) -> bool:
        """Whether the reference gradient is analytic (``exact_gradient`` is given)."""
        return self.exact_gradient is not None

    @property
    def gradient_names(self) -> tuple[str, ...]:
        """The parts of the gradient, in the order they are concatenated: y0, then params."""
        return ("y0", *self.params.keys())

    def flat_gradient(self, grads: dict[str, Any]) -> np.ndarray:
        """Concatenate a gradient dict into one float64 vector in :attr:`gradient_names` order."""
        parts = []
        for key in self.gradient_names:
            if key not in grads:
                raise ProblemError(f"problem {self.name!r}: gradient is missing the part {key!r}")
            part = np.asarray(grads[key], dtype=np.float64)
            expected = self.y0.shape if key == "y0" else self.params[key].shape
            if part.shape != expected:
                raise ProblemError(
                    f"problem {self.name!r}: gradient part {key!r} has shape {part.shape}, expected {expected}"
                )
            parts.append(part.reshape(-1))
        return np.concatenate(parts)

    def flat_inputs(self) -> np.ndarray:
        """``y0`` and the parameters as one float64 vector in :attr:`gradient_names` order."""
        return self.flat_gradient({"y0": self.y0, **self.params})

    def unflatten(self, flat: Any) -> dict[str, np.ndarray]:
        """Split a vector in :attr:`gradient_names` order back into ``{"y0": ..., <param>: ...}``.

        The inverse of :meth:`flat_inputs` and :meth:`flat_gradient`.
        """
        flat = np.asarray(flat, dtype=np.float64)
        size = self.n_state + self.n_params
        if flat.shape != (size,):
            raise ProblemError(f"problem {self.name!r}: expected a flat vector of shape ({size},), got {flat.shape}")
        out: dict[str, np.ndarray] = {}
        offset = 0
        for key in self.gradient_names:
            shape = self.y0.shape if key == "y0" else self.params[key].shape
            count = int(np.prod(shape, dtype=np.int64))
            out[key] = flat[offset : offset + count].reshape(shape)
            offset += count
        return out
