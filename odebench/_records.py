"""The record: one flat row per case, and the schema of ``records.parquet``.

This module is the single source of truth for column names and types. It imports
nothing heavier than the standard library so that every layer (runner, reports,
gate) can depend on it.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field, fields
from typing import Any

# Outcome of one case. ``ok`` is the only status whose metrics are meaningful.
STATUSES = ("ok", "failed", "timeout", "diverged", "unavailable", "skipped")

#: the exact work of a case, a counter per kind and phase: the record's work columns, and the
#: fields of ``backends.Counts`` and ``ode.SolveStats`` (tests check both against it)
PHASES: tuple[str, ...] = ("forward", "backward")
WORK_COUNTERS: tuple[str, ...] = tuple(f"{kind}_{phase}" for kind in ("nfe", "steps", "rejected") for phase in PHASES)

#: the stages of a case that get a column of their own (runner/_measure.py times them), with
#: what each covers as the run summary names it; the rest of ``case_wall_s`` is start-up and
#: building the problem and the method
STAGE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("reference_s", "reference read"),  # reading (or computing) the reference, fingerprint included
    ("prepare_s", "prepare/compile"),  # the method's prepare, JIT tracing and compilation included
    ("measure_s", "timed measurement"),  # first call, memory probe, warm-up and the timed repeats
    ("count_s", "counting pass"),
    ("consistency_s", "discrete-backprop twin"),
    ("fd_s", "finite differences"),
)

# (name, kind): kind is one of "str", "float", "int", "floats" (a list of floats).
# The order here is the column order of records.parquet.
SCHEMA: tuple[tuple[str, str], ...] = (
    # identity
    ("run_id", "str"),
    ("case_id", "str"),
    ("suite", "str"),
    ("problem", "str"),
    ("problem_params", "str"),  # JSON text, keys sorted
    ("method", "str"),
    ("method_params", "str"),  # JSON text, keys sorted
    ("backend", "str"),  # the library behind the method: odebench, torchdiffeq, diffrax, torchode, fd
    ("solver", "str"),
    ("rtol", "float"),
    ("atol", "float"),
    ("dtype", "str"),
    ("device", "str"),
    ("seed", "int"),
    # outcome
    ("status", "str"),
    ("error", "str"),
    # size
    ("n_state", "int"),
    ("n_params", "int"),
    ("n_save_times", "int"),
    # accuracy
    ("loss", "float"),
    ("grad_rel_err", "float"),
    ("grad_max_abs_err", "float"),
    ("grad_cosine", "float"),
    ("reference", "str"),  # analytic | tight
    ("reference_err", "float"),  # estimated relative error of the reference itself
    ("consistency_err", "float"),  # vs discrete backprop of the same library, solver, tolerance
    ("consistency_method", "str"),
    ("fd_err", "float"),  # vs central differences of this method's own forward loss
    # work
    *((counter, "int") for counter in WORK_COUNTERS),
    # time
    ("time_forward_s", "float"),
    ("time_backward_s", "float"),
    ("time_total_s", "float"),
    ("time_total_iqr_s", "float"),
    ("time_samples_s", "floats"),
    ("compile_time_s", "float"),
    ("repeats", "int"),
    # memory
    ("peak_memory_bytes", "int"),
    ("memory_source", "str"),  # cuda | jax | rss
    # bookkeeping
    ("case_wall_s", "float"),  # the whole case, set-up and checks included
    ("finished_at", "str"),  # UTC ISO time
    # where a case's time went (STAGE_COLUMNS); None for a stage not reached
    *((column, "float") for column, _ in STAGE_COLUMNS),
)

COLUMNS: tuple[str, ...] = tuple(name for name, _ in SCHEMA)
KINDS: dict[str, str] = dict(SCHEMA)

# "int" columns are stored as nullable 64-bit integers.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def value_problem(kind: str, value: Any) -> str | None:
    """Why ``value`` cannot be stored in a column of ``kind``, or ``None`` when it can.

    ``None`` (and NaN, outside "str" columns) is a missing value and always fits. An
    "int" needs a whole, finite number within int64; a "float" any real number; a
    "floats" cell a list of real numbers.
    """
    if value is None or kind == "str":
        return None
    if type(value) is float and kind == "float":  # the common cases, without the ABC checks below
        return None
    if type(value) is int and kind == "int" and INT64_MIN <= value <= INT64_MAX:
        return None
    if kind == "floats":
        if not isinstance(value, (list, tuple)):
            return f"expected a list of numbers, got {_shown(value)}"
        bad = next((v for v in value if not _is_number(v)), None)
        return None if bad is None else f"expected a list of numbers, got an element {_shown(bad)}"
    if not _is_number(value):
        return f"expected a number, got {_shown(value)}"
    if kind == "float":
        try:
            float(value)
        except OverflowError:
            return f"expected a float64, got {_shown(value)} (too large)"
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, numbers.Integral):
        whole = int(value)
    else:
        number = float(value)
        if not math.isfinite(number):
            return f"expected an integer, got {number} (not finite)"
        if not number.is_integer():
            return f"expected an integer, got {number!r}"
        whole = int(number)
    if not INT64_MIN <= whole <= INT64_MAX:
        return f"expected an integer within int64, got {whole}"
    return None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# What makes two records "the same case" across runs (the gate matches on these).
IDENTITY_COLUMNS: tuple[str, ...] = (
    "problem",
    "problem_params",
    "method",
    "method_params",
    "rtol",
    "atol",
    "dtype",
    "device",
    "seed",
)


@dataclass(frozen=True)
class Record:
    """One case's outcome. Every field is a plain Python value (JSON-able)."""

    run_id: str = ""
    case_id: str = ""
    suite: str = ""
    problem: str = ""
    problem_params: str = "{}"
    method: str = ""
    method_params: str = "{}"
    backend: str = ""
    solver: str = ""
    rtol: float | None = None
    atol: float | None = None
    dtype: str = ""
    device: str = ""
    seed: int | None = None
    status: str = "failed"
    error: str = ""
    n_state: int | None = None
    n_params: int | None = None
    n_save_times: int | None = None
    loss: float | None = None
    grad_rel_err: float | None = None
    grad_max_abs_err: float | None = None
    grad_cosine: float | None = None
    reference: str = ""
    reference_err: float | None = None
    consistency_err: float | None = None
    consistency_method: str = ""
    fd_err: float | None = None
    nfe_forward: int | None = None
    nfe_backward: int | None = None
    steps_forward: int | None = None
    steps_backward: int | None = None
    rejected_forward: int | None = None
    rejected_backward: int | None = None
    time_forward_s: float | None = None
    time_backward_s: float | None = None
    time_total_s: float | None = None
    time_total_iqr_s: float | None = None
    time_samples_s: list[float] = field(default_factory=list)
    compile_time_s: float | None = None
    repeats: int | None = None
    peak_memory_bytes: int | None = None
    memory_source: str = ""
    case_wall_s: float | None = None
    finished_at: str = ""
    reference_s: float | None = None
    prepare_s: float | None = None
    measure_s: float | None = None
    count_s: float | None = None
    consistency_s: float | None = None
    fd_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        return cls(**{k: v for k, v in data.items() if k in KINDS})  # the fields, as checked below

    def problems(self) -> list[tuple[str, str]]:
        """``(column, why)`` for each field whose value does not fit its column type (see :func:`value_problem`)."""
        found = ((name, value_problem(KINDS[name], getattr(self, name))) for name in COLUMNS)
        return [(name, why) for name, why in found if why is not None]


if tuple(f.name for f in fields(Record)) != COLUMNS:  # pragma: no cover - guards edits
    raise ImportError("Record fields and SCHEMA columns are out of sync")
