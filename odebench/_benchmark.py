"""``odebench.benchmark``: one problem (an object, a model of your own) against many methods,
from a script or a notebook, measured exactly as ``odebench run`` measures a suite."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .problems import Problem


def _method_entries(methods: Iterable[Any] | None) -> list[Any]:
    """Suite entries: a name, ``(name, params)``, or ``{"name": ..., "params": ...}``."""
    if methods is None:
        from .backends import method_class, method_names

        # Every gradient method; finite differences cost two solves per input, so only on request.
        return [name for name in method_names() if method_class(name).library != "fd"]
    if isinstance(methods, str):
        methods = [methods]
    entries = []
    for method in methods:
        if isinstance(method, tuple) and len(method) == 2:
            entries.append({"name": method[0], "params": dict(method[1])})
        else:
            entries.append(dict(method) if isinstance(method, Mapping) else method)
    return entries


def benchmark(
    problem: Problem | str | Sequence[Problem | str],
    methods: Iterable[Any] | None = None,
    tolerances: Iterable[Any] = (1e-6,),
    *,
    output: str | Path | None = None,
    progress: bool = False,
    summary: bool = False,
    **settings: Any,
):
    """Benchmark the gradient of ``problem`` under each method and tolerance.

    The cases run as in ``odebench run``: each in an isolated worker process, with the
    reference gradient, timings, peak memory, exact counts and the same checks. Works from
    a notebook cell and from a script without an ``if __name__ == "__main__":`` guard; a
    problem built in the calling process (``Problem.from_torch(model, ...)``) reaches the
    workers by value.

    Args:
        problem: a :class:`Problem` (or a list of them), or a registry name or import path.
        methods: method names, ``(name, params)`` pairs or ``{"name":, "params":}`` dicts, as
            in a suite file (default: every method but finite differences; those that cannot
            run the problem are recorded as ``unavailable``).
        tolerances: rtol values, or ``{"rtol":, "atol":}`` dicts.
        output: the results folder (default: a new temporary folder).
        progress, summary: print a line per case / the summary table of ``odebench run``.
        settings: suite settings (``dtype``, ``device``, ``repeats``, ``warmup``,
            ``timeout_s``, ``fd_check``, ...).

    Returns:
        The records as a pandas DataFrame (one row per case, the columns of
        ``odebench.COLUMNS``); ``frame.attrs["path"]`` is the results folder.

    Raises:
        UsageError: bad methods, tolerances or settings (the message names the key).
    """
    from .problems import serving
    from .runner import parse_suite, run_suite

    problems = list(problem) if isinstance(problem, (list, tuple)) else [problem]
    objects = [p for p in problems if isinstance(p, Problem)]
    entries = [p.name if isinstance(p, Problem) else p for p in problems]
    first = entries[0] if entries else "problem"
    raw = {
        "name": "benchmark-" + (re.sub(r"[^A-Za-z0-9_.-]+", "_", str(first)).strip("_.-") or "problem"),
        "settings": settings,
        "problems": entries,
        "methods": _method_entries(methods),
        "tolerances": list(tolerances),
    }
    with serving(objects):
        suite = parse_suite(raw, "odebench.benchmark")
        path = Path(output) if output is not None else Path(tempfile.mkdtemp(prefix=f"odebench-{suite.name}-"))
        result = run_suite(suite, path, progress=progress, summary=summary)
    frame = result.frame()
    frame.attrs["path"] = str(result.path)
    return frame
