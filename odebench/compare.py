"""``odebench compare BASE NEW``: the two runs side by side, case by case, changed statuses first.

For each case: status, gradient error, NFE forward and backward, time and memory in
both runs and their ratio (NEW / BASE). Reads DataFrames only.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import cast

# (column, header, unit for display)
METRICS: tuple[tuple[str, str, str], ...] = (
    ("grad_rel_err", "grad_rel_err", ""),
    ("nfe_forward", "NFE fwd", ""),
    ("nfe_backward", "NFE bwd", ""),
    ("time_total_s", "time", "s"),
    ("peak_memory_bytes", "memory", "B"),
)
ABSENT = "absent"


def compare_runs(base, new):
    """One row per case of either run: ``case``, ``status_base``, ``status_new``,
    ``status_changed`` and, per metric, ``<metric>_base``, ``<metric>_new``, ``<metric>_ratio``.

    Cases held by one run only have status ``absent`` in the other. Rows with a
    changed status come first, then the order of BASE.
    """
    import pandas as pd

    from ._cases import Row, case_label, change_ratio, match_cases, number, value

    matched = match_cases(base, new, names=("BASE", "NEW"))
    pairs: list[tuple[Row | None, Row | None]] = list(matched.pairs)
    pairs += [(row, None) for row in matched.only_first]
    pairs += [(None, row) for row in matched.only_second]
    rows = []
    for b, n in pairs:
        row = {
            "case": case_label(cast(Row, b if b is not None else n)),  # a pair has at least one side
            "status_base": value(b, "status") if b is not None else ABSENT,
            "status_new": value(n, "status") if n is not None else ABSENT,
        }
        row["status_changed"] = row["status_base"] != row["status_new"]
        for column, _, _ in METRICS:
            vb, vn = number(b or {}, column), number(n or {}, column)  # None where a run lacks the case
            row[f"{column}_base"], row[f"{column}_new"] = vb, vn
            row[f"{column}_ratio"] = change_ratio(vn, vb) if vb is not None and vn is not None else None
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    return table.sort_values("status_changed", ascending=False, kind="stable").reset_index(drop=True)


def _metric_cell(base: float | None, new: float | None, ratio: float | None, unit: str) -> str:
    from . import _markdown as md

    if base == new:  # both missing, too
        return md.number(base, unit)
    text = f"{md.number(base, unit)} → {md.number(new, unit)}"
    return f"{text} ({md.ratio(ratio)})" if ratio is not None else text


def comparison_markdown(table, context: Sequence[str] = ()) -> str:
    """The table of :func:`compare_runs` as markdown, with a heading, ``context`` lines and counts."""
    from . import _markdown as md

    parts = ["### odebench compare"]
    if context:
        parts.append("\n".join(f"- {line}" for line in context))
    if table.empty:
        parts.append("No cases in either run.")
        return "\n\n".join(parts) + "\n"
    records = table.to_dict("records")
    changed = sum(r["status_changed"] for r in records)
    only_base = sum(r["status_new"] == ABSENT for r in records)
    only_new = sum(r["status_base"] == ABSENT for r in records)
    parts.append(
        f"{len(records)} cases: {changed} changed status "
        f"({only_base} only in BASE, {only_new} only in NEW). Cells read BASE → NEW (NEW / BASE)."
    )
    rows = []
    for r in records:
        status = r["status_base"] if not r["status_changed"] else f"**{r['status_base']} → {r['status_new']}**"
        cells = [
            _metric_cell(_none(r[f"{c}_base"]), _none(r[f"{c}_new"]), _none(r[f"{c}_ratio"]), unit)
            for c, _, unit in METRICS
        ]
        rows.append([r["case"], status, *cells])
    parts.append(md.table(["case", "status", *(header for _, header, _ in METRICS)], rows))
    return "\n\n".join(parts) + "\n"


def _none(v):
    # pandas turns None into NaN in float columns; the cells want None back.
    return None if v is None or v != v else v


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("base", metavar="BASE", help="results folder or records file of the earlier run")
    parser.add_argument("new", metavar="NEW", help="results folder or records file of the later run")
    parser.add_argument("-o", "--output", metavar="FILE", help="also write the markdown to FILE")


def main(args: argparse.Namespace) -> int:
    from ._runs import read_run

    base, new = read_run(args.base, "BASE"), read_run(args.new, "NEW")
    text = comparison_markdown(compare_runs(base, new), context=[f"BASE: `{args.base}`", f"NEW: `{args.new}`"])
    print(text)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    return 0
