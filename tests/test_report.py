"""Reports: files written, tables that parse back to the numbers, findings on both sides, the CLI."""

from __future__ import annotations

import base64
import html
import importlib.util
import json
import math
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import pytest
from synthetic_runs import DEFAULT_METHODS, DEFAULT_PROBLEMS, synthetic_frame, write_synthetic_run

from odebench import cli, load_results
from odebench.report import THRESHOLDS, build_report, find_findings, write_report
from odebench.report._data import describe_environment, prepare
from odebench.report._style import assign_styles

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CLEAN_PROBLEMS = [p for p in DEFAULT_PROBLEMS if p[0] != "stiff_decay"]
BACKSOLVE = "odebench.backsolve(seminorm=false)"


# --- helpers --------------------------------------------------------------------------------


def _cells(row: str) -> list[str]:
    """The cells of one pipe-table row, as text (backslash escapes undone; ``\\|`` is a literal bar)."""
    cells = re.split(r"(?<!\\)\|", row.strip())[1:-1]
    return [html.unescape(re.sub(r"\\(.)", r"\1", c.strip())) for c in cells]


def parse_pipe_tables(markdown: str) -> list[tuple[str, pd.DataFrame]]:
    """Every pipe table of a markdown text with the heading above it, cells as text."""
    tables, heading, lines = [], "", markdown.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        if line.startswith("|") and i + 1 < len(lines) and lines[i + 1].startswith("|---"):
            header, rows = _cells(line), []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(_cells(lines[i]))
                i += 1
            tables.append((heading, pd.DataFrame(rows, columns=header).set_index(header[0])))
            continue
        i += 1
    return tables


def to_number(cell: str) -> float:
    try:
        return float(cell.strip("*"))
    except ValueError:
        return math.nan


def figure_refs(text: str) -> set[str]:
    return set(re.findall(r"figures/[A-Za-z0-9_.-]+\.png", text))


class Page(HTMLParser):
    """What a test needs of the report page: headings in order, tables, scripts, links and images."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.headings: list[tuple[str, str, str]] = []  # (tag, id, text)
        self.tables = 0
        self.scripts: list[str] = []
        self.links: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.figures: list[str] = []  # data-file of each <figure>
        self.ids: set[str] = set()
        self._heading: list | None = None
        self._script: list | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        for name in ("href", "src", "action", "formaction", "srcset", "poster", "data"):
            if name in attrs:
                self.links.append((tag, name, attrs[name] or ""))
        if tag in ("h1", "h2", "h3", "h4"):
            self._heading = [tag, attrs.get("id", ""), ""]
        elif tag == "table":
            self.tables += 1
        elif tag == "script":
            self._script = []
        elif tag == "figure":
            self.figures.append(attrs.get("data-file", ""))

    def handle_endtag(self, tag):
        if self._heading is not None and tag == self._heading[0]:
            self.headings.append(tuple(self._heading))
            self._heading = None
        elif tag == "script" and self._script is not None:
            self.scripts.append("".join(self._script))
            self._script = None

    def handle_data(self, data):
        if self._heading is not None:
            self._heading[2] += data
        if self._script is not None:
            self._script.append(data)

    def heading_texts(self, tag: str) -> list[str]:
        return [text for t, _, text in self.headings if t == tag]


OWN_SCRIPT = (ROOT / "odebench" / "report" / "templates" / "report.js").read_text(encoding="utf-8").strip()


def assert_safe_page(page: Page, folder: Path) -> None:
    """Only the report's own script; every link http(s) or relative; data: only for the report's own PNGs."""
    assert page.scripts == [OWN_SCRIPT]
    for tag, attribute, value in page.links:
        scheme = urlsplit(value.strip()).scheme.lower()
        if scheme == "data":
            assert (tag, attribute) == ("img", "src") and value.startswith("data:image/png;base64,"), value
            assert base64.b64decode(value.split(",", 1)[1]) in {p.read_bytes() for p in folder.glob("figures/*.png")}
        else:
            assert scheme in ("", "http", "https"), (tag, attribute, value)
        if tag == "a" and value.startswith("#"):
            assert value[1:] in page.ids, f"a link to a missing anchor: {value}"


def assert_report_files(folder: Path) -> tuple[str, str]:
    """The report's two documents exist, every PNG is a non-empty image, every reference resolves."""
    md = (folder / "report.md").read_text(encoding="utf-8")
    text = (folder / "index.html").read_text(encoding="utf-8")
    written = {f"figures/{p.name}" for p in (folder / "figures").glob("*.png")}
    for name in written:
        assert (folder / name).read_bytes()[:8] == PNG_MAGIC
    assert figure_refs(md) | figure_refs(text) <= written, "a referenced figure does not exist"
    page = Page(text)
    assert set(page.figures) == written, "the HTML must name every figure it shows, and show every figure written"
    assert sum(1 for tag, _, v in page.links if tag == "img" and v.startswith("data:image/png;base64,")) == len(written)
    assert not re.search(r'(src|href)="(https?:)?//', text), "the HTML must open offline"
    assert_safe_page(page, folder)
    manifest = json.loads((folder / ".odebench-report.json").read_text())
    assert set(manifest["files"]) == written | {"report.md", "index.html"}
    return md, text


