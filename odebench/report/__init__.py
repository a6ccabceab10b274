"""Reports: ``report.md``, ``index.html`` and figures from results, findings first.

The public names load on first use, so that ``odebench report --help`` (which imports
this package) does not pay for pandas and matplotlib. Nothing here imports torch or jax.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_getattr

_LAZY = {
    "build_report": "odebench.report._build",
    "write_report": "odebench.report._build",
    "default_output": "odebench.report._build",
    "find_findings": "odebench.report._findings",
    "Finding": "odebench.report._findings",
    "Threshold": "odebench.report._findings",
    "prepare": "odebench.report._data",
    "THRESHOLDS": "odebench.report._findings",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_getattr(globals(), _LAZY)


if TYPE_CHECKING:  # pragma: no cover
    from ._build import build_report, default_output, write_report  # noqa: F401
    from ._data import prepare  # noqa: F401
    from ._findings import THRESHOLDS, Finding, Threshold, find_findings  # noqa: F401
