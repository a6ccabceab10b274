"""The report's figures: work-precision, accuracy, NFE, memory sweeps and scaling (PNG, headless).

Figures are drawn with matplotlib's object API (``matplotlib.figure.Figure``), never
pyplot, so drawing a report changes no global backend of the calling process. A figure the
data cannot support is not drawn; it is returned with the reason instead.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from PIL import Image  # a dependency of matplotlib

from ._data import MIB, Sweep, figure_file, format_tolerance, sweeps
from ._findings import TOLERANCE_FACTOR, low_precision_floors
from ._style import SeriesStyle

PANEL_SIZE = (4.2, 3.3)  # inches per panel
LEGEND_WIDTH = 3.2  # inches beside the panels
MAX_COLUMNS = 3
DPI = 110

ERROR = "relative gradient error [-]"
RTOL = "requested rtol (tighter →)"
TIME = "wall time per gradient, median [s]"
MEMORY = "peak memory [MiB]"
STYLE_NOTE = "Dashed: backsolve-type adjoints; dotted: finite differences."


@dataclass(frozen=True)
class ReportFigure:
    """A figure of the report: drawn to ``file`` (relative to the report folder), or skipped for ``reason``."""

    file: str
    title: str
    caption: str
    section: str
    reason: str = ""

    @property
    def drawn(self) -> bool:
        return not self.reason

    @property
    def anchor(self) -> str:
        return "fig-" + Path(self.file).stem


@dataclass(frozen=True)
class Panel:
    """One axes: ``y`` against ``x`` of ``data``, log-log, one curve per series."""

    title: str
    data: pd.DataFrame
    x: str
    y: str
    xlabel: str
    ylabel: str


@dataclass(frozen=True)
class Layout:
    """How a figure's panels are drawn.

    ``order``: the column a curve's points are joined in (default: x); ``by``: what makes one
    curve (the first entry must be the series); ``guides``: draw error = rtol and
    error = TOLERANCE_FACTOR x rtol; ``invert_x``: tighter tolerances to the right.
    """

    columns: int
    order: str = ""
    by: tuple[str, ...] = ("series",)
    guides: bool = False
    invert_x: bool = False


def _paint(ax: Axes, panel: Panel, layout: Layout, styles: dict[str, SeriesStyle]) -> set[str]:
    """Draw a panel's curves; the series drawn (points that cannot go on log axes are left out)."""
    data = panel.data[(panel.data[panel.x] > 0) & (panel.data[panel.y] > 0)]
    if data.empty:
        return set()
    if layout.guides:
        span = np.array([data[panel.x].min(), data[panel.x].max()])
        ax.plot(span, span, color="0.6", linewidth=0.8, zorder=0)
        ax.plot(span, TOLERANCE_FACTOR * span, color="0.6", linewidth=0.8, linestyle=":", zorder=0)
    _draw_error_floor(ax, panel, data)
    for key, line in data.groupby(list(layout.by), sort=True):
        line = line.sort_values(layout.order or panel.x)
        ax.plot(line[panel.x], line[panel.y], **styles[key[0]].kwargs(), markersize=5, linewidth=1.2, alpha=0.9)
    return set(data["series"])


def _draw_error_floor(ax: Axes, panel: Panel, data: pd.DataFrame) -> None:
    """In a gradient-error panel of low-precision cases, the dtype's error floor as a
    dashed red line, named: errors at it are arithmetic, not a method's defect."""
    if panel.y not in ("grad_rel_err", "consistency_err") or "dtype" not in data:
        return
    for dtype, floor in low_precision_floors(data["dtype"].unique()).items():
        ax.axhline(floor, color="tab:red", linestyle="--", linewidth=0.9, zorder=0, gid="error-floor")
        ax.annotate(f"{dtype} error floor", (0.01, floor), xycoords=("axes fraction", "data"), color="tab:red",
                    fontsize=7, va="bottom")  # fmt: skip


def _widen(low: float, high: float) -> tuple[float, float]:
    """Limits of a log axis widened to at least two decades about their geometric centre."""
    if high >= 100 * low:
        return low, high
    centre = (low * high) ** 0.5
    return min(low, centre / 10), max(high, centre * 10)