@pytest.fixture
def odebench_main(monkeypatch):
    """``odebench.cli.main`` with only the command modules that exist in this checkout.

    The parser imports every command module; those of commands not built yet would fail it.
    """
    available = {name: entry for name, entry in cli.COMMANDS.items() if _exists(entry[0])}
    monkeypatch.setattr(cli, "COMMANDS", available)
    return cli.main


def _exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # its parent package is missing
        return False


def mutate(frame: pd.DataFrame, problem_params: dict, method: str, method_params: dict, rtol=None, **values):
    """Set columns of the rows of one problem instance and method (optionally one tolerance)."""
    frame = frame.copy()
    rows = (
        (frame["problem_params"] == json.dumps(problem_params, sort_keys=True))
        & (frame["method"] == method)
        & (frame["method_params"] == json.dumps(method_params, sort_keys=True))
    )
    if rtol is not None:
        rows &= frame["rtol"] == rtol
    assert rows.any()
    for column, value in values.items():
        new = value(frame.loc[rows]) if callable(value) else value
        frame.loc[rows, column] = new
    return frame


# --- the full synthetic report ----------------------------------------------------------------


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    run = write_synthetic_run(tmp_path_factory.mktemp("results") / "synthetic-run")
    out = build_report([run], tmp_path_factory.mktemp("reports") / "synthetic")
    return run, out


def test_every_figure_is_written(report):
    _, out = report
    expected = {
        f"{kind}_{problem}.png"
        for kind in ("wp_time", "wp_nfe", "accuracy", "nfe")
        for problem in ("linear", "stiff_decay", "neural_mlp")
    } | {"memory_vs_t_end.png", "scaling.png", "overview.png", "overview_cost.png"}
    # The synthetic run holds backsolve with and without seminorm, and backsolve failing on
    # stiff_decay: two of the papers' reproductions (report/_headline.py) have their data.
    expected |= {"headline_seminorm.png", "headline_stability.png"}
    assert {p.name for p in (out / "figures").glob("*.png")} == expected
    assert_report_files(out)


def test_page_opens_with_the_overview_then_advice_then_findings(report):
    _, out = report
    md, text = assert_report_files(out)
    page = Page(text)
    assert page.heading_texts("h2")[:3] == ["Overview", "Which method to use", "Findings"]
    assert page.figures[0] == "figures/overview.png"  # the first picture is the overview
    assert page.tables >= 1 + 4  # recommendations, then one table per problem instance
    assert (
        md.index("## Overview") < md.index("## Which method to use") < md.index("## Findings") < md.index("## Problem")
    )
    # Rows carry ids, and the recommendations link to them.
    assert any(value.startswith("#row-") for tag, _, value in page.links if tag == "a")
    for name in THRESHOLDS:
        assert f"`{name}`" in md and f"<code>{name}</code>" in text


def _section(md: str, heading: str) -> str:
    start = md.index(f"## {heading}\n")
    end = md.find("\n## ", start + 1)
    body = md[start : end if end >= 0 else None]
    return body.split("<details>")[0]


def test_findings_are_grouped_and_link_their_figure(report):
    _, out = report
    findings = _section((out / "report.md").read_text(), "Findings")
    lines = [line for line in findings.splitlines() if line.startswith("- ")]
    # The three backsolve-type methods that fail on stiff_decay: one line, naming them and the worst.
    assert len(lines) == 1 and lines[0].count("**unstable backward solve**") == 1
    assert "3 of 6 methods" in lines[0] and "worst `" in lines[0]
    assert "(figures/accuracy_stiff_decay.png)" in lines[0]
    assert len([line for line in findings.splitlines() if line.startswith("  - ")]) == 3  # the details beneath
    page = (out / "index.html").read_text()
    assert 'href="#fig-accuracy_stiff_decay"' in page and 'id="fig-accuracy_stiff_decay"' in page
    assert '<ul class="folded">' in page and "<li><details><summary>" in page


