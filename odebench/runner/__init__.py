"""Suites, isolated measurement of each case, results folders."""

from ._run import RunResult as RunResult, run_suite as run_suite
from ._suite import (
    Case as Case,
    Settings as Settings,
    Suite as Suite,
    load_suite as load_suite,
    parse_suite as parse_suite,
)

__all__ = ["Case", "RunResult", "Settings", "Suite", "load_suite", "parse_suite", "run_suite"]
