"""The local executor: every case in its own worker process on this machine.

Reference gradients come first (one isolated job per problem instance, ``jobs`` at
once), then the cases; a case whose method is unavailable here is recorded without a
worker. :mod:`._slurm` runs the same executor inside each array task.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

from .._records import Record
from ._measure import base_record, compute_reference, finish, run_case
from ._suite import Case, Suite
from ._worker import BASE_PRELOAD, JobResult, ProcessPool


class LocalExecutor:
    """Runs cases in up to ``jobs`` worker processes; ``phases`` gets the wall seconds of
    ``references`` and ``cases``."""

    name = "local"

    def __init__(self, jobs: int = 1):
        self.jobs = jobs
        self.phases: dict[str, float] = {}

    def run(self, suite: Suite, cases: list[Case], run_id: str, path: Path) -> Iterator[tuple[Case, Record]]:
        """Yield ``(case, record)`` as cases finish (``path``, the results folder, is not needed here)."""
        from ..problems import call_serving, pack_served

        settings = suite.settings
        ready: list[Case] = []
        for case in cases:
            reason = _quick_unavailable(case)
            if reason:
                yield case, finish({**base_record(case, run_id, suite.name), "status": "unavailable", "error": reason,
                                    "repeats": settings.repeats}, time.perf_counter())  # fmt: skip
            else:
                ready.append(case)
        if not ready:
            return
        served = pack_served()  # problems given as objects travel to each worker by value

        def job(fn: Callable, args: tuple) -> tuple[Callable, tuple]:
            return (fn, args) if served is None else (call_serving, (served, fn, args))

        started = time.perf_counter()
        pool = ProcessPool(_preload(ready), jobs=self.jobs)
        try:
            problems = list(dict.fromkeys(c.problem for c in ready))
            ref_errors: dict[Any, tuple[str, str]] = {}  # problem -> (status, error) of its cases
            for result_key, result in _drain(pool, problems, lambda p: job(compute_reference, (p.name, dict(p.params), settings.threads)),
                                             cast(float, settings.reference_timeout_s),  # set in Settings.__post_init__
                                             settings.memory_limit_mb):  # fmt: skip
                if not result.ok:
                    error = result.error
                    if result.status == "timeout":  # the pool names timeout_s; a reference has its own setting
                        error = f"exceeded reference_timeout_s={settings.reference_timeout_s:g} (worker killed)"
                    ref_errors[result_key] = (result.status, f"reference gradient: {error}")
            self.phases["references"] = time.perf_counter() - started
            started = time.perf_counter()
            for case, result in _drain(pool, ready, lambda c: job(run_case, (c, settings, run_id, suite.name)),
                                       settings.timeout_s, settings.memory_limit_mb,
                                       skip=lambda c: ref_errors.get(c.problem)):  # fmt: skip
                if result.ok:
                    yield case, result.value
                else:
                    fields = base_record(case, run_id, suite.name)
                    fields.update(status=result.status, error=result.error, repeats=settings.repeats)
                    yield case, finish(fields, time.perf_counter() - result.seconds)
        finally:
            if "references" in self.phases:
                self.phases["cases"] = time.perf_counter() - started
            pool.shutdown()


def _preload(cases: list[Case]) -> tuple[str, ...]:
    """The modules the worker server imports once, for the libraries these cases use."""
    extra = []
    names = {c.method.name.split(".")[0] for c in cases}
    if "torchdiffeq" in names:
        extra += ["torchdiffeq"]
    if "torchode" in names:
        extra += ["torchode"]
    if "diffrax" in names:
        extra += ["jax", "equinox", "diffrax"]
    return BASE_PRELOAD + tuple(m for m in extra if importlib.util.find_spec(m) is not None)


def _quick_unavailable(case: Case) -> str | None:
    """Unavailability known without a worker: a missing library, an unsupported solver."""
    from ..backends import make_method

    return make_method(case.method.name, case.method.params).unavailable_reason(case.device)


def _drain(pool, items: list, job: Callable, timeout_s: float, memory_limit_mb, skip: Callable | None = None):
    """Run one job per item on the pool, yielding ``(item, JobResult)`` as they finish."""
    pending = list(items)
    while pending or pool.running:
        while pending and pool.free:
            item = pending.pop(0)
            reason = skip(item) if skip else None
            if reason:
                status, error = reason
                yield item, JobResult(False, status=status, error=error)
                continue
            fn, args = job(item)
            pool.start(item, fn, args, timeout_s, memory_limit_mb)
        for item, result in pool.wait():
            yield item, result
