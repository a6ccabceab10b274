"""Gate rules: the thresholds per check, per-case overrides, and cases to ignore.

A rules file (YAML) has three optional top-level keys::

    defaults:                     # thresholds for every case (built-in ones otherwise)
      grad_rel_err: {factor: 2.0}
    rules:                        # in order; a later matching rule overrides what it sets
      - where: {method: "diffrax.*"}
        time: {factor: 2.0}
    ignore:                       # cases that are not gated at all
      - {problem: neural_mlp, method: torchdiffeq.adjoint, reason: "flaky timeout"}

Everything is validated when read: an unknown key, a wrong type or a value out of
range is a :class:`~odebench.UsageError` naming the file, the key path and the valid
choices.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .._cases import WHERE_KEYS, Where, parse_where
from .._errors import UsageError
from .._yaml import safe_load

TIME_MODES = ("relative", "absolute", "both")
DEFAULT_ORIGIN = "default"


@dataclass(frozen=True)
class StatusRule:
    """A case that was ok in the baseline and is not ok now is a regression."""

    skip: bool = False
    origin: str = DEFAULT_ORIGIN


@dataclass(frozen=True)
class MissingRule:
    """A baseline case that the run does not hold is a regression."""

    skip: bool = False
    origin: str = DEFAULT_ORIGIN


@dataclass(frozen=True)
class GradRule:
    """``grad_rel_err`` may grow to ``factor`` x baseline + ``floor``.

    ``floor=None`` means 100 machine epsilons of the case's dtype: round-off moves
    errors near epsilon by integer factors without anything being wrong.
    """

    skip: bool = False
    factor: float = 2.0
    floor: float | None = None
    origin: str = DEFAULT_ORIGIN


@dataclass(frozen=True)
class NfeRule:
    """``nfe_forward`` and ``nfe_backward`` may grow by ``max_increase`` (a fraction)."""

    skip: bool = False
    max_increase: float = 0.05
    origin: str = DEFAULT_ORIGIN


@dataclass(frozen=True)
class StepsRule:
    """``steps_forward`` and ``steps_backward`` may grow by ``max_increase`` (a fraction)."""

    skip: bool = False
    max_increase: float = 0.05
    origin: str = DEFAULT_ORIGIN


@dataclass(frozen=True)
class MemoryRule:
    """The peak may grow by ``max_increase`` where measured by CUDA or JAX.

    The resident-set peak (``rss``) is noisy: it is gated with ``rss_max_increase``,
    and not at all while that is ``None``.
    """

    skip: bool = False
    max_increase: float = 0.05
    rss_max_increase: float | None = None
    origin: str = DEFAULT_ORIGIN


@dataclass(frozen=True)
class TimeRule:
    """Time may grow by ``factor``, unless the samples do not show it (p >= ``alpha``).

    ``relative`` divides each case's run/baseline time ratio by a speed factor measured
    in the same two runs: by default (``reference=None``) the median ratio of the other
    methods on the same problem, so that a uniformly slower machine changes nothing and
    no single method's noise decides; with ``reference`` a method name, that method's
    median ratio on the problem. ``absolute`` compares seconds; ``both`` applies both.
    Cases faster than ``min_time_s`` in the run are not time-gated: timer and scheduler
    noise dominate there.

    ``informational`` reports time changes without failing the gate. When the run and
    the baseline ran on different CPU models, time is informational too, unless
    ``enforce_on_other_cpu``: another CPU changes methods' speeds by different factors.
    """

    skip: bool = False
    mode: str = "relative"
    reference: str | None = None
    factor: float = 1.6
    alpha: float = 0.01
    min_time_s: float = 1e-3
    informational: bool = False
    enforce_on_other_cpu: bool = False
    origin: str = DEFAULT_ORIGIN


@dataclass(frozen=True)
class Thresholds:
    """One rule per check: what the gate applies to one case."""

    status: StatusRule = field(default_factory=StatusRule)
    missing: MissingRule = field(default_factory=MissingRule)
    grad_rel_err: GradRule = field(default_factory=GradRule)
    nfe: NfeRule = field(default_factory=NfeRule)
    steps: StepsRule = field(default_factory=StepsRule)
    memory: MemoryRule = field(default_factory=MemoryRule)
    time: TimeRule = field(default_factory=TimeRule)


SECTIONS: tuple[str, ...] = tuple(f.name for f in fields(Thresholds))
_Overrides = tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]  # section -> ((key, value), ...)


@dataclass(frozen=True)
class Rule:
    """Overrides for the cases ``where`` matches: section -> ((key, value), ...)."""

    where: Where
    overrides: _Overrides
    origin: str


@dataclass(frozen=True)
class Ignore:
    """Cases left out of the gate, with the reason given."""

    where: Where
    reason: str = ""
    origin: str = ""


@dataclass(frozen=True)
class Rules:
    """Everything the gate is configured with; ``Rules()`` is the built-in defaults."""

    defaults: Thresholds = field(default_factory=Thresholds)
    rules: tuple[Rule, ...] = ()
    ignore: tuple[Ignore, ...] = ()
    source: str = "built-in defaults"

    def for_case(self, case: Mapping[str, Any]) -> Thresholds:
        """The thresholds for one case: the defaults, then each matching rule in order."""
        resolved = self.defaults
        for rule in self.rules:
            if rule.where.matches(case):
                resolved = _overridden(resolved, rule.overrides, rule.origin)
        return resolved

    def ignored(self, case: Mapping[str, Any]) -> Ignore | None:
        """The first ignore entry matching ``case``, if any."""
        return next((entry for entry in self.ignore if entry.where.matches(case)), None)


def _overridden(thresholds: Thresholds, overrides: _Overrides, origin: str) -> Thresholds:
    """``thresholds`` with the values of ``overrides`` set, each section set marked ``origin``."""
    changed = {
        section: replace(getattr(thresholds, section), **dict(values), origin=origin) for section, values in overrides
    }
    return replace(thresholds, **changed)


# ---------------------------------------------------------------- reading and validation


class _Reader:
    """Validates the parsed YAML; every error names the file and the key path."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, path: str, message: str) -> UsageError:
        return UsageError(f"{self.source}: {path}: {message}" if path else f"{self.source}: {message}")

    def mapping(self, data: Any, path: str, valid: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise self.fail(path, f"expected a mapping with keys {', '.join(valid)}; got {_kind(data)}")
        for key in data:
            if key not in valid:
                raise self.fail(_join(path, str(key)), f"unknown key; valid keys: {', '.join(valid)}")
        return data

    def listing(self, data: Any, path: str) -> list[Any]:
        if data is None:
            return []
        if not isinstance(data, list):
            raise self.fail(path, f"expected a list; got {_kind(data)}")
        return data


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(data: Any) -> str:
    return "nothing" if data is None else f"{type(data).__name__} {data!r}"


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _boolean(v: Any) -> str | None:
    return None if isinstance(v, bool) else "expected true or false"


def _at_least(low: float, strict: bool = False) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        if not _is_number(v) or v < low or (strict and v == low):
            return f"expected a number {'>' if strict else '>='} {low:g}"
        return None

    return check


def _optional(check: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
    def optional(v: Any) -> str | None:
        error = check(v) if v is not None else None
        return f"{error}, or null" if error else None

    return optional


def _open_interval(v: Any) -> str | None:
    return None if _is_number(v) and 0 < v < 1 else "expected a number between 0 and 1 (exclusive)"


def _one_of(choices: tuple[str, ...]) -> Callable[[Any], str | None]:
    return lambda v: None if v in choices else f"expected one of {', '.join(choices)}"


def _text(v: Any) -> str | None:
    return None if isinstance(v, str) and v else "expected a non-empty string"


# section -> key -> validator (returns an error text or None)
_SECTION_KEYS: dict[str, dict[str, Callable[[Any], str | None]]] = {
    "status": {"skip": _boolean},
    "missing": {"skip": _boolean},
    "grad_rel_err": {"skip": _boolean, "factor": _at_least(1.0), "floor": _optional(_at_least(0.0))},
    "nfe": {"skip": _boolean, "max_increase": _at_least(0.0)},
    "steps": {"skip": _boolean, "max_increase": _at_least(0.0)},
    "memory": {
        "skip": _boolean,
        "max_increase": _at_least(0.0),
        "rss_max_increase": _optional(_at_least(0.0)),
    },
    "time": {
        "skip": _boolean,
        "mode": _one_of(TIME_MODES),
        "reference": _optional(_text),
        "factor": _at_least(1.0, strict=True),
        "alpha": _open_interval,
        "min_time_s": _at_least(0.0),
        "informational": _boolean,
        "enforce_on_other_cpu": _boolean,
    },
}


def _section_values(reader: _Reader, section: str, data: Any, path: str) -> tuple[tuple[str, Any], ...]:
    valid = tuple(_SECTION_KEYS[section])
    body = reader.mapping(data if data is not None else {}, path, valid)
    values = []
    for key, raw in body.items():
        error = _SECTION_KEYS[section][key](raw)
        if error:
            raise reader.fail(_join(path, key), f"{error}; got {_kind(raw)}")
        values.append((key, float(raw) if _is_number(raw) else raw))
    return tuple(values)


def _overrides(reader: _Reader, body: dict[str, Any], path: str) -> _Overrides:
    """The validated values of each section in ``body`` (a rule's ``where`` aside)."""
    return tuple(
        (section, _section_values(reader, section, raw, _join(path, section)))
        for section, raw in body.items()
        if section != "where"
    )


def rules_from_dict(data: Any, source: str = "<rules>") -> Rules:
    """Rules from parsed YAML (a dict); ``source`` names it in error messages."""
    reader = _Reader(source)
    name = Path(source).name
    body = reader.mapping(data if data is not None else {}, "", ("defaults", "rules", "ignore"))
    raw_defaults = body.get("defaults")
    defaults_body = reader.mapping(raw_defaults if raw_defaults is not None else {}, "defaults", SECTIONS)
    defaults = _overridden(Thresholds(), _overrides(reader, defaults_body, "defaults"), f"{name}:defaults")
    rules = []
    for i, entry in enumerate(reader.listing(body.get("rules"), "rules")):
        path = f"rules[{i}]"
        entry = reader.mapping(entry, path, ("where",) + SECTIONS)
        overrides = _overrides(reader, entry, path)
        where = parse_where(entry.get("where"), _join(path, "where"), reader.fail)
        rules.append(Rule(where=where, overrides=overrides, origin=f"{name}:{path}"))
    ignore = []
    for i, entry in enumerate(reader.listing(body.get("ignore"), "ignore")):
        path = f"ignore[{i}]"
        entry = dict(reader.mapping(entry, path, WHERE_KEYS + ("reason",)))
        reason = entry.pop("reason", "")
        if not isinstance(reason, str):
            raise reader.fail(_join(path, "reason"), f"expected a string; got {_kind(reason)}")
        if not entry:
            raise reader.fail(
                path, f"an ignore entry needs at least one of {', '.join(WHERE_KEYS)} (it would ignore every case)"
            )
        ignore.append(Ignore(where=parse_where(entry, path, reader.fail), reason=reason, origin=f"{name}:{path}"))
    return Rules(defaults=defaults, rules=tuple(rules), ignore=tuple(ignore), source=str(source))


def load_rules(path: str | os.PathLike) -> Rules:
    """Read and validate a YAML rules file; :class:`~odebench.UsageError` if it is not valid."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read rules file {path}: {exc.strerror or exc}") from exc
    try:
        data = safe_load(text)
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: not valid YAML: {exc}") from exc
    return rules_from_dict(data, source=str(path))
