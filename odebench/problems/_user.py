"""A user's own model as a :class:`Problem`: a PyTorch module or function, a JAX function
or equinox module, evaluated by its own framework only (``Problem.framework``).

The parameters are copied out as float64 NumPy arrays under stable names (PyTorch's
``named_parameters``, JAX's key paths) and substituted back functionally at each
evaluation, so every method differentiates with respect to the same inputs. The problem's
``config`` holds a fingerprint of the model (code, architecture, values, the loss's code
and captured data), so a cached reference gradient is never reused for another model.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np

from .._errors import ProblemError
from ._digest import function_digest


class _WithoutXp:
    """``fn`` called without the trailing ``xp`` argument: a model of one framework ignores it."""

    def __init__(self, fn: Callable[..., Any]):
        self.fn = fn

    def __call__(self, *args: Any) -> Any:
        return self.fn(*args[:-1])


class _TorchModuleField:
    """``forward(t, y)`` of an ``nn.Module`` with its parameters substituted (``functional_call``).

    The module is copied once per dtype and device it is evaluated in, so that its
    buffers and frozen parameters follow the case's dtype and device.
    """

    def __init__(self, module: Any):
        self.module = module
        self._copies: dict[tuple[Any, Any], Any] = {}

    def _copy_for(self, y: Any) -> Any:
        key = (y.dtype, y.device)
        if key not in self._copies:
            self._copies[key] = copy.deepcopy(self.module).to(dtype=y.dtype, device=y.device)
        return self._copies[key]

    def __call__(self, t: Any, y: Any, params: dict[str, Any], xp: Any) -> Any:
        from torch.func import functional_call

        return functional_call(self._copy_for(y), params, (t, y))

    def __getstate__(self) -> dict[str, Any]:
        return {"module": self.module, "_copies": {}}


class _JaxTreeField:
    """A JAX field whose parameters are the array leaves of a pytree, named by key path.

    ``call(t, y, tree)`` evaluates the field with the tree rebuilt from the named leaves
    (``eqx.combine`` with the module's static part, for an equinox module). The tree's
    structure is derived again after unpickling: a pickled structure of custom nodes
    does not always unflatten.
    """

    def __init__(self, call: Callable[..., Any], names: tuple[str, ...], tree: Any, static: Any = None):
        self.call = call
        self.names = names
        self.tree = tree
        self.static = static
        self._treedef: Any = None  # a jax PyTreeDef once built

    def rebuild(self, params: dict[str, Any]) -> Any:
        import jax

        if self._treedef is None:
            self._treedef = jax.tree_util.tree_structure(self.tree)
            if self._treedef.num_leaves != len(self.names):
                raise ProblemError(
                    f"the parameters of {type(self.tree).__name__} did not survive the transfer to a worker process "
                    f"({self._treedef.num_leaves} of {len(self.names)} arrays): define its class in an importable "
                    "module, not in a script or notebook"
                )
        tree = self._treedef.unflatten([params[name] for name in self.names])
        if self.static is None:
            return tree
        import equinox as eqx

        return eqx.combine(tree, self.static)

    def __call__(self, t: Any, y: Any, params: dict[str, Any], xp: Any) -> Any:
        return self.call(t, y, self.rebuild(params))

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_treedef": None}


def _call_module(t: Any, y: Any, module: Any) -> Any:
    return module(t, y)


def to_numpy(value: Any, what: str, name: str) -> np.ndarray:
    """A tensor or array (torch, JAX, NumPy, nested lists) as a float64 NumPy array."""
    try:
        if hasattr(value, "detach"):  # a torch tensor, possibly on a GPU
            value = value.detach().to("cpu").double().numpy()
        return np.array(value, dtype=np.float64)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ProblemError(f"problem {name!r}: {what} must be an array of numbers ({exc})") from exc


def fingerprint(*objects: Any) -> str:
    """A digest of models, functions and data: code, architecture, array values, and what
    functions capture (closure cells, referenced globals), a few levels deep."""
    return function_digest(objects, depth=4)[:32]


def torch_model(
    field: Any, y0: Any, t: Any, loss: Callable[[Any], Any], params: dict[str, Any] | None, **info: Any
) -> dict[str, Any]:
    """The :class:`Problem` fields of a PyTorch model; see :meth:`Problem.from_torch`."""
    import torch

    name = info.pop("name", "torch_model")
    if isinstance(field, torch.nn.Module):
        if params is not None:
            raise ProblemError(
                f"problem {name!r}: an nn.Module carries its own parameters; give params only with a "
                "callable f(t, y, params)"
            )
        values = {key: p for key, p in field.named_parameters() if p.requires_grad}
        vector_field: Callable[..., Any] = _TorchModuleField(field)
    elif callable(field):
        if params is not None and not isinstance(params, dict):
            raise ProblemError(f"problem {name!r}: params must be a dict of tensors, got {type(params).__name__}")
        values = dict(params or {})
        vector_field = _WithoutXp(field)
    else:
        raise ProblemError(f"problem {name!r}: field must be an nn.Module or a callable, got {type(field).__name__}")
    return _fields(name, "torch", vector_field, values, y0, t, loss, info, fingerprint(field, loss))


def jax_model(field: Any, y0: Any, t: Any, loss: Callable[[Any], Any], params: Any, **info: Any) -> dict[str, Any]:
    """The :class:`Problem` fields of a JAX model; see :meth:`Problem.from_jax`."""
    import jax

    name = info.pop("name", "jax_model")
    if params is None and is_equinox_module(field):
        import equinox as eqx

        tree, static = eqx.partition(field, eqx.is_inexact_array)
        call = _call_module
    elif callable(field):
        if params is None:
            raise ProblemError(f"problem {name!r}: a JAX function f(t, y, params) needs params (a pytree of arrays)")
        tree, static, call = params, None, field
    else:
        raise ProblemError(
            f"problem {name!r}: field must be a function f(t, y, params) or an equinox module, got "
            f"{type(field).__name__}"
        )
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    names = tuple(_leaf_name(path) for path, _ in leaves)
    if len(set(names)) != len(names):
        raise ProblemError(f"problem {name!r}: the parameters' key paths are not distinct: {', '.join(names)}")
    values = {key: leaf for key, (_, leaf) in zip(names, leaves, strict=True)}
    vector_field = _JaxTreeField(call, names, tree, static)
    return _fields(name, "jax", vector_field, values, y0, t, loss, info, fingerprint(field, loss, static))


def _leaf_name(path: tuple[Any, ...]) -> str:
    """A parameter's name: the key of a flat dict, else its key path (``layers[0].weight``)."""
    import jax

    if len(path) == 1 and isinstance(path[0], jax.tree_util.DictKey) and isinstance(path[0].key, str):
        return path[0].key
    return jax.tree_util.keystr(path).lstrip(".") or "params"


def is_equinox_module(obj: Any) -> bool:
    try:
        import equinox as eqx
    except ImportError:
        return False
    return isinstance(obj, eqx.Module)


def _fields(
    name: str,
    framework: str,
    vector_field: Callable[..., Any],
    values: dict[str, Any],
    y0: Any,
    t: Any,
    loss: Callable[[Any], Any],
    info: dict[str, Any],
    digest: str,
) -> dict[str, Any]:
    if not callable(loss):
        raise ProblemError(f"problem {name!r}: loss must be a callable loss(ys) -> scalar")
    params = {key: to_numpy(value, f"parameter {key!r}", name) for key, value in values.items()}
    config = {"framework": framework, "fingerprint": digest, **info.pop("config", {})}
    description = info.pop("description", f"a {framework} model given to Problem.from_{framework}")
    return dict(
        name=name, vector_field=vector_field, y0=to_numpy(y0, "y0", name), params=params,
        t=to_numpy(t, "t", name), loss=_WithoutXp(loss), framework=framework, config=config,
        description=description, **info,
    )  # fmt: skip
