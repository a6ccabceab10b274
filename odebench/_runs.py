"""Reading a run for a command (gate, compare, export, history), with errors fit for the user.

:func:`odebench.load_results` and :func:`odebench.load_run_info` raise
:class:`~odebench._results.ResultsError` naming the file; a command wants the argument
named too (``baseline: ...``). Every error here is a :class:`ResultsError` (a
:class:`~odebench._errors.UsageError`: exit status 2).
"""

from __future__ import annotations

import os
from typing import Any

from ._results import ResultsError, load_results, load_run_info


def read_run(path: str | os.PathLike, role: str):
    """The records of ``path`` (a results folder or records file) as a typed DataFrame.

    ``role`` names the argument in messages ("baseline", "run", ...). Raises
    :class:`ResultsError` when the path is missing, unreadable, empty or not odebench
    records, when a ``*_params`` cell is not a JSON object, or when the run.json beside
    it cannot be read: a run is read whole or not at all.
    """
    try:
        # Parser errors and *_params cells that are not JSON objects arrive as ResultsError naming the file.
        frame = load_results(path)
        load_run_info(path)
    except ResultsError as exc:
        raise ResultsError(f"{role}: {exc}") from exc
    if frame.empty:
        raise ResultsError(f"{role}: {path} holds no records")
    nameless = (frame["problem"] == "") | (frame["method"] == "")
    if nameless.any():
        raise ResultsError(
            f"{role}: {path}: {int(nameless.sum())} of {len(frame)} records have no problem or method; "
            "is this an odebench records file?"
        )
    return frame


def read_run_info(path: str | os.PathLike, role: str) -> dict[str, Any]:
    """The run.json next to ``path`` ({} where there is none); :class:`ResultsError` if unreadable."""
    try:
        return load_run_info(path)
    except ResultsError as exc:
        raise ResultsError(f"{role}: {exc}") from exc
