"""``build_report``: results folders in, ``report.md``, ``index.html`` and ``figures/*.png`` out.

The report opens with the overview (heat maps of every problem x method), then which method
to use on each problem, then the findings grouped by problem and kind; the evidence (per
problem figures and tables, failures, environment) follows.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from .._cases import format_params
from .._errors import UsageError
from .._markdown import code, escape, number
from .._results import ResultsError, load_results, load_run_info
from ._data import (
    Prepared,
    environment_table,
    failures,
    figure_file,
    format_tolerance,
    metric_tables,
    points,
    prepare,
    slug,
)
from ._figures import ReportFigure, draw_figures
from ._findings import (
    BACKWARD_NFE_FACTOR,
    CONSISTENCY_FACTOR,
    ERROR_FLOOR,
    THRESHOLDS,
    TOLERANCE_FACTOR,
    UNSTABLE_FACTOR,
    Finding,
    FindingGroup,
    findings_in,
    group_findings,
    low_precision_floors,
)
from ._folder import claim, publish, staging
from ._headline import draw_reproductions, find_reproductions, reproduction_blocks
from ._heatmap import overview_figures
from ._overview import LEAN_TIME_FACTOR, Choice, Recommendation, Target, overview_grid, recommend, target_accuracy
from ._render import Block, Bullets, Details, Heading, Image, Item, Paragraph, Table, to_html, to_markdown
from ._style import assign_styles

REPORT_MD = "report.md"
REPORT_HTML = "index.html"

PathLike = str | os.PathLike


def default_output(runs: Sequence[PathLike]) -> Path:
    """``reports/<name>``: the run folder's name, or the names of several joined by ``+``."""
    names = [(p if p.is_dir() or not p.suffix else p.parent).name or "run" for p in map(Path, runs)]
    name = "+".join(names) if len(names) <= 3 else f"{names[0]}+{len(names) - 1}-more"
    return Path("reports") / name


def build_report(
    runs: PathLike | Sequence[PathLike],
    output: PathLike | None = None,
    *,
    embed: bool = True,
    force: bool = False,
) -> Path:
    """Read results folders (or records files) and write the report; returns the report folder.

    ``output`` defaults to :func:`default_output`. With ``embed`` (the default) index.html
    carries its figures; without, it links the PNGs beside it (half the size, for
    reports kept in a repository). ``force``: see :func:`write_report`. Raises
    :class:`odebench.UsageError` for a folder that is missing or cannot be read.
    """
    paths = [Path(runs)] if isinstance(runs, (str, os.PathLike)) else [Path(r) for r in runs]
    if not paths:
        raise UsageError("give at least one results folder")
    for path in paths:
        if not path.exists():
            raise UsageError(f"no such results folder or file: {path}")
    try:
        frame = load_results(*paths)
        infos = [(path.name if path.is_dir() else path.parent.name, load_run_info(path)) for path in paths]
    except (ResultsError, OSError, ValueError) as exc:
        raise UsageError(f"cannot read results: {exc}") from exc
    output = output if output is not None else default_output(paths)
    return write_report(frame, output, run_info=infos, embed=embed, force=force)


def write_report(
    frame: pd.DataFrame,
    output: PathLike,
    *,
    run_info: Sequence[tuple[str, Mapping[str, Any]]] = (),
    title: str = "",
    embed: bool = True,
    force: bool = False,
) -> Path:
    """Write the report of a records frame (as :func:`odebench.load_results` returns) to ``output``.

    ``run_info`` pairs a run name with its ``run.json`` content, for the environment footer
    and the target accuracy. The folder must be new, empty or hold an earlier report (its
    manifest ``.odebench-report.json``): only files an earlier report wrote are replaced or
    removed. ``force`` writes into any other folder too, still touching no file but the report's own.
    """
    folder = claim(output, force=force)
    prepared = prepare(frame)
    pts = points(prepared)
    styles = assign_styles(zip(prepared.frame["series"], prepared.frame["family"]))
    title = title or "odebench report: " + (", ".join(name for name, _ in run_info) or "records")
    try:
        with staging(folder) as stage:
            overview = overview_figures(stage, overview_grid(prepared, pts))
            reproductions = find_reproductions(prepared)
            figures = [*overview, *draw_figures(stage, pts, styles), *draw_reproductions(stage, reproductions, styles)]
            headline = reproduction_blocks(reproductions, figures)
            target = target_accuracy(run_info, list(prepared.frame["dtype"].dropna().unique()))
            blocks = _document(title, prepared, pts, figures, target, run_info, headline)
            (stage / REPORT_MD).write_text(to_markdown(blocks), encoding="utf-8")
            (stage / REPORT_HTML).write_text(to_html(blocks, stage, title, embed=embed), encoding="utf-8")
            publish(folder, stage, [REPORT_MD, REPORT_HTML, *(f.file for f in figures if f.drawn)])
    except OSError as exc:
        raise UsageError(f"cannot write the report to {folder.path}: {exc}") from exc
    return folder.path