def _draw(path: Path, title: str, panels: list[Panel], layout: Layout, styles: dict[str, SeriesStyle]) -> bool:
    """Small multiples with one legend outside the axes; False (nothing written) when no panel has data."""
    rows = -(-len(panels) // layout.columns)
    size = (PANEL_SIZE[0] * layout.columns + LEGEND_WIDTH, PANEL_SIZE[1] * rows + 0.6)
    fig = Figure(figsize=size, layout="constrained")
    axes = fig.subplots(rows, layout.columns, squeeze=False).ravel()
    shown: set[str] = set()
    for ax, panel in zip(axes, panels):
        drawn = _paint(ax, panel, layout, styles)
        shown |= drawn
        ax.set_title(panel.title, fontsize=9)
        if not drawn:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="0.5")
            ax.set_xticks([])
            ax.set_yticks([])
            continue
        ax.set_xscale("log")
        ax.set_yscale("log")
        # Minor log ticks cost most of the drawing time; two decades of view keep labelled major ticks.
        ax.minorticks_off()
        ax.set_xlim(*_widen(*sorted(ax.get_xlim())))
        ax.set_ylim(*_widen(*sorted(ax.get_ylim())))
        if layout.invert_x:
            ax.invert_xaxis()
        ax.set_xlabel(panel.xlabel, fontsize=8)
        ax.set_ylabel(panel.ylabel, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, linewidth=0.4, alpha=0.5)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    if not shown:
        return False
    # Left-aligned, the title stays clear of the legend even above a single narrow panel.
    fig.suptitle(title, fontsize=11, x=0.01, ha="left")
    handles = [Line2D([], [], **styles[s].kwargs(), markersize=5) for s in sorted(shown)]
    columns = 1 + len(shown) // 18  # a legend taller than the figure would be cut off
    legend = fig.legend(handles, sorted(shown), loc="outside right upper", fontsize=8, frameon=False, ncols=columns)
    _fit_legend(fig, legend, PANEL_SIZE[0] * layout.columns)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_png(fig, path)
    return True


def _fit_legend(fig: Figure, legend, panels_width: float) -> None:
    """Widen the figure where long or many labels make the legend too wide for it: the layout
    would squeeze the panels to nothing and draw the legend over them. Up to a quarter of the
    panels' width is left to the layout to take, so that a legend a little over
    :data:`LEGEND_WIDTH` changes nothing."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    width = legend.get_window_extent(FigureCanvasAgg(fig).get_renderer()).width / fig.dpi
    if width > fig.get_figwidth() - 0.75 * panels_width:
        fig.set_figwidth(panels_width + width + 0.3)  # 0.3: the layout's padding either side of the legend


def save_png(fig, path: Path) -> None:
    """Save as a 256-colour palette PNG: line plots lose nothing visible and the file
    shrinks about threefold (reports get committed and embedded)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=DPI, format="png")
    buffer.seek(0)
    with Image.open(buffer) as image:
        image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def _figure(
    folder: Path,
    figure: ReportFigure,
    panels: list[Panel],
    layout: Layout,
    styles: dict[str, SeriesStyle],
    no_data: str,
) -> ReportFigure:
    """``figure`` drawn, or the same figure skipped with ``no_data`` as the reason."""
    drawn = _draw(folder / figure.file, figure.title, panels, layout, styles)
    return figure if drawn else replace(figure, reason=no_data)


def _problem_figures(
    folder: Path, problem: str, pts: pd.DataFrame, styles: dict[str, SeriesStyle]
) -> list[ReportFigure]:
    """Work-precision (time and NFE), accuracy and NFE figures: one panel (row) per problem instance."""
    instances = list(pts.groupby("problem_label", sort=True))
    columns = min(MAX_COLUMNS, len(instances))
    figures = []
    for kind, cost, xlabel, name in (
        ("wp_time", "time_total_s", TIME, "wall time"),
        ("wp_nfe", "nfe_total", "function evaluations, forward + backward [count]", "total NFE"),
    ):
        figure = ReportFigure(
            figure_file(kind, problem),
            f"Work-precision on {problem}: gradient error vs {name}",
            f"One curve per method across tolerances; lower-left is better. {STYLE_NOTE}",
            problem,
        )
        panels = [Panel(title, data, cost, "grad_rel_err", xlabel, ERROR) for title, data in instances]
        no_data = f"no successful case of {problem} has both a gradient error and a {name}"
        figures.append(_figure(folder, figure, panels, Layout(columns, order="rtol"), styles, no_data))

    consistency = pts["consistency_err"].gt(0).any()
    panels = []
    for title, data in instances:
        panels.append(Panel(f"{title}: gradient error", data, "rtol", "grad_rel_err", RTOL, ERROR))
        if consistency:
            panels.append(Panel(f"{title}: consistency", data, "rtol", "consistency_err", RTOL, "consistency_err [-]"))
    figure = ReportFigure(
        figure_file("accuracy", problem),
        f"Accuracy vs tolerance on {problem}",
        "Gradient error (and its consistency with discrete backprop of the same solve) against the requested rtol. "
        f"Solid grey: error = rtol; dotted grey: error = {TOLERANCE_FACTOR:g} x rtol. A curve above the dotted "
        "line does not honour its tolerance; a flat curve is a plateau.",
        problem,
    )
    layout = Layout(2 if consistency else columns, guides=True, invert_x=True)
    no_data = f"no successful case of {problem} has a gradient error"
    figures.append(_figure(folder, figure, panels, layout, styles, no_data))

    panels = []
    for title, data in instances:
        panels.append(Panel(f"{title}: forward", data, "rtol", "nfe_forward", RTOL, "forward NFE [count]"))
        panels.append(Panel(f"{title}: backward", data, "rtol", "nfe_backward", RTOL, "backward NFE [count]"))
    figure = ReportFigure(
        figure_file("nfe", problem),
        f"Forward and backward NFE on {problem}",
        "Vector-field evaluations per gradient against the requested rtol. "
        "A backward NFE of zero (autograd through the steps) cannot be drawn on a log axis and is left out.",
        problem,
    )
    no_data = f"no successful case of {problem} has an NFE count"
    figures.append(_figure(folder, figure, panels, Layout(2, invert_x=True), styles, no_data))
    return figures


