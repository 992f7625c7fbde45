"""dbt artifacts, model selection, sync gates and the warehouse adapter.

The exporter runs after ``dbt build``: it reads ``manifest.json`` and ``run_results.json`` from the
target path, selects models with dbt's own selector engine on the already-loaded manifest, decides
per model whether the build was good enough to sync (the gate), and opens the warehouse through
dbt's adapter for the project's profile and target.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cio_sync._errors import ConfigError

if TYPE_CHECKING:
    from dbt.adapters.base import BaseAdapter, BaseRelation
    from dbt.config.runtime import RuntimeConfig
    from dbt.contracts.graph.manifest import Manifest

__all__ = [
    "Artifacts",
    "DbtContext",
    "close_adapter",
    "load_config",
    "open_adapter",
    "parse_vars",
    "relation_for",
    "relation_name",
    "resolve_profiles_dir",
    "state_schema_for",
    "select_models",
]

MANIFEST_FILE = "manifest.json"
#: the state schema when the project sets no cio_state_schema (the package's default too)
DEFAULT_STATE_SCHEMA = "cio_sync_state"
#: what a state schema's name may be: a plain SQL identifier (it is written into statements)
STATE_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
RUN_RESULTS_FILE = "run_results.json"

#: generic tests that prove a column unique
_UNIQUE_TESTS = frozenset({"unique", "unique_event_key"})


# --------------------------------------------------------------------------------------------
# Context
# --------------------------------------------------------------------------------------------


def parse_vars(text: str | None) -> dict:
    """Parse a ``--vars`` string (YAML or JSON mapping) the way dbt does."""
    if text is None or not text.strip():
        return {}
    from dbt.config.utils import parse_cli_vars
    from dbt_common.exceptions import DbtBaseException

    try:
        return dict(parse_cli_vars(text))
    except DbtBaseException as exc:
        raise ConfigError(f"--vars must be a YAML or JSON mapping: {exc}") from exc


def _default_target_path(project_dir: Path) -> Path:
    """dbt's order without a --target-path flag: DBT_TARGET_PATH, dbt_project.yml's target-path,
    then ``target``; relative paths are relative to the project directory."""
    configured = os.environ.get("DBT_TARGET_PATH")
    if not configured:
        try:
            import yaml

            project_yml = yaml.safe_load((project_dir / "dbt_project.yml").read_text()) or {}
            value = project_yml.get("target-path") if isinstance(project_yml, dict) else None
            if isinstance(value, str) and "{{" not in value:
                configured = value
        except Exception:  # an unreadable project file is reported later, by dbt
            configured = None
    path = Path(configured or "target")
    return path if path.is_absolute() else project_dir / path


@dataclass(frozen=True)
class DbtContext:
    """Where the dbt project, its profile and its artifacts are."""

    project_dir: Path
    profiles_dir: Path | None  # None = dbt's default resolution (DBT_PROFILES_DIR, cwd, ~/.dbt)
    target: str | None
    target_path: Path
    vars: dict = field(default_factory=dict)
    profile: str | None = None
    selector: str | None = None  # a YAML selector of the project's selectors.yml, in place of select/exclude

    @classmethod
    def create(
        cls,
        project_dir: str | os.PathLike | None = None,
        *,
        profiles_dir: str | os.PathLike | None = None,
        target: str | None = None,
        target_path: str | os.PathLike | None = None,
        vars: str | Mapping | None = None,
        profile: str | None = None,
        selector: str | None = None,
    ) -> DbtContext:
        """Fill in dbt's defaults: the project is the nearest directory holding dbt_project.yml,
        the target path ``<project_dir>/target`` (or DBT_TARGET_PATH), vars parsed like --vars."""
        if project_dir is None:
            from dbt.cli.resolvers import default_project_dir

            project = default_project_dir()
        else:
            project = Path(project_dir)
        project = project.expanduser().resolve()
        if target_path is None:
            resolved_target_path = _default_target_path(project)
        else:
            resolved_target_path = Path(target_path).expanduser()
            if not resolved_target_path.is_absolute():
                resolved_target_path = project / resolved_target_path
        parsed_vars = parse_vars(vars) if vars is None or isinstance(vars, str) else dict(vars)
        return cls(
            project_dir=project,
            profiles_dir=Path(profiles_dir).expanduser().resolve() if profiles_dir is not None else None,
            target=target,
            target_path=resolved_target_path,
            vars=parsed_vars,
            profile=profile,
            selector=selector,
        )


def resolve_profiles_dir(ctx: DbtContext) -> Path:
    """The profiles directory dbt would use: the explicit one, else DBT_PROFILES_DIR, else the
    current directory when it holds profiles.yml, else ~/.dbt."""
    if ctx.profiles_dir is not None:
        return Path(ctx.profiles_dir)
    env = os.environ.get("DBT_PROFILES_DIR")
    if env:
        return Path(env).expanduser()
    from dbt.cli.resolvers import default_profiles_dir

    return Path(default_profiles_dir())


# --------------------------------------------------------------------------------------------
# Artifacts
# --------------------------------------------------------------------------------------------


class Artifacts:
    """manifest.json (as dbt's Manifest and as raw JSON) and run_results.json of one target path."""

    def __init__(
        self,
        manifest: Manifest,
        manifest_dict: dict,
        run_results: dict | None,
        target_path: Path | None = None,
    ) -> None:
        self.manifest = manifest
        self.manifest_dict = manifest_dict
        self.run_results = run_results
        self.target_path = target_path
        self.invocation_id: str = (manifest_dict.get("metadata") or {}).get("invocation_id") or ""
        self._tests_by_model: dict[str, list[str]] | None = None
        self._results_by_id: dict[str, dict] | None = None

    @classmethod
    def load(cls, target_path: Path) -> Artifacts:
        target_path = Path(target_path)
        manifest_path = target_path / MANIFEST_FILE
        if not manifest_path.is_file():
            raise ConfigError(
                f"No dbt manifest at {manifest_path}: run `dbt build` first "
                "(or point --target-path at the directory dbt wrote its artifacts to)."
            )
        from dbt.contracts.graph.manifest import Manifest, WritableManifest
        from dbt_common.exceptions import DbtBaseException

        try:
            manifest_dict = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"Cannot read {manifest_path}: {exc}") from exc
        if not isinstance(manifest_dict, dict):
            raise ConfigError(f"{manifest_path} is not a dbt manifest")
        try:
            writable = WritableManifest.read_and_check_versions(str(manifest_path))
            manifest = Manifest.from_writable_manifest(writable)
        except DbtBaseException as exc:
            raise ConfigError(f"Cannot load {manifest_path}: {exc}") from exc
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"Cannot load {manifest_path}: {type(exc).__name__}: {exc}") from exc

        run_results_path = target_path / RUN_RESULTS_FILE
        run_results: dict | None = None
        if run_results_path.is_file():
            try:
                run_results = json.loads(run_results_path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ConfigError(f"Cannot read {run_results_path}: {exc}") from exc
            if not isinstance(run_results, dict):
                raise ConfigError(f"{run_results_path} is not a dbt run_results.json")
        return cls(manifest, manifest_dict, run_results, target_path)

    def node(self, unique_id: str) -> dict:
        """The raw manifest JSON of a node (model, seed, test, ...), source or unit test."""
        for section in ("nodes", "sources", "unit_tests"):
            found = (self.manifest_dict.get(section) or {}).get(unique_id)
            if found is not None:
                return found
        raise KeyError(f"{unique_id} is not in {MANIFEST_FILE}")

    @property
    def run_results_invocation_id(self) -> str | None:
        if self.run_results is None:
            return None
        return (self.run_results.get("metadata") or {}).get("invocation_id")

    def tests_for(self, unique_id: str) -> list[str]:
        """unique_ids of the data tests and unit tests that depend on the node, sorted."""
        if self._tests_by_model is None:
            index: dict[str, list[str]] = {}
            candidates = [
                node for node in (self.manifest_dict.get("nodes") or {}).values() if node.get("resource_type") == "test"
            ]
            candidates += list((self.manifest_dict.get("unit_tests") or {}).values())
            for test in candidates:
                for parent in (test.get("depends_on") or {}).get("nodes") or ():
                    index.setdefault(parent, []).append(test["unique_id"])
            self._tests_by_model = {key: sorted(set(value)) for key, value in index.items()}
        return list(self._tests_by_model.get(unique_id, ()))

    def column_tested_unique(self, unique_id: str, column: str) -> bool:
        """Whether a uniqueness test of `column` (dbt's `unique`, the package's
        `unique_event_key`) on the node passed in this run."""
        for test_id in self.tests_for(unique_id):
            try:
                test = self.node(test_id)
            except KeyError:
                continue
            metadata = test.get("test_metadata") or {}
            tested = test.get("column_name") or (metadata.get("kwargs") or {}).get("column_name")
            result = self.result(test_id)
            if (metadata.get("name") in _UNIQUE_TESTS and str(tested or "").strip('"').lower() == column.lower()
                    and not (test.get("config") or {}).get("where")  # a filtered test proves nothing of the rest
                    and result is not None and result.get("status") == "pass"):
                return True
        return False

    def result(self, unique_id: str) -> dict | None:
        """The node's result in run_results.json (the last one, should it appear twice)."""
        if self.run_results is None:
            return None
        if self._results_by_id is None:
            self._results_by_id = {
                result["unique_id"]: result
                for result in self.run_results.get("results") or ()
                if isinstance(result, dict) and "unique_id" in result
            }
        return self._results_by_id.get(unique_id)


# --------------------------------------------------------------------------------------------
# Selection
# --------------------------------------------------------------------------------------------


def _dbt_global_args(ctx: DbtContext) -> list[str]:
    args = ["--project-dir", str(ctx.project_dir), "--profiles-dir", str(resolve_profiles_dir(ctx))]
    if ctx.target:
        args += ["--target", ctx.target]
    if ctx.profile:
        args += ["--profile", ctx.profile]
    if ctx.vars:
        args += ["--vars", json.dumps(ctx.vars, default=str)]
    return args


def select_models(
    ctx: DbtContext,
    artifacts: Artifacts,
    select: tuple[str, ...],
    exclude: tuple[str, ...],
) -> list[str]:
    """unique_ids of the selected models, exactly as ``dbt ls --resource-type model`` would select
    them (tags, names, paths, graph operators, unions, intersections, wildcards, exclude), sorted.

    dbt's own ``ls`` runs in-process on the loaded manifest: nothing is parsed, nothing is printed,
    and the few files ``ls`` writes (graph_summary.json) go to a scratch directory, not the target.
    """
    from dbt.cli.main import dbtRunner

    with tempfile.TemporaryDirectory(prefix="cio-export-ls-") as scratch:
        args = [
            "ls",
            "--resource-type",
            "model",
            "--output",
            "json",
            "--output-keys",
            "unique_id",
            *_dbt_global_args(ctx),
            "--target-path",
            scratch,
            "--log-path",
            scratch,
            "--quiet",
            "--log-level",
            "none",
            "--log-level-file",
            "none",
            "--no-send-anonymous-usage-stats",
            "--no-write-json",
        ]
        selected = [item for item in select if item and item.strip()]
        excluded = [item for item in exclude if item and item.strip()]
        if ctx.selector:  # dbt resolves it from selectors.yml; --select/--exclude are refused with it
            selected, excluded = [], []
            args += ["--selector", ctx.selector]
        if selected:
            args += ["--select", *selected]
        if excluded:
            args += ["--exclude", *excluded]
        cwd = os.getcwd()
        try:
            outcome = dbtRunner(manifest=artifacts.manifest).invoke(args)
        finally:
            os.chdir(cwd)
    if not outcome.success:
        if outcome.exception is not None:
            message = str(outcome.exception).strip()
        else:
            message = "dbt ls failed"
        _raise_if_adapter_missing(message, ctx)
        raise ConfigError(f"dbt could not select models (select={list(select)}, exclude={list(exclude)}): {message}")
    unique_ids: set[str] = set()
    for line in outcome.result if isinstance(outcome.result, list) else ():  # dbt ls: its lines
        unique_id = json.loads(line)["unique_id"] if isinstance(line, str) else line["unique_id"]
        if unique_id.startswith("model."):
            unique_ids.add(unique_id)
    return sorted(unique_ids)


# --------------------------------------------------------------------------------------------
# Adapter
# --------------------------------------------------------------------------------------------


def load_config(ctx: DbtContext) -> RuntimeConfig:
    """dbt's RuntimeConfig of the project, profile and target (env_var(), IAM, SSL, ... resolved
    by dbt itself). Profile problems surface as ConfigError."""
    from argparse import Namespace

    from dbt.config.runtime import RuntimeConfig
    from dbt.flags import set_from_args
    from dbt_common.context import set_invocation_context
    from dbt_common.exceptions import DbtBaseException

    set_invocation_context(os.environ)
    args = Namespace(
        project_dir=str(ctx.project_dir),
        profiles_dir=str(resolve_profiles_dir(ctx)),
        target=ctx.target,
        vars=dict(ctx.vars),
        profile=ctx.profile,
        threads=None,
    )
    cwd = os.getcwd()
    try:
        set_from_args(args, None)
        return RuntimeConfig.from_args(args)
    except DbtBaseException as exc:
        _raise_if_adapter_missing(str(exc), ctx)
        raise ConfigError(f"Cannot load the dbt profile for {ctx.project_dir}: {exc}") from exc
    finally:
        os.chdir(cwd)


#: The warehouses cio-sync supports, each an extra of the Python package (pip install 'cio-sync[postgres]').
WAREHOUSE_EXTRAS = ("postgres", "redshift", "duckdb")


def _raise_if_adapter_missing(message: str, ctx: DbtContext) -> None:
    """dbt's "Could not find adapter type X" (its adapter is not installed), said with the extra
    to install."""
    missing = re.search(r"Could not find adapter type (\w+)", message)
    if missing is None:
        return
    kind = missing.group(1)
    which = f"target {ctx.target}" if ctx.target else "the profile's default target"
    if kind in WAREHOUSE_EXTRAS:
        raise ConfigError(f"{which} is a {kind} warehouse, but its dbt adapter (dbt-{kind}) is not installed: "
                          f"pip install 'cio-sync[{kind}]'")
    raise ConfigError(f"{which} is of type {kind}, which cio-sync does not support: it syncs from "
                      f"{', '.join(WAREHOUSE_EXTRAS)} (pip install 'cio-sync[<warehouse>]')")


def state_schema_for(ctx: DbtContext, option: str | None = None) -> str:
    """Where cio-export keeps its state: --state-schema (or CIO_SYNC_STATE_SCHEMA), else var
    cio_state_schema as dbt resolves it for the package's models in this project and target
    (where the package's on-run-start and post-hooks write build proofs), else cio_sync_state."""

    if option:
        return option
    if "cio_state_schema" in ctx.vars:  # --vars: no need to load the project
        return ctx.vars["cio_state_schema"] or DEFAULT_STATE_SCHEMA
    return project_var(load_config(ctx), "cio_state_schema") or DEFAULT_STATE_SCHEMA


def open_adapter(ctx: DbtContext, artifacts: Artifacts) -> BaseAdapter:
    """dbt's adapter for the project's profile and target, with macros resolved from the loaded
    manifest. Profiles are loaded by dbt itself (env_var(), IAM, SSL, ...). The connection is
    tried once, so profile and connection problems surface here as ConfigError."""
    from dbt.adapters.factory import get_adapter, register_adapter, reset_adapters
    from dbt.context.providers import generate_runtime_macro_context
    from dbt.context.query_header import generate_query_header_context
    from dbt.mp_context import get_mp_context
    from dbt_common.events.base_types import EventLevel
    from dbt_common.exceptions import DbtBaseException

    config = load_config(ctx)

    # The adapter factory keeps one adapter per type, whatever its config: start afresh so this
    # profile/target is the one in use (an earlier open_adapter or dbt invocation may differ).
    reset_adapters()
    register_adapter(config, get_mp_context(), adapter_registered_log_level=EventLevel.DEBUG)
    adapter = get_adapter(config)
    adapter.set_macro_resolver(artifacts.manifest)
    adapter.set_macro_context_generator(generate_runtime_macro_context)
    adapter.connections.set_query_header(generate_query_header_context(config, artifacts.manifest))
    try:
        with adapter.connection_named("cio-export"):
            adapter.connections.get_thread_connection().handle  # noqa: B018 - opens the lazy handle
    except DbtBaseException as exc:
        raise ConfigError(f"Cannot connect with dbt target {config.target_name!r}: {exc}") from exc
    return adapter


def project_var(config: RuntimeConfig, name: str, package: str = "cio_sync") -> Any:
    """A var as dbt resolves it for the models of `package` in this project and target: --vars,
    then dbt_project.yml's `vars: {<package>: {<name>: ...}}`, then its global `vars: {<name>: ...}`
    (a value with Jinja, such as `"{{ target.name }}_state"`, rendered against the target); None
    when none of them sets it."""
    cli_vars = getattr(config, "cli_vars", None) or {}
    if name in cli_vars:
        return cli_vars[name]
    project_vars = config.vars.vars if hasattr(config.vars, "vars") else {}
    scoped = project_vars.get(package)
    if isinstance(scoped, dict) and name in scoped:
        value = scoped[name]
    elif name in project_vars and not isinstance(project_vars[name], dict):
        value = project_vars[name]
    else:
        return None
    if isinstance(value, str) and "{" in value:
        from dbt.clients.jinja import get_rendered
        from dbt.context.target import TargetContext

        value = get_rendered(value, TargetContext(config.to_target_dict(), cli_vars).to_dict())
    return value


def close_adapter(adapter: BaseAdapter) -> None:
    """Close the adapter's connections and release the database (dbt-duckdb keeps its database
    file open, and locked, for the whole process otherwise)."""
    adapter.cleanup_connections()
    close_all = getattr(type(adapter.connections), "close_all_connections", None)
    if callable(close_all):
        close_all()


def relation_for(adapter: BaseAdapter, node: Mapping[str, Any]) -> BaseRelation:
    """The relation a model node was built as."""
    return adapter.Relation.create(
        database=node.get("database"),
        schema=node.get("schema"),
        identifier=node.get("alias") or node.get("name"),
    )


def relation_name(node: Mapping[str, Any]) -> str:
    """The fully qualified, quoted name dbt rendered for the node."""
    name = node.get("relation_name")
    if not name:
        raise ConfigError(f"{node.get('unique_id', 'node')} has no relation (ephemeral models cannot be synced)")
    return name
