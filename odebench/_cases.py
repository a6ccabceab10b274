"""Cases as every layer names them: identity, JSON parameters, labels and the ``where`` matcher.

The runner's ``expect`` rules, the gate, ``compare``, ``export`` and ``history`` all read
records of cases. What they share is defined here once: which columns make a case
(:data:`IDENTITY_COLUMNS`), how a ``*_params`` JSON cell is read (:func:`parse_params`),
how a case is written for people (:func:`case_label`), how the records of two runs are
paired (:func:`match_cases`) and which cases a rule applies to (:class:`Where`).

Imports nothing beyond the standard library: every layer may depend on it.
"""

from __future__ import annotations

import fnmatch
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ._errors import UsageError
from ._records import IDENTITY_COLUMNS

Row = Mapping[str, Any]
CaseKey = tuple

PARAMS_COLUMNS = ("problem_params", "method_params")

# ---------------------------------------------------------------- cells


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
    return v.item() if hasattr(v, "item") else v  # numpy scalars as Python values


def number(row: Row, column: str) -> float | None:
    """A numeric cell as a float, or ``None`` where missing."""
    v = value(row, column)
    return None if v is None else float(v)


def change_ratio(now: float, base: float) -> float:
    """``now / base``, with 0 -> 0 as no change and 0 -> x > 0 as infinite growth."""
    if base == 0:
        return math.inf if now > 0 else 1.0
    return now / base


# ---------------------------------------------------------------- JSON parameters


class ParamsError(UsageError):
    """A ``*_params`` cell that is not a JSON object: the records are not valid input."""


def parse_params(text: Any, column: str = "params") -> dict[str, Any]:
    """A ``*_params`` cell (JSON text) as a dict; empty or missing is ``{}``.

    Raises :class:`ParamsError` naming ``column`` when the text is not a JSON object.
    """
    if text is None or text == "":
        return {}
    try:
        parsed = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        parsed = None
    if not isinstance(parsed, dict):
        raise ParamsError(f"column {column}: not a JSON object: {str(text)[:80]!r}")
    return parsed


def params(row: Row, column: str) -> dict[str, Any]:
    """The ``*_params`` cell ``column`` of ``row`` as a dict (see :func:`parse_params`)."""
    return parse_params(value(row, column), column)


def check_params(frame, source: str) -> None:
    """:class:`ParamsError` naming ``source`` (the run) and the column if a ``*_params`` cell is not JSON."""
    for column in PARAMS_COLUMNS:
        if column not in frame.columns:
            continue
        for text in frame[column].dropna().unique():
            try:
                parse_params(text, column)
            except ParamsError as exc:
                raise ParamsError(f"{source}: {exc}") from None


# ---------------------------------------------------------------- labels


def format_value(v: Any) -> str:
    """A parameter value as it reads in a label: ``dopri5``, ``true``, ``4``, ``1e-06``."""
    if isinstance(v, str):
        return v
    if isinstance(v, float):
        return f"{v:g}"
    return json.dumps(v, sort_keys=True)


def format_params(mapping: Mapping[str, Any]) -> str:
    """``k=v, ...`` in key order."""
    return ", ".join(f"{k}={format_value(v)}" for k, v in sorted(mapping.items()))


def label(name: str, mapping: Mapping[str, Any]) -> str:
    """``name(k=v, ...)``, or ``name`` alone without parameters."""
    return f"{name}({format_params(mapping)})" if mapping else name


def problem_label(row: Row) -> str:
    """``stiff_decay(k=40)``."""
    return label(str(value(row, "problem") or ""), params(row, "problem_params"))


def method_label(row: Row) -> str:
    """``odebench.backsolve(seminorm=false, solver=dopri5)``."""
    return label(str(value(row, "method") or ""), params(row, "method_params"))


def _tol(v: float | None) -> str:
    return "none" if v is None or math.isnan(v) else f"{v:g}"


def setting_label(row: Row, sep: str = " ") -> str:
    """Tolerances, dtype, device and seed: ``tol=1e-06 float64 cpu seed=0``."""
    rtol, atol = number(row, "rtol"), number(row, "atol")
    tol = f"tol={_tol(rtol)}" if rtol == atol else f"rtol={_tol(rtol)}{sep}atol={_tol(atol)}"
    seed = value(row, "seed")
    seed = int(seed) if isinstance(seed, float) else seed
    return sep.join([tol, str(value(row, "dtype") or ""), str(value(row, "device") or ""), f"seed={seed}"])


def case_label(row: Row) -> str:
    """One readable line naming the case: problem, method, then the setting."""
    return f"{problem_label(row)} {method_label(row)} {setting_label(row)}"


# ---------------------------------------------------------------- identity


def case_key(row: Row) -> CaseKey:
    """The identity of a record, normalised so that equal cases give equal keys.

    JSON parameters are compared as data (key order and spacing do not matter), a
    missing tolerance as ``None``.
    """
    key = []
    for column in IDENTITY_COLUMNS:
        v = value(row, column)
        if column in PARAMS_COLUMNS:
            v = json.dumps(params(row, column), sort_keys=True)
        elif isinstance(v, float) and column == "seed":
            v = int(v)
        key.append(v)
    return tuple(key)