def test_markdown_tables_parse_back_to_the_numbers(report):
    run, out = report
    tables = dict(parse_pipe_tables((out / "report.md").read_text()))
    records = prepare(load_results(run)).frame  # for the labels; the numbers come from the records
    records = records[records["status"] == "ok"]
    expected = {
        "error": records["grad_rel_err"],
        "time [s]": records["time_total_s"],
        "NFE": (records["nfe_forward"] + records["nfe_backward"]).astype(float),
        "memory [MiB]": records["peak_memory_bytes"].astype(float) / 2**20,
    }
    instances = sorted(records["problem_label"].unique())
    assert len(instances) == 4
    compared = 0
    for instance in instances:
        parsed = tables[f"`{instance}`: error, time, NFE and memory per tolerance"]
        numbers = parsed.map(to_number).astype(float)
        rows = records[records["problem_label"] == instance]
        assert sorted(parsed.index) == sorted(rows["series"].unique())
        for header, values in expected.items():
            for series, rtol, value in zip(rows["series"], rows["rtol"], values[rows.index]):
                assert numbers.loc[series, f"{header} @ {rtol:.0e}"] == pytest.approx(value, rel=6e-3)
                compared += 1
        # Bold marks the lowest number of each column, and only it.
        bold = parsed.map(lambda cell: cell.startswith("**"))
        lowest = numbers.eq(numbers.min(axis=0), axis=1)
        assert (bold == lowest).all().all()
    assert compared == 4 * 69
    neural = tables["`neural_mlp(t_end=1, width=64)`: error, time, NFE and memory per tolerance"]
    assert neural.loc["torchdiffeq.adjoint", "error @ 1e-09"] == "timeout"
    assert neural.loc["odebench.backprop", "NFE @ 1e-03"].startswith("**")


def test_failures_and_environment_tables(report):
    _, out = report
    tables = dict(parse_pipe_tables((out / "report.md").read_text()))
    failed = tables["Failures"]
    assert sorted(failed["status"]) == ["timeout", "timeout", "unavailable"]
    assert "synthetic: solver not supported" in set(failed["error"])
    environment = tables["Environment"]["synthetic-run"]
    assert environment["CPU"] == "synthetic CPU (2 cores)"
    assert environment["GPU"] == "none"
    assert environment["commit"] == "0" * 12


def test_environment_tolerates_missing_keys(tmp_path):
    assert describe_environment({}) == {}
    partial = describe_environment({"gpu": {"name": "H200"}, "cpu": {"cores": 16}, "git": {"dirty": True}})
    assert partial == {"GPU": "H200 (CUDA ?)", "CPU": "? (16 cores)"}
    run = write_synthetic_run(tmp_path / "run", problems=[("linear", {"dim": 4})], methods=DEFAULT_METHODS[:1])
    (run / "run.json").unlink()
    md = (build_report(run, tmp_path / "report") / "report.md").read_text()
    assert "No `run.json` was found" in md


def test_work_precision_figure_panels_per_instance(report):
    _, out = report
    from PIL import Image

    linear = Image.open(out / "figures" / "wp_time_linear.png")
    neural = Image.open(out / "figures" / "wp_time_neural_mlp.png")
    assert neural.size[0] > linear.size[0]  # two instances side by side


# --- findings, both sides ------------------------------------------------------------------------


def test_clean_run_has_no_findings():
    assert find_findings(synthetic_frame(problems=CLEAN_PROBLEMS)) == []


def test_unstable_backsolve_on_stiff_problem():
    found = find_findings(synthetic_frame())
    assert [(f.kind, f.problem) for f in found] == [("unstable_backward", "stiff_decay(k=40)")] * 3
    assert {f.method for f in found} == {BACKSOLVE, "odebench.backsolve(seminorm=true)", "torchdiffeq.adjoint"}
    # The missed tolerance and the inconsistency it causes are evidence, not separate findings.
    assert any(line.startswith("also tolerance not honoured") for line in found[0].evidence)
    assert all(f.figure == "figures/accuracy_stiff_decay.png" for f in found)


LINEAR, NEURAL_1 = {"dim": 4}, {"t_end": 1.0, "width": 64}
SOLVER = {"solver": "dopri5"}
BACKSOLVE_PARAMS = {"solver": "dopri5", "seminorm": False}

INJECTIONS = {
    "error far above rtol": (
        lambda f: mutate(f, LINEAR, "odebench.checkpoint", SOLVER, grad_rel_err=lambda r: r["grad_rel_err"] * 1e3),
        ("tolerance", "linear(dim=4)", "odebench.checkpoint", "its tolerance"),
    ),
    "error plateau": (
        lambda f: mutate(
            mutate(f, LINEAR, "odebench.interpolated", SOLVER, rtol=1e-6, grad_rel_err=2e-5),
            LINEAR,
            "odebench.interpolated",
            SOLVER,
            rtol=1e-9,
            grad_rel_err=2e-5,
        ),  # fmt: skip
        ("tolerance", "linear(dim=4)", "odebench.interpolated", "plateau"),
    ),
    "inconsistent adjoint": (
        lambda f: mutate(f, NEURAL_1, "odebench.interpolated", SOLVER, consistency_err=0.1),
        ("consistency", "neural_mlp(t_end=1, width=64)", "odebench.interpolated", "discrete backprop"),
    ),
    "unstable backsolve": (
        lambda f: mutate(f, LINEAR, "odebench.backsolve", BACKSOLVE_PARAMS, rtol=1e-6, grad_rel_err=1.0),
        ("unstable_backward", "linear(dim=4)", BACKSOLVE, "unstable"),
    ),
    "backward NFE": (
        lambda f: mutate(f, LINEAR, "odebench.checkpoint", SOLVER, nfe_backward=lambda r: r["nfe_forward"] * 20),
        ("work", "linear(dim=4)", "odebench.checkpoint", "backward NFE"),
    ),
    "NFE against peers": (
        lambda f: mutate(
            f,
            LINEAR,
            "odebench.checkpoint",
            SOLVER,
            nfe_forward=lambda r: r["nfe_forward"] * 20,
            nfe_backward=lambda r: r["nfe_backward"] * 20,
        ),  # fmt: skip
        ("work", "linear(dim=4)", "odebench.checkpoint", "at least as accurate"),
    ),
    "memory grows with t_end": (
        lambda f: mutate(
            f,
            {"t_end": 4.0, "width": 64},
            "odebench.backsolve",
            BACKSOLVE_PARAMS,
            peak_memory_bytes=lambda r: r["peak_memory_bytes"] * 4,
        ),  # fmt: skip
        ("memory", "neural_mlp(width=64)", BACKSOLVE, "t_end sweep"),
    ),
}


