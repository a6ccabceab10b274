"""Public names that load their module on first use (PEP 562), so light imports stay light."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(namespace: dict[str, Any], targets: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``targets[name]`` on first access and caches it."""

    def __getattr__(name: str) -> Any:
        if name in targets:
            value = getattr(importlib.import_module(targets[name]), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {namespace['__name__']!r} has no attribute {name!r}")

    return __getattr__