def _summary(prepared: Prepared, target: Target) -> str:
    frame = prepared.frame
    ok = int((frame["status"] == "ok").sum())
    parts = [
        f"{len(frame)} cases ({ok} ok, {len(frame) - ok} not ok)",
        f"{frame['problem_label'].nunique()} problem instances",
        f"{frame['series'].nunique()} methods",
        f"{frame['rtol'].nunique()} tolerances",
    ]
    text = ", ".join(parts) + "."
    if prepared.common_method_params:
        text += f" Every method runs with {code(format_params(prepared.common_method_params))}."
    text += f" Target gradient error: {target.grad_rel_err:g} ({escape(target.source)})."
    return text


# --- which method to use ----------------------------------------------------------------------


def row_anchor(problem: str, series: str) -> str:
    """The id of a method's row in a problem instance's table (links from the recommendations)."""
    return f"row-{slug(problem)}--{slug(series)}"


def _evidence(choice: Choice, problem: str, problem_name: str, drawn: set[str]) -> str:
    """A choice's numbers, linked to its table row (HTML) through its work-precision figure (markdown)."""
    numbers = f"{number(choice.time_total_s, 's')}, error {choice.grad_rel_err:.1e}"
    if choice.peak_memory_bytes == choice.peak_memory_bytes:  # not NaN
        numbers += f", {number(choice.peak_memory_bytes, 'B')}"
    figure = figure_file("wp_time", problem_name)
    href = f"#{row_anchor(problem, choice.series)}"
    if figure in drawn:
        href = figure + href
    return f"{code(choice.series)} at rtol={format_tolerance(choice.rtol)} ([{numbers}]({href}))"


def _recommendation_table(recommendations: list[Recommendation], names: dict[str, str], drawn: set[str]) -> Table:
    rows = {}
    for rec in recommendations:
        name = names[rec.problem]
        if rec.fastest is not None:
            fastest = _evidence(rec.fastest, rec.problem, name, drawn)
            lean = _evidence(rec.leanest, rec.problem, name, drawn) if rec.leanest else "—"
            if rec.leanest is not None and rec.leanest == rec.fastest:
                lean = "the same"
        else:
            closest = f"; closest: {_evidence(rec.closest, rec.problem, name, drawn)}" if rec.closest else ""
            fastest, lean = f"none reaches {rec.target:g}{closest}", "—"
        avoid = "; ".join(
            f"{code(series)}: " + ", ".join(f"[{f.title}]({f.figure})" for f in found) for series, found in rec.avoid
        )
        rows[code(rec.problem)] = {
            f"fastest to error ≤ {rec.target:g}": fastest,
            f"least memory within {LEAN_TIME_FACTOR:g}x that time": lean,
            "avoid (the finding that rules it out)": avoid or "—",
        }
    cells = pd.DataFrame.from_dict(rows, orient="index")
    return Table(cells, index_name="problem", inline=True)


# --- findings -----------------------------------------------------------------------------------


#: the worst case of a group of findings, in a few words: its ``severity`` ratio per kind
#: (each method's full sentence folds out beneath the group's line)
SEVERITY_PHRASES: dict[str, tuple[str, float]] = {
    "tolerance": ("gradient error up to {}x its tolerance", TOLERANCE_FACTOR),
    "consistency": ("up to {}x off its own forward solve", CONSISTENCY_FACTOR),
    "unstable_backward": ("gradient error up to {}x the best stable method's", UNSTABLE_FACTOR),
    "work": ("up to {}x the NFE", BACKWARD_NFE_FACTOR),
}