def problem_key(row: Row) -> tuple:
    """The problem a case solves and where: problem, its parameters, dtype and device."""
    key = dict(zip(IDENTITY_COLUMNS, case_key(row), strict=True))
    return tuple(key[c] for c in ("problem", "problem_params", "dtype", "device"))


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


# ---------------------------------------------------------------- where

# Where-keys: case columns matched by glob (a string or a list of them) ...
GLOB_KEYS = ("problem", "method", "solver", "backend", "dtype", "device")
# ... by value (a number or a list of them) ...
NUMBER_KEYS = ("rtol", "atol", "seed")
# ... and JSON parameters (PARAMS_COLUMNS) matched key by key (strings by glob, other values by value).
WHERE_KEYS = GLOB_KEYS + NUMBER_KEYS + PARAMS_COLUMNS

# Tolerances written in YAML (1.0e-8) and stored as float64 agree to far better than this.
FLOAT_REL_TOL = 1e-9


def case_fields(row: Row) -> dict[str, Any]:
    """What :class:`Where` matches on: the where-key columns, ``*_params`` parsed to dicts."""
    return {c: value(row, c) for c in GLOB_KEYS + NUMBER_KEYS} | {c: params(row, c) for c in PARAMS_COLUMNS}


def _scalar_matches(wanted: Any, actual: Any) -> bool:
    if isinstance(wanted, str):
        return isinstance(actual, str) and fnmatch.fnmatchcase(actual, wanted)
    if isinstance(wanted, bool) or isinstance(actual, bool):
        return wanted is actual  # true is not 1
    if isinstance(wanted, (int, float)) and isinstance(actual, (int, float)):
        return math.isclose(wanted, actual, rel_tol=FLOAT_REL_TOL, abs_tol=0.0)
    return wanted == actual


def _condition_matches(key: str, wanted: Any, actual: Any) -> bool:
    if key in PARAMS_COLUMNS:
        actual = actual or {}
        return all(name in actual and _scalar_matches(v, actual[name]) for name, v in wanted.items())
    if isinstance(wanted, tuple):
        return any(_scalar_matches(w, actual) for w in wanted)
    return _scalar_matches(wanted, actual)


def _shown(v: Any) -> str:
    if isinstance(v, tuple):
        return "[" + ", ".join(_shown(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{k}: {_shown(x)}" for k, x in v.items()) + "}"
    return format_value(v)


@dataclass(frozen=True)
class Where:
    """Which cases a rule (``expect`` or gate) applies to: every given key must match.

    ``conditions`` are ``(key, wanted)`` pairs: a glob or a tuple of globs for
    :data:`GLOB_KEYS`, a number or a tuple of numbers for :data:`NUMBER_KEYS` (equal
    to a relative 1e-9), a dict for ``*_params`` (each given parameter equal, strings
    by glob; ``true`` never equals ``1``). An empty Where matches every case.
    """

    conditions: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, mapping: Mapping[str, Any]) -> Where:
        """A Where from a mapping already checked by :func:`parse_where` (lists become tuples)."""
        return cls(
            tuple(
                (key, dict(wanted) if key in PARAMS_COLUMNS else tuple(wanted) if isinstance(wanted, list) else wanted)
                for key, wanted in mapping.items()
            )
        )

    def matches(self, case: Mapping[str, Any]) -> bool:
        """``case`` is :func:`case_fields` of a record."""
        return all(_condition_matches(key, wanted, case.get(key)) for key, wanted in self.conditions)

    def matches_row(self, row: Row) -> bool:
        """Whether the record ``row`` matches."""
        return self.matches(case_fields(row))

    def __str__(self) -> str:
        """As written in YAML: ``{method: odebench.backprop, method_params: {solver: rk4}}``."""
        return _shown(dict(self.conditions))


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _kind(data: Any) -> str:
    return "nothing" if data is None else f"{type(data).__name__} {data!r}"[:80]


def parse_where(data: Any, path: str, fail: Callable[[str, str], Exception]) -> Where:
    """Validate a ``where`` mapping read from YAML and build its :class:`Where`.

    ``fail(key_path, message)`` makes the error to raise (it names the file); key paths
    start at ``path`` (``expect[0].where``, ``rules[1].where``).
    """
    body = {} if data is None else data
    if not isinstance(body, Mapping):
        raise fail(path, f"expected a mapping with keys {', '.join(WHERE_KEYS)}; got {_kind(body)}")
    for key, raw in body.items():
        sub = f"{path}.{key}"
        if key not in WHERE_KEYS:
            raise fail(sub, f"unknown key; valid keys: {', '.join(WHERE_KEYS)}")
        if key in PARAMS_COLUMNS:
            if not isinstance(raw, Mapping) or not raw:
                raise fail(sub, f"expected a mapping of parameter names to values; got {_kind(raw)}")
            for name, v in raw.items():
                if not isinstance(v, (str, int, float, bool)):
                    raise fail(f"{sub}.{name}", f"expected a string, number or boolean; got {_kind(v)}")
            continue
        items = raw if isinstance(raw, list) else [raw]
        want_text = key in GLOB_KEYS
        if not items or not all(isinstance(item, str) if want_text else _is_number(item) for item in items):
            what = "a glob pattern (string)" if want_text else "a number"
            raise fail(sub, f"expected {what} or a non-empty list of them; got {_kind(raw)}")
    return Where.of(body)
