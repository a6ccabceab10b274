"""Markdown tables and human-readable numbers for the command-line outputs.

Shared by ``gate`` and ``compare``; plain strings in, plain strings out, no pandas.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

MISSING = "—"


def number(value: object, unit: str = "") -> str:
    """``value`` for a table cell: ``s`` as a time, ``B`` as a size, else 3 significant digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if unit == "s":
        return _seconds(float(value))
    if unit == "B":
        return _bytes(float(value))
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


def _seconds(value: float) -> str:
    if value == 0:
        return "0 s"
    for scale, suffix in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {suffix}"
    return f"{value / 1e-9:.3g} ns"


def _bytes(value: float) -> str:
    for scale, suffix in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {suffix}"
    return f"{int(value)} B"


def cell(text: object) -> str:
    """Text made safe for one markdown table cell (no pipes, no line breaks)."""
    return " ".join(str(text).split()).replace("|", "\\|")


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
