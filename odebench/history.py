"""``odebench history RUN... [-o DIR]``: each case's metrics across runs (commits), with the jumps named.

The runs (results folders of one suite, each with its ``run.json``) are put in order of
their start time. Between each run and the one before it, the gate's own comparison
(:func:`odebench.gate.gate`, with its default rules or ``--rules``) says what jumped:
a violation is a change for the worse, and the same comparison with the two runs'
roles swapped finds the changes for the better. Writes ``history.md`` (also printed)
and one trend figure per case (time, NFE, gradient error, peak memory) into DIR.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._errors import UsageError

DEFAULT_OUTPUT = "reports/history"
MARKER = ".odebench-history"  # written into DIR: a folder odebench made, and what it wrote there
FIGURES = "figures"
# (column, panel title, unit): what each case's figure follows across runs.
METRICS: tuple[tuple[str, str, str], ...] = (
    ("time_total_s", "time per gradient, median [s]", "s"),
    ("nfe_total", "NFE, forward + backward", ""),
    ("grad_rel_err", "relative gradient error", ""),
    ("peak_memory_bytes", "peak memory [MiB]", "B"),
)
MIB = 2.0**20


@dataclass(frozen=True)
class HistoryRun:
    """One run of the suite: its records and what its run.json says about when and where."""

    path: str
    frame: Any  # DataFrame
    suite: str
    commit: str | None
    dirty: bool
    started_at: _dt.datetime
    cpu: str | None

    @property
    def commit_label(self) -> str:
        """``a7d57521d9`` (``+dirty`` where the checkout had changes); ``-`` where unknown."""
        return (self.commit[:10] if self.commit else "-") + ("+dirty" if self.dirty else "")


@dataclass(frozen=True)
class Jump:
    """A change beyond the gate's rules between ``before`` and ``after`` (consecutive runs)."""

    before: HistoryRun
    after: HistoryRun
    change: str  # worse | better
    violation: Any  # odebench.gate.Violation, ``baseline`` the earlier value whichever the change


# ---------------------------------------------------------------- reading


def _suite_name(info: dict[str, Any]) -> str:
    suite = info.get("suite")
    return str((suite.get("name") if isinstance(suite, dict) else suite) or "")


def _started_at(path: str, info: dict[str, Any]) -> _dt.datetime:
    text = info.get("started_at")
    try:
        when = _dt.datetime.fromisoformat(str(text))
    except ValueError:
        raise UsageError(
            f"RUN {path}: run.json: started_at: expected an ISO time, got {text!r}; "
            "history needs each run's results folder with its run.json"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=_dt.UTC)


def read_runs(paths: Sequence[str]) -> list[HistoryRun]:
    """The runs at ``paths``, in order of start time; :class:`UsageError` for anything that is
    not a results folder with its run.json, or runs of different suites."""
    from ._cases import index_cases
    from ._runs import read_run, read_run_info
    from .gate import cpu_model

    runs = []
    for path in map(str, paths):
        frame = read_run(path, f"RUN {path}")
        index_cases(frame, f"RUN {path}")  # a case twice: not one run
        info = read_run_info(path, f"RUN {path}")
        if not info:
            raise UsageError(f"RUN {path}: no run.json next to the records; history orders runs by their run.json")
        git = info.get("git") or {}  # an object or null: read_run_info checks
        runs.append(
            HistoryRun(
                path=path,
                frame=frame,
                suite=_suite_name(info),
                commit=git.get("commit") or None,
                dirty=bool(git.get("dirty")),
                started_at=_started_at(path, info),
                cpu=cpu_model(info),
            )
        )
    suites = {run.suite for run in runs}
    if len(suites) > 1:
        shown = ", ".join(f"{run.path}: {run.suite or '(unnamed)'}" for run in runs)
        raise UsageError(f"RUN...: runs of different suites ({shown}); give runs of one suite")
    return sorted(runs, key=lambda run: run.started_at)


# ---------------------------------------------------------------- jumps


