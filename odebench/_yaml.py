"""YAML as suite and rules files are read: PyYAML's safe loader, with YAML 1.2 floats.

PyYAML follows YAML 1.1, where ``1e-6`` (no dot) is a string; written in a tolerance it
would be refused, and in a rule's ``where`` it would match nothing.
"""

from __future__ import annotations

import re
from typing import Any

FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")


def with_yaml12_floats(loader: Any) -> Any:
    """``loader`` (a subclass of ``yaml.SafeLoader``, changed in place) reading ``1e-6`` as a float."""
    loader.yaml_implicit_resolvers = {key: list(value) for key, value in loader.yaml_implicit_resolvers.items()}
    loader.add_implicit_resolver("tag:yaml.org,2002:float", FLOAT, list("-+0123456789."))
    return loader


def safe_load(text: str) -> Any:
    """``yaml.safe_load`` with YAML 1.2 floats."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    return yaml.load(text, Loader=with_yaml12_floats(Loader))  # noqa: S506 - a SafeLoader
