"""Markdown tables, human-readable numbers and literal text for the command-line outputs and reports.

Shared by ``gate``, ``compare`` and ``report``; plain strings in, plain strings out, no pandas.
Text that comes from records (problem and method parameters, suite names, error messages)
goes into markdown only through :func:`code` or :func:`escape`, so that it reads literally
and can never become a link, an image or markup.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

MISSING = "—"


def number(value: Any, unit: str = "") -> str:
    """``value`` for a table cell: ``s`` as a time, ``B`` as a size, else 3 significant digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if unit in _UNITS:
        return _scaled(float(value), unit)
    if isinstance(value, int) or float(value).is_integer() and abs(float(value)) < 1e15:
        return str(int(value))
    return f"{float(value):.3g}"


def ratio(value: float | None) -> str:
    """A ratio as ``×1.23``; ``—`` where undefined."""
    if value is None or math.isnan(value):
        return MISSING
    if math.isinf(value):
        return "×∞"
    return f"×{value:.3g}"


# unit -> (scale, suffix) from the largest down; below the last, seconds read as ns and sizes as bytes
_UNITS = {"s": ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")), "B": ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB"))}


def _scaled(value: float, unit: str) -> str:
    for scale, suffix in _UNITS[unit]:
        if abs(value) >= scale:
            return f"{value / scale:.3g} {suffix}"
    if unit == "B":
        return f"{int(value)} B"
    return "0 s" if value == 0 else f"{value / 1e-9:.3g} ns"


def cell(text: object) -> str:
    """Text made safe for one markdown table cell (no pipes, no line breaks)."""
    return " ".join(str(text).split()).replace("|", "\\|")


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


# Characters that open inline markup in CommonMark or GitHub markdown (``>``, ``#`` and ``!`` only
# act at the start of a line or before ``[``, and no record text starts a line). ``_`` between two
# word characters is literal in both (``n_steps``) and stays unescaped, for the plain-text reader's sake.
_ACTIVE = re.compile(r"[\\`*\[\]<|&~]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def escape(text: object) -> str:
    """``text`` as literal markdown on one line: every character that could start markup is escaped."""
    return _ACTIVE.sub(lambda m: "\\" + m.group(0), " ".join(str(text).split()))


def code(text: object) -> str:
    """``text`` as one markdown code span, literal whatever backticks it holds (CommonMark 6.1)."""
    text = " ".join(str(text).split())
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"
