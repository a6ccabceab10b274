"""Suites, isolated measurement of each case, results folders."""

from ._run import RunResult as RunResult
from ._run import run_suite as run_suite
from ._suite import (
    Case as Case,
)
from ._suite import (
    Settings as Settings,
)
from ._suite import (
    Suite as Suite,
)
from ._suite import (
    load_suite as load_suite,
)
from ._suite import (
    parse_suite as parse_suite,
)

__all__ = ["Case", "RunResult", "Settings", "Suite", "load_suite", "parse_suite", "run_suite"]