@pytest.mark.parametrize("anomaly", list(INJECTIONS))
def test_each_injected_anomaly_yields_exactly_its_finding(anomaly):
    inject, (kind, problem, method, phrase) = INJECTIONS[anomaly]
    found = find_findings(inject(synthetic_frame(problems=CLEAN_PROBLEMS)))
    assert [(f.kind, f.problem, f.method) for f in found] == [(kind, problem, method)]
    assert phrase in found[0].summary


BELOW_THRESHOLDS = {
    "memory grows 1.8x": lambda f: mutate(
        f,
        {"t_end": 4.0, "width": 64},
        "odebench.backsolve",
        BACKSOLVE_PARAMS,
        peak_memory_bytes=lambda r: r["peak_memory_bytes"] * 1.8,
    ),  # fmt: skip
    "backward NFE 8x forward": lambda f: mutate(
        f, LINEAR, "odebench.checkpoint", SOLVER, nfe_backward=lambda r: r["nfe_forward"] * 8
    ),
    "consistency_err 50x rtol": lambda f: mutate(
        f, NEURAL_1, "odebench.interpolated", SOLVER, consistency_err=lambda r: r["rtol"] * 50
    ),
    # A fixed-step solver ignores rtol by design: its flat error is no missed tolerance.
    "fixed-step error far above rtol": lambda f: mutate(
        f, LINEAR, "odebench.checkpoint", SOLVER, solver="rk4", grad_rel_err=lambda r: r["grad_rel_err"] * 1e3
    ),
}


@pytest.mark.parametrize("anomaly", list(BELOW_THRESHOLDS))
def test_anomalies_below_their_threshold_are_no_finding(anomaly):
    assert find_findings(BELOW_THRESHOLDS[anomaly](synthetic_frame(problems=CLEAN_PROBLEMS))) == []


def test_memory_growth_of_backprop_is_no_finding():
    # backprop keeps every step: its memory grows 3.7x over the synthetic t_end sweep, as it should.
    frame = synthetic_frame(problems=CLEAN_PROBLEMS)
    mem = frame.groupby("problem_params")["peak_memory_bytes"].max()
    assert mem['{"t_end": 4.0, "width": 64}'] > 3 * mem['{"t_end": 1.0, "width": 64}']
    assert find_findings(frame) == []


def test_float32_error_floor_is_no_finding():
    frame = synthetic_frame(problems=CLEAN_PROBLEMS, failures=False)
    frame["dtype"] = "float32"
    frame["grad_rel_err"] = np.maximum(frame["grad_rel_err"], 3e-6)  # float32 cannot do better
    frame["consistency_err"] = np.minimum(frame["consistency_err"], frame["grad_rel_err"])
    assert find_findings(frame) == []
    frame.loc[frame["method"] == "odebench.checkpoint", "grad_rel_err"] = 5e-3  # but this is far off
    assert [f.kind for f in find_findings(frame)] == ["tolerance"] * 3


@pytest.mark.parametrize(("dtype", "lines"), [("float32", [1e-5]), ("float64", [])])
def test_the_float32_error_floor_is_drawn_in_error_panels(dtype, lines):
    """A float32 error panel carries the floor as a named dashed line; float64's is too low to matter."""
    from matplotlib.figure import Figure

    from odebench.report._figures import Layout, Panel, _paint
    from odebench.report._style import assign_styles

    frame = synthetic_frame(problems=CLEAN_PROBLEMS, failures=False).assign(dtype=dtype, series=lambda f: f["method"])
    styles = assign_styles((name, "discrete") for name in frame["series"].unique())
    ax = Figure().subplots()
    _paint(ax, Panel("p", frame, "rtol", "grad_rel_err", "rtol", "error"), Layout(1), styles)
    flat = [line.get_ydata()[0] for line in ax.get_lines() if line.get_gid() == "error-floor"]
    assert flat == lines
    assert [t.get_text() for t in ax.texts] == [f"{dtype} error floor"] * len(lines)
    ax = Figure().subplots()  # a time axis is no error axis
    _paint(ax, Panel("p", frame, "rtol", "time_total_s", "rtol", "s"), Layout(1), styles)
    assert not ax.texts


