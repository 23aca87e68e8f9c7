"""The floors of docs/architecture.md, checked on the source: who may import whom, and no cycles.

Read from the files with ``ast`` (nothing is imported), counting imports inside functions too:
a lazy import still ties two modules together, it only hides the tie from the import system.
Imports under ``if TYPE_CHECKING:`` are annotations only and do not count.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mvarchive"


def _module_files() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


MODULES = _module_files()


def _runtime_imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement except those guarded by ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for stmt in node.orelse for n in _runtime_imports(stmt))
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        yield from _runtime_imports(node)


def _imported_names(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = module.split(".")
        if not MODULES[module].name == "__init__.py":
            base = base[:-1]
        base = base[: len(base) - (node.level - 1)]
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    return [f"{prefix}.{alias.name}" if f"{prefix}.{alias.name}" in MODULES else prefix for alias in node.names]


def _imports(module: str) -> set[str]:
    """Fully qualified names this module imports (third-party ones as written)."""
    tree = ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))
    return {name for node in _runtime_imports(tree) for name in _imported_names(module, node)}


def _owner(name: str) -> str | None:
    """The mvarchive module that ``name`` (a module or something in one) lives in."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


GRAPH = {m: {o for o in map(_owner, _imports(m)) if o and o != m} for m in MODULES}


def _cycles() -> list[list[str]]:
    """Strongly connected components with more than one module (iterative Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in sorted(GRAPH):
        if start in index:
            continue
        work = [(start, iter(sorted(GRAPH[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(GRAPH[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_scan_sees_the_package():
    """Guards the test itself: a broken scan would find no cycles and no violations."""
    assert "mvarchive.codecs" in MODULES and len(MODULES) > 50
    assert any(o.startswith("mvarchive.codecs") for o in GRAPH["mvarchive.training.loop"])


def test_no_import_cycles():
    assert _cycles() == []


ORCHESTRATION = ("prefect", "prefect_dask", "dask", "distributed", "mlflow")

#: package -> what it must never import (mvarchive packages by prefix, third-party by top-level name)
FORBIDDEN: dict[str, tuple[str, ...]] = {
    # codecs are pure models and bitstreams: usable from a notebook with torch and compressai alone
    "mvarchive.codecs": (
        *ORCHESTRATION, "zarr",
        "mvarchive.cli", "mvarchive.flows", "mvarchive.tasks", "mvarchive.scheduling", "mvarchive.models",
        "mvarchive.tracking", "mvarchive.monitoring", "mvarchive.infra", "mvarchive.evaluation",
        "mvarchive.training", "mvarchive.datasets",
    ),
    "mvarchive.datasets": (*ORCHESTRATION, "mvarchive.cli", "mvarchive.flows", "mvarchive.tasks", "mvarchive.codecs"),
    "mvarchive.storage": (*ORCHESTRATION, "mvarchive.cli", "mvarchive.flows", "mvarchive.tasks", "mvarchive.codecs"),
    "mvarchive.tasks": ("mvarchive.cli", "mvarchive.flows", "mvarchive.scheduling"),
    "mvarchive.flows": ("mvarchive.cli",),
    "mvarchive.training": ("mvarchive.cli", "mvarchive.flows", "mvarchive.scheduling"),
    "mvarchive.evaluation": ("mvarchive.cli", "mvarchive.flows", "mvarchive.scheduling"),
}


def _violations(package: str, forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for module in sorted(m for m in MODULES if m == package or m.startswith(package + ".")):
        for name in sorted(_imports(module)):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                found.append(f"{module} imports {name}")
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_floors(package):
    assert _violations(package, FORBIDDEN[package]) == []


def test_nothing_below_the_cli_imports_it():
    below = [m for m in MODULES if not (m == "mvarchive.cli" or m.startswith("mvarchive.cli."))]
    found = [f"{m} imports {n}" for m in below for n in _imports(m)
             if n == "mvarchive.cli" or n.startswith("mvarchive.cli.")]
    assert found == []
