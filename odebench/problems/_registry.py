"""The problem registry: built-in names, user factories by import path, and what exists.

A factory is a function of keyword arguments that returns a :class:`Problem`. Built-in
ones are registered under a name with :func:`register`; any other is reachable by its
import path ``"package.module:function"``. Every way a factory can fail to load or run
becomes a :class:`ProblemError` that says which.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import functools
import importlib
import inspect
import pickle
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ._problem import Problem, ProblemError

Factory = Callable[..., Problem]

_REGISTRY: dict[str, Factory] = {}


@dataclass(frozen=True)
class ProblemInfo:
    """What ``odebench list problems`` shows about one registered problem.

    Attributes:
        name: the registry name.
        summary: the first line of the factory's docstring.
        parameters: the factory's keyword parameters and their defaults.
        analytic: whether the reference gradient is analytic (at the defaults).
        stiff: whether the problem is stiff (at the defaults).
        n_state, n_params: sizes at the defaults.
        description: the factory's docstring paragraph (what, where from, what it stresses).
    """

    name: str
    summary: str
    parameters: dict[str, Any]
    analytic: bool
    stiff: bool
    n_state: int
    n_params: int
    description: str


def _docstring_description(fn: Callable) -> str:
    """A docstring up to its ``Args:`` section, as one line of prose per paragraph."""
    doc = inspect.getdoc(fn) or ""
    text = doc.split("\nArgs:", 1)[0].strip()
    return "\n\n".join(" ".join(par.split()) for par in text.split("\n\n") if par.strip())


def _call_factory(label: str, fn: Callable, params: dict[str, Any]) -> Problem:
    """Call ``fn(**params)`` and check what comes back; every failure is a ProblemError."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins and some C callables have none
        signature = None
    if signature is not None:
        accepted = signature.parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
        named = [n for n, p in accepted.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
        for key in params:
            if not takes_any and key not in named:
                valid = ", ".join(named) if named else "none"
                raise ProblemError(f"problem {label!r}: unknown parameter {key!r}; valid parameters: {valid}")
    try:
        problem = fn(**params)
    except ProblemError as exc:
        if repr(label) in str(exc):
            raise
        raise ProblemError(f"problem {label!r}: {exc}") from exc  # say which factory it came from
    except Exception as exc:
        raise ProblemError(f"problem {label!r}: the factory raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(problem, Problem):
        raise ProblemError(
            f"problem {label!r}: the factory returned {type(problem).__name__}, expected an odebench.Problem"
        )
    changes: dict[str, Any] = {}
    if not problem.config and signature is not None:
        # The full configuration, defaults included, so that equal problems share a cache key.
        try:
            bound = signature.bind_partial(**params)
            bound.apply_defaults()
            changes["config"] = dict(bound.arguments)
        except TypeError:
            changes["config"] = dict(params)
    if not problem.description:
        changes["description"] = _docstring_description(fn)
    return dataclasses.replace(problem, **changes) if changes else problem


def register(name: str) -> Callable[[Factory], Factory]:
    """Register a factory under ``name``; the decorated function checks its keywords.

    The returned function has the factory's signature; calling it (directly or through
    :func:`get_problem`) rejects unknown keywords with the list of valid ones and fills in
    the problem's ``config`` (every parameter, defaults included) and ``description``.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"a problem name must be an identifier, got {name!r}")

    def decorate(fn: Factory) -> Factory:
        if name in _REGISTRY:
            raise ValueError(f"a problem named {name!r} is already registered")

        @functools.wraps(fn)  # inspect.signature follows __wrapped__ to the real parameters
        def factory(**params: Any) -> Problem:
            return _call_factory(name, fn, params)

        _REGISTRY[name] = factory
        return factory

    return decorate


def problem_names() -> tuple[str, ...]:
    """The registered problem names, sorted."""
    return tuple(sorted(_REGISTRY))


def _unknown_name(name: str) -> ProblemError:
    names = problem_names()
    close = difflib.get_close_matches(name, names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ProblemError(
        f"unknown problem {name!r}{hint}; valid names: {', '.join(names)}; "
        "or give a factory by import path as 'package.module:function'"
    )


_IMPORT_PATH = re.compile(r"[^\W\d]\w*(?:\.[^\W\d]\w*)*:[^\W\d]\w*(?:\.[^\W\d]\w*)*")


def is_factory_path(name: str) -> bool:
    """Whether ``name`` is a factory's import path, checked for form only (nothing is imported).

    Raises:
        ProblemError: a name with ``:`` that is not of the form ``package.module:function``.
    """
    if name in _SERVED or ":" not in name:
        return False
    if not _IMPORT_PATH.fullmatch(name):
        raise ProblemError(f"problem {name!r}: an import path must look like 'package.module:function'")
    return True


def _load_factory(path: str) -> Callable:
    is_factory_path(path)
    module_name, _, attr_path = path.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ProblemError(f"problem {path!r}: cannot import module {module_name!r}: {exc}") from exc
    except Exception as exc:
        raise ProblemError(
            f"problem {path!r}: importing module {module_name!r} raised {type(exc).__name__}: {exc}"
        ) from exc
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise ProblemError(f"problem {path!r}: module {module_name!r} has no attribute {attr_path!r}") from exc
    if not callable(obj):
        raise ProblemError(f"problem {path!r}: {attr_path!r} is a {type(obj).__name__}, not a callable factory")
    return obj


def get_problem(name_or_path: str, params: dict[str, Any] | None = None) -> Problem:
    """The problem named ``name_or_path`` built with ``params`` as keyword arguments.

    Args:
        name_or_path: a registry name (see :func:`problem_names`) or the import path of
            any factory, ``"package.module:function"``.
        params: keyword arguments for the factory (default: none, i.e. its defaults).

    Raises:
        ProblemError: unknown name, bad path, missing attribute, unknown or invalid
            parameter, a factory that raised or returned something other than a Problem.
    """
    if not isinstance(name_or_path, str):
        raise ProblemError(f"a problem name must be a string, got {type(name_or_path).__name__}")
    if params is None:
        params = {}
    if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
        raise ProblemError(f"problem {name_or_path!r}: params must be a dict with string keys, got {params!r}")
    if name_or_path in _SERVED:
        return _served(name_or_path, params)
    if ":" in name_or_path:
        return _call_factory(name_or_path, _load_factory(name_or_path), params)
    if name_or_path not in _REGISTRY:
        raise _unknown_name(name_or_path)
    return _REGISTRY[name_or_path](**params)


def list_problems() -> list[ProblemInfo]:
    """One :class:`ProblemInfo` per registered problem, sorted by name."""
    infos = []
    for name in problem_names():
        factory = _REGISTRY[name]
        problem = factory()
        description = _docstring_description(factory)
        parameters = inspect.signature(factory).parameters.values()
        defaults = {p.name: p.default for p in parameters if p.default is not p.empty}
        infos.append(
            ProblemInfo(
                name=name,
                summary=description.split("\n", 1)[0],
                parameters=defaults,
                analytic=problem.analytic,
                stiff=problem.stiff,
                n_state=problem.n_state,
                n_params=problem.n_params,
                description=description,
            )
        )
    return infos


# Problems given as objects (``odebench.benchmark``), served under their names while a
# run lasts: in this process, and in each worker, where they arrive by value.
_SERVED: dict[str, Problem] = {}


def _served(name: str, params: dict[str, Any]) -> Problem:
    if params:
        raise ProblemError(f"problem {name!r} was given as an object and takes no parameters, got {sorted(params)}")
    return _SERVED[name]


@contextlib.contextmanager
def serving(problems: Iterable[Problem]) -> Iterator[None]:
    """Within the block, :func:`get_problem` returns these problems by their names (before
    any registered problem or import path of the same name)."""
    problems = list(problems)
    names = [p.name for p in problems]
    if len(set(names)) != len(names):
        raise ProblemError(f"problems given as objects need distinct names, got {', '.join(names)}")
    saved = dict(_SERVED)
    _SERVED.update({p.name: p for p in problems})
    try:
        yield
    finally:
        _SERVED.clear()
        _SERVED.update(saved)


def pack_served() -> bytes | None:
    """The served problems as bytes for a worker process (None when there are none).

    cloudpickle carries functions and classes defined in a script or notebook by value;
    without it, they must be importable by name.
    """
    if not _SERVED:
        return None
    try:
        import cloudpickle

        dumps = cloudpickle.dumps
    except ImportError:
        dumps = pickle.dumps
    try:
        return dumps(dict(_SERVED))
    except Exception as exc:
        raise ProblemError(
            f"a problem given as an object cannot be sent to the worker processes ({type(exc).__name__}: {exc}); "
            "install cloudpickle, or define its functions in an importable module"
        ) from exc


def call_serving(packed: bytes, fn: Callable[..., Any], args: tuple) -> Any:
    """``fn(*args)`` with the problems of :func:`pack_served` served (a worker's job)."""
    with serving(pickle.loads(packed).values()):
        return fn(*args)