def find_jumps(runs: Sequence[HistoryRun], rules=None) -> list[Jump]:
    """What the gate calls a change between each run and the one before it, both ways."""
    from .gate import gate

    jumps = []
    for before, after in zip(runs, runs[1:], strict=False):
        worse = gate(after.frame, before.frame, rules, run_cpu=after.cpu, baseline_cpu=before.cpu).violations
        better = gate(before.frame, after.frame, rules, run_cpu=before.cpu, baseline_cpu=after.cpu).violations
        jumps += [Jump(before, after, "worse", v) for v in worse]
        # Swapped, a "missing" case is one new in the later run: not a jump.
        jumps += [Jump(before, after, "better", _unswapped(v)) for v in better if v.check != "missing"]
    return jumps


def _unswapped(violation):
    """A violation of the swapped comparison, read in time order (earlier value first)."""
    from dataclasses import replace

    ratio = violation.ratio
    return replace(violation, baseline=violation.now, now=violation.baseline, ratio=1 / ratio if ratio else None)


# ---------------------------------------------------------------- figures


def _trends(runs: Sequence[HistoryRun]) -> dict[tuple, dict[str, Any]]:
    """Per case (in order of first appearance): its label and each metric per run (None where absent)."""
    from ._cases import case_key, case_label, number, value

    cases: dict[tuple, dict[str, Any]] = {}
    for i, run in enumerate(runs):
        for row in run.frame.to_dict("records"):
            key = case_key(row)
            entry = cases.setdefault(key, {"label": case_label(row), **{m: [None] * len(runs) for m, _, _ in METRICS}})
            if value(row, "status") != "ok":
                continue
            for metric, _, _ in METRICS:
                if metric == "nfe_total":
                    forward, backward = number(row, "nfe_forward"), number(row, "nfe_backward")
                    entry[metric][i] = None if forward is None else forward + (backward or 0.0)
                else:
                    entry[metric][i] = number(row, metric)
    return cases


def _panel_of(check: str) -> str | None:
    for prefix, metric in (("time", "time_total_s"), ("nfe", "nfe_total"), ("grad_rel_err", "grad_rel_err")):
        if check.startswith(prefix):
            return metric
    return "peak_memory_bytes" if check.startswith("peak_memory_bytes") else None


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text).strip("_")[:150] or "case"


def write_figures(runs: Sequence[HistoryRun], jumps: Sequence[Jump], folder: Path) -> dict[str, str]:
    """One PNG per case under ``folder/figures``; returns case label -> relative file."""
    from matplotlib.figure import Figure

    from ._cases import case_label

    (folder / FIGURES).mkdir(parents=True, exist_ok=True)
    order = {id(run): i for i, run in enumerate(runs)}
    marked: dict[tuple[str, str], set[int]] = {}
    for jump in jumps:
        metric = _panel_of(jump.violation.check)
        if metric:
            marked.setdefault((case_label(jump.violation.identity), metric), set()).add(order[id(jump.after)])
    ticks = [run.commit_label for run in runs]
    files: dict[str, str] = {}
    for entry in _trends(runs).values():
        label = entry["label"]
        name = _slug(label)
        while f"{FIGURES}/{name}.png" in files.values():
            name += "_"
        figure = Figure(figsize=(10, 6.2), layout="constrained")
        figure.suptitle(label, fontsize=9)
        for ax, (metric, title, unit) in zip(figure.subplots(2, 2).flat, METRICS, strict=True):
            scale = MIB if unit == "B" else 1.0
            ys = [None if v is None else v / scale for v in entry[metric]]
            xs = [i for i, v in enumerate(ys) if v is not None]
            ax.plot(xs, [ys[i] for i in xs], marker="o", markersize=4, linewidth=1.2, color="tab:blue")
            jumped = sorted(i for i in marked.get((label, metric), ()) if ys[i] is not None)
            if jumped:
                ax.plot(jumped, [ys[i] for i in jumped], "o", markersize=9, mfc="none", color="tab:red", label="jump")
                ax.legend(fontsize=7, loc="best")
            if metric in ("grad_rel_err", "time_total_s") and xs and all(y > 0 for y in ys if y is not None):
                ax.set_yscale("log")
            ax.set_title(title, fontsize=9)
            ax.set_xticks(range(len(runs)), ticks, rotation=45, ha="right", fontsize=7)
            ax.set_xlim(-0.5, len(runs) - 0.5)
            ax.grid(True, alpha=0.3)
        file = f"{FIGURES}/{name}.png"
        figure.savefig(folder / file, dpi=80)
        files[label] = file
    return files


# ---------------------------------------------------------------- markdown


