"""Reading a run for a command (gate, compare, export), with errors fit for the user.

:func:`odebench.load_results` raises :class:`~odebench._results.ResultsError` naming the
file; a command wants the argument named too (``baseline: ...``), with exit status 2.
"""

from __future__ import annotations

import os
from typing import Any

from ._errors import UsageError
from ._results import ResultsError, load_results, load_run_info


def read_run(path: str | os.PathLike, role: str):
    """The records of ``path`` (a results folder or records file) as a typed DataFrame.

    ``role`` names the argument in messages ("baseline", "run", ...). Raises
    :class:`UsageError` when the path is missing, unreadable, empty or not odebench
    records.
    """
    try:
        frame = load_results(path)  # parser errors arrive as ResultsError naming the file
    except ResultsError as exc:
        raise UsageError(f"{role}: {exc}") from exc
    if frame.empty:
        raise UsageError(f"{role}: {path} holds no records")
    nameless = (frame["problem"] == "") | (frame["method"] == "")
    if nameless.any():
        raise UsageError(
            f"{role}: {path}: {int(nameless.sum())} of {len(frame)} records have no problem or method; "
            "is this an odebench records file?"
        )
    return frame


def read_run_info(path: str | os.PathLike, role: str) -> dict[str, Any]:
    """The run.json next to ``path`` ({} where there is none); :class:`UsageError` if unreadable."""
    try:
        return load_run_info(path)
    except ResultsError as exc:
        raise UsageError(f"{role}: {exc}") from exc
