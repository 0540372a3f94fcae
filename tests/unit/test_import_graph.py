"""The shape of the code holds: imports point one way, and the engine's files stay small.

cli (``flows/cli.py``) → deployments → flows → tasks → lakehouse; inside the engine, no
cycle between modules (any import, also one inside a function) nor between packages (the
imports run when a module loads). Read from the source's AST: nothing is imported here.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOPS = ("lakehouse", "tasks", "flows", "deployments")
CLI = "flows.cli"
"""The command line: outermost, it may import flows and deployments; nothing imports it."""
MAX_LINES = 400


def _name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {_name(p): p for top in TOPS for p in sorted((ROOT / top).rglob("*.py"))}


def _imported(node: ast.Import | ast.ImportFrom, module: str, path: Path) -> Iterable[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:  # relative: from the module's package
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    # ``from pkg import mod`` imports the module pkg.mod (its package's __init__ runs first, as
    # for any submodule); ``from mod import name`` imports mod
    submodules = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules()]
    return submodules if len(submodules) == len(node.names) else [base, *submodules]


@cache
def imports(module: str, *, loading: bool) -> frozenset[str]:
    """The project's modules ``module`` imports: when it loads (``loading``), or at all."""
    path = modules()[module]
    tree = ast.parse(path.read_text())
    nodes = tree.body if loading else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if loading and isinstance(node, ast.If):  # ``if TYPE_CHECKING:`` blocks do not run
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            found |= {m for m in _imported(node, module, path) if m in modules() and m != module}
    return frozenset(found)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
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
            visit(v)
    return found


def _engine() -> list[str]:
    return [m for m in modules() if m.split(".")[0] == "lakehouse"]


def _package(module: str) -> str:
    """The package a module belongs to: its folder; a module directly in lakehouse/ is its own."""
    path = modules()[module]
    if path.name == "__init__.py" or path.parent == ROOT / "lakehouse":
        return module
    return module.rsplit(".", 1)[0]


def _arrows(sources: Iterable[str], targets: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{m} → {i}"
        for m in sources
        for i in imports(m, loading=False)
        if i == CLI or i.split(".")[0] in targets and not i.startswith(CLI)
    )


def test_no_cycle_between_engine_modules() -> None:
    graph = {m: set(imports(m, loading=False)) & set(_engine()) for m in _engine()}
    assert _cycles(graph) == []


def test_no_cycle_between_engine_packages() -> None:
    graph: dict[str, set[str]] = {}
    for m in _engine():
        graph.setdefault(_package(m), set()).update(
            _package(i) for i in imports(m, loading=True) if i.startswith("lakehouse") and _package(i) != _package(m)
        )
    assert _cycles(graph) == []


def test_the_engine_imports_no_orchestration() -> None:
    assert _arrows(_engine(), ("tasks", "flows", "deployments")) == []


def test_flows_import_neither_deployments_nor_the_cli() -> None:
    flows = [m for m in modules() if m.startswith("flows") and m != CLI]
    assert _arrows(flows, ("deployments",)) == []


def test_tasks_import_no_flows_and_deployments_no_cli() -> None:
    assert _arrows([m for m in modules() if m.startswith("tasks")], ("flows", "deployments")) == []
    assert _arrows([m for m in modules() if m.startswith("deployments")], ()) == []


def test_nothing_imports_the_cli() -> None:
    assert sorted(m for m in modules() if CLI in imports(m, loading=False)) == []


def test_only_the_loader_and_dev_tools_import_the_yaml_loader() -> None:
    """The engine reads specs (:mod:`lakehouse.specs`), never the declaration's models."""
    users = [
        m for m in _engine()
        if not m.startswith(("lakehouse.declaration", "lakehouse.dev"))
        and any(i.startswith("lakehouse.declaration") for i in imports(m, loading=False))
    ]
    assert users == []


def test_the_engine_uses_no_dev_tool_but_its_crash_points() -> None:
    """Development tools (simulator, moto server, proxy, shop) are not engine; the crash
    points (:mod:`lakehouse.dev.faults`) are called at the engine's write boundaries."""
    uses = sorted(
        f"{m} → {i}"
        for m in _engine()
        if not m.startswith("lakehouse.dev")
        for i in imports(m, loading=False)
        if i.startswith("lakehouse.dev") and i not in ("lakehouse.dev", "lakehouse.dev.faults")
    )
    assert uses == []


def test_no_engine_file_is_over_400_lines() -> None:
    long = {m: n for m in _engine() if (n := len(modules()[m].read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_the_graph_sees_the_imports() -> None:
    """The walk finds imports of every form the code uses (or the tests above prove nothing)."""
    assert "lakehouse.specs" in imports("lakehouse.commit", loading=False) or "lakehouse.errors" in imports(
        "lakehouse.commit", loading=False
    )
    assert "lakehouse.layers.silver" in imports("tasks.layers", loading=True)  # from lakehouse.layers import silver
    assert "deployments.stack" in imports(CLI, loading=False)  # inside a function
    assert len(modules()) > 60