def history_markdown(runs: Sequence[HistoryRun], jumps: Sequence[Jump], figures: dict[str, str]) -> str:
    """``history.md``: the runs in order, the jumps, and the figure of each case."""
    from . import _markdown as md

    suite = runs[0].suite or "(unnamed)"
    parts = [f"# odebench history: {suite}"]
    parts.append(
        f"{len(runs)} runs of suite `{suite}`, in order of start time. A jump is what `odebench gate` calls a"
        " change between a run and the one before it (worse), or the same with their roles swapped (better)."
    )
    run_rows = [
        (i, run.commit_label, run.started_at.strftime("%Y-%m-%d %H:%M"), run.cpu or "-", len(run.frame), run.path)
        for i, run in enumerate(runs)
    ]
    parts.append(md.table(("#", "commit", "started", "CPU", "cases", "run"), run_rows))
    parts.append("## Jumps")
    if jumps:
        rows = [
            (
                jump.after.commit_label,
                jump.change,
                jump.violation.case,
                jump.violation.check,
                md.number(jump.violation.baseline, jump.violation.unit),
                md.number(jump.violation.now, jump.violation.unit),
                md.ratio(jump.violation.ratio),
                f"since {jump.before.commit_label}",
            )
            for jump in jumps
        ]
        parts.append(md.table(("commit", "change", "case", "metric", "before", "after", "ratio", "compared"), rows))
    else:
        parts.append("No metric jumped beyond the gate's rules between consecutive runs.")
    notes = [
        f"Time is not compared between {b.commit_label} ({b.cpu}) and {a.commit_label} ({a.cpu}): other CPU models."
        for b, a in zip(runs, runs[1:], strict=False)
        if b.cpu and a.cpu and b.cpu != a.cpu
    ]
    if notes:
        parts.append("\n".join(f"- {note}" for note in notes))
    if figures:
        parts.append("## Cases")
        parts.append("\n".join(f"- [{md.cell(label)}]({file})" for label, file in figures.items()))
    return "\n\n".join(parts) + "\n"


# ---------------------------------------------------------------- output folder


def prepare_output(path: str | Path) -> Path:
    """The output folder, emptied of what an earlier history wrote; :class:`UsageError` where it
    holds anything odebench history did not write."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"-o {folder}: not a folder")
    marker = folder / MARKER
    if folder.exists() and any(folder.iterdir()) and not marker.is_file():
        raise UsageError(f"-o {folder}: folder is not empty and was not written by odebench history; give another")
    try:
        written = json.loads(marker.read_text(encoding="utf-8")) if marker.is_file() else []
        for name in written if isinstance(written, list) else []:
            target = (folder / str(name)).resolve()
            if target.is_file() and folder.resolve() in target.parents:
                target.unlink()
        folder.mkdir(parents=True, exist_ok=True)
        marker.write_text("[]\n", encoding="utf-8")
    except (OSError, ValueError) as exc:
        raise UsageError(f"-o {folder}: cannot write there: {getattr(exc, 'strerror', None) or exc}") from None
    return folder


# ---------------------------------------------------------------- command


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN", help="results folders of one suite (any order)")
    parser.add_argument(
        "-o", "--output", default=DEFAULT_OUTPUT, metavar="DIR", help=f"where to write (default: {DEFAULT_OUTPUT})"
    )
    parser.add_argument("--rules", metavar="RULES.yaml", help="gate rules that decide what is a jump")


def main(args: argparse.Namespace) -> int:
    from .gate import load_rules

    rules = load_rules(args.rules) if args.rules else None
    runs = read_runs(args.runs)
    jumps = find_jumps(runs, rules)
    folder = prepare_output(args.output)
    try:
        figures = write_figures(runs, jumps, folder)
        text = history_markdown(runs, jumps, figures)
        (folder / "history.md").write_text(text, encoding="utf-8")
        written = ["history.md", *figures.values()]
        (folder / MARKER).write_text(json.dumps(written, indent=1) + "\n", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"-o {folder}: cannot write there: {exc.strerror or exc}") from None
    print(history_markdown(runs, jumps, {}))  # the figure links are for the file
    n = len(jumps)
    print(f"odebench history: {len(runs)} runs, {n} jump{'s' * (n != 1)}; {folder / 'history.md'}, "
          f"{len(figures)} figures in {folder / FIGURES}")  # fmt: skip
    return 0
