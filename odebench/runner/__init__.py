"""Suites, isolated measurement of each case, results folders."""

from ._local import LocalExecutor as LocalExecutor
from ._run import Executor as Executor, RunResult as RunResult, make_executor as make_executor, run_suite as run_suite
from ._suite import (
    Case as Case,
    Settings as Settings,
    Suite as Suite,
    load_suite as load_suite,
    parse_suite as parse_suite,
)

__all__ = [
    "Case",
    "Executor",
    "LocalExecutor",
    "RunResult",
    "Settings",
    "Suite",
    "load_suite",
    "make_executor",
    "parse_suite",
    "run_suite",
]
