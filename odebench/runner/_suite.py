"""Suite files: read, validated at the boundary, and expanded into cases.

Every error names the file, the key path (``methods[1].params.solver``) and what would
be valid, and is raised before anything runs. Inside, code trusts a :class:`Suite`.

The file is bounded before it is believed: its YAML may expand (aliases counted at their
full size) to at most :data:`MAX_YAML_NODES` values, and the suite to at most ``max_cases``
cases, counted before anything is expanded. A suite is code: a ``package.module:function``
problem is only checked for form here, and imported and called by :func:`resolve_factories`
for the cases that will run.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._cases import WHERE_KEYS, case_label, label, parse_where
from .._errors import UsageError
from .._yaml import with_yaml12_floats

MAX_CASES = 10_000  # `odebench run --max-cases N` raises it
MAX_YAML_NODES = 100_000  # values in the YAML once aliases are expanded; real suites hold hundreds
INT64 = (-(2**63), 2**63 - 1)  # the records' integer columns
DTYPES = ("float32", "float64")
DEVICES = ("cpu", "cuda", "auto")
TOP_KEYS = ("name", "description", "settings", "problems", "methods", "tolerances", "expect")
SLURM_KEYS: dict[str, tuple[type | tuple[type, ...], str]] = {
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
    reference_timeout_s: float | None = None  # None: derived from timeout_s, see __post_init__
    memory_limit_mb: int | None = None
    slurm: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A reference is a tighter solve than a case, but a hung one must not hold a quick suite for half an hour.
        if self.reference_timeout_s is None:
            object.__setattr__(self, "reference_timeout_s", min(10 * self.timeout_s, 1800.0))


SETTINGS_DOC = {
    "dtype": "float32 | float64 (or a list of them)",
    "device": "cpu | cuda | auto (or a list)",
    "seed": "an integer (or a list)",
    "repeats": "timed repetitions after warm-up (integer >= 1)",
    "warmup": "untimed repetitions before timing (integer >= 0)",
    "timeout_s": "seconds per case before its worker is killed (number > 0)",
    "threads": "torch/BLAS threads per case (integer >= 1)",
    "fd_check": "check each gradient against finite differences of its own loss (true | false)",
    "reference_timeout_s": "seconds allowed to compute one reference gradient (number > 0; default 10 x timeout_s, "
    "at most 1800)",
    "memory_limit_mb": "address-space limit per worker above its baseline, MB (integer, or null)",
    "slurm": "submitit/Slurm options: " + ", ".join(SLURM_KEYS),
}


@dataclass(frozen=True, eq=False)
class Entry:
    """One problem or method of the suite, with its (already expanded) parameters."""

    name: str
    params: Mapping[str, Any]
    key_path: str = field(default="", repr=False)  # where the suite file gives it, for messages

    @functools.cached_property
    def params_json(self) -> str:
        return json.dumps(dict(self.params), sort_keys=True)

    @property
    def label(self) -> str:
        """``name(k=v, ...)``, as every layer writes it (:func:`odebench._cases.label`)."""
        return label(self.name, self.params)

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
        """The case as records, the gate and ``compare`` name it; ``--only`` matches it."""
        return case_label(self.identity)


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


def _is_int(value: Any) -> bool:
    """An integer the records can hold (bool is not one)."""
    return isinstance(value, int) and not isinstance(value, bool) and INT64[0] <= value <= INT64[1]


def _check_json(check: _Checker, value: Any, path: str) -> None:
    """Refuse what JSON text (``*_params`` columns) cannot hold as it is: dates, sets, binary,
    pairs, keys that are not text, integers beyond int64, NaN and infinities."""
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, int):
        if not _is_int(value):
            raise check.fail(path, f"integer {value} is outside the 64-bit range")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise check.fail(path, f"must be a finite number, got {value}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_json(check, item, f"{path}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise check.fail(path, f"keys must be text, got {_kind(key)}")
            _check_json(check, item, f"{path}.{key}")
    else:
        raise check.fail(path, f"must be text, a number, true/false, null, a list or a mapping; got {_kind(value)}")


def _first_repeat(values: list) -> tuple[int, int] | None:
    """``(earlier, later)`` indices of the first value given twice (compared as JSON text, as case ids are)."""
    seen: dict[str, int] = {}
    for i, value in enumerate(values):
        text = json.dumps(value, sort_keys=True)
        if text in seen:
            return seen[text], i
        seen[text] = i
    return None


def _positive_number(check: _Checker, value: Any, path: str) -> float:
    number = isinstance(value, float) or _is_int(value)  # an int beyond int64 may not even fit a float
    if not number or not math.isfinite(value) or value <= 0:
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
            if kind is int and not _is_int(v):
                raise check.fail(p, f"must be a 64-bit integer, got {_kind(v)}")
        repeat = _first_repeat(values)
        if repeat:
            raise check.fail(f"settings.{key}[{repeat[1]}]", f"repeats settings.{key}[{repeat[0]}] ({values[repeat[0]]!r}); "
                             "each case would run twice")  # fmt: skip
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
            if not _is_int(v) or v < minimum:
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
        if not _is_int(v) or v < 1:
            raise check.fail("settings.memory_limit_mb", f"must be a positive integer or null, got {_kind(v)}")
        out["memory_limit_mb"] = v
    if "slurm" in raw:
        slurm = check.mapping(raw["slurm"], "settings.slurm")
        check.keys(slurm, SLURM_KEYS, "settings.slurm")
        for key, value in slurm.items():
            kind, _ = SLURM_KEYS[key]
            too_big = isinstance(value, int) and not _is_int(value)
            if isinstance(value, bool) or not isinstance(value, kind) or too_big:
                raise check.fail(
                    f"settings.slurm.{key}", f"must be {getattr(kind, '__name__', 'a number')}, got {_kind(value)}"
                )
        out["slurm"] = dict(slurm)
    return Settings(**out)


@dataclass(frozen=True)
class _Given:
    """A problem or method as the file gives it, its list-valued params not yet expanded."""

    path: str
    name: str
    params: Mapping[str, Any]

    @property
    def count(self) -> int:
        return math.prod(len(v) for v in self.params.values() if isinstance(v, list))

    def expand(self) -> list[Entry]:
        return [Entry(self.name, combo, self.path) for combo in _expand(self.params)]


def _entries(check: _Checker, raw: Any, key: str) -> list[_Given]:
    """The entries of ``problems`` or ``methods``, checked but not expanded."""
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
            if not isinstance(pkey, str):
                raise check.fail(f"{path}.params", f"keys must be text, got {_kind(pkey)}")
            ppath = f"{path}.params.{pkey}"
            _check_json(check, pvalue, ppath)
            if isinstance(pvalue, list) and not pvalue:
                raise check.fail(ppath, "an empty list expands to no cases")
            repeat = _first_repeat(pvalue) if isinstance(pvalue, list) else None
            if repeat:
                raise check.fail(f"{ppath}[{repeat[1]}]", f"repeats {ppath}[{repeat[0]}] ({pvalue[repeat[0]]!r}); "
                                 "each case would run twice")  # fmt: skip
        out.append(_Given(path, name, dict(params)))
    return out


def _unique(check: _Checker, entries: list[Entry], what: str) -> tuple[Entry, ...]:
    """The entries in order, refusing one that repeats another (its cases would run twice)."""
    seen: dict[Entry, str] = {}
    for entry in entries:
        if entry in seen:
            raise check.fail(entry.key_path, f"gives the same {what} as {seen[entry]} ({entry.label}); "
                             "each case would run twice")  # fmt: skip
        seen[entry] = entry.key_path
    return tuple(seen)


def _tolerances(check: _Checker, raw: Any) -> tuple[Tolerance, ...]:
    seen: dict[Tolerance, str] = {}
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
        tolerance = Tolerance(rtol, atol)
        if tolerance in seen:
            raise check.fail(path, f"gives the same tolerance as {seen[tolerance]} (rtol={rtol:g}, atol={atol:g}); "
                             "each case would run twice")  # fmt: skip
        seen[tolerance] = path
    return tuple(seen)


def _check_count(check: _Checker, settings: Settings, factors: Mapping[str, int], max_cases: int) -> None:
    """Refuse a suite of more than ``max_cases`` cases, counted from the list lengths alone."""
    factors = {**factors, "dtypes": len(settings.dtype), "devices": len(settings.device), "seeds": len(settings.seed)}
    n = math.prod(factors.values())
    if n > max_cases:
        product = " x ".join(f"{v:,} {k}" for k, v in factors.items() if v > 1)
        raise check.fail("", f"expands to {n:,} cases ({product}), more than the limit of {max_cases:,}; "
                         "shorten its lists, or raise the limit with --max-cases N")  # fmt: skip


EXPECT_METRICS = (
    "grad_rel_err", "grad_max_abs_err", "grad_cosine", "consistency_err", "fd_err", "nfe_forward", "nfe_backward",
    "steps_forward", "steps_backward", "time_forward_s", "time_backward_s", "time_total_s", "peak_memory_bytes",
)  # fmt: skip


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
        check.keys(where, WHERE_KEYS, f"{path}.where")
        parse_where(where, f"{path}.where", check.fail)  # the values, as the gate checks them
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


def parse_suite(raw: Any, source: str = "<suite>", *, max_cases: int = MAX_CASES) -> Suite:
    """Validate a suite given as data (the parsed YAML), of at most ``max_cases`` cases.

    Factories given by import path are checked for form only; see :func:`resolve_factories`.
    """
    from ..backends import MethodError, make_method
    from ..problems import ProblemError, get_problem, is_factory_path

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
    given_problems = _entries(check, raw["problems"], "problems")
    given_methods = _entries(check, raw["methods"], "methods")
    tolerances = _tolerances(check, raw["tolerances"])
    counts = {
        "problems": sum(g.count for g in given_problems),
        "methods": sum(g.count for g in given_methods),
        "tolerances": len(tolerances),
    }
    _check_count(check, settings, counts, max_cases)

    problems = _unique(check, [e for g in given_problems for e in g.expand()], "problem")
    for entry in problems:
        try:
            if not is_factory_path(entry.name):  # a factory is imported later, and only if one of its cases runs
                get_problem(entry.name, dict(entry.params))
        except ProblemError as exc:
            raise check.fail(entry.key_path, str(exc)) from None
    methods = _unique(check, [e for g in given_methods for e in g.expand()], "method")
    for entry in methods:
        try:
            make_method(entry.name, entry.params)
        except MethodError as exc:
            raise check.fail(entry.key_path, str(exc)) from None
    return Suite(
        name=name,
        description=description,
        settings=settings,
        problems=problems,
        methods=methods,
        tolerances=tolerances,
        expect=_expect(check, raw.get("expect")),
        source=source,
        raw=raw,
    )


def resolve_factories(suite: Suite, cases: list[Case]) -> None:
    """Import and call the ``package.module:function`` problems of these cases (those that will run).

    A suite is code: a factory runs with the user's rights, so only the selected cases' are touched.

    Raises:
        UsageError: a factory that cannot be imported, lacks the attribute, rejects its params
            or does not return a Problem, naming the file and the entry.
    """
    from ..problems import ProblemError, get_problem, is_factory_path

    check = _Checker(suite.source)
    for entry in dict.fromkeys(c.problem for c in cases):
        try:
            if is_factory_path(entry.name):
                get_problem(entry.name, dict(entry.params))
        except ProblemError as exc:
            raise check.fail(entry.key_path, str(exc)) from None


@functools.cache
def _bounded_loader() -> type:
    import yaml

    class BoundedLoader(yaml.SafeLoader):
        """PyYAML's safe loader, refusing repeated keys and documents beyond :data:`MAX_YAML_NODES` values."""

        source = "<suite>"

        def __init__(self, stream):
            super().__init__(stream)
            self.composed = 0

        def compose_node(self, parent, index):
            if not self.check_event(yaml.AliasEvent):  # an alias adds no node; expanded_size counts what it repeats
                self.composed += 1
                if self.composed > MAX_YAML_NODES:
                    raise _too_big(self.source)
            return super().compose_node(parent, index)

        def construct_mapping(self, node, deep=False):
            keys: dict[tuple[str, str], int] = {}
            for key, _ in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    line = key.start_mark.line + 1
                    if (key.tag, key.value) in keys:
                        raise UsageError(f"{self.source}: line {line}: key {key.value!r} repeats the one on line "
                                         f"{keys[key.tag, key.value]} (the later would silently win)")  # fmt: skip
                    keys[key.tag, key.value] = line
            return super().construct_mapping(node, deep)

    return with_yaml12_floats(BoundedLoader)


