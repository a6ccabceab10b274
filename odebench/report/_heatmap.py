"""The overview figure: heat maps of problems x methods (error, relative time, peak memory).

Drawn with matplotlib's object API like every report figure. Each cell is coloured on a log
scale and carries its number; a case without numbers is grey with a glyph (``x`` failed or
diverged, ``T`` timeout, ``-`` unavailable), a case that was not run is blank.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from ._data import figure_file, format_tolerance
from ._figures import ReportFigure, save_png
from ._overview import OverviewGrid

CELL = (0.42, 0.3)  # inches per cell (width, height)
SIDE_BY_SIDE_MAX = 10  # methods; more and the three panels stack
COLORMAP = "RdYlGn_r"  # green is good (low), red is bad (high); every cell also states its number
NOT_RUN = (1.0, 1.0, 1.0, 1.0)
NO_NUMBER = (0.82, 0.82, 0.82, 1.0)
ERROR_RANGE = (1e-12, 1.0)
LABEL_ROTATION = 45  # degrees: flat enough to keep the figure short, steep enough not to collide
WRAP_AT = 24  # characters of a method label before its parameters go to a second line


@dataclass(frozen=True)
class _Metric:
    title: str
    values: pd.DataFrame
    norm: LogNorm
    text: Callable[[float], str]  # value -> cell text


def _short(value: float) -> str:
    """A gradient error in four characters or so: ``3e-7``."""
    if value <= 0:
        return "0"
    mantissa, exponent = f"{value:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _compact(value: float) -> str:
    return "0" if value == 0 else f"{value:.2g}"


def _bytes(value: float) -> str:
    """A size in four characters or so: ``136K``, ``1.2M``."""
    for scale, suffix in ((2**30, "G"), (2**20, "M"), (2**10, "K")):
        if value >= scale:
            scaled = value / scale
            return f"{scaled:.0f}{suffix}" if scaled >= 10 else f"{scaled:.2g}{suffix}"
    return f"{value:.0f}"


def _norm(values: pd.DataFrame, low: float | None = None, high: float | None = None) -> LogNorm:
    positive = values.to_numpy(dtype="float64")
    positive = positive[np.isfinite(positive) & (positive > 0)]
    vmin = low if low is not None else (positive.min() if positive.size else 1.0)
    vmax = max(high or 0.0, positive.max() if positive.size else vmin)
    if vmax <= vmin:
        vmax = vmin * 10
    return LogNorm(vmin=vmin, vmax=vmax, clip=True)


def _metrics(grid: OverviewGrid) -> list[_Metric]:
    # Errors span 1e-12 (float64's floor) to 1 (no digit right); beyond either end the colour saturates.
    error = LogNorm(vmin=ERROR_RANGE[0], vmax=ERROR_RANGE[1], clip=True)
    return [
        _Metric("gradient error (relative)", grid.error, error, _short),
        _Metric("time / fastest on the problem", grid.time_ratio, _norm(grid.time_ratio, low=1.0, high=10.0), _compact),
        _Metric("peak memory [bytes; K = KiB, M = MiB]", grid.memory_bytes, _norm(grid.memory_bytes), _bytes),
    ]


def _panel(fig: Figure, ax, metric: _Metric, grid: OverviewGrid, row_labels: list[str], show_rows: bool) -> None:
    cmap = colormaps[COLORMAP]
    values = metric.values.to_numpy(dtype="float64")
    glyphs = grid.glyph.to_numpy()
    rgba = np.empty((*values.shape, 4))
    for (i, j), value in np.ndenumerate(values):
        if np.isfinite(value):
            rgba[i, j] = cmap(metric.norm(max(value, metric.norm.vmin)))
        else:
            rgba[i, j] = NO_NUMBER if glyphs[i, j] else NOT_RUN
    ax.imshow(rgba, aspect="auto", interpolation="nearest")
    for (i, j), value in np.ndenumerate(values):
        if np.isfinite(value):
            r, g, b, _ = rgba[i, j]
            dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
            ax.text(
                j, i, metric.text(value), ha="center", va="center", fontsize=6.5, color="white" if dark else "black"
            )
        elif glyphs[i, j]:
            ax.text(j, i, glyphs[i, j], ha="center", va="center", fontsize=9, fontweight="bold", color="0.25")
    columns = [_wrap(str(c)) for c in metric.values.columns]
    ax.set_xticks(range(len(columns)), columns, rotation=LABEL_ROTATION, ha="right", rotation_mode="anchor", fontsize=7)
    ax.set_yticks(range(len(row_labels)), row_labels if show_rows else [""] * len(row_labels), fontsize=7)
    ax.set_xticks(np.arange(-0.5, len(columns)), minor=True)
    ax.set_yticks(np.arange(-0.5, len(row_labels)), minor=True)
    ax.grid(which="minor", color="white", linewidth=1.5)
    ax.tick_params(which="minor", length=0)
    ax.tick_params(which="major", length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title(metric.title, fontsize=9)
    bar = fig.colorbar(ScalarMappable(metric.norm, cmap), ax=ax, location="top", shrink=0.8, aspect=30, pad=0.02)
    bar.ax.tick_params(labelsize=6)


def _wrap(label: str) -> str:
    """A long method label on two lines, its parameters on the second."""
    name, paren, params = label.partition("(")
    return f"{name}\n({params}" if paren and len(label) > WRAP_AT else label


def _row_labels(grid: OverviewGrid) -> tuple[list[str], str]:
    """Row labels, and the tolerance for the title when every row shares it."""
    tolerances = grid.rtol.map(format_tolerance)
    if tolerances.nunique() == 1:
        return list(grid.error.index), f"rtol={tolerances.iloc[0]}"
    return [f"{p} @ {t}" for p, t in zip(grid.error.index, tolerances)], "each problem's tightest rtol"


def overview_figures(folder: Path, grid: OverviewGrid) -> list[ReportFigure]:
    """Draw ``figures/overview.png`` (gradient error: the report's first picture, small
    enough to share the first screen with the recommendations) and
    ``figures/overview_cost.png`` (time and memory, after them); each figure is returned
    skipped, with the reason, where nothing can be drawn."""
    labels, at = _row_labels(grid)
    legend = "x: failed or diverged; T: timeout; -: unavailable; blank: not run."
    error_figure = ReportFigure(
        figure_file("overview"),
        f"Overview: gradient error of every problem x method at {at}",
        f"Relative gradient error, each problem at its tightest tolerance; log colour scale, green is better. {legend}",
        "overview",
    )
    cost_figure = ReportFigure(
        figure_file("overview_cost"),
        f"Overview: time and memory of every problem x method at {at}",
        "Wall time relative to the fastest method on the same problem, and peak memory, each problem at its "
        f"tightest tolerance; log colour scales, green is better. {legend}",
        "overview-cost",
    )
    figures = [error_figure, cost_figure]
    if grid.empty or not np.isfinite(grid.error.to_numpy(dtype="float64")).any() and not grid.glyph.ne("").any().any():
        return [replace(f, reason="no case has a result") for f in figures]
    error, *cost = _metrics(grid)
    _draw(folder, error_figure, [error], grid, labels)
    _draw(folder, cost_figure, cost, grid, labels)
    return figures


def _draw(folder: Path, figure: ReportFigure, metrics: list[_Metric], grid: OverviewGrid, labels: list[str]) -> None:
    """Heat maps of ``metrics``, side by side for up to :data:`SIDE_BY_SIDE_MAX` methods, else stacked."""
    n_rows, n_columns = grid.error.shape
    side = n_columns <= SIDE_BY_SIDE_MAX
    n = len(metrics)
    label_width = 0.07 * max(len(label) for label in labels) + 0.3
    longest = max(len(line) for c in grid.error.columns for line in _wrap(str(c)).splitlines())
    label_height = 0.06 * longest * math.sin(math.radians(LABEL_ROTATION)) + 0.5
    panel = (CELL[0] * n_columns + 0.2, CELL[1] * n_rows + label_height + 0.9)
    size = (label_width + (n * panel[0] if side else panel[0]), panel[1] * (1 if side else n) + 0.4)
    fig = Figure(figsize=size, layout="constrained")
    axes = fig.subplots(1, n, squeeze=False).ravel() if side else fig.subplots(n, 1, squeeze=False).ravel()
    for index, (ax, metric) in enumerate(zip(axes, metrics)):
        _panel(fig, ax, metric, grid, labels, show_rows=index == 0 or not side)
    fig.suptitle(figure.title, fontsize=11, x=0.01, ha="left")
    path = folder / figure.file
    path.parent.mkdir(parents=True, exist_ok=True)
    save_png(fig, path)
