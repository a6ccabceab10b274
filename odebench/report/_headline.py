"""Reproductions of four papers' headline results: a report section each, where the run holds its data.

Each section is found from the cases present (never from the suite's name), computes its table
and its conclusion from the numbers, and draws one figure:

1. forward against reverse mode as the parameter count grows (Ma et al. 2021): the smallest
   ``n_params`` where the fastest reverse method beats the fastest forward one;
2. exact gradients at adjoint-like memory (Matsubara et al. 2021): fixed-step solves, the
   symplectic adjoint's memory, time and agreement with backprop against the step count;
3. seminorms (Kidger, Chen and Lyons 2021): backward NFE with and without, per problem and tolerance;
4. backsolve's instability (Gholami et al. 2019): which methods stay right on the problems where a
   backsolve-type adjoint goes wrong.

The sections work on :class:`~odebench.report._data.Prepared` records, with ``atol`` kept apart
(two tolerance pairs may share an rtol). Like the rest of the report they never import torch or jax.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .._cases import label
from .._markdown import code, escape, ratio as _x
from ..backends import FIXED_STEP, REVERSIBLE
from ._data import MIB, Prepared, figure_file, parse_params
from ._figures import ReportFigure, save_png
from ._findings import TOLERANCE_FACTOR, UNSTABLE_FACTOR
from ._render import Block, Heading, Image, Paragraph, Table
from ._style import SeriesStyle, assign_styles

SECTION = "reproductions"

FORWARD_METHODS = ("odebench.forward", "diffrax.forward")
"""Forward-mode methods of the crossover section: their cost grows with the number of inputs."""
REVERSE_METHODS = ("odebench.backprop", "odebench.backsolve", "odebench.checkpoint", "diffrax.recursive_checkpoint")
"""Reverse-mode methods of the crossover section: their cost grows with the number of outputs (one)."""
CONTENDER_SPREAD = 10.0
"""A method contends for "fastest" on a problem only with a gradient error within this factor of the
most accurate forward or reverse method there: a fast wrong gradient wins nothing."""

BACKPROP = "odebench.backprop"
SYMPLECTIC = "odebench.symplectic"
EXACT_AGREEMENT = 1e-12
"""The symplectic adjoint is the exact gradient of the discrete solve: it must agree with backprop
through the same steps to this relative difference (round-off over a few hundred steps)."""

SEMINORM_MIN_SAVING = 5.0
"""A seminorm "saves" backward NFE when it removes at least this percentage of them."""

FIXED = FIXED_STEP + REVERSIBLE
"""Fixed-step solvers: their cases are set by ``n_steps``, not by the tolerance."""

_METRICS = (
    "grad_rel_err",
    "consistency_err",
    "time_total_s",
    "peak_memory_bytes",
    "nfe_forward",
    "nfe_backward",
    "n_params",
    "n_state",
)
_KEYS = ("problem", "problem_label", "series", "method", "method_params", "solver", "family", "dtype", "rtol", "atol")


@dataclass(frozen=True)
class Reproduction:
    """One section: what the paper found, what this run found (``conclusion``), a table and a figure.

    ``facts`` holds the computed numbers the conclusion states, for tests and callers;
    ``plot`` what the figure draws (drawn by :func:`draw_reproductions`).
    """

    key: str
    title: str
    claim: str
    conclusion: str
    table: pd.DataFrame
    note: str = ""
    facts: dict[str, Any] = field(default_factory=dict)
    plot: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def anchor(self) -> str:
        return f"reproduction-{self.key}"

    @property
    def figure_file(self) -> str:
        return figure_file(f"headline_{self.key}")


# --- the records, one row per case ---------------------------------------------------------------


def cases(prepared: Prepared) -> pd.DataFrame:
    """One row per case (seeds and repeated runs: median of the ok ones), ``atol`` kept apart.

    A fixed-step solver ignores the tolerance, so its cases at several tolerances are repeats
    of one case: they are pooled the same way, with ``rtol`` and ``atol`` left NaN. ``status``
    is ``ok`` where any repetition succeeded, else the first status met; ``params`` and
    ``mparams`` are the problem and method parameters as dicts; ``n_steps`` the fixed step count
    (NaN for adaptive solvers).
    """
    frame = prepared.frame.copy()
    frame.loc[frame["solver"].isin(FIXED), ["rtol", "atol"]] = math.nan
    metrics, keys = list(_METRICS), list(_KEYS)
    frame[metrics] = frame[metrics].apply(pd.to_numeric, errors="coerce").astype("float64")
    frame["ok"] = frame["status"] == "ok"
    grouped = frame.groupby(keys, sort=True, dropna=False)
    ok = frame[frame["ok"]].groupby(keys, sort=True, dropna=False)[metrics].median()
    out = grouped[["status", "error", "consistency_method"]].first().join(ok, how="left")
    out["status"] = np.where(grouped["ok"].any(), "ok", out["status"])
    # A case that never succeeded still has its sizes.
    sizes = grouped[["n_params", "n_state"]].max()
    out[sizes.columns] = out[sizes.columns].fillna(sizes)
    out = out.reset_index()
    by_label = dict(zip(frame["problem_label"], frame["problem_params"]))
    out["params"] = [parse_params(by_label[p], "problem_params") for p in out["problem_label"]]
    out["mparams"] = [parse_params(text, "method_params") for text in out["method_params"]]
    out["n_steps"] = [
        float(p.get("n_steps", 100)) if s in FIXED else math.nan for p, s in zip(out["mparams"], out["solver"])
    ]
    return out


def _ok(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[rows["status"] == "ok"]


def _setting(rows: pd.DataFrame) -> tuple[float, float] | None:
    """The (rtol, atol) with the most successful cases; ties go to the tighter tolerance."""
    ok = _ok(rows)
    if ok.empty:
        return None
    counts = ok.groupby(["rtol", "atol"], dropna=False).size().reset_index(name="n")
    counts = counts.sort_values(["n", "rtol", "atol"], ascending=[False, True, True])
    first = counts.iloc[0]
    return float(first["rtol"]), float(first["atol"])


def _at(rows: pd.DataFrame, setting: tuple[float, float]) -> pd.DataFrame:
    rtol, atol = setting
    return rows[np.isclose(rows["rtol"], rtol, rtol=1e-9, atol=0) & np.isclose(rows["atol"], atol, rtol=1e-9, atol=0)]


def _tol(setting: tuple[float, float]) -> str:
    rtol, atol = setting
    return f"rtol=atol={rtol:g}" if rtol == atol else f"rtol={rtol:g}, atol={atol:g}"


def _order(name: str, params: dict) -> tuple:
    """Instances of a problem in the order of their numeric parameters (width 64 before 256)."""
    numbers = tuple(sorted((k, float(v)) for k, v in params.items() if isinstance(v, (int, float))))
    return name, numbers, repr(sorted(params.items(), key=lambda kv: kv[0]))


def _ms(seconds: float) -> str:
    if seconds != seconds:
        return "—"
    if seconds >= 1:
        return f"{seconds:.3g} s"
    return f"{seconds * 1e3:.3g} ms"


def _mib(value: float) -> str:
    return "—" if value != value else f"{value / MIB:.3g} MiB"


def _ratio(a: float, b: float) -> float:
    if a != a or b != b:
        return math.nan
    if b == 0:
        return math.inf if a > 0 else math.nan
    return a / b


def _sci(value: float) -> str:
    return "—" if value != value else f"{value:.1e}"


def _listed(items: Sequence[str], limit: int = 4) -> str:
    items = list(items)
    if len(items) > limit:
        items = [*items[:limit], f"{len(items) - limit} more"]
    if len(items) <= 2:
        return " and ".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _status_note(rows: pd.DataFrame) -> str:
    """What became of cases without a number: ``failed``, ``not run``."""
    statuses = sorted(set(rows["status"]) - {"ok"})
    return ", ".join(statuses) if statuses else "not run"


# --- 1. forward against reverse mode (Ma et al. 2021) -------------------------------------------


def forward_vs_reverse(table: pd.DataFrame) -> Reproduction | None:
    """The crossover section, or None without forward and reverse times on two problems."""
    adaptive = table[~table["solver"].isin(FIXED)]
    rows = adaptive[adaptive["method"].isin(FORWARD_METHODS + REVERSE_METHODS)]
    setting = _setting(rows[rows["method"].isin(FORWARD_METHODS)])
    if setting is None:
        return None
    rows = _at(rows, setting)
    ok = _ok(rows).dropna(subset=["time_total_s", "n_params"])
    ok = ok[ok["time_total_s"] > 0]
    per_problem, plotted = [], []
    for problem, sub in rows.groupby("problem_label", sort=False):
        good = ok[ok["problem_label"] == problem]
        if good.empty:
            continue
        errors = good["grad_rel_err"]
        contenders = good[~(errors > CONTENDER_SPREAD * errors.min())]  # with no error known, every one contends
        plotted.append(contenders)
        entry = {"problem": problem, "n_params": float(sub["n_params"].max())}
        for kind, names in (("forward", FORWARD_METHODS), ("reverse", REVERSE_METHODS)):
            mine = contenders[contenders["method"].isin(names)]
            entry[kind] = mine.loc[mine["time_total_s"].idxmin()] if not mine.empty else None
            if good["method"].isin(names).any():
                entry[f"{kind}_note"] = f"error above {CONTENDER_SPREAD:g}x the best"
            else:
                entry[f"{kind}_note"] = _status_note(sub[sub["method"].isin(names)])
        per_problem.append(entry)
    per_problem.sort(key=lambda p: (p["n_params"], p["problem"]))
    both = [p for p in per_problem if p["forward"] is not None and p["reverse"] is not None]
    if len(both) < 2:
        return None

    cells = {}
    for p in per_problem:
        cell, times = {"n_params": f"{p['n_params']:.0f}"}, {}
        for kind in ("forward", "reverse"):
            best = p[kind]
            times[kind] = best["time_total_s"] if best is not None else math.nan
            cell[f"fastest {kind}"] = best["series"] if best is not None else p[f"{kind}_note"]
            cell[f"{kind} time"] = _ms(times[kind])
        ratio = _ratio(times["reverse"], times["forward"])
        cell["reverse / forward"] = _x(ratio)
        cell["faster"] = ("reverse" if ratio < 1 else "forward") if ratio == ratio else "—"
        cells[p["problem"]] = cell
    cells_frame = pd.DataFrame.from_dict(cells, orient="index")

    wins = [p["reverse"]["time_total_s"] < p["forward"]["time_total_s"] for p in both]
    ratios = [p["reverse"]["time_total_s"] / p["forward"]["time_total_s"] for p in both]
    facts: dict[str, Any] = {"setting": setting, "compared": [p["n_params"] for p in both]}

    def pair(p: dict) -> str:
        return (
            f"{code(p['reverse']['series'])} {_ms(p['reverse']['time_total_s'])} against "
            f"{code(p['forward']['series'])} {_ms(p['forward']['time_total_s'])}"
        )

    if not any(wins):
        last = both[-1]
        facts["crossover"] = None
        conclusion = (
            f"No crossover in the range measured: forward mode is the faster on every problem where both ran, "
            f"up to n_params = {last['n_params']:.0f} ({code(last['problem'])}: {pair(last)})."
        )
    elif wins[0]:
        first = both[0]
        facts.update(_crossover_facts(first), below_range=True)
        conclusion = (
            f"Reverse mode is already the faster on the smallest problem, n_params = {first['n_params']:.0f} "
            f"({code(first['problem'])}: {pair(first)}): the crossover lies below the range measured."
        )
    else:
        i = wins.index(True)
        before, at = both[i - 1], both[i]
        facts.update(_crossover_facts(at), below_range=False)
        conclusion = (
            f"Crossover at n_params = {at['n_params']:.0f} ({code(at['problem'])}): the fastest reverse method beats "
            f"the fastest forward one, {pair(at)}; forward mode is the faster up to n_params = "
            f"{before['n_params']:.0f} ({code(before['problem'])}: {pair(before)})."
        )
        again = [p for p, w in zip(both[i + 1 :], wins[i + 1 :]) if not w]
        if again:
            facts["forward_again"] = [p["n_params"] for p in again]
            again_at = _listed([f"{p['n_params']:.0f}" for p in again])
            conclusion += f" Forward mode is the faster again at n_params = {again_at}."
    largest = per_problem[-1]
    if largest["forward"] is None and largest["reverse"] is not None:
        conclusion += (
            f" Above n_params = {both[-1]['n_params']:.0f} only reverse mode has a time (forward: "
            f"{escape(largest['forward_note'])}); at n_params = {largest['n_params']:.0f} it takes "
            f"{_ms(largest['reverse']['time_total_s'])}."
        )

    return Reproduction(
        key="forward_vs_reverse",
        title="Forward against reverse mode as the parameters grow (Ma et al. 2021)",
        claim=(
            "Ma et al. found forward sensitivities the faster for small systems (up to about a hundred parameters) "
            "and reverse mode (adjoints, backprop) the faster beyond."
        ),
        conclusion=conclusion,
        table=cells_frame,
        note=(
            f"At {_tol(setting)}. Per problem, the fastest of {', '.join(code(m) for m in FORWARD_METHODS)} "
            f"against the fastest of {', '.join(code(m) for m in REVERSE_METHODS)}, among the methods whose "
            f"gradient error is within {CONTENDER_SPREAD:g}x of the most accurate one there."
        ),
        facts=facts,
        plot={
            "points": pd.concat(plotted),
            "crossover": facts.get("crossover"),
            "ratios": pd.DataFrame({"n_params": facts["compared"], "ratio": ratios}),
        },
    )


def _crossover_facts(at: dict) -> dict[str, Any]:
    return {
        "crossover": at["n_params"],
        "forward_time": float(at["forward"]["time_total_s"]),
        "reverse_time": float(at["reverse"]["time_total_s"]),
        "forward_method": at["forward"]["series"],
        "reverse_method": at["reverse"]["series"],
    }


# --- 2. the symplectic adjoint (Matsubara et al. 2021) ---------------------------------------------


def symplectic_adjoint(table: pd.DataFrame) -> Reproduction | None:
    """Memory, time and agreement with backprop against the step count, or None without fixed-step
    backprop and symplectic cases of the same problem and solver."""
    fixed = table[table["n_steps"].notna()].copy()
    if fixed.empty:
        return None
    fixed["line"] = [
        label(m, {k: v for k, v in p.items() if k != "n_steps"}) for m, p in zip(fixed["method"], fixed["mparams"])
    ]
    ok = _ok(fixed)
    pairs = ok[ok["method"].isin((BACKPROP, SYMPLECTIC))]
    keyed = pairs.groupby(["problem_label", "solver", "n_steps"])["method"].nunique()
    keyed = keyed[keyed == 2]
    if keyed.empty:
        return None
    # The problem with the most step counts of both; ties go to the largest (memory shows best there).
    candidates = keyed.reset_index().groupby(["problem_label", "solver"]).size().reset_index(name="n")
    candidates["n_params"] = candidates["problem_label"].map(fixed.groupby("problem_label")["n_params"].max())
    candidates = candidates.sort_values(["n", "n_params", "problem_label"], ascending=[False, False, True])
    problem, solver = candidates.iloc[0]["problem_label"], candidates.iloc[0]["solver"]
    rows = fixed[fixed["problem_label"] == problem]
    # Backprop's own solver sets the comparison; other fixed-step methods with their own solver
    # (reversible Heun) join it as they are.
    rows = rows[(rows["solver"] == solver) | ~rows["method"].isin((BACKPROP, SYMPLECTIC))]
    steps = sorted(set(keyed.loc[problem].loc[solver].index))
    top = steps[-1]
    at_top = rows[rows["n_steps"] == top]
    base = _ok(at_top[(at_top["method"] == BACKPROP) & (at_top["solver"] == solver)]).iloc[0]

    cells = {}
    facts: dict[str, Any] = {"problem": problem, "solver": solver, "n_steps": top}
    for _, row in at_top.sort_values(["method", "line"]).iterrows():
        # A case that never succeeded has no numbers (NaN): its status stands in their place.
        failed = None if row["status"] == "ok" else row["status"]
        is_base = row["method"] == BACKPROP and row["solver"] == solver
        agreement = math.nan if is_base else row["consistency_err"]
        memory_ratio = _ratio(row["peak_memory_bytes"], base["peak_memory_bytes"])
        time_ratio = _ratio(row["time_total_s"], base["time_total_s"])
        cells[row["line"]] = {
            "peak memory": failed or _mib(row["peak_memory_bytes"]),
            "memory / backprop": _x(memory_ratio),
            "time": failed or _ms(row["time_total_s"]),
            "time / backprop": _x(time_ratio),
            "difference from backprop": "—" if is_base else failed or _sci(agreement),
            "error vs reference": failed or _sci(row["grad_rel_err"]),
        }
        if row["method"] == SYMPLECTIC and row["solver"] == solver:
            facts.update(memory_ratio=memory_ratio, time_ratio=time_ratio, agreement=agreement)
    cells_frame = pd.DataFrame.from_dict(cells, orient="index")

    agreement = facts["agreement"]
    verdict = "unknown against" if agreement != agreement else "within" if agreement <= EXACT_AGREEMENT else "outside"
    conclusion = (
        f"At {top:.0f} {solver} steps on {code(problem)} the symplectic adjoint's gradient differs from backprop's "
        f"by {_sci(agreement)} (relative; {verdict} the {EXACT_AGREEMENT:g} of an exact gradient), with "
        f"{_x(facts['memory_ratio'])} its peak memory and {_x(facts['time_ratio'])} its time."
    )
    lines = _ok(rows)
    growth = []
    for method in (BACKPROP, SYMPLECTIC):
        mine = lines[(lines["method"] == method) & (lines["solver"] == solver)].sort_values("n_steps")
        if len(mine) >= 2:
            low, high = mine.iloc[0], mine.iloc[-1]
            growth.append(
                f"{code(method)}'s by {_x(_ratio(high['peak_memory_bytes'], low['peak_memory_bytes']))}"
                if low["peak_memory_bytes"] > 0
                else f"{code(method)}'s from {_mib(low['peak_memory_bytes'])} to {_mib(high['peak_memory_bytes'])}"
            )
    if len(growth) == 2:
        conclusion += f" From {steps[0]:.0f} to {top:.0f} steps peak memory grows: {growth[0]}, {growth[1]}."
    return Reproduction(
        key="symplectic",
        title="Exact gradients at adjoint-like memory: the symplectic adjoint (Matsubara et al. 2021)",
        claim=(
            "Matsubara, Miyatake and Yaguchi showed that the symplectic adjoint gives the exact gradient of the "
            "Runge-Kutta solve, as backprop does, in memory that grows only with the number of steps (one state "
            "per step), not with steps x stages x the network's activations."
        ),
        conclusion=conclusion,
        table=cells_frame,
        note=(
            f"Fixed-step solves of {code(problem)}; the table at {top:.0f} steps, against "
            f"{code(BACKPROP)} with {solver}. The difference from backprop is the relative difference to discrete "
            "backprop of the method's own solver and steps (`consistency_err`); peak memory is the resident set "
            "of the case's own process, so values of a few KiB are noise."
        ),
        facts=facts,
        plot={"rows": lines},
    )


# --- 3. seminorms (Kidger, Chen and Lyons 2021) ----------------------------------------------------


def seminorms(table: pd.DataFrame) -> Reproduction | None:
    """Backward NFE with and without seminorm, or None without such a pair of successful cases."""
    # Adaptive solves only: without error control a seminorm changes nothing.
    adaptive = table[table["n_steps"].isna()]
    rows = adaptive[[isinstance(p.get("seminorm"), bool) for p in adaptive["mparams"]]].copy()
    if rows.empty:
        return None
    rows["seminorm"] = [p["seminorm"] for p in rows["mparams"]]
    # The method without its seminorm flag, and without parameters every such method shares (the solver).
    first, *others = rows["mparams"]
    shared = {k for k, v in first.items() if all(k in p and repr(p[k]) == repr(v) for p in others)}
    rows["base"] = [
        label(m, {k: v for k, v in p.items() if k != "seminorm" and k not in shared})
        for m, p in zip(rows["method"], rows["mparams"])
    ]
    # The best error of any method per problem and tolerance: a broken adjoint's NFE means nothing.
    best = _ok(table).groupby(["problem_label", "rtol", "atol", "dtype"])["grad_rel_err"].min()
    pairs = []
    unstable = unknown = 0
    for (problem, method, rtol, atol, dtype), sub in rows.groupby(
        ["problem_label", "base", "rtol", "atol", "dtype"], sort=True
    ):
        off, on = _ok(sub[~sub["seminorm"]]), _ok(sub[sub["seminorm"]])
        if off.empty or on.empty:
            continue
        off, on = off.iloc[0], on.iloc[0]
        floor = best.get((problem, rtol, atol, dtype), math.nan)
        limit = UNSTABLE_FACTOR * max(floor, rtol) if floor == floor else math.inf
        errors = (off["grad_rel_err"], on["grad_rel_err"])
        if not all(e == e for e in errors):
            unknown += 1  # a saving on a gradient of unknown accuracy proves nothing
            continue
        if max(errors) > limit:
            unstable += 1
            continue
        without, with_ = float(off["nfe_backward"]), float(on["nfe_backward"])
        saving = 100.0 * (1.0 - with_ / without) if without > 0 else math.nan
        pairs.append(
            {
                "problem": problem,
                "name": off["problem"],
                "params": off["params"],
                "method": method,
                "rtol": rtol,
                "atol": atol,
                "without": without,
                "with": with_,
                "saving": saving,
            }
        )
    if not pairs:
        return None
    pairs.sort(key=lambda p: (_order(p["name"], p["params"]), p["rtol"], p["atol"], p["method"]))
    found = pd.DataFrame(pairs)
    found["short"] = _short_labels(found, table)
    found["tolerance"] = [_tol((r, a)) for r, a in zip(found["rtol"], found["atol"])]
    cells: dict[tuple[str, str], dict[str, str]] = {}
    for _, pair in found.iterrows():
        row = cells.setdefault((pair["problem"], pair["tolerance"]), {"tolerance": pair["tolerance"]})
        row[f"{pair['method']}: backward NFE without → with"] = (
            f"{pair['without']:.0f} → {pair['with']:.0f} ({_percent(pair['saving'])})"
        )
    table_cells = pd.DataFrame(list(cells.values()), index=[problem for problem, _ in cells]).fillna("—")

    saves = found["saving"] >= SEMINORM_MIN_SAVING
    loose = found["atol"] >= found["rtol"]
    facts: dict[str, Any] = {"pairs": found, "saves": int(saves.sum())}

    def where(sub: pd.DataFrame) -> list[str]:
        return list(dict.fromkeys(f"{code(p)} at {t}" for p, t in zip(sub["problem"], sub["tolerance"])))

    if not saves.any():
        conclusion = (
            f"No saving of {SEMINORM_MIN_SAVING:g}% or more anywhere: the largest is "
            f"{_percent(found['saving'].max())} ({len(found)} comparisons)."
        )
    else:
        hit = found[saves]
        low, high = _percent(hit["saving"].min()), _percent(hit["saving"].max())
        amount = low if low == high else f"{low[:-1]}–{high}"
        conclusion = f"The seminorm saves {amount} of the backward NFE on {_listed(where(hit))}."
        miss = found[~saves]
        if not miss.empty:
            reasons = []
            if loose.any() and not (saves & loose).any():
                reasons.append("wherever atol ≥ rtol")
            saves_there = saves.groupby(found["problem"], sort=False).any()
            problems_never = list(saves_there.index[~saves_there])
            if problems_never:
                reasons.append(f"on {_listed([code(p) for p in problems_never], limit=8)} at every tolerance")
            facts["vanishes"] = reasons
            where_not = " and ".join(reasons) if reasons else f"on {_listed(where(miss))}"
            conclusion += f" It vanishes (under {SEMINORM_MIN_SAVING:g}%) {where_not}."
    costs = found[found["saving"] <= -SEMINORM_MIN_SAVING]
    if not costs.empty:
        facts["costs"] = costs
        worst = costs.loc[costs["saving"].idxmin()]
        conclusion += (
            f" It adds backward NFE in {len(costs)} case(s), at worst {_percent(-worst['saving'])} more "
            f"({code(worst['method'])} on {code(worst['problem'])} at {worst['tolerance']})."
        )
    note = (
        "Backward NFE of the same method and tolerance without and with `seminorm: true` "
        f"(the parameter channels left out of the backward error norm); a saving counts from {SEMINORM_MIN_SAVING:g}%."
    )
    if unknown:
        note += f" {unknown} pair(s) left out: no gradient error to tell whether the adjoint is right."
    if unstable:
        note += (
            f" {unstable} pair(s) left out: gradient error above {UNSTABLE_FACTOR:g}x the best method's there "
            "(an unstable backward solve's NFE says nothing about seminorms)."
        )
    return Reproduction(
        key="seminorm",
        title="Seminorms (Kidger, Chen and Lyons 2021)",
        claim=(
            "Kidger, Chen and Lyons showed that the adjoint's parameter channels need not take part in the "
            "backward solve's error control, and that leaving them out saves backward steps on neural ODEs "
            "(a median of 40% of the function evaluations in their experiments)."
        ),
        conclusion=conclusion,
        table=table_cells,
        note=note,
        facts=facts,
        plot={"pairs": found},
    )


def _percent(value: float) -> str:
    return "—" if value != value else f"{value:.1f}%"


def _short_labels(found: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    """Problem labels with only the parameters that tell the run's instances of a problem apart."""
    varying: dict[str, set[str]] = {}
    for name, sub in table.groupby("problem"):
        keys = {k for params in sub["params"] for k in params}
        varying[name] = {k for k in keys if len({repr(p.get(k)) for p in sub["params"]}) > 1}
    return [
        label(name, {k: v for k, v in params.items() if k in varying[name]})
        for name, params in zip(found["name"], found["params"])
    ]