def test_finite_differences_are_no_contender():
    frame = synthetic_frame(
        problems=CLEAN_PROBLEMS, methods=[*DEFAULT_METHODS, ("fd.central", {"solver": "dopri5"})], failures=False
    )
    fd = frame["method"] == "fd.central"
    frame.loc[fd, "grad_rel_err"] = 1e-6  # limited by the difference step, whatever the tolerance
    frame.loc[fd, "nfe_forward"] = frame.loc[fd, "nfe_forward"] * 2 * 1024
    frame.loc[fd, "nfe_backward"] = 0
    assert find_findings(frame) == []


def test_unstable_needs_a_stable_method_to_compare_with():
    only_backsolve = [m for m in DEFAULT_METHODS if m[0] in ("odebench.backsolve", "torchdiffeq.adjoint")]
    found = find_findings(synthetic_frame(methods=only_backsolve, failures=False))
    # Without a checkpointed method to compare with, the inconsistency is the diagnosis.
    assert [(f.kind, f.problem) for f in found] == [("consistency", "stiff_decay(k=40)")] * 3


def test_thresholds_are_documented():
    assert len(THRESHOLDS) >= 8
    for name, value in THRESHOLDS.items():
        assert isinstance(value, float) and value > 0
        assert value.__doc__ and len(value.__doc__) > 30, name


# --- reports from awkward data -------------------------------------------------------------------


def test_single_method_single_tolerance(tmp_path):
    frame = synthetic_frame(
        problems=[("linear", {"dim": 4})], methods=[("odebench.checkpoint", {"solver": "dopri5"})], tolerances=(1e-6,)
    )
    out = write_report(frame, tmp_path / "r")
    md, _ = assert_report_files(out)
    assert (out / "figures" / "wp_time_linear.png").stat().st_size > 0
    (heading, table), *_ = [t for t in parse_pipe_tables(md) if "per tolerance" in t[0]]
    assert list(table.index) == ["odebench.checkpoint"]
    assert [c for c in table.columns if c.startswith("error")] == ["error @ 1e-06"]
    assert "every timed case has the same n_params and n_state" in md
    assert "Every case succeeded." in md


def test_nan_metrics_skip_their_figures(tmp_path):
    frame = synthetic_frame(problems=[("linear", {"dim": 4})])
    frame["grad_rel_err"] = np.nan
    frame["consistency_err"] = np.nan
    frame["time_total_s"] = np.nan
    out = write_report(frame, tmp_path / "r")
    md, _ = assert_report_files(out)
    names = {p.name for p in (out / "figures").glob("*.png")}
    assert names == {"nfe_linear.png"}  # NFE counts are all that is left
    skipped = md[md.index("## Figures not drawn") :]
    for name in ("wp_time_linear", "wp_nfe_linear", "accuracy_linear", "memory_vs_sweep", "scaling"):
        assert f"`fig-{name}`" in skipped
    assert find_findings(frame) == []


@pytest.mark.parametrize("case", ["no records", "nothing succeeded"])
def test_report_without_successful_cases(tmp_path, case):
    frame = synthetic_frame(problems=[("linear", {"dim": 4})])
    if case == "no records":
        frame = frame.iloc[0:0]
    else:
        frame["status"] = "failed"
        frame["error"] = "RuntimeError: boom | <b>again</b>"
    out = write_report(frame, tmp_path / "r")
    md, page = assert_report_files(out)
    drawn = {p.name for p in (out / "figures").glob("*.png")}
    # the overview marks every failure
    assert drawn == (set() if case == "no records" else {"overview.png", "overview_cost.png"})
    assert "No findings: no case succeeded" in md and "Work-precision (`fig-wp_time`): no case succeeded" in md
    if case == "nothing succeeded":
        failed = dict(parse_pipe_tables(md))["Failures"]
        assert len(failed) == 18 and set(failed["error"]) == {"RuntimeError: boom | <b>again</b>"}
        assert "RuntimeError: boom" in md and "\\<b>again" in md  # literal in markdown
        assert "RuntimeError: boom" in page and "<b>again" not in page


