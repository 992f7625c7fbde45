"""The exporter's layout (docs/architecture.md): imports point one way, the operations commands
never reach into a run, and the per-row policy stays pure. Read from the source's imports, so a
change that breaks the layout fails here before anyone has to notice it in review."""

from __future__ import annotations

import ast
from pathlib import Path

import cio_sync

PACKAGE = Path(cio_sync.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def internal_imports() -> dict[str, set[str]]:
    """Each module of cio_sync -> the cio_sync modules it imports (at any depth of its code)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    target = f"{base}.{node.module}" if node.module else base
                else:
                    target = node.module or ""
                submodules = [f"{target}.{alias.name}" for alias in node.names]
                # `from . import x` of a submodule x imports x, not the package's face
                candidates = [s for s in submodules if s in modules] or [target]
                if node.module:
                    candidates.append(target)
            elif isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            else:
                continue
            found.update(c for c in candidates if c in modules and c != name)
        graph[name] = found
    return graph


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_no_module_imports_itself_back():
    graph = internal_imports()
    # A package imports its own modules (its face); what is checked is that no module of the
    # package imports its way back to where it started.
    cycles = sorted(name for name in graph if name in reachable(graph, name))
    assert not cycles, f"import cycles through: {cycles}"


def test_operations_never_reach_into_a_run():
    graph = internal_imports()
    run = {"cio_sync._runner", "cio_sync._model_sync", "cio_sync._kinds", "cio_sync._people_sync",
           "cio_sync._event_sync", "cio_sync._outcomes", "cio_sync._sinks"}
    for operation in ("cio_sync._ops_cli", "cio_sync._status", "cio_sync._reconcile", "cio_sync._cloud",
                      "cio_sync._exposures"):
        assert not reachable(graph, operation) & run, operation


def test_the_per_row_policy_touches_no_database_and_no_network():
    graph = internal_imports()
    assert reachable(graph, "cio_sync._decide") <= {"cio_sync._encode", "cio_sync._model", "cio_sync._rows",
                                                     "cio_sync._errors", "cio_sync", "cio_sync._sql"}


def test_the_layers_below_the_run_do_not_import_it():
    graph = internal_imports()
    below = ("cio_sync._warehouse", "cio_sync._state", "cio_sync._transport", "cio_sync._encode",
             "cio_sync._decide", "cio_sync._model", "cio_sync._rows")
    for name in below:
        assert not reachable(graph, name) & {"cio_sync._runner", "cio_sync._model_sync", "cio_sync.cli"}, name