def _worst_phrase(finding: Finding) -> str:
    """The worst finding of a group in a few words, or its sentence where its ratio is not
    what made it a finding (a tolerance plateau, a memory promise)."""
    phrase, threshold = SEVERITY_PHRASES.get(finding.kind, ("", math.inf))
    if finding.severity <= threshold:
        return escape(finding.summary)
    return escape(phrase.format(f"{finding.severity:.2g}"))


def _group_item(group: FindingGroup, drawn: set[str]) -> Item:
    """One line for a problem and kind of finding; the methods' numbers beneath it."""
    worst = group.worst
    link = f" ([figure]({worst.figure}))" if worst.figure in drawn else ""
    head = f"{code(group.problem)}: **{group.title}**"
    if len(group.findings) == 1 and not group.of_problem:
        line = f"{head}: {code(worst.method)}: {escape(worst.summary)}{link}"
        return Item(line, tuple(escape(e) for e in worst.evidence))
    if group.of_problem:
        head += f" by every method ({group.n_methods}): a property of the problem, not of a method"
    else:
        methods = ", ".join(code(m) for m in group.methods)
        head += f": {len(group.findings)} of {group.n_methods} methods ({methods})"
    line = f"{head}; worst {code(worst.method)}: {_worst_phrase(worst)}{link}"
    children = tuple(
        f"{code(f.method)}: {escape(f.summary)}" + (f" ({escape('; '.join(f.evidence))})" if f.evidence else "")
        for f in group.findings
    )
    return Item(line, children)


def _finding_blocks(groups: list[FindingGroup], drawn: set[str], n_ok: int, n_failed: int) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Findings", "findings")]
    if not n_ok:
        blocks.append(Paragraph("No findings: no case succeeded, so there are no numbers to judge."))
    elif not groups:
        blocks.append(
            Paragraph(
                "No findings: every method honours its tolerance, agrees with its own forward solve, "
                "is stable backwards, does ordinary work and keeps its memory promise (see the thresholds below)."
            )
        )
    else:
        blocks.append(
            Paragraph(
                "One line per problem and kind of finding, with the methods it applies to and the worst case; "
                "each method's numbers fold out beneath it."
            )
        )
        blocks.append(Bullets(tuple(_group_item(g, drawn) for g in groups), fold=True))
    if n_failed:
        blocks.append(Paragraph(f"Cases that did not succeed: {n_failed} (see [Failures](#failures))."))
    return blocks


def _how_to_read() -> Details:
    from ..backends import FAMILIES, method_class, method_names

    classes = [method_class(name) for name in method_names()]

    def names(family: str) -> str:
        return ", ".join(f"`{cls.name}`" for cls in classes if cls.family == family)

    families = "; ".join(f"{family} ({names(family)}): {meaning}" for family, meaning in FAMILIES.items())
    families += (
        f". Horizon-independent memory is promised by {', '.join(f'`{c.name}`' for c in classes if c.constant_memory)}. "
        "Backsolve-type and reversible methods are drawn dashed and compared against the discrete and stored ones; "
        "verification methods are drawn dotted and left out of the tolerance and work findings: their step sets "
        "their error, the parameter count their cost."
    )
    floors = ", ".join(f"{dtype} {floor:g}" for dtype, floor in ERROR_FLOOR.items())
    items = [Item(f"`{name}` = {value:g}: {value.__doc__}") for name, value in THRESHOLDS.items()]
    items.append(
        Item(
            f"Effective tolerance of a case: the largest of its rtol, the error floor of its dtype ({floors}) "
            "and the reference gradient's own error."
        )
    )
    return Details(
        "How to read this report",
        (
            Paragraph(
                "Each case is one problem instance x method x tolerance; numbers are medians over seeds. "
                "Gradient error is `||g - g_ref|| / ||g_ref||`; NFE counts vector-field evaluations; "
                "memory is the peak of one case alone. In the tables the best (lowest) value of each column is bold. "
                "A finding is reported once per problem and method; one that explains another "
                "(an unstable backward solve explains a missed tolerance) carries it as evidence."
            ),
            Paragraph(f"Method families: {families}"),
            Paragraph("Thresholds of the findings:"),
            Bullets(tuple(items)),
        ),
    )


