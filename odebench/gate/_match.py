"""Case identity across runs: matching records of two runs, and a readable name per case.

Two records are the same case when their :data:`~odebench._records.IDENTITY_COLUMNS`
agree. JSON parameters are compared as data (key order and spacing do not matter),
a missing tolerance as ``None``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._errors import UsageError
from .._records import IDENTITY_COLUMNS

Row = Mapping[str, Any]
CaseKey = tuple


def value(row: Row, column: str) -> Any:
    """A cell as a plain Python value; missing values (None, NaN, pd.NA) become ``None``."""
    v = row.get(column)
    if v is None or isinstance(v, (list, tuple)):
        return v
    try:
        if v != v:  # NaN; pd.NA raises TypeError here instead
            return None
    except (TypeError, ValueError):
        return None
    if hasattr(v, "item"):
        v = v.item()  # numpy scalars
    return v


def number(row: Row, column: str) -> float | None:
    """A numeric cell as a float, or ``None`` where missing."""
    v = value(row, column)
    return None if v is None else float(v)


def params(row: Row, column: str) -> dict[str, Any]:
    """A ``*_params`` JSON cell as a dict ({} where empty or not JSON)."""
    text = value(row, column) or ""
    try:
        parsed = json.loads(text) if text else {}
    except json.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def case_key(row: Row) -> CaseKey:
    """The identity of a record, normalised so that equal cases give equal keys."""
    key = []
    for column in IDENTITY_COLUMNS:
        v = value(row, column)
        if column.endswith("_params"):
            v = json.dumps(params(row, column), sort_keys=True) if v else "{}"
        elif isinstance(v, float) and column == "seed":
            v = int(v)
        key.append(v)
    return tuple(key)


def problem_key(row: Row) -> tuple:
    """The problem a case solves and where: problem, its parameters, dtype and device."""
    key = dict(zip(IDENTITY_COLUMNS, case_key(row), strict=True))
    return tuple(key[c] for c in ("problem", "problem_params", "dtype", "device"))


def _params_text(mapping: Mapping[str, Any]) -> str:
    return ",".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in sorted(mapping.items()))


def _named(name: str, mapping: Mapping[str, Any]) -> str:
    return f"{name}({_params_text(mapping)})" if mapping else name


def _tol(v: float | None) -> str:
    return "none" if v is None or math.isnan(v) else f"{v:g}"


def problem_label(row: Row) -> str:
    """``neural_mlp(t_end=1.0,width=64)``."""
    return _named(str(value(row, "problem") or ""), params(row, "problem_params"))


def method_label(row: Row) -> str:
    """``odebench.backsolve(seminorm=true,solver=dopri5)``."""
    return _named(str(value(row, "method") or ""), params(row, "method_params"))


def setting_label(row: Row, sep: str = " ") -> str:
    """Tolerances, dtype, device and seed: ``tol=1e-06 float64 cpu seed=0``."""
    rtol, atol = number(row, "rtol"), number(row, "atol")
    tol = f"tol={_tol(rtol)}" if rtol == atol else f"rtol={_tol(rtol)}{sep}atol={_tol(atol)}"
    seed = value(row, "seed")
    return sep.join([tol, str(value(row, "dtype") or ""), str(value(row, "device") or ""), f"seed={seed}"])


def case_label(row: Row) -> str:
    """One readable line naming the case: problem, method, then the setting."""
    return f"{problem_label(row)} {method_label(row)} {setting_label(row)}"


def identity(row: Row) -> dict[str, Any]:
    """The identity columns of a record as a JSON-able dict."""
    return {column: value(row, column) for column in IDENTITY_COLUMNS}


@dataclass(frozen=True)
class MatchedCases:
    """Records of two runs paired by identity, in the order of the first run."""

    pairs: tuple[tuple[Row, Row], ...]
    only_first: tuple[Row, ...]
    only_second: tuple[Row, ...]


def index_cases(frame, name: str) -> dict[CaseKey, Row]:
    """The records of ``frame`` by identity; :class:`UsageError` if a case appears twice."""
    cases: dict[CaseKey, Row] = {}
    for row in frame.to_dict("records"):
        key = case_key(row)
        if key in cases:
            raise UsageError(
                f"{name} holds the case {case_label(row)} more than once; "
                "give one run (a results folder or records file) at a time"
            )
        cases[key] = row
    return cases


def match_cases(first, second, names: tuple[str, str] = ("baseline", "run")) -> MatchedCases:
    """Pair the records of two DataFrames by case identity."""
    a, b = index_cases(first, names[0]), index_cases(second, names[1])
    return MatchedCases(
        pairs=tuple((row, b[key]) for key, row in a.items() if key in b),
        only_first=tuple(row for key, row in a.items() if key not in b),
        only_second=tuple(row for key, row in b.items() if key not in a),
    )


WHERE_COLUMNS = ("problem", "method", "solver", "backend", "dtype", "device", "rtol", "atol", "seed")


def case_fields(row: Row) -> dict[str, Any]:
    """What rules match on: identity and descriptive columns, ``*_params`` parsed to dicts."""
    fields = {column: value(row, column) for column in WHERE_COLUMNS}
    fields["problem_params"] = params(row, "problem_params")
    fields["method_params"] = params(row, "method_params")
    return fields
