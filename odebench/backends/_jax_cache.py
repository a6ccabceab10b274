"""What a JAX method's case keeps on disk between processes, beside XLA's own cache.

Under the odebench cache (``$ODEBENCH_CACHE``, default ``~/.cache/odebench``):

- ``jax/``: XLA's persistent compilation cache (compiled executables; JAX's own format).
- ``jax-programs/``: the timed gradient's two halves as exported StableHLO (``jax.export``),
  so that a warm case neither traces nor compiles: tracing diffrax's solve costs seconds
  even when XLA's cache holds the executable. CPU cases only (a GPU case traces, and XLA's
  cache still spares it the compile). A computation that cannot be exported (a host
  callback in it: diffrax's implicit solvers) leaves a ``.unexportable`` note, and such a
  case traces every time, as before. ``compile_time_s`` still reports what building the
  timed halves took: computing the key, then loading and compiling (from XLA's cache), or
  tracing, exporting and compiling.
- ``jax-counts/``: the counts of the counting build (exact NFE and steps, :class:`EvalTally`),
  which host callbacks keep out of XLA's cache and which costs a trace and a compile.

Every entry is keyed by :func:`case_key`: the exact computation (the lowered StableHLO of
the vector field and of the loss, so every constant they read, bit for bit; the save
times; the method, its parameters and settings; the dtype and device), the versions of
the libraries that trace it and of Python, JAX's configuration, a digest of the source of
the modules that build it (this one, ``_jax.py``, ``_diffrax.py``) and
:data:`CACHE_VERSION`. An entry holds its full key and a SHA-256 of its content: one
that disagrees, is truncated or cannot be read is ignored and rewritten.

Cached counts are used only when they vouch for this very computation: an entry is
written only after the counting build produced a loss and gradient bit-identical to the
timed build's, and it is used only when the timed build of the case at hand produces
those same bits again and its forward steps (diffrax's own statistics, which the timed
build returns) equal the cached ones. Otherwise the counting build runs, as without a cache.

Delete the folders to clear them (``rm -rf ~/.cache/odebench/jax*``); nothing else reads them.
Program entries are pickled ``jax.export.Exported`` objects (``Exported.serialize`` needs
the optional ``flatbuffers`` package): like XLA's executables beside them, they are
trusted as the user's own files.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import os
import pickle
import platform
import re
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

#: Bump when what an entry means changes: every earlier entry is then ignored.
CACHE_VERSION = "1"

_LIBRARIES = ("jax", "jaxlib", "diffrax", "equinox", "optimistix", "lineax", "numpy")
_SOURCES = ("_jax.py", "_diffrax.py", "_jax_cache.py")
_MAGIC = b"odebench-jax-program\n"
#: parts of JAX configuration names that cannot change a traced program
_CONFIG_IGNORED = ("cache", "log", "explain", "dump", "timeout", "debug_leaked")


def root() -> Path:
    """The odebench cache folder (``$ODEBENCH_CACHE``, default ``~/.cache/odebench``)."""
    from ..problems import cache_dir

    return cache_dir().parent


def programs_dir() -> Path:
    return root() / "jax-programs"


def counts_dir() -> Path:
    return root() / "jax-counts"


@functools.cache
def library_versions() -> dict[str, str]:
    from .._version import __version__

    found = {"odebench": __version__, "python": sys.version, "machine": platform.machine()}
    for name in _LIBRARIES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


@functools.cache
def source_digest() -> str:
    """A digest of the modules that build the JAX computations: an edit invalidates entries."""
    digest = hashlib.sha256()
    here = Path(__file__).parent
    for name in _SOURCES:
        digest.update(name.encode())
        digest.update((here / name).read_bytes())
    return digest.hexdigest()


def _config(jax) -> dict[str, str]:
    values = getattr(jax.config, "values", {})
    return {k: repr(v) for k, v in sorted(values.items()) if not any(part in k for part in _CONFIG_IGNORED)}


def problem_digest(jp) -> str:
    """The exact mathematics a JAX case runs: the vector field and the loss lowered to
    StableHLO at the case's dtype and shapes (every constant they read is in the text,
    bit for bit), the save times as the case's arrays, the inputs' shapes and dtype."""
    jax = jp.jax
    sharding = jax.sharding.SingleDeviceSharding(jp.device)

    def spec(shape) -> Any:
        return jax.ShapeDtypeStruct(tuple(shape), jp.dtype, sharding=sharding)

    params = {key: spec(value.shape) for key, value in jp.params.items()}
    field = jax.jit(jp.field(None)).lower(spec(()), spec(jp.y0.shape), params).as_text()
    loss = jax.jit(jp.loss).lower(spec((jp.t.shape[0], *jp.y0.shape))).as_text()
    digest = hashlib.sha256()
    for part in (field, loss, repr((jp.dtype.str, jp.y0.shape, sorted((k, v.shape) for k, v in params.items())))):
        digest.update(part.encode())
        digest.update(b"\0")
    digest.update(np.ascontiguousarray(np.asarray(jp.t)).tobytes())
    return digest.hexdigest()


def case_key(jp, facts: Mapping[str, Any]) -> str:
    """The key of a JAX case's computation (module docstring); ``facts`` are what the
    method adds: its name, parameters, tolerances, step budget, how it differentiates."""
    jax = jp.jax
    device = jp.device
    entry = {
        "cache_version": CACHE_VERSION,
        "facts": dict(facts),
        "problem": problem_digest(jp),
        "device": [device.platform, getattr(device, "device_kind", ""), jp.dtype.str],
        "versions": library_versions(),
        "source": source_digest(),
        "config": _config(jax),
    }
    return hashlib.sha256(json.dumps(entry, sort_keys=True, default=repr).encode()).hexdigest()


def _stem(label: str, key: str) -> str:
    return f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', label)[:64]}-{key[:32]}"


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically; a read-only or full cache costs a rebuild next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)  # readers see the old file or the new one, never half
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        pass


def output_digest(outputs: Any) -> str:
    """A digest of the exact bits of a pytree of arrays (a loss and its gradient)."""
    import jax

    digest = hashlib.sha256()
    for leaf in jax.tree.leaves(outputs):
        array = np.ascontiguousarray(np.asarray(leaf))
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------- programs


class Programs:
    """The stored exported halves of one case's timed gradient (``label``: for file names)."""

    def __init__(self, key: str, label: str):
        self.key = key
        self.path = programs_dir() / f"{_stem(label, key)}.bin"
        self.note = self.path.with_suffix(".unexportable")

    def exportable(self) -> bool:
        """False once an export of this computation failed and its plain build succeeded."""
        return not self.note.exists()

    def mark_unexportable(self, reason: str) -> None:
        _write_atomic(self.note, json.dumps({"key": self.key, "reason": reason}).encode())

    def load(self) -> tuple[Any, Any] | None:
        """The forward and backward ``Exported``, or None when absent, stale or corrupt."""
        try:
            data = self.path.read_bytes()
            magic, header, payload = data[: len(_MAGIC)], *data[len(_MAGIC) :].split(b"\n", 1)
            meta = json.loads(header)
            if (
                magic != _MAGIC
                or meta["key"] != self.key
                or meta["version"] != CACHE_VERSION
                or meta["sha256"] != hashlib.sha256(payload).hexdigest()
            ):
                return None
            from jax import export

            halves = pickle.loads(payload)
            if not (isinstance(halves, tuple) and len(halves) == 2):
                return None
            if not all(isinstance(half, export.Exported) for half in halves):
                return None
            return halves
        except Exception:  # noqa: BLE001 - absent, truncated, corrupt or of other versions: rebuild
            return None

    def store(self, forward, backward) -> None:
        import dataclasses

        # The VJP of an exported function is a closure, which does not pickle; never needed.
        halves = tuple(dataclasses.replace(half, _get_vjp=None) for half in (forward, backward))
        payload = pickle.dumps(halves, protocol=pickle.HIGHEST_PROTOCOL)
        meta = {"key": self.key, "version": CACHE_VERSION, "sha256": hashlib.sha256(payload).hexdigest()}
        _write_atomic(self.path, _MAGIC + json.dumps(meta).encode() + b"\n" + payload)


