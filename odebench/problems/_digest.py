"""Digests of data and code that no memory address, process or round-off enters.

:func:`encode` turns an array into bytes that ignore round-off; :func:`function_digest` digests a
function (or a model, or any object) by its code and by what it reads. The problem fingerprint
(:mod:`._fingerprint`) and a user model's fingerprint (:mod:`._user`) are made of them.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
import types
from typing import Any

import numpy as np

SEED = 20_240_917  # of the probe inputs and the projections; changing it changes every fingerprint
PROJECTIONS = 4  # random projections per array: a change in any direction moves them
QUANTUM = 1e-10  # resolution of a projection of the unit direction, about 10 significant digits


def uniform(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    # Uniform doubles are exact multiples of 2**-53: the same bits on every platform.
    return 2.0 * rng.random(shape) - 1.0


def to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().double().numpy()
    return np.asarray(value, dtype=np.float64)


def encode(value: Any) -> bytes:
    """An array as bytes that ignore round-off: its shape, where it is not finite, its norm
    to 10 significant digits and :data:`PROJECTIONS` projections of its direction, quantized."""
    array = np.asarray(value, dtype=np.float64)
    flat = array.reshape(-1)
    finite = np.isfinite(flat)
    parts = [repr(array.shape).encode()]
    if not finite.all():
        kinds = np.where(finite, 0, np.where(np.isnan(flat), 1, np.where(flat > 0, 2, 3))).astype(np.uint8)
        parts.append(hashlib.sha256(kinds.tobytes()).digest())
        flat = np.where(finite, flat, 0.0)
    top = float(np.max(np.abs(flat))) if flat.size else 0.0
    if top > 0:
        unit = flat / top  # scaled first: the norm of 1e200s does not overflow
        length = float(np.linalg.norm(unit))
        weights = uniform(np.random.default_rng(SEED), (PROJECTIONS, flat.size))
        projections = np.rint((weights @ unit) / length / QUANTUM)
        parts += [f"{top * length:.9e}".encode(), projections.astype("<i8").tobytes()]
    else:
        parts.append(b"zero")
    return b"|".join(parts)


def _const(value: Any) -> str:
    """A code constant without addresses (nested code objects by content, sets sorted)."""
    if isinstance(value, types.CodeType):
        return code_digest(value)
    if isinstance(value, (tuple, list)):
        return "(" + ",".join(_const(v) for v in value) + ")"
    if isinstance(value, (frozenset, set)):
        return "{" + ",".join(sorted(_const(v) for v in value)) + "}"
    return repr(value)


def code_digest(code: types.CodeType) -> str:
    """A digest of a code object's bytecode, names and constants, nested code included.

    ``repr(co_consts)`` is not one: a nested function or a generator expression is a code
    constant whose repr holds its memory address.
    """
    text = "|".join([code.co_code.hex(), ",".join(code.co_names), _const(code.co_consts)])
    return hashlib.sha256(text.encode()).hexdigest()


def _names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def _is_array(obj: Any) -> bool:
    """A NumPy array, torch tensor or JAX array (not a class, nor a function named ``detach``)."""
    if isinstance(obj, np.ndarray):
        return True
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(obj, torch.Tensor):
        return True
    jax = sys.modules.get("jax")
    return jax is not None and isinstance(obj, jax.Array)


def function_digest(fn: Any, depth: int = 3) -> str:
    """A digest of a function's code and of what it reads: closure cells, defaults and the
    module globals it names (numbers, arrays, other functions), ``depth`` levels deep; of a
    module, its architecture, its classes' ``forward`` and its state; of another object,
    its class and attributes. No memory address enters it."""
    digest = hashlib.sha256()
    seen: set[int] = set()  # against cycles only; no identity enters the digest

    def visit(obj: Any, level: int) -> None:
        if level > depth:
            return
        if isinstance(obj, (bool, int, float, complex, str, bytes, type(None))):
            digest.update(repr(obj).encode())
        elif _is_array(obj):
            digest.update(encode(to_numpy(obj)))
        elif isinstance(obj, (list, tuple)):
            for item in obj:
                visit(item, level + 1)
        elif isinstance(obj, dict):
            for key, item in obj.items():
                digest.update(repr(key).encode())
                visit(item, level + 1)
        elif not isinstance(obj, type) and hasattr(obj, "state_dict") and hasattr(obj, "named_modules"):  # an nn.Module
            if id(obj) in seen:
                return
            seen.add(id(obj))
            digest.update(repr(obj).encode())  # the architecture
            for _, sub in obj.named_modules():
                visit(type(sub).forward, level + 1)
            for key, tensor in obj.state_dict().items():
                digest.update(key.encode())
                visit(tensor, level + 1)
        elif isinstance(obj, (types.FunctionType, types.MethodType)):
            if id(obj) in seen:
                return
            seen.add(id(obj))
            func = obj.__func__ if isinstance(obj, types.MethodType) else obj
            if isinstance(obj, types.MethodType):
                visit(obj.__self__, level + 1)
            digest.update(code_digest(func.__code__).encode())
            visit(func.__defaults__, level + 1)
            for cell in func.__closure__ or ():
                with contextlib.suppress(ValueError):  # an empty cell
                    visit(cell.cell_contents, level + 1)
            for name in sorted(_names(func.__code__)):
                if name in func.__globals__:
                    digest.update(name.encode())
                    visit(func.__globals__[name], level + 1)
        elif isinstance(obj, types.ModuleType):
            digest.update(obj.__name__.encode())
        else:  # a class or any other object: what it is and what it holds, not where it lives
            kind = obj if isinstance(obj, type) else type(obj)
            digest.update(f"{kind.__module__}.{kind.__qualname__}".encode())
            if not isinstance(obj, type) and id(obj) not in seen and isinstance(getattr(obj, "__dict__", None), dict):
                seen.add(id(obj))
                visit(vars(obj), level + 1)

    visit(fn, 0)
    return digest.hexdigest()
