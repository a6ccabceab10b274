"""One colour, marker and line style per series, the same in every figure of a report."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# tab20's saturated half first, then its light half: 20 colours before one repeats.
_TAB20 = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
)  # fmt: skip
# 11 markers against 20 colours: no two of the first 220 series look alike.
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", "*", ">", "h")
# Backsolve-type methods dashed: the family that can go unstable stands out.
_LINESTYLES = {
    "backsolve": "--",
    "reversible": "--",
    "discrete": "-",
    "stored": "-",
    "verification": ":",
    "other": "-.",
}


@dataclass(frozen=True)
class SeriesStyle:
    color: str
    marker: str
    linestyle: str

    def kwargs(self) -> dict[str, Any]:
        return {"color": self.color, "marker": self.marker, "linestyle": self.linestyle}


def assign_styles(series: Iterable[tuple[str, str]]) -> dict[str, SeriesStyle]:
    """Styles for ``(series label, method family)`` pairs, assigned in sorted label order."""
    return {
        name: SeriesStyle(_TAB20[i % len(_TAB20)], _MARKERS[i % len(_MARKERS)], _LINESTYLES.get(family, "-"))
        for i, (name, family) in enumerate(sorted(set(series)))
    }
