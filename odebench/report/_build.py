"""``build_report``: results folders in, ``report.md``, ``index.html`` and ``figures/*.png`` out."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from .._errors import UsageError
from .._results import ResultsError, load_results, load_run_info
from ._data import (
    BACKSOLVE_TYPE_NAMES,
    BACKSOLVE_TYPE_SUFFIXES,
    CONSTANT_MEMORY_SUFFIXES,
    STABLE_TYPE_NAMES,
    STABLE_TYPE_SUFFIXES,
    VERIFICATION_PREFIXES,
    Prepared,
    environment_table,
    failures,
    format_params,
    metric_tables,
    points,
    prepare,
)
from ._figures import ReportFigure, draw_figures
from ._findings import ERROR_FLOOR, THRESHOLDS, Finding, findings_in
from ._render import Block, Bullets, Details, Heading, Image, Item, Paragraph, Table, to_html, to_markdown
from ._style import assign_styles

REPORT_MD = "report.md"
REPORT_HTML = "index.html"
FIGURES = "figures"

PathLike = str | os.PathLike


def default_output(runs: Sequence[PathLike]) -> Path:
    """``reports/<name>``: the run folder's name, or the names of several joined by ``+``."""
    names = [(p if p.is_dir() or not p.suffix else p.parent).name or "run" for p in map(Path, runs)]
    name = "+".join(names) if len(names) <= 3 else f"{names[0]}+{len(names) - 1}-more"
    return Path("reports") / name


def build_report(runs: PathLike | Sequence[PathLike], output: PathLike | None = None, *, embed: bool = True) -> Path:
    """Read results folders (or records files) and write the report; returns the report folder.

    ``output`` defaults to :func:`default_output`. With ``embed`` (the default) index.html
    carries its figures; without, it links the PNGs beside it (half the size, for
    reports kept in a repository). Raises :class:`odebench.UsageError` for a folder that
    is missing or cannot be read.
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
    return write_report(frame, output if output is not None else default_output(paths), run_info=infos, embed=embed)


def write_report(
    frame: pd.DataFrame,
    output: PathLike,
    *,
    run_info: Sequence[tuple[str, Mapping[str, Any]]] = (),
    title: str = "",
    embed: bool = True,
) -> Path:
    """Write the report of a records frame (as :func:`odebench.load_results` returns) to ``output``.

    ``run_info`` pairs a run name with its ``run.json`` content, for the environment footer.
    """
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise UsageError(f"the report folder {output} is a file")
    figures_dir = output / FIGURES
    figures_dir.mkdir(parents=True, exist_ok=True)
    for stale in figures_dir.glob("*.png"):  # a figure the data no longer supports must not linger
        stale.unlink()
    prepared = prepare(frame)
    pts = points(prepared)
    styles = assign_styles(zip(prepared.frame["series"], prepared.frame["family"]))
    figures = draw_figures(output, pts, styles)
    findings = findings_in(pts)
    title = title or "odebench report: " + (", ".join(name for name, _ in run_info) or "records")
    blocks = _document(title, prepared, pts, findings, figures, run_info)
    (output / REPORT_MD).write_text(to_markdown(blocks), encoding="utf-8")
    (output / REPORT_HTML).write_text(to_html(blocks, output, title, embed=embed), encoding="utf-8")
    return output


def _summary(prepared: Prepared) -> str:
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
        text += f" Every method runs with `{format_params(prepared.common_method_params)}`."
    return text


def _finding_blocks(findings: list[Finding], drawn: set[str], n_ok: int, n_failed: int) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Findings", "findings")]
    if not n_ok:
        blocks.append(Paragraph("No findings: no case succeeded, so there are no numbers to judge."))
    elif not findings:
        blocks.append(
            Paragraph(
                "No findings: every method honours its tolerance, agrees with its own forward solve, "
                "is stable backwards, does ordinary work and keeps its memory promise (see the thresholds below)."
            )
        )
    by_problem: dict[str, list[Finding]] = {}
    for finding in findings:
        by_problem.setdefault(finding.problem, []).append(finding)
    for problem, group in by_problem.items():
        blocks.append(Heading(3, f"`{problem}`"))
        items = []
        for f in group:
            link = f" ([figure]({f.figure}))" if f.figure in drawn else ""
            items.append(Item(f"`{f.method}`: **{f.title}**: {f.summary}{link}", f.evidence))
        blocks.append(Bullets(tuple(items)))
    if n_failed:
        blocks.append(Paragraph(f"Cases that did not succeed: {n_failed} (see [Failures](#failures))."))
    return blocks


def _how_to_read() -> Details:
    def names(suffixes: tuple[str, ...] = (), full: tuple[str, ...] = (), prefixes: tuple[str, ...] = ()) -> str:
        return ", ".join([f"`*{s}`" for s in suffixes] + [f"`{n}`" for n in full] + [f"`{p}*`" for p in prefixes])

    families = (
        f"backsolve-type: {names(BACKSOLVE_TYPE_SUFFIXES, BACKSOLVE_TYPE_NAMES)}; "
        f"checkpointed/interpolated/discrete: {names(STABLE_TYPE_SUFFIXES, STABLE_TYPE_NAMES)}; "
        f"horizon-independent memory promised by {names(CONSTANT_MEMORY_SUFFIXES)}; "
        f"verification methods {names(prefixes=VERIFICATION_PREFIXES)} (finite differences) are drawn dotted "
        "and left out of the tolerance and work findings: their step sets their error, the parameter count their cost."
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


def _document(
    title: str,
    prepared: Prepared,
    pts: pd.DataFrame,
    findings: list[Finding],
    figures: list[ReportFigure],
    run_info: Sequence[tuple[str, Mapping[str, Any]]],
) -> list[Block]:
    drawn = [f for f in figures if f.drawn]
    failed = failures(prepared)
    blocks: list[Block] = [Heading(1, title), Paragraph(_summary(prepared))]
    blocks += _finding_blocks(findings, {f.file for f in drawn}, len(pts), len(failed))
    blocks.append(_how_to_read())

    tables = {t.problem: t for t in metric_tables(prepared, pts)}
    frame = prepared.frame
    for problem in sorted(frame["problem"].unique()):
        blocks.append(Heading(2, f"Problem `{problem}`"))
        blocks += [_image(f) for f in drawn if f.section == problem]
        for instance in sorted(frame.loc[frame["problem"] == problem, "problem_label"].unique()):
            table = tables[instance]
            blocks.append(Heading(3, f"`{instance}`: error, time, NFE and memory per tolerance"))
            blocks.append(Table(table.cells(), table.best, "method"))
    for section, heading in (("sweeps", "Memory sweeps"), ("scaling", "Scaling")):
        images = [_image(f) for f in drawn if f.section == section]
        if images:
            blocks += [Heading(2, heading), *images]

    blocks.append(Heading(2, "Failures", "failures"))
    if failed.empty:
        blocks.append(Paragraph("Every case succeeded."))
    else:
        blocks.append(Table(failed.set_index("problem"), index_name="problem"))
    skipped = [f for f in figures if not f.drawn]
    if skipped:
        blocks.append(Heading(2, "Figures not drawn"))
        blocks.append(Bullets(tuple(Item(f"{f.title} (`{f.anchor}`): {f.reason}.") for f in skipped)))
    environment = environment_table(run_info)
    blocks.append(Heading(2, "Environment"))
    if environment.empty:
        blocks.append(Paragraph("No `run.json` was found: the environment is unknown."))
    else:
        blocks.append(Table(environment))
    return blocks