def _memory_figure(folder: Path, sweep: Sweep, styles: dict[str, SeriesStyle]) -> ReportFigure:
    """Peak memory along one swept problem parameter: a row per problem, a column per tolerance."""
    data = sweep.frame.assign(memory_mib=sweep.frame["peak_memory_bytes"] / MIB)
    tolerances = sorted(data["rtol"].dropna().unique(), reverse=True)
    what = f"{sweep.key} (horizon)" if sweep.is_horizon else sweep.key
    panels = [
        Panel(f"{group}, rtol={format_tolerance(rtol)}", sub[sub["rtol"] == rtol], "x", "memory_mib", what, MEMORY)
        for group, sub in data.groupby("group", sort=True)
        for rtol in tolerances
    ]
    promise = (
        " Backsolve, interpolated and adjoint-type methods promise memory that does not grow with the horizon."
        if sweep.is_horizon
        else ""
    )
    figure = ReportFigure(
        figure_file(f"memory_vs_{sweep.key}"),
        f"Peak memory vs {what}",
        f"Peak memory of one case against {sweep.key}, the other problem parameters held fixed; "
        f"one row per problem, one column per tolerance.{promise} {STYLE_NOTE}",
        "sweeps",
    )
    layout = Layout(max(1, min(len(tolerances), MAX_COLUMNS)))
    return _figure(folder, figure, panels, layout, styles, f"no case in the {sweep.key} sweep has a peak memory")


SIZES = {"n_params": "number of parameters [count]", "n_state": "state size [count]"}


def _scaling_figure(folder: Path, pts: pd.DataFrame, styles: dict[str, SeriesStyle]) -> ReportFigure:
    """Time against n_params and n_state: a row per tolerance, the points of one problem joined."""
    figure = ReportFigure(
        figure_file("scaling"),
        "Scaling: time vs number of parameters and state size",
        "Median wall time per gradient against n_params and n_state, log-log; one row per tolerance. "
        f"Points of the same problem are joined. {STYLE_NOTE}",
        "scaling",
    )
    timed = pts[pts["time_total_s"] > 0]
    sizes = [size for size in SIZES if timed[size].nunique() > 1]
    if not sizes:
        return replace(figure, reason="every timed case has the same n_params and n_state")
    panels = []
    for rtol in sorted(timed["rtol"].dropna().unique(), reverse=True):
        at = timed[timed["rtol"] == rtol]
        for size in sizes:
            # Instances of one problem with the same size (a horizon sweep) share a point: their median.
            data = at.groupby(["series", "problem", size], as_index=False)["time_total_s"].median()
            panels.append(Panel(f"rtol={format_tolerance(rtol)}", data, size, "time_total_s", SIZES[size], TIME))
    layout = Layout(len(sizes), by=("series", "problem"))
    return _figure(folder, figure, panels, layout, styles, "no timed case has a parameter count or state size")


def draw_figures(folder: Path, pts: pd.DataFrame, styles: dict[str, SeriesStyle]) -> list[ReportFigure]:
    """Draw every figure the points support under ``folder``; the others come back with a reason."""
    if pts.empty:
        return [ReportFigure(figure_file("wp_time"), "Work-precision", "", "", reason="no case succeeded")]
    figures = []
    for problem, data in pts.groupby("problem", sort=True):
        figures.extend(_problem_figures(folder, problem, data, styles))
    found = sweeps(pts)
    figures.extend(_memory_figure(folder, sweep, styles) for sweep in found)
    if not found:
        reason = "no numeric problem parameter takes several values for the same problem and method"
        title = "Peak memory vs a swept parameter"
        figures.append(ReportFigure(figure_file("memory_vs_sweep"), title, "", "sweeps", reason))
    figures.append(_scaling_figure(folder, pts, styles))
    return figures
