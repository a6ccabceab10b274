"""Suite files: read, validated at the boundary, and expanded into cases.

Every error names the file, the key path (``methods[1].params.solver``) and what would
be valid, and is raised before anything runs. Inside, code trusts a :class:`Suite`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._errors import UsageError

DTYPES = ("float32", "float64")
DEVICES = ("cpu", "cuda", "auto")
TOP_KEYS = ("name", "description", "settings", "problems", "methods", "tolerances", "expect")
SLURM_KEYS = {
    "partition": (str, "Slurm partition"),
    "gpus_per_job": (int, "GPUs per array task"),
    "cpus_per_task": (int, "CPUs per array task"),
    "mem_gb": ((int, float), "memory per array task, GB"),
    "time_limit_min": (int, "time limit per array task, minutes"),
    "array_parallelism": (int, "array tasks running at once"),
    "cases_per_job": (int, "cases run by one array task"),
    "folder": (str, "where submitit keeps its logs (default: <results>/slurm)"),
}


@dataclass(frozen=True)
class Settings:
    """Defaults for every case (the ``settings`` block); CLI flags override them."""

    dtype: tuple[str, ...] = ("float64",)
    device: tuple[str, ...] = ("cpu",)
    seed: tuple[int, ...] = (0,)
    repeats: int = 5
    warmup: int = 1
    timeout_s: float = 300.0
    threads: int = 1
    fd_check: bool = True
    reference_timeout_s: float = 1800.0
    memory_limit_mb: int | None = None
    slurm: Mapping[str, Any] = field(default_factory=dict)


SETTINGS_DOC = {
    "dtype": "float32 | float64 (or a list of them)",
    "device": "cpu | cuda | auto (or a list)",
    "seed": "an integer (or a list)",
    "repeats": "timed repetitions after warm-up (integer >= 1)",
    "warmup": "untimed repetitions before timing (integer >= 0)",
    "timeout_s": "seconds per case before its worker is killed (number > 0)",
    "threads": "torch/BLAS threads per case (integer >= 1)",
    "fd_check": "check each gradient against finite differences of its own loss (true | false)",
    "reference_timeout_s": "seconds allowed to compute one reference gradient (number > 0)",
    "memory_limit_mb": "address-space limit per worker above its baseline, MB (integer, or null)",
    "slurm": "submitit/Slurm options: " + ", ".join(SLURM_KEYS),
}


@dataclass(frozen=True, eq=False)
class Entry:
    """One problem or method of the suite, with its (already expanded) parameters."""

    name: str
    params: Mapping[str, Any]

    @property
    def params_json(self) -> str:
        return json.dumps(dict(self.params), sort_keys=True)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Entry) and (self.name, self.params_json) == (other.name, other.params_json)

    def __hash__(self) -> int:
        return hash((self.name, self.params_json))


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float


@dataclass(frozen=True)
class Expectation:
    """An acceptance rule: cases matching ``where`` must keep metrics within bounds."""

    where: Mapping[str, Any]
    max: Mapping[str, float]
    min: Mapping[str, float]
    index: int


@dataclass(frozen=True)
class Case:
    """One (problem, method, tolerance, seed, dtype, device)."""

    problem: Entry
    method: Entry
    tolerance: Tolerance
    dtype: str
    device: str
    seed: int

    @property
    def identity(self) -> dict[str, Any]:
        return {
            "problem": self.problem.name,
            "problem_params": self.problem.params_json,
            "method": self.method.name,
            "method_params": self.method.params_json,
            "rtol": self.tolerance.rtol,
            "atol": self.tolerance.atol,
            "dtype": self.dtype,
            "device": self.device,
            "seed": self.seed,
        }

    @property
    def case_id(self) -> str:
        text = json.dumps(self.identity, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def label(self) -> str:
        def fmt(entry: Entry) -> str:
            inner = ",".join(f"{k}={v}" for k, v in sorted(entry.params.items()))
            return f"{entry.name}({inner})" if inner else entry.name

        return f"{fmt(self.problem)} | {fmt(self.method)} | rtol={self.tolerance.rtol:g} {self.dtype} {self.device} seed={self.seed}"


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    settings: Settings
    problems: tuple[Entry, ...]
    methods: tuple[Entry, ...]
    tolerances: tuple[Tolerance, ...]
    expect: tuple[Expectation, ...]
    source: str  # the file, for messages
    raw: Mapping[str, Any]

    @property
    def hash(self) -> str:
        return hashlib.sha256(json.dumps(self.raw, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def cases(self) -> list[Case]:
        """The Cartesian product, in a stable order: problem, method, tolerance, dtype, device, seed."""
        s = self.settings
        return [
            Case(p, m, tol, dtype, device, seed)
            for p, m, tol, dtype, device, seed in itertools.product(
                self.problems, self.methods, self.tolerances, s.dtype, s.device, s.seed
            )
        ]


class _Checker:
    """Validation helpers that know the file name for their messages."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, path: str, message: str) -> UsageError:
        where = f"{self.source}: {path}: " if path else f"{self.source}: "
        return UsageError(where + message)

    def mapping(self, value: Any, path: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(path, f"must be a mapping (key: value), got {_kind(value)}")
        return value

    def keys(self, value: Mapping[str, Any], allowed, path: str) -> None:
        for key in value:
            if key not in allowed:
                close = _suggest(str(key), allowed)
                raise self.fail(
                    f"{path}.{key}" if path else str(key),
                    f"unknown key{close}; valid keys: {', '.join(allowed)}",
                )

    def nonempty_list(self, value: Any, path: str) -> list:
        if not isinstance(value, list):
            raise self.fail(path, f"must be a list, got {_kind(value)}")
        if not value:
            raise self.fail(path, "must not be empty")
        return value


def _kind(value: Any) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"[:80]


def _suggest(key: str, allowed) -> str:
    import difflib

    close = difflib.get_close_matches(key, list(allowed), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _expand(params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A dict whose list values expand to the Cartesian product of dicts."""
    keys = list(params)
    values = [v if isinstance(v, list) else [v] for v in params.values()]
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*values)]


def _positive_number(check: _Checker, value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise check.fail(path, f"must be a positive number, got {_kind(value)}")
    return float(value)


def _settings(check: _Checker, raw: Any) -> Settings:
    if raw is None:
        return Settings()
    raw = check.mapping(raw, "settings")
    check.keys(raw, SETTINGS_DOC, "settings")
    out: dict[str, Any] = {}

    def listed(key, valid=None, kind=None):
        values = raw[key] if isinstance(raw[key], list) else [raw[key]]
        if not values:
            raise check.fail(f"settings.{key}", "must not be empty")
        for i, v in enumerate(values):
            p = f"settings.{key}" + (f"[{i}]" if isinstance(raw[key], list) else "")
            if valid is not None and v not in valid:
                raise check.fail(p, f"must be one of {', '.join(valid)}, got {_kind(v)}")
            if kind is not None and (isinstance(v, bool) or not isinstance(v, kind)):
                raise check.fail(p, f"must be {kind.__name__}, got {_kind(v)}")
        return tuple(values)

    if "dtype" in raw:
        out["dtype"] = listed("dtype", DTYPES)
    if "device" in raw:
        out["device"] = listed("device", DEVICES)
    if "seed" in raw:
        out["seed"] = listed("seed", kind=int)
    for key, minimum in (("repeats", 1), ("warmup", 0), ("threads", 1)):
        if key in raw:
            v = raw[key]
            if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
                raise check.fail(f"settings.{key}", f"must be an integer >= {minimum}, got {_kind(v)}")
            out[key] = v
    for key in ("timeout_s", "reference_timeout_s"):
        if key in raw:
            out[key] = _positive_number(check, raw[key], f"settings.{key}")
    if "fd_check" in raw:
        if not isinstance(raw["fd_check"], bool):
            raise check.fail("settings.fd_check", f"must be true or false, got {_kind(raw['fd_check'])}")
        out["fd_check"] = raw["fd_check"]
    if "memory_limit_mb" in raw and raw["memory_limit_mb"] is not None:
        v = raw["memory_limit_mb"]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise check.fail("settings.memory_limit_mb", f"must be a positive integer or null, got {_kind(v)}")
        out["memory_limit_mb"] = v
    if "slurm" in raw:
        slurm = check.mapping(raw["slurm"], "settings.slurm")
        check.keys(slurm, SLURM_KEYS, "settings.slurm")
        for key, value in slurm.items():
            kind, _ = SLURM_KEYS[key]
            if isinstance(value, bool) or not isinstance(value, kind):
                raise check.fail(
                    f"settings.slurm.{key}", f"must be {getattr(kind, '__name__', 'a number')}, got {_kind(value)}"
                )
        out["slurm"] = dict(slurm)
    return Settings(**out)


def _entries(check: _Checker, raw: Any, key: str) -> list[tuple[str, Entry]]:
    """``[(key path, entry)]`` with list-valued params expanded."""
    out = []
    for i, item in enumerate(check.nonempty_list(raw, key)):
        path = f"{key}[{i}]"
        if isinstance(item, str):
            item = {"name": item}
        item = check.mapping(item, path)
        check.keys(item, ("name", "params"), path)
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise check.fail(f"{path}.name", f"must be a non-empty string, got {_kind(name)}")
        params = item.get("params") or {}
        params = check.mapping(params, f"{path}.params")
        for pkey, pvalue in params.items():
            if isinstance(pvalue, list) and not pvalue:
                raise check.fail(f"{path}.params.{pkey}", "an empty list expands to no cases")
        for combo in _expand(params):
            out.append((path, Entry(name, combo)))
    return out


def _tolerances(check: _Checker, raw: Any) -> tuple[Tolerance, ...]:
    out = []
    for i, item in enumerate(check.nonempty_list(raw, "tolerances")):
        path = f"tolerances[{i}]"
        if isinstance(item, Mapping):
            check.keys(item, ("rtol", "atol"), path)
            if "rtol" not in item:
                raise check.fail(path, "needs rtol (and optionally atol)")
            rtol = _positive_number(check, item["rtol"], f"{path}.rtol")
            atol = _positive_number(check, item.get("atol", rtol), f"{path}.atol")
        else:
            rtol = atol = _positive_number(check, item, path)
        if rtol >= 1:
            raise check.fail(path, f"rtol must be below 1, got {rtol:g}")
        out.append(Tolerance(rtol, atol))
    return tuple(out)


EXPECT_METRICS = (
    "grad_rel_err", "grad_max_abs_err", "grad_cosine", "consistency_err", "fd_err", "nfe_forward", "nfe_backward",
    "steps_forward", "steps_backward", "time_forward_s", "time_backward_s", "time_total_s", "peak_memory_bytes",
)  # fmt: skip
EXPECT_WHERE = (
    "problem",
    "method",
    "solver",
    "backend",
    "dtype",
    "device",
    "rtol",
    "atol",
    "seed",
    "method_params",
    "problem_params",
)


def _expect(check: _Checker, raw: Any) -> tuple[Expectation, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise check.fail("expect", f"must be a list of rules, got {_kind(raw)}")
    out = []
    for i, rule in enumerate(raw):
        path = f"expect[{i}]"
        rule = check.mapping(rule, path)
        check.keys(rule, ("where", "max", "min"), path)
        where = check.mapping(rule.get("where") or {}, f"{path}.where")
        check.keys(where, EXPECT_WHERE, f"{path}.where")
        bounds = {}
        for side in ("max", "min"):
            b = check.mapping(rule.get(side) or {}, f"{path}.{side}")
            check.keys(b, EXPECT_METRICS, f"{path}.{side}")
            for metric, value in b.items():
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise check.fail(f"{path}.{side}.{metric}", f"must be a number, got {_kind(value)}")
            bounds[side] = {k: float(v) for k, v in b.items()}
        if not bounds["max"] and not bounds["min"]:
            raise check.fail(path, "needs max or min bounds")
        out.append(Expectation(where=dict(where), max=bounds["max"], min=bounds["min"], index=i))
    return tuple(out)


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def parse_suite(raw: Any, source: str = "<suite>") -> Suite:
    """Validate a suite given as data (the parsed YAML)."""
    from ..backends import MethodError, make_method
    from ..problems import ProblemError, get_problem

    check = _Checker(source)
    raw = check.mapping(raw, "")
    check.keys(raw, TOP_KEYS, "")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise check.fail("name", f"required: a name of letters, digits, '.', '_' or '-', got {_kind(name)}")
    description = raw.get("description") or ""
    if not isinstance(description, str):
        raise check.fail("description", f"must be text, got {_kind(description)}")
    settings = _settings(check, raw.get("settings"))
    for key in ("problems", "methods", "tolerances"):
        if key not in raw:
            raise check.fail(key, "is required")

    problems = []
    for path, entry in _entries(check, raw["problems"], "problems"):
        try:
            get_problem(entry.name, dict(entry.params))
        except ProblemError as exc:
            raise check.fail(path, str(exc)) from None
        problems.append(entry)
    methods = []
    for path, entry in _entries(check, raw["methods"], "methods"):
        try:
            make_method(entry.name, entry.params)
        except MethodError as exc:
            raise check.fail(path, str(exc)) from None
        methods.append(entry)
    return Suite(
        name=name,
        description=description,
        settings=settings,
        problems=tuple(dict.fromkeys(problems)),
        methods=tuple(dict.fromkeys(methods)),
        tolerances=tuple(dict.fromkeys(_tolerances(check, raw["tolerances"]))),
        expect=_expect(check, raw.get("expect")),
        source=source,
        raw=raw,
    )


def load_suite(path: str | Path) -> Suite:
    """Read and validate a suite file; bad input raises :class:`UsageError` naming the key."""
    import yaml

    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path}: no such suite file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: not valid YAML: {exc}") from None
    return parse_suite(raw, str(path))


def override_settings(suite: Suite, **changes: Any) -> Suite:
    """The suite with settings replaced (CLI flags), validated the same way."""
    from dataclasses import replace

    raw_settings = {**(suite.raw.get("settings") or {}), **{k: v for k, v in changes.items() if v is not None}}
    settings = _settings(_Checker("command line"), raw_settings)
    return replace(suite, settings=settings, raw={**suite.raw, "settings": raw_settings})
