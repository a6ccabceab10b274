"""The package's import graph: no module imports one that (through others) imports it back.

Every import counts, at module level and inside functions (a lazy import is still a
dependency), except those under ``if TYPE_CHECKING:``, which never run. Importing ``a.b.c``
runs the packages ``a`` and ``a.b`` too: those count. A module named only in a string
(``lazy_getattr`` maps, the method catalogue's ``"module:Class"``, ``import_module``) is not an
edge: loading by name on demand is how a catalogue stays below what it lists.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "odebench"


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, is_package: bool, modules: set[str]) -> set[str]:
    """The package's modules that ``module`` imports (a package's ``__init__`` for a package)."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:  # `from . import _submodule` imports the submodule, not the package's names
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    own = {module.rsplit(".", k)[0] for k in range(module.count(".") + 1)}  # itself and its packages: running already
    out: set[str] = set()
    for name in found & modules:
        parts = name.split(".")
        out.update(p for p in (".".join(parts[:k]) for k in range(1, len(parts) + 1)) if p in modules and p not in own)
    return out


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    paths = {_module_name(p, root): p for p in root.rglob("*.py")}
    modules = set(paths)
    return {
        name: _imports(ast.parse(path.read_text()), name, path.name == "__init__.py", modules)
        for name, path in paths.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def test_the_package_has_no_import_cycles():
    graph = import_graph()
    assert len(graph) > 80 and graph["odebench.problems._torch"] >= {"odebench.ode", "odebench.problems._problem"}
    assert cycles(graph) == []


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"a.py": "from . import b", "b.py": "def f():\n    from .a import x"}, [["pkg.a", "pkg.b"]]),
        ({"a.py": "from .b import y", "b.py": "import pkg.a"}, [["pkg.a", "pkg.b"]]),
        (
            {
                "a.py": "from . import b",
                "b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import x",
            },
            [],
        ),
        (
            {"a.py": "from .sub import c", "sub/__init__.py": "from ._c import c", "sub/_c.py": "from ..a import x"},
            [["pkg.a", "pkg.sub", "pkg.sub._c"]],
        ),
        (
            {"a.py": "from .sub._c import c", "sub/__init__.py": "from ..a import x", "sub/_c.py": ""},
            [["pkg.a", "pkg.sub"]],
        ),
        (
            {"a.py": "import pkg.sub._c", "sub/__init__.py": "def f():\n    from .. import a", "sub/_c.py": ""},
            [["pkg.a", "pkg.sub"]],
        ),
        ({"sub/_c.py": "from .. import a", "a.py": "x = 1"}, []),  # a module's own packages are running already
    ],
)
def test_the_cycle_check_sees_lazy_relative_and_package_imports(tmp_path, files, expected):
    root = tmp_path / "pkg"
    for name, text in {"__init__.py": "", **files}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    assert cycles(import_graph(root)) == expected
