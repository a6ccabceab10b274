"""The table ``odebench run`` prints at the end: per problem, each method and tolerance."""

from __future__ import annotations

import math
import sys

MAX_ROWS = 400  # beyond this the report is the better reader


def _fmt(value, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    try:
        import pandas as pd

        if pd.isna(value):
            return "-"
    except (TypeError, ValueError):
        pass
    if kind == "err":
        return f"{float(value):.2e}"
    if kind == "ms":
        return f"{float(value) * 1e3:.3g}"
    if kind == "mb":
        return f"{float(value) / 2**20:.3g}"
    return str(int(value))


def summary_text(frame) -> str:
    """Per problem instance: method x tolerance with status, error, time, NFE and memory."""
    import pandas as pd

    from ..report import prepare

    if frame.empty:
        return "no cases ran"
    prepared = prepare(frame).frame
    blocks = []
    status_counts = prepared["status"].value_counts().to_dict()
    blocks.append("cases: " + ", ".join(f"{n} {s}" for s, n in sorted(status_counts.items())))
    rows_left = MAX_ROWS
    for problem, group in prepared.groupby("problem_label", sort=False):
        rows = []
        for _, r in group.sort_values(["method_label", "rtol"], ascending=[True, False]).iterrows():
            nfe = "-"
            if not pd.isna(r["nfe_forward"]):
                nfe = f"{int(r['nfe_forward'])}+{0 if pd.isna(r['nfe_backward']) else int(r['nfe_backward'])}"
            rows.append({
                "method": r["method_label"],
                "rtol": f"{r['rtol']:.0e}",
                "status": r["status"],
                "grad err": _fmt(r["grad_rel_err"], "err"),
                "ms": _fmt(r["time_total_s"], "ms"),
                "NFE f+b": nfe,
                "MB": _fmt(r["peak_memory_bytes"], "mb"),
            })  # fmt: skip
        rows = rows[: max(rows_left, 0)]
        rows_left -= len(rows)
        if rows:
            blocks.append(f"\n{problem}\n" + pd.DataFrame(rows).to_string(index=False))
    if rows_left < 0:
        blocks.append("\n... more cases: see `odebench report`")
    return "\n".join(blocks)


def time_breakdown(frame, phases: dict[str, float], jobs: int = 1) -> str:
    """Where a run's time went: this invocation's phases, then the cases' time by stage,
    summed over the cases (and so over ``jobs`` workers), largest first."""
    from .._records import STAGE_COLUMNS

    lines = []
    if phases:
        wall = " + ".join(f"{name} {seconds:.1f} s" for name, seconds in phases.items())
        lines.append(f"wall time: {wall} (--jobs {jobs})")
    total = float(frame["case_wall_s"].sum(skipna=True)) if "case_wall_s" in frame else 0.0
    if total <= 0:
        return "\n".join(lines)
    columns = [column for column, _ in STAGE_COLUMNS]
    parts = {name: float(frame[column].sum(skipna=True)) for column, name in STAGE_COLUMNS}
    # A case killed from outside (timeout, crash) reports no stages: its time is its own part.
    killed = frame[columns].isna().all(axis=1) & (frame["status"] != "unavailable")
    parts["cases killed before reporting (timeouts, crashes)"] = float(frame.loc[killed, "case_wall_s"].sum())
    parts["start-up and set-up"] = max(0.0, total - sum(parts.values()))
    if "cases" in phases:
        parts["between cases (fork, dispatch, writing)"] = max(0.0, phases["cases"] * jobs - total)
        total = max(total, phases["cases"] * jobs)
    shown = ", ".join(f"{name} {s:.1f} s ({100 * s / total:.0f}%)" for name, s in
                      sorted(parts.items(), key=lambda item: -item[1]) if s >= 0.05)  # fmt: skip
    lines.append(f"case time {total:.1f} s: {shown}")
    return "\n".join(lines)


def print_summary(result, suite, file=None) -> None:
    file = file or sys.stdout
    print(f"\n{suite.name}: {len(result.records)} cases in {result.path}", file=file)
    frame = result.frame()
    print(summary_text(frame), file=file)
    if result.records:
        print(time_breakdown(frame, result.phases, result.jobs), file=file)
    for failure in result.expectation_failures:
        print(f"EXPECTATION FAILED {failure}", file=file)
    if suite.expect and not result.expectation_failures and not result.interrupted:
        print(f"all {len(suite.expect)} expectations met", file=file)
