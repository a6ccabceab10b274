"""Records as the report sees them: labels, method families, one point per case, sweeps, tables.

Everything downstream (findings, figures, tables) works on the frame that :func:`prepare`
returns and on the :func:`points` derived from it, so labels and aggregation are decided once.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .._cases import label, params
from ..backends import FIXED_STEP, REVERSIBLE

HORIZON_KEYS = ("t_end", "t1", "horizon")
"""problem_params keys that set the integration horizon."""

# Metrics aggregated over seeds (median) into one point per case.
POINT_METRICS = (
    "grad_rel_err",
    "consistency_err",
    "reference_err",
    "nfe_forward",
    "nfe_backward",
    "nfe_total",
    "time_total_s",
    "peak_memory_bytes",
    "n_params",
    "n_state",
)

MIB = 2.0**20


def _method_class(method: str):
    from ..backends import MethodError, method_class

    try:
        return method_class(method)
    except MethodError:  # a method this version does not know (an older or newer run)
        return None


def method_family(method: str) -> str:
    """The method's family as its class declares it (``Method.family``), or ``"other"``
    for a method this version does not know."""
    cls = _method_class(method)
    return cls.family if cls is not None else "other"


def promises_constant_memory(method: str) -> bool:
    """Whether the method promises a memory cost independent of the horizon (``Method.constant_memory``)."""
    cls = _method_class(method)
    return bool(cls is not None and cls.constant_memory)


def default_solver(method: str) -> str:
    """The solver a method uses when none is given (its ``solver`` option's default), or ``""``."""
    cls = _method_class(method)
    option = cls.options.get("solver") if cls is not None else None
    return str(option.default) if option is not None and option.default else ""


def parse_params(text: Any, column: str = "params") -> dict[str, Any]:
    """A ``*_params`` cell as a dict (missing: ``{}``); :class:`odebench._cases.ParamsError` if it is not a JSON object."""
    return params({column: text}, column)


def slug(text: str) -> str:
    """A file-name-safe form of a problem name."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "problem"


def figure_file(kind: str, section: str = "") -> str:
    """The relative path of a report figure, e.g. ``figures/wp_time_linear.png``."""
    stem = f"{kind}_{slug(section)}" if section else kind
    return f"figures/{stem}.png"


def format_tolerance(rtol: float) -> str:
    return "nan" if rtol is None or math.isnan(rtol) else f"{rtol:.0e}"


@dataclass(frozen=True)
class Prepared:
    """The records with report columns added, and what is common to every method.

    ``frame`` adds ``problem_label`` (a problem instance: problem and its params),
    ``method_label`` (method and the params that tell it apart), ``series`` (the
    method label, plus dtype/device/run where those vary), ``family``,
    ``nfe_total`` and ``params`` (the problem params as a dict).
    ``common_method_params`` are the method params left out of labels because every
    method shares them.
    """

    frame: pd.DataFrame
    common_method_params: dict[str, Any]

    @property
    def series(self) -> list[str]:
        return sorted(self.frame["series"].unique())


def _method_labels(frame: pd.DataFrame) -> tuple[dict[tuple[str, str], str], dict[str, Any]]:
    """Short labels per (method, method_params), and the params they leave out.

    A parameter with one value across every method (typically ``solver``) is left out,
    unless leaving it out would give two different methods the same label.
    """
    pairs = sorted(set(zip(frame["method"], frame["method_params"])))
    parsed = {pair: parse_params(pair[1], "method_params") for pair in pairs}
    values: dict[str, set[str]] = defaultdict(set)
    for given in parsed.values():
        for key, value in given.items():
            values[key].add(json.dumps(value, sort_keys=True))
    # Common: the same value in every method (a key that only some methods have is not).
    common = {
        key: json.loads(next(iter(v)))
        for key, v in sorted(values.items())
        if len(v) == 1 and all(key in params for params in parsed.values())
    }
    short = {pair: label(pair[0], {k: v for k, v in p.items() if k not in common}) for pair, p in parsed.items()}
    counts = Counter(short.values())
    labels = {pair: text if counts[text] == 1 else label(pair[0], parsed[pair]) for pair, text in short.items()}
    return labels, common


def _variant_columns(frame: pd.DataFrame) -> list[str]:
    """Columns that must join the method label so that one series is one curve."""
    columns = [c for c in ("dtype", "device") if frame[c].nunique() > 1]
    if frame["run_id"].nunique() > 1:
        # Complementary runs (a suite split in parts) merge; repeated cases stay apart.
        keys = ["problem", "problem_params", "method", "method_params", "rtol", "atol", "seed", *columns]
        if frame.duplicated(subset=keys, keep=False).any():
            columns.append("run_id")
    return columns


def _atol_tags(frame: pd.DataFrame) -> pd.Series:
    """`` [atol=...]`` where one rtol goes with several atols and the solver adapts its steps
    (so that cases of different atol are not summarised as one), else empty. Fixed-step
    solvers ignore atol: their cases of either atol are the same computation."""
    several = frame.groupby("rtol", dropna=False)["atol"].transform("nunique") > 1
    solvers = [s or default_solver(m) for s, m in zip(frame["solver"].fillna(""), frame["method"])]
    adaptive = ~pd.Series(solvers, index=frame.index).isin(FIXED_STEP + REVERSIBLE)
    tags = pd.Series([f" [atol={format_tolerance(a)}]" for a in frame["atol"]], index=frame.index, dtype=object)
    return tags.where(several & adaptive, "")


def prepare(frame: pd.DataFrame) -> Prepared:
    """Add the report columns to a records frame (as :func:`odebench.load_results` returns)."""
    frame = frame.copy().reset_index(drop=True)
    frame["params"] = [parse_params(text, "problem_params") for text in frame["problem_params"]]
    frame["problem_label"] = [label(p, q) for p, q in zip(frame["problem"], frame["params"])]
    labels, common = _method_labels(frame)
    frame["method_label"] = [labels[pair] for pair in zip(frame["method"], frame["method_params"])]
    series = frame["method_label"]
    for column in _variant_columns(frame):
        series = series + " [" + frame[column].astype(str) + "]"
    series = series + _atol_tags(frame)
    frame["series"] = series
    frame["family"] = frame["method"].map(method_family)
    frame["nfe_total"] = frame["nfe_forward"].astype("Float64") + frame["nfe_backward"].astype("Float64").fillna(0)
    return Prepared(frame=frame, common_method_params=common)


POINT_KEYS = ("problem", "problem_label", "problem_params", "series", "method", "solver", "family", "dtype", "rtol")


def points(prepared: Prepared) -> pd.DataFrame:
    """One row per case that succeeded: the median over seeds (and repeated runs) of each metric."""
    ok = prepared.frame[prepared.frame["status"] == "ok"]
    numeric = ok[list(POINT_KEYS)].copy()
    for column in POINT_METRICS:
        numeric[column] = pd.to_numeric(ok[column], errors="coerce").astype("float64")
    numeric["consistency_method"] = ok["consistency_method"]
    grouped = numeric.groupby(list(POINT_KEYS), sort=True, dropna=False)
    result = grouped[list(POINT_METRICS)].median().reset_index()
    result["consistency_method"] = grouped["consistency_method"].first().to_numpy()
    params = dict(zip(prepared.frame["problem_params"], prepared.frame["params"]))
    result["params"] = result["problem_params"].map(params)
    return result


@dataclass(frozen=True)
class Sweep:
    """Points along one numeric problem parameter ``key``, the other params held fixed.

    ``frame`` holds the points with ``x`` (the value of ``key``) and ``group`` (the
    problem and its fixed params: one panel per group).
    """

    key: str
    frame: pd.DataFrame

    @property
    def is_horizon(self) -> bool:
        return self.key in HORIZON_KEYS


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def sweeps(pts: pd.DataFrame) -> list[Sweep]:
    """Every numeric problem parameter that takes several values for the same problem and method."""
    keys = sorted({k for params in pts["params"] for k, v in params.items() if _is_number(v)})
    found = []
    for key in keys:
        rows = pts[pts["params"].map(lambda p, key=key: _is_number(p.get(key)))].copy()
        if rows.empty:
            continue
        rows["x"] = rows["params"].map(lambda p, key=key: float(p[key]))
        rows["group"] = [
            label(problem, {k: v for k, v in p.items() if k != key})
            for problem, p in zip(rows["problem"], rows["params"])
        ]
        spread = rows.groupby(["group", "series", "rtol"])["x"].transform("nunique")
        rows = rows[spread > 1]
        if not rows.empty:
            found.append(Sweep(key=key, frame=rows.sort_values(["group", "series", "rtol", "x"])))
    return found


# Columns of the per-problem table: (metric column, header, scale, display format).
TABLE_METRICS: tuple[tuple[str, str, float, str], ...] = (
    ("grad_rel_err", "error", 1.0, ".2e"),
    ("time_total_s", "time [s]", 1.0, ".3g"),
    ("nfe_total", "NFE", 1.0, ".0f"),
    ("peak_memory_bytes", "memory [MiB]", 1.0 / MIB, ".3g"),
)


@dataclass(frozen=True)
class MetricTable:
    """Methods x (metric, tolerance) for one problem instance.

    ``values`` holds the numbers (NaN where there is none), ``notes`` the status of
    a case without numbers (``timeout``, ...), ``best`` marks the lowest value of each
    column. All three share index (series) and columns (``"<metric> @ <rtol>"``);
    ``formats`` gives each column's display format.
    """

    problem: str
    values: pd.DataFrame
    notes: pd.DataFrame
    best: pd.DataFrame
    formats: dict[str, str]

    def cells(self) -> pd.DataFrame:
        """The table as display text: formatted numbers, else the status note, else empty."""
        text = self.notes.copy()
        for column, fmt in self.formats.items():
            known = self.values[column].notna()
            text.loc[known, column] = [format(v, fmt) for v in self.values.loc[known, column]]
        return text


def column_name(header: str, rtol: float) -> str:
    return f"{header} @ {format_tolerance(rtol)}"


def metric_tables(prepared: Prepared, pts: pd.DataFrame) -> list[MetricTable]:
    """One :class:`MetricTable` per problem instance, failed cases included as notes."""
    frame = prepared.frame
    tables = []
    for problem, rows in frame.groupby("problem_label", sort=True):
        tolerances = sorted(rows["rtol"].dropna().unique(), reverse=True)
        index = pd.Index(sorted(rows["series"].unique()), name="method")
        formats = {column_name(h, r): fmt for _, h, _, fmt in TABLE_METRICS for r in tolerances}
        values = pd.DataFrame(np.nan, index=index, columns=list(formats), dtype="float64")
        notes = pd.DataFrame("", index=index, columns=list(formats), dtype=object)
        ok = pts[pts["problem_label"] == problem]
        for metric, header, scale, _ in TABLE_METRICS:
            for rtol in tolerances:
                at = ok[ok["rtol"] == rtol].set_index("series")[metric] * scale
                values.loc[at.index, column_name(header, rtol)] = at.to_numpy()
        succeeded = set(zip(ok["series"], ok["rtol"]))
        failed = rows[(rows["status"] != "ok") & rows["rtol"].notna()]
        for series, rtol, status in zip(failed["series"], failed["rtol"], failed["status"]):
            if (series, rtol) not in succeeded:  # another seed or run may have succeeded
                for _, header, _, _ in TABLE_METRICS:
                    notes.loc[series, column_name(header, rtol)] = status
        best = values.eq(values.min(axis=0, skipna=True), axis=1) & values.notna()
        tables.append(MetricTable(problem=problem, values=values, notes=notes, best=best, formats=formats))
    return tables


def failures(prepared: Prepared) -> pd.DataFrame:
    """The cases whose status is not ``ok``, with their reasons."""
    frame = prepared.frame
    failed = frame.loc[frame["status"] != "ok", ["problem_label", "series", "rtol", "status", "error"]]
    table = failed.rename(columns={"problem_label": "problem", "series": "method"})
    table["rtol"] = table["rtol"].map(format_tolerance)
    return table.sort_values(["problem", "method", "rtol"]).reset_index(drop=True)


def _get(info: Mapping[str, Any], *path: str) -> Any:
    value: Any = info
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def describe_environment(info: Mapping[str, Any]) -> dict[str, str]:
    """The readable lines of a ``run.json``; a key that is missing leaves its line out."""
    suite = info.get("suite")
    commit, dirty = _get(info, "git", "commit"), _get(info, "git", "dirty")
    packages = info.get("packages")
    cpu = info.get("cpu")
    gpu = info.get("gpu", "")
    lines = {
        "suite": suite.get("name") if isinstance(suite, Mapping) else suite,
        "suite hash": info.get("suite_hash"),
        "odebench": info.get("odebench_version"),
        "commit": f"{str(commit)[:12]}{' (dirty)' if dirty else ''}" if commit else None,
        "python": info.get("python"),
        "packages": ", ".join(f"{k} {v}" for k, v in sorted(packages.items()))
        if isinstance(packages, Mapping)
        else packages,
        "CPU": f"{cpu.get('model', '?')} ({cpu.get('cores', '?')} cores)" if isinstance(cpu, Mapping) else cpu,
        # run.json says "gpu": null for a machine without one.
        "GPU": "none"
        if gpu is None
        else (f"{gpu.get('name', '?')} (CUDA {gpu.get('cuda', '?')})" if isinstance(gpu, Mapping) else gpu),
        "started": info.get("started_at"),
        "finished": info.get("finished_at"),
    }
    return {k: str(v) for k, v in lines.items() if v not in (None, "")}


def environment_table(infos: Iterable[tuple[str, Mapping[str, Any]]]) -> pd.DataFrame:
    """One column per run, one row per environment line; empty without any run.json."""
    columns = {name: describe_environment(info) for name, info in infos if info}
    if not columns:
        return pd.DataFrame()
    table = pd.DataFrame(columns).fillna("")
    table.index.name = "run"
    return table