# --- 4. backsolve's instability (Gholami et al. 2019) ---------------------------------------------


def _pick_series(rows: pd.DataFrame) -> pd.DataFrame:
    """Per method, its adaptive series; a method with only fixed-step ones keeps its largest step count."""
    keep = [
        sub[sub["n_steps"].isna()] if sub["n_steps"].isna().any() else sub[sub["n_steps"] == sub["n_steps"].max()]
        for _, sub in rows.groupby("method", sort=True)
    ]
    return pd.concat(keep) if keep else rows.iloc[:0]


def stability(table: pd.DataFrame) -> Reproduction | None:
    """Which methods stay right on the problems where a backsolve-type method goes wrong, or None."""
    ok = _ok(table)
    stable = ok[ok["family"].isin(("discrete", "stored"))]
    floors = stable.groupby(["problem_label", "rtol", "atol", "dtype"])["grad_rel_err"].min()
    broken = set()
    # Adaptive cases only: a coarse fixed step makes any continuous adjoint inexact, stable or not.
    for _, row in table[(table["family"] == "backsolve") & table["n_steps"].isna()].iterrows():
        floor = floors.get((row["problem_label"], row["rtol"], row["atol"], row["dtype"]), math.nan)
        if floor != floor:
            continue  # nothing stable to compare with
        if row["status"] != "ok" or row["grad_rel_err"] > UNSTABLE_FACTOR * max(floor, row["rtol"]):
            broken.add(row["problem"])
    if not broken:
        return None
    rows = table[table["problem"].isin(broken)]
    adaptive = rows[rows["n_steps"].isna()]
    setting = _setting(adaptive)
    if setting is None:
        return None
    rtol = setting[0]
    # Fixed-step cases have no tolerance (their copies are pooled): they join as they are.
    rows = _pick_series(pd.concat([_at(adaptive, setting), rows[rows["n_steps"].notna()]]))
    params = dict(zip(rows["problem_label"], zip(rows["problem"], rows["params"])))
    instances = sorted(params, key=lambda p: _order(*params[p]))
    limit = TOLERANCE_FACTOR * rtol
    cells, verdicts = {}, {}
    for series, sub in rows.groupby("series", sort=True):
        line, right = {}, {}
        for instance in instances:
            case = sub[sub["problem_label"] == instance]
            if case.empty:
                line[instance] = "—"
                continue
            case = case.iloc[0]
            ok_case = case["status"] == "ok"
            right[instance] = ok_case and bool(case["grad_rel_err"] <= limit)
            shown = f"{case['grad_rel_err']:.1e}" if ok_case else case["status"]
            line[instance] = f"{shown} {'✓' if right[instance] else '✗'}"
        line["right on"] = f"{sum(right.values())}/{len(right)}"
        cells[series] = line
        verdicts[series] = right
    cells_frame = pd.DataFrame.from_dict(cells, orient="index")

    always = [s for s, r in verdicts.items() if r and all(r.values())]
    wrong = {s: [i for i, good in r.items() if not good] for s, r in verdicts.items() if r and not all(r.values())}
    family = dict(zip(rows["series"], rows["family"]))

    def worst(series: str) -> str:
        sub = rows[(rows["series"] == series) & rows["problem_label"].isin(wrong[series])]
        errors = _ok(sub)["grad_rel_err"]
        statuses = sorted(set(sub["status"]) - {"ok"})
        parts = [f"error up to {errors.max():.1e}"] if not errors.empty else []
        return ", ".join(parts + statuses)

    every = f"all {len(instances)} problem instances" if len(instances) > 1 else "the one problem instance"
    conclusion = (
        f"Right (gradient error ≤ {TOLERANCE_FACTOR:g} x rtol = {limit:g}) on {every}: "
        f"{_listed([code(s) for s in always], limit=20) or 'none'}."
    )
    if wrong:
        groups = []
        for what, backsolve in (("backsolve-type", True), ("other", False)):
            mine = [s for s in wrong if (family[s] == "backsolve") == backsolve]
            if mine:
                groups.append(
                    f"{what}: "
                    + "; ".join(f"{code(s)} on {_listed([code(i) for i in wrong[s]])} ({worst(s)})" for s in mine)
                )
        conclusion += " Wrong somewhere, " + "; ".join(groups) + "."
    facts = {"setting": setting, "instances": instances, "always_right": always, "wrong": wrong}
    return Reproduction(
        key="stability",
        title="Backsolve's instability (Gholami et al. 2019)",
        claim=(
            "Gholami, Keutzer and Biros showed that the continuous adjoint that solves the state backwards "
            "(backsolve) can be unstable, so its gradient can be wrong by orders of magnitude, where methods that "
            "read the stored forward trajectory stay accurate."
        ),
        conclusion=conclusion,
        table=cells_frame,
        note=(
            f"Every problem on which a backsolve-type method's error exceeds {UNSTABLE_FACTOR:g}x the best stored or "
            f"discrete method's (or it did not finish), with all its instances; at {_tol(setting)}. Fixed-step methods "
            f"appear at their largest step count. ✓: error ≤ {TOLERANCE_FACTOR:g} x rtol."
        ),
        facts=facts,
        plot={"rows": rows, "instances": instances, "limit": limit, "rtol": rtol},
    )


