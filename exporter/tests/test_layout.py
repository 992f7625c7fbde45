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


# The tree's stages, lowest first (docs/architecture.md): a module imports its own stage and the
# ones it is allowed below it, never one above; the operations and dbt Cloud never reach a run.
STAGES = {
    "base": {"cio_sync", "cio_sync._errors", "cio_sync._sql", "cio_sync._output"},
    "project": {"cio_sync._project"},
    "read, decide, encode, send, state": {"cio_sync._read", "cio_sync._decide", "cio_sync._encode",
                                          "cio_sync._send", "cio_sync._state"},
    "run": {"cio_sync._run"},
    "operations": {"cio_sync._ops", "cio_sync._cloud"},
    "cli": {"cio_sync.cli", "cio_sync._cli"},
}
MAY_IMPORT = {
    "base": {"base"},
    "project": {"base", "project"},
    "read, decide, encode, send, state": {"base", "project", "read, decide, encode, send, state"},
    "run": {"base", "project", "read, decide, encode, send, state", "run"},
    "operations": {"base", "project", "read, decide, encode, send, state", "operations"},
    "cli": set(STAGES),
}


def stage_of(module: str) -> str | None:
    """The stage a module belongs to (None: the test tooling, fake_server and testing)."""
    top = ".".join(module.split(".")[:2])
    return next((stage for stage, tops in STAGES.items() if module in tops or top in tops), None)


def test_every_module_belongs_to_a_stage():
    graph = internal_imports()
    strays = sorted(name for name in graph if stage_of(name) is None
                    and not name.startswith(("cio_sync.fake_server", "cio_sync.testing")))
    assert not strays, f"modules in no stage of the layout: {strays}"


def test_imports_point_down_the_stages():
    graph = internal_imports()
    wrong = sorted(f"{name} ({stage_of(name)}) imports {target} ({stage_of(target)})"
                   for name, targets in graph.items() if stage_of(name) is not None
                   for target in targets if stage_of(target) is not None
                   and stage_of(target) not in MAY_IMPORT[stage_of(name)])  # type: ignore[index]
    assert not wrong, "\n".join(wrong)


def test_operations_never_reach_into_a_run():
    graph = internal_imports()
    for operation in ("cio_sync._cli.ops", "cio_sync._ops.status", "cio_sync._ops.reconcile", "cio_sync._cloud",
                      "cio_sync._ops.exposures", "cio_sync._ops.alerts", "cio_sync._cli.check", "cio_sync._ops.check"):
        reached = {name for name in reachable(graph, operation) if stage_of(name) == "run"}
        assert not reached, (operation, reached)


def test_the_per_row_policy_touches_no_database_and_no_network():
    graph = internal_imports()
    assert reachable(graph, "cio_sync._decide.rules") <= {
        "cio_sync._encode", "cio_sync._project.model", "cio_sync._read.rows", "cio_sync._errors", "cio_sync",
        "cio_sync._sql"}


def test_a_kind_is_a_module_of_the_kinds_package():
    """A new Customer.io kind plugs in as a module of _run.kinds registered in SYNCS."""
    from cio_sync._run.kinds import SYNCS
    from cio_sync._run.model_sync import ModelSync

    for kind, sync in SYNCS.items():
        assert issubclass(sync, ModelSync) and sync.__module__.startswith("cio_sync._run.kinds."), kind


def test_the_command_line_starts_without_dbt_adapters_or_http():
    """`cio-export --help` and `--version` answer at once: the CLI module imports dbt, the
    warehouse drivers and the HTTP client only when a command runs (dbt's CLI alone took seconds
    to import). Checked in a fresh interpreter, as a user's shell would start it."""
    import subprocess
    import sys

    heavy = ["dbt", "duckdb", "psycopg2", "redshift_connector", "agate", "httpx", "starlette", "uvicorn", "rich"]
    code = ("import sys, cio_sync.cli; "
            f"print(','.join(sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r}))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"importing cio_sync.cli imported {out}"


def test_every_command_help_writes_defaults_one_way_and_names_its_environment_variables():
    """Help texts agree with each other: defaults as `[default: ...]`, a required --select said to
    be required, every option read from the environment naming its variable, `run` naming the
    Customer.io variables."""
    import re

    from click.testing import CliRunner

    from cio_sync.cli import main

    runner = CliRunner()
    commands = [name for name in main.commands if name != "fake-server"]  # forwarded: its own options below
    assert {"run", "status", "history", "reset", "validate", "reconcile"} <= set(commands)
    for name in commands:
        command = main.commands[name]
        text = " ".join(runner.invoke(main, [name, "--help"], terminal_width=400).output.split())
        assert not re.search(r"\[(\d+|on a terminal)\]|when unset|the nearest one", text), (name, text)
        for param in command.params:
            if getattr(param, "envvar", None):
                assert f"env var: {param.envvar}" in text, (name, param.name)
        select = next((p for p in command.params if p.name == "select"), None)
        if select is not None:
            required = name == "reset"
            assert ("[required" in select.help) == required and ("[default:" in select.help) != required, name
    fake = " ".join(runner.invoke(main, ["fake-server", "--help"], terminal_width=400).output.split())
    assert fake.startswith("Usage: cio-export fake-server [OPTIONS]") and "--port INTEGER Port; 0 picks" in fake
    assert not re.search(r"\(default|\[\d+\]", fake), fake
    track = ["CUSTOMERIO_SITE_ID", "CUSTOMERIO_API_KEY", "CUSTOMERIO_REGION", "CUSTOMERIO_TRACK_URL"]
    cloud = ["DBT_CLOUD_URL", "DBT_CLOUD_ACCOUNT_ID", "DBT_CLOUD_API_TOKEN"]
    app = ["CUSTOMERIO_APP_API_KEY", "CUSTOMERIO_REGION", "CUSTOMERIO_APP_RATE_LIMIT"]
    expected = {"run": track, "cloud-run": cloud + track, "serve": ["DBT_CLOUD_WEBHOOK_SECRET", *cloud, *track],
                "reconcile": app, "spot-check": app}
    for name, variables in expected.items():
        text = runner.invoke(main, [name, "--help"], terminal_width=400).output
        assert [v for v in variables if v not in text] == [], name