def export_split(loss: Callable, y0, params) -> tuple[Any, Any]:
    """``loss(y0, params) -> (loss, aux)`` exported as two functions: the forward pass
    ``(y0, params) -> (loss, residuals, aux)`` (the residuals of ``jax.vjp``'s pullback as
    a flat list) and the backward pass ``residuals -> gradient``, traced together, so that
    one's residuals are what the other reads."""
    import jax
    import jax.numpy as jnp
    from jax import export

    one = np.ones((), dtype=y0.dtype)
    platforms = (y0.devices().pop().platform,)
    structure: dict[str, Any] = {}

    def forward(y0, params):
        value, pullback, aux = jax.vjp(loss, y0, params, has_aux=True)
        residuals, structure["pullback"] = jax.tree.flatten(pullback)
        return value, residuals, aux

    def backward(residuals):
        return jax.tree.unflatten(structure["pullback"], residuals)(jnp.asarray(one))

    exported_forward = export.export(jax.jit(forward), platforms=platforms)(y0, params)
    residuals = jax.tree.unflatten(exported_forward.out_tree, exported_forward.out_avals)[1]
    specs = [jax.ShapeDtypeStruct(r.shape, r.dtype) for r in residuals]
    exported_backward = export.export(jax.jit(backward), platforms=platforms)(specs)
    return exported_forward, exported_backward


def compile_split(forward, backward, y0, params) -> tuple[Any, Any]:
    """The two exported halves compiled ahead of time for the device of ``y0``."""
    import jax

    sharding = jax.sharding.SingleDeviceSharding(y0.devices().pop())
    compiled_forward = jax.jit(forward.call).lower(y0, params).compile()
    residuals = [jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding) for a in backward.in_avals]
    compiled_backward = jax.jit(backward.call).lower(residuals).compile()
    return compiled_forward, compiled_backward


# --------------------------------------------------------------------------- counts


def _check(entry: Mapping[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "check"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


class CountsEntry:
    """The cached counts of one case's counting build (``label``: for file names)."""

    def __init__(self, key: str, label: str):
        self.key = key
        self.path = counts_dir() / f"{_stem(label, key)}.json"

    def read(self, outputs: str, names: tuple[str, ...]) -> dict[str, int] | None:
        """The counts, if the entry is intact, of this key, and vouches for ``outputs``
        (the digest of the timed build's loss and gradient in this case); else None."""
        try:
            entry = json.loads(self.path.read_text())
            if entry["check"] != _check(entry) or entry["key"] != self.key or entry["version"] != CACHE_VERSION:
                return None
            if entry["outputs"] != outputs:
                return None
            counts = entry["counts"]
            if set(counts) != set(names) or not all(type(counts[n]) is int and counts[n] >= 0 for n in names):
                return None
            return {name: counts[name] for name in names}
        except Exception:  # noqa: BLE001 - absent, truncated, corrupt: count again
            return None

    def write(self, outputs: str, counts: Mapping[str, int]) -> None:
        entry: dict[str, Any] = {"version": CACHE_VERSION, "key": self.key, "outputs": outputs, "counts": dict(counts)}
        entry["check"] = _check(entry)
        _write_atomic(self.path, json.dumps(entry, sort_keys=True).encode())