def _too_big(source: str) -> UsageError:
    return UsageError(f"{source}: the YAML holds more than {MAX_YAML_NODES:,} values once its aliases (*name) are "
                      "expanded; a suite needs far fewer")  # fmt: skip


def _expanded_size(node, source: str) -> int:
    """The number of values ``node`` stands for, each alias counted at the size of what it repeats."""
    import yaml

    sizes: dict[int, int | None] = {}  # by node id; None while a node's children are counted

    def size(node) -> int:
        if id(node) in sizes:
            known = sizes[id(node)]
            if known is None:
                raise UsageError(f"{source}: line {node.start_mark.line + 1}: an alias refers to a collection "
                                 "that contains it")  # fmt: skip
            return known
        sizes[id(node)] = None
        if isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            children = node.value if isinstance(node, yaml.SequenceNode) else []
        total = 1
        for child in children:
            total += size(child)
            if total > MAX_YAML_NODES:
                raise _too_big(source)
        sizes[id(node)] = total
        return total

    return size(node)


def _read_yaml(text: str, source: str) -> Any:
    """The YAML document in ``text``, bounded before it is built (an alias bomb costs nothing)."""
    import yaml

    loader = _bounded_loader()(text)
    loader.source = source
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, source)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise UsageError(f"{source}: not valid YAML: {exc}") from None
    except RecursionError:
        raise UsageError(f"{source}: not valid YAML: nested too deeply") from None
    finally:
        loader.dispose()


def load_suite(path: str | Path, *, max_cases: int = MAX_CASES) -> Suite:
    """Read and validate a suite file; bad input raises :class:`UsageError` naming the key."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path}: no such suite file")
    if path.is_dir():
        raise UsageError(f"{path}: is a folder, not a suite file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start})") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the suite file: {exc.strerror or exc}") from None
    return parse_suite(_read_yaml(text, str(path)), str(path), max_cases=max_cases)


def override_settings(suite: Suite, **changes: Any) -> Suite:
    """The suite with settings replaced (CLI flags), validated the same way."""
    from dataclasses import replace

    raw_settings = {**(suite.raw.get("settings") or {}), **{k: v for k, v in changes.items() if v is not None}}
    settings = _settings(_Checker("command line"), raw_settings)
    return replace(suite, settings=settings, raw={**suite.raw, "settings": raw_settings})
