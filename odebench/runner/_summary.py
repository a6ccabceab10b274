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

    from ..report._data import prepare

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


def print_summary(result, suite, file=None) -> None:
    file = file or sys.stdout
    print(f"\n{suite.name}: {len(result.records)} cases in {result.path}", file=file)
    print(summary_text(result.frame()), file=file)
    for failure in result.expectation_failures:
        print(f"EXPECTATION FAILED {failure}", file=file)
    if suite.expect and not result.expectation_failures and not result.interrupted:
        print(f"all {len(suite.expect)} expectations met", file=file)