# --- all of them -----------------------------------------------------------------------------------


def find_reproductions(prepared: Prepared) -> list[Reproduction]:
    """The sections the run holds the data for, in order."""
    if prepared.frame.empty:
        return []
    table = cases(prepared)
    found = (forward_vs_reverse(table), symplectic_adjoint(table), seminorms(table), stability(table))
    return [r for r in found if r is not None]


# --- figures ---------------------------------------------------------------------------------------


def _styles_for(styles: dict[str, SeriesStyle], rows: pd.DataFrame) -> dict[str, SeriesStyle]:
    """The report's style of each series in ``rows``; series it does not know get their own."""
    pairs = sorted(set(zip(rows["series"], rows["family"])))
    if all(name in styles for name, _ in pairs):
        return styles
    return {**assign_styles(pairs), **{n: styles[n] for n, _ in pairs if n in styles}}


def _finish_axes(ax, xlabel: str, ylabel: str, log_x: bool = True) -> None:
    if log_x:
        ax.set_xscale("log")
    ax.set_yscale("log")
    ax.minorticks_off()
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(True, linewidth=0.4, alpha=0.5)


def _legend(fig: Figure, handles: list, labels: list[str]) -> None:
    fig.legend(handles, labels, loc="outside right upper", fontsize=8, frameon=False, ncols=1 + len(labels) // 18)


def _draw_forward_vs_reverse(fig: Figure, found: Reproduction, styles: dict[str, SeriesStyle]) -> bool:
    points: pd.DataFrame = found.plot["points"]
    styles = _styles_for(styles, points)
    ax, ratio_ax = fig.subplots(1, 2, width_ratios=(3, 2))
    labels, handles = [], []
    for series, line in points.groupby("series", sort=True):
        line = line.sort_values("n_params")
        kwargs = styles[series].kwargs()
        if line["method"].iloc[0] in FORWARD_METHODS:
            kwargs["linestyle"] = ":"
        ax.plot(line["n_params"], line["time_total_s"], **kwargs, markersize=5, linewidth=1.2, alpha=0.9)
        handles.append(Line2D([], [], **kwargs, markersize=5))
        labels.append(series)
    ratios = found.plot["ratios"]
    ratio_ax.plot(ratios["n_params"], ratios["ratio"], color="0.2", marker="o", markersize=5, linewidth=1.2)
    ratio_ax.axhline(1.0, color="0.5", linewidth=0.9)
    ratio_ax.text(0.02, 0.98, "forward faster", transform=ratio_ax.transAxes, fontsize=7, va="top", color="0.3")
    ratio_ax.text(0.02, 0.02, "reverse faster", transform=ratio_ax.transAxes, fontsize=7, va="bottom", color="0.3")
    low, high = float(ratios["ratio"].min()), float(ratios["ratio"].max())
    ratio_ax.set_ylim(min(low, 0.5) / 2, max(high, 2.0) * 2)
    crossover = found.plot["crossover"]
    if crossover is not None:
        for axes in (ax, ratio_ax):
            axes.axvline(crossover, color="0.4", linewidth=0.9, linestyle="--")
        ax.text(crossover, 0.98, f" crossover\n n_params={crossover:.0f}", transform=ax.get_xaxis_transform(),
                fontsize=7, va="top", color="0.3")  # fmt: skip
    _finish_axes(ax, "number of parameters [count]", "wall time per gradient, median [s]")
    _finish_axes(ratio_ax, "number of parameters [count]", "fastest reverse / fastest forward time")
    ax.set_title("every method", fontsize=9)
    ratio_ax.set_title("the fastest of each mode, per problem", fontsize=9)
    _legend(fig, handles, labels)
    return bool(labels)


def _draw_symplectic(fig: Figure, found: Reproduction, styles: dict[str, SeriesStyle]) -> bool:
    rows: pd.DataFrame = found.plot["rows"]
    axes = fig.subplots(1, 2)
    lines = sorted(set(rows["line"]))
    local = assign_styles(rows.groupby("line")["family"].first().items())
    ticks = sorted(set(rows["n_steps"]))
    drawn = False
    for ax, (column, scale, ylabel) in zip(
        axes, (("peak_memory_bytes", 1 / MIB, "peak memory [MiB]"), ("time_total_s", 1.0, "wall time per gradient [s]"))
    ):
        for name in lines:
            line = rows[rows["line"] == name].sort_values("n_steps")
            values = line[column] * scale
            keep = values > 0
            if keep.any():
                ax.plot(line.loc[keep, "n_steps"], values[keep], **local[name].kwargs(), markersize=5, linewidth=1.2)
                drawn = True
        _finish_axes(ax, "steps [count]", ylabel)
        ax.set_xticks(ticks, [f"{t:.0f}" for t in ticks])
    _legend(fig, [Line2D([], [], **local[n].kwargs(), markersize=5) for n in lines], lines)
    return drawn


def _draw_seminorm(fig: Figure, found: Reproduction, styles: dict[str, SeriesStyle]) -> bool:
    pairs: pd.DataFrame = found.plot["pairs"]
    methods = sorted(set(pairs["method"]))
    settings = list(dict.fromkeys(zip(pairs["short"], pairs["tolerance"])))
    fig.set_size_inches(9.5, 1.2 + 0.32 * len(settings) * max(1, len(methods)) ** 0.5)
    ax = fig.subplots()
    height = 0.8 / len(methods)
    colours = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
    for j, method in enumerate(methods):
        sub = pairs[pairs["method"] == method]
        y = [settings.index(key) - 0.4 + (j + 0.5) * height for key in zip(sub["short"], sub["tolerance"])]
        saving = sub["saving"].fillna(0.0)
        ax.barh(y, saving, height * 0.9, color=colours[j % len(colours)], label=method)
        for yi, value, a, b in zip(y, saving, sub["without"], sub["with"]):
            ax.text(max(value, 0.0) + 0.5, yi, f"{a:.0f} → {b:.0f}", va="center", fontsize=6, color="0.25")
    ax.axvline(SEMINORM_MIN_SAVING, color="0.4", linestyle=":", linewidth=0.9)
    ax.set_yticks(range(len(settings)), [f"{p}, {t}" for p, t in settings], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("backward NFE saved by the seminorm [%]", fontsize=8)
    ax.set_xlim(min(0.0, float(pairs["saving"].min()) - 2), max(10.0, float(pairs["saving"].max()) * 1.25 + 5))
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(True, axis="x", linewidth=0.4, alpha=0.5)
    handles, labels = ax.get_legend_handles_labels()
    _legend(fig, handles, labels)
    return True


ERROR_CLIP = 1e20
"""Gradient errors beyond this are drawn at it (and labelled): one case of 1e100 would squash the rest."""


def _draw_stability(fig: Figure, found: Reproduction, styles: dict[str, SeriesStyle]) -> bool:
    rows: pd.DataFrame = found.plot["rows"]
    instances: list[str] = found.plot["instances"]
    styles = _styles_for(styles, rows)
    ax = fig.subplots()
    position = {p: i for i, p in enumerate(instances)}
    series = sorted(set(rows["series"]))
    width = 0.7 / max(1, len(series))
    handles = []
    for j, name in enumerate(series):
        sub = _ok(rows[rows["series"] == name])
        sub = sub[sub["grad_rel_err"] > 0]
        kwargs = styles[name].kwargs()
        x = [position[p] - 0.35 + (j + 0.5) * width for p in sub["problem_label"]]
        errors = sub["grad_rel_err"].to_numpy()
        ax.scatter(x, np.minimum(errors, ERROR_CLIP), color=kwargs["color"], marker=kwargs["marker"], s=22, zorder=3)
        for xi, error in zip(x, errors):
            if error > ERROR_CLIP:  # beyond the axis: drawn at its top, the value written beside
                ax.annotate(f"{error:.0e}", (xi, ERROR_CLIP), xytext=(0, -9), textcoords="offset points",
                            fontsize=6, ha="center", va="top", rotation=90, color=kwargs["color"])  # fmt: skip
        handles.append(Line2D([], [], color=kwargs["color"], marker=kwargs["marker"], linestyle=""))
    ax.axhline(found.plot["limit"], color="0.4", linestyle=":", linewidth=0.9)
    ax.axhline(found.plot["rtol"], color="0.6", linewidth=0.8)
    ax.set_xticks(range(len(instances)), instances, rotation=20, ha="right", fontsize=7)
    for k in range(len(instances) - 1):
        ax.axvline(k + 0.5, color="0.85", linewidth=0.6)
    _finish_axes(ax, "", "relative gradient error [-]", log_x=False)
    _legend(fig, handles, series)
    return bool(series)


_DRAW = {
    "forward_vs_reverse": (_draw_forward_vs_reverse, (12.5, 4.4)),
    "symplectic": (_draw_symplectic, (11.5, 4.0)),
    "seminorm": (_draw_seminorm, (11.5, 4.8)),
    "stability": (_draw_stability, (11.5, 4.6)),
}

CAPTIONS = {
    "forward_vs_reverse": "Left: median wall time per gradient against the number of parameters, log-log, one curve "
    "per method (forward mode dotted; only methods within the accuracy spread of the best). Right: the fastest reverse "
    "method's time over the fastest forward method's, per problem: below 1 reverse mode wins. The dashed vertical "
    "line marks the crossover.",
    "symplectic": "Peak memory and wall time per gradient against the number of fixed steps, one curve per method.",
    "seminorm": "Share of the backward NFE the seminorm saves, per problem, tolerance and method, with the "
    f"counts without → with beside each bar; the dotted line marks the {SEMINORM_MIN_SAVING:g}% that counts as a saving.",
    "stability": "Gradient error per problem instance and method, log scale. Solid grey: error = rtol; dotted: "
    f"{TOLERANCE_FACTOR:g} x rtol, the limit of 'right'. Errors above {ERROR_CLIP:g} are drawn at it, their value "
    "written beneath.",
}


def draw_reproductions(
    folder: Path, found: Iterable[Reproduction], styles: dict[str, SeriesStyle]
) -> list[ReportFigure]:
    """One figure per section under ``folder``; one that has nothing to draw comes back with a reason."""
    figures = []
    for section in found:
        draw, size = _DRAW[section.key]
        figure = ReportFigure(section.figure_file, section.title, CAPTIONS[section.key], SECTION)
        fig = Figure(figsize=size, layout="constrained")
        if draw(fig, section, styles):
            path = folder / figure.file
            path.parent.mkdir(parents=True, exist_ok=True)
            save_png(fig, path)
            figures.append(figure)
        else:
            figures.append(ReportFigure(figure.file, figure.title, "", SECTION, reason="no positive values to draw"))
    return figures


# --- report blocks ---------------------------------------------------------------------------------


def reproduction_blocks(found: Sequence[Reproduction], figures: Iterable[ReportFigure]) -> list[Block]:
    """A heading and, per section: the paper's claim and this run's conclusion, the figure, the table."""
    if not found:
        return []
    drawn = {f.file: f for f in figures if f.drawn and f.section == SECTION}
    blocks: list[Block] = [
        Heading(2, "Reproduced results", SECTION),
        Paragraph("Published results this run holds the data for, each with its conclusion computed from the records."),
    ]
    for section in found:
        blocks.append(Heading(3, escape(section.title), section.anchor))
        blocks.append(Paragraph(f"*{escape(section.claim)}* **This run:** {section.conclusion}"))
        figure = drawn.get(section.figure_file)
        if figure is not None:
            blocks.append(Image(figure.file, figure.title, figure.caption, figure.anchor))
        index_name = "method" if section.key in ("symplectic", "stability") else "problem"
        blocks.append(Table(section.table, index_name=index_name))
        if section.note:
            blocks.append(Paragraph(section.note))
    return blocks