def _image(figure: ReportFigure) -> Image:
    return Image(figure.file, figure.title, figure.caption, figure.anchor)


def _precision_note(frame: pd.DataFrame) -> list[Block]:
    """A plain statement of the error floor of each low-precision dtype in the run, so that
    an error at it is not read as a method's defect."""
    low = low_precision_floors(frame["dtype"].dropna().unique())
    if not low:
        return []
    floors = ", ".join(f"{floor:g} in {d}" for d, floor in low.items())
    return [
        Paragraph(
            f"**Precision floor.** Cases in {', '.join(low)} cannot resolve a gradient error much below the "
            f"arithmetic's own ({floors}), whatever the method and tolerance; the references are float64. An error "
            "at that floor is the dtype's, not a method's defect: error figures draw it as a dashed red line, and "
            "findings judge each case against the larger of its rtol and the floor."
        )
    ]


def _document(
    title: str,
    prepared: Prepared,
    pts: pd.DataFrame,
    figures: list[ReportFigure],
    target: Target,
    run_info: Sequence[tuple[str, Mapping[str, Any]]],
    reproductions: Sequence[Block],
) -> list[Block]:
    drawn = [f for f in figures if f.drawn]
    drawn_files = {f.file for f in drawn}
    failed = failures(prepared)
    frame = prepared.frame
    groups = group_findings(findings_in(pts), pts)
    blocks: list[Block] = [Heading(1, escape(title)), Paragraph(_summary(prepared, target))]
    blocks += _precision_note(frame)

    def images(section: str) -> list[Block]:
        return [_image(f) for f in drawn if f.section == section]

    blocks.append(Heading(2, "Overview", "overview"))
    blocks += images("overview")
    recommendations = recommend(pts, groups, target.grad_rel_err)
    blocks.append(Heading(2, "Which method to use", "which-method"))
    if recommendations:
        blocks.append(
            Paragraph(
                f"Per problem: the fastest method and tolerance whose gradient error reaches {target.grad_rel_err:g}, "
                f"the one of least peak memory within {LEAN_TIME_FACTOR:g}x that time, and the methods a finding "
                "rules out (a finding every method shares rules out none). Finite differences are not candidates. "
                "Each number links to its row in the problem's table."
            )
        )
        names = dict(zip(frame["problem_label"], frame["problem"]))
        blocks.append(_recommendation_table(recommendations, names, drawn_files))
    else:
        blocks.append(Paragraph("No case succeeded: there is nothing to recommend."))
    blocks += images("overview-cost")
    blocks += _finding_blocks(groups, drawn_files, len(pts), len(failed))
    blocks.append(_how_to_read())
    blocks += reproductions  # the papers' results reproduced (._headline), where the run holds their data

    tables = {t.problem: t for t in metric_tables(prepared, pts)}
    for problem in sorted(frame["problem"].unique()):
        blocks.append(Heading(2, f"Problem {code(problem)}"))
        blocks += images(problem)
        for instance in sorted(frame.loc[frame["problem"] == problem, "problem_label"].unique()):
            table = tables[instance]
            anchors = tuple(row_anchor(instance, series) for series in table.values.index)
            blocks.append(Heading(3, f"{code(instance)}: error, time, NFE and memory per tolerance"))
            blocks.append(Table(table.cells(), table.best, "method", row_anchors=anchors))
    for section, heading in (("sweeps", "Memory sweeps"), ("scaling", "Scaling")):
        if shown := images(section):
            blocks += [Heading(2, heading), *shown]

    blocks.append(Heading(2, "Failures", "failures"))
    blocks.append(
        Paragraph("Every case succeeded.") if failed.empty else Table(failed.set_index("problem"), index_name="problem")
    )
    if skipped := [f for f in figures if not f.drawn]:
        items = tuple(Item(f"{escape(f.title)} ({code(f.anchor)}): {escape(f.reason)}.") for f in skipped)
        blocks += [Heading(2, "Figures not drawn"), Bullets(items)]
    environment = environment_table(run_info)
    blocks.append(Heading(2, "Environment"))
    if environment.empty:
        blocks.append(Paragraph("No `run.json` was found: the environment is unknown."))
    else:
        blocks.append(Table(environment))
    return blocks