def test_figures_of_an_earlier_report_are_removed_and_nothing_else(tmp_path):
    out = write_report(synthetic_frame(problems=[("linear", {"dim": 4})]), tmp_path / "r")
    assert (out / "figures" / "wp_time_linear.png").exists()
    (out / "notes.md").write_text("mine")
    (out / "figures" / "mine.png").write_bytes(PNG_MAGIC)
    write_report(synthetic_frame(problems=[("stiff_decay", {"k": 40.0})]), out)  # re-run over its own output
    assert not (out / "figures" / "wp_time_linear.png").exists()  # stale: the data no longer has it
    assert (out / "figures" / "wp_time_stiff_decay.png").exists()
    assert (out / "notes.md").read_text() == "mine" and (out / "figures" / "mine.png").exists()
    assert_report_files_except(out, {"figures/mine.png"})


def assert_report_files_except(out: Path, foreign: set[str]) -> None:
    manifest = set(json.loads((out / ".odebench-report.json").read_text())["files"])
    assert not manifest & foreign
    assert {"report.md", "index.html"} <= manifest
    assert all((out / name).is_file() for name in manifest)


def test_cli_refuses_a_folder_it_did_not_write(tmp_path, capsys, odebench_main):
    run = write_synthetic_run(tmp_path / "run", problems=[("linear", {"dim": 4})], methods=DEFAULT_METHODS[:2])
    out = tmp_path / "mine"
    (out / "figures").mkdir(parents=True)
    (out / "index.html").write_text("my page")
    (out / "figures" / "plot.png").write_bytes(PNG_MAGIC)
    assert odebench_main(["report", str(run), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(out) in err and "--force" in err
    assert sorted(p.name for p in out.rglob("*")) == ["figures", "index.html", "plot.png"]  # untouched
    # --force writes the report's own files (index.html among them) and leaves the others.
    assert odebench_main(["report", str(run), "-o", str(out), "--force"]) == 0
    assert (out / "figures" / "plot.png").read_bytes() == PNG_MAGIC
    assert (out / "report.md").exists() and "my page" not in (out / "index.html").read_text()
    assert_report_files_except(out, {"figures/plot.png"})
    # The folder is now a report of odebench: re-running needs no --force, and still spares plot.png.
    assert odebench_main(["report", str(run), "-o", str(out), "--link-figures"]) == 0
    assert (out / "figures" / "plot.png").exists()
    assert 'src="figures/overview.png"' in (out / "index.html").read_text()


@pytest.mark.parametrize("files", [["../outside.txt"], "index.html", ["/etc/passwd"]])
def test_a_manifest_that_points_outside_is_refused(tmp_path, capsys, odebench_main, files):
    run = write_synthetic_run(tmp_path / "run", problems=[("linear", {"dim": 4})], methods=DEFAULT_METHODS[:1])
    out = tmp_path / "r"
    out.mkdir()
    (tmp_path / "outside.txt").write_text("keep")
    (out / ".odebench-report.json").write_text(json.dumps({"files": files}))
    assert odebench_main(["report", str(run), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert ".odebench-report.json" in err and "files" in err
    assert (tmp_path / "outside.txt").read_text() == "keep"


def test_many_methods_keep_distinct_styles(tmp_path):
    methods = [(f"lib{i}.checkpoint", {"solver": s}) for i in range(6) for s in ("dopri5", "tsit5")]
    styles = assign_styles((f"m{i}", "stable") for i in range(40))
    assert len({(s.color, s.marker) for s in styles.values()}) == 40
    frame = synthetic_frame(problems=[("linear", {"dim": 4})], methods=methods, failures=False)
    prepared = prepare(frame)
    assert len(prepared.series) == 12 and "lib0.checkpoint(solver=tsit5)" in prepared.series
    out = write_report(frame, tmp_path / "r")
    assert_report_files(out)


def test_a_legend_of_many_long_labels_widens_the_figure_instead_of_covering_the_panels(tmp_path):
    """Seen in the headline report: 32 labels like ``odebench.checkpoint(n_steps=400, solver=rk4)``
    squeezed the panels to nothing, and the legend was drawn over the data."""
    import warnings

    from PIL import Image

    methods = [(f"library{i}.recursive_checkpoint", {"solver": "dopri5", "max_steps": 100_000 + i}) for i in range(30)]
    frame = synthetic_frame(problems=[("linear", {"dim": 4})], methods=methods, failures=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = write_report(frame, tmp_path / "r")
    assert not [w for w in caught if "constrained_layout not applied" in str(w.message)]
    figure = out / "figures" / "wp_time_linear.png"
    with Image.open(figure) as image:
        width_in = image.width / 110  # DPI
    assert width_in > 4.2 + 3.2 + 1, width_in  # one panel and the default legend width would not hold it


def test_overlapping_runs_stay_apart(tmp_path):
    small = dict(problems=[("linear", {"dim": 4})], methods=DEFAULT_METHODS[:2], tolerances=(1e-3, 1e-6))
    base = write_synthetic_run(tmp_path / "base", run_id="base", **small)
    new = write_synthetic_run(tmp_path / "new", run_id="new", time_scale=2.0, **small)
    out = build_report([base, new], tmp_path / "both")
    md, _ = assert_report_files(out)
    (_, table), *_ = [t for t in parse_pipe_tables(md) if "per tolerance" in t[0]]
    assert {"odebench.backprop [new]", "odebench.backprop [base]"} <= set(table.index)
    assert "| run | base | new |" in md


# --- command line and layering ---------------------------------------------------------------------


def test_cli_writes_the_report(tmp_path, capsys, monkeypatch, odebench_main):
    run = write_synthetic_run(
        tmp_path / "quick-run", problems=[("linear", {"dim": 4})], methods=DEFAULT_METHODS[:1], tolerances=(1e-6,)
    )
    monkeypatch.chdir(tmp_path)
    assert odebench_main(["report", str(run)]) == 0
    out = Path(capsys.readouterr().out.strip())
    assert out == Path("reports") / "quick-run"
    assert (tmp_path / out / "index.html").exists()
    assert odebench_main(["report", str(run), "-o", str(tmp_path / "elsewhere")]) == 0
    assert (tmp_path / "elsewhere" / "report.md").exists()


@pytest.mark.parametrize("make", ["missing", "not a results folder", "output is a file"])
def test_cli_bad_input_exits_2(tmp_path, capsys, make, odebench_main):
    path, out = tmp_path / "run", tmp_path / "out"
    if make == "not a results folder":
        path.mkdir()
    if make == "output is a file":
        write_synthetic_run(path, problems=[("linear", {"dim": 4})], methods=DEFAULT_METHODS[:1])
        out.write_text("")
    assert odebench_main(["report", str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("odebench report: error:")
    assert str(out if make == "output is a file" else path) in err
    assert make == "output is a file" or not out.exists()


def test_reports_import_neither_torch_nor_jax():
    code = (
        "import sys, odebench.report._cli\n"
        "assert 'pandas' not in sys.modules and 'matplotlib' not in sys.modules, 'the CLI module must stay cheap'\n"
        "import odebench.report as r\n"
        "r.build_report, r.find_findings\n"
        "import odebench.report._figures\n"
        "print(sorted(m for m in ('torch', 'jax') if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.strip() == "[]"


# --- hostile text from records ---------------------------------------------------------------------

HOSTILE = "[x](javascript:alert(1)) <script>alert(2)</script> ``tick` ![i](data:text/html,<b>x</b>) <img src=x onerror=alert(3)>"


def test_hostile_text_in_params_names_and_errors_stays_text(tmp_path):
    """Record text reaches the page and the markdown only as literal text: no script, no
    javascript: or data: link, no markup, whatever a parameter, suite name or error holds."""
    frame = synthetic_frame(problems=CLEAN_PROBLEMS)
    linear = frame["problem"] == "linear"
    frame.loc[linear, "problem_params"] = json.dumps({"dim": 4, "note": HOSTILE}, sort_keys=True)
    backsolve = frame["method"] == "odebench.backsolve"
    frame.loc[backsolve, "method_params"] = [
        json.dumps({**json.loads(p), "tag": HOSTILE}, sort_keys=True) for p in frame.loc[backsolve, "method_params"]
    ]
    failed = frame.index[linear & (frame["method"] == "odebench.checkpoint")]
    frame.loc[failed, "status"] = "failed"
    frame.loc[failed, "error"] = HOSTILE
    frame.loc[failed, "grad_rel_err"] = float("nan")
    out = write_report(frame, tmp_path / "report", run_info=[(HOSTILE, {"suite": {"name": HOSTILE}})], title=HOSTILE)
    md, text = assert_report_files(out)
    assert "alert(2)</script>" not in text and "onerror=alert" not in text.replace("onerror=alert(3)&gt;", "")
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in text  # shown, as text
    from markdown_it import MarkdownIt

    def hrefs(tokens):
        for token in tokens:
            yield from hrefs(token.children or [])
            if token.type in ("link_open", "image"):
                yield token.attrs.get("href") or token.attrs.get("src") or ""
            if token.type in ("html_inline", "html_block"):  # the report's own <details> only
                assert "alert(" not in token.content, f"record text became HTML in report.md: {token.content!r}"

    links = list(hrefs(MarkdownIt("commonmark").enable("table").parse(md)))
    assert links and all(urlsplit(h).scheme in ("", "http", "https") for h in links), links


def test_every_method_declares_a_family_the_report_reads():
    from odebench.backends import FAMILIES, method_class, method_names
    from odebench.report._data import method_family, promises_constant_memory

    for name in method_names():
        assert method_class(name).family in FAMILIES, name
    backsolve = {n for n in method_names() if method_family(n) == "backsolve"}
    assert backsolve == {n for n in method_names() if n.endswith(".backsolve")} | {"torchdiffeq.adjoint"}
    assert {n for n in method_names() if promises_constant_memory(n)} == backsolve | {"odebench.reversible"}
    assert method_family("odebench.quadrature") == "stored" and method_family("diffrax.forward") == "discrete"
    assert method_family("somelib.unknown") == "other" and not promises_constant_memory("somelib.unknown")


def test_a_float32_run_is_judged_against_its_error_floor():
    """The recommendation's default target and the note at the top follow the run's dtype."""
    from odebench.report._build import _precision_note
    from odebench.report._overview import target_accuracy

    assert target_accuracy([], ["float32"]).grad_rel_err == 1e-5
    assert "error floor of float32" in target_accuracy([], ["float32"]).source
    assert target_accuracy([], ["float32", "float64"]).grad_rel_err == 1e-6  # float64 cases can reach it
    assert target_accuracy([], ["float64"]).grad_rel_err == 1e-6
    ruled = [("run", {"suite": {"expect": [{"max": {"grad_rel_err": 3e-4}}]}})]
    assert target_accuracy(ruled, ["float32"]).grad_rel_err == 3e-4  # the suite's own target wins
    (note,) = _precision_note(pd.DataFrame({"dtype": ["float32", "float64"]}))
    assert "Cases in float32" in note.text and "1e-05 in float32" in note.text
    assert _precision_note(pd.DataFrame({"dtype": ["float64"]})) == []


def test_a_group_line_names_its_worst_case_in_a_few_words_and_folds_the_sentences():
    """The line a reader meets is short; each method's full sentence is beneath it."""
    from odebench.report._build import _group_item
    from odebench.report._findings import Finding, FindingGroup

    long = "gradient error up to 3.9e+02x its tolerance (0.39 at rtol=1e-03) and a long explanation"
    findings = (
        Finding("tolerance", "p", "a.slow", long, ("rtol=1e-03: error 0.39",), "accuracy_p.png", severity=390.0),
        Finding("tolerance", "p", "b.other", "gradient error up to 2e+02x", (), "accuracy_p.png", severity=200.0),
    )
    item = _group_item(FindingGroup("tolerance", "p", findings, of_problem=False, n_methods=5), {"accuracy_p.png"})
    assert item.text.endswith("worst `a.slow`: gradient error up to 3.9e+02x its tolerance ([figure](accuracy_p.png))")
    assert "long explanation" not in item.text
    assert any("long explanation" in child and "rtol=1e-03: error 0.39" in child for child in item.children)
    # A plateau is a finding below the factor: its sentence says what the ratio cannot.
    plateau = Finding("tolerance", "p", "c", "the error stops falling (plateau)", (), "x.png", severity=3.0)
    item = _group_item(FindingGroup("tolerance", "p", (plateau, findings[1]), of_problem=False, n_methods=5), set())
    assert "worst `b.other`: gradient error up to 2e+02x its tolerance" in item.text


def test_cases_of_two_atols_at_one_rtol_stay_apart_where_the_solver_adapts():
    # Two atols at one rtol are two different solves for an adaptive solver: summarised as
    # one (the median of both) a table cell would describe neither. A fixed-step solver
    # ignores atol, so its cases of either atol stay one series.
    from odebench.report import prepare
    from odebench.report._data import points

    frame = synthetic_frame(problems=[("linear", {"dim": 4})], tolerances=(1e-6,))
    frame = frame[frame["method"].isin(["odebench.backsolve", "odebench.backprop"])]
    frame = frame[frame["method_params"] == frame["method_params"].iloc[-1]]  # one backsolve variant
    assert set(frame["method"]) == {"odebench.backsolve"}
    frame = pd.concat([frame, frame.assign(method="odebench.backprop", method_params="{}")], ignore_index=True)
    loose = frame.copy()
    loose["atol"], loose["grad_rel_err"] = 1e-6, frame["grad_rel_err"] * 100
    fixed = frame[frame["method"] == "odebench.backprop"].copy()
    fixed["method_params"], fixed["solver"] = '{"n_steps": 20, "solver": "rk4"}', "rk4"
    fixed_loose = fixed.copy()
    fixed_loose["atol"] = 1e-6
    both = pd.concat([frame.assign(atol=1e-8), loose, fixed.assign(atol=1e-8), fixed_loose], ignore_index=True)
    pts = points(prepare(both))
    series = set(pts["series"])
    name = "odebench.backsolve(seminorm=true, solver=dopri5)"
    assert {f"{name} [atol=1e-08]", f"{name} [atol=1e-06]", "odebench.backprop [atol=1e-06]"} <= series
    backsolve = pts[pts["method"] == "odebench.backsolve"].set_index("series")["grad_rel_err"]
    assert backsolve[f"{name} [atol=1e-06]"] == pytest.approx(100 * backsolve[f"{name} [atol=1e-08]"])
    assert [s for s in series if "rk4" in s] == ["odebench.backprop(n_steps=20, solver=rk4)"]  # one series, no tag
    # one atol per rtol: labels as before
    assert not any("atol" in s for s in prepare(frame.assign(atol=1e-8)).frame["series"])
