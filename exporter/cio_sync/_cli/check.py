"""``cio-export check``: what production's next sync would do with a pull request's build, for CI.
Built on the shared options (options); ``register(main)`` adds it to the cio-export group (cli.py
calls it). This module never imports cli.py."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .._errors import CioSyncError, ConfigError
from .options import dbt_context, dbt_options, flatten, resolve_state_schema

__all__ = ["register"]


def register(main: click.Group) -> None:
    """Add `check` to ``main`` (the cio-export group). Calling it again changes nothing."""
    if "check" not in main.commands:
        main.add_command(check)


@click.command("check")
@dbt_options(select="Models to check, selected as production's run selects them")
@click.option("--state-schema", envvar="CIO_SYNC_STATE_SCHEMA", show_envvar=True, default=None,
              help="Production's state schema, read only [default: var cio_state_schema, else cio_sync_state].")
@click.option("--state", "production_path", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Production's dbt artifacts (a directory with its manifest.json), as dbt's --state: which "
              "models production syncs [default: those with state in --state-schema].")
@click.option("--allow-mixed-identifiers", is_flag=True, help="As for run, when production's runs pass it.")
@click.option("--skip-build-proof", is_flag=True,
              help="As for run, when production's runs pass it: do not require proof (the cio_sync.record_build() "
              "post-hook) that the build made the relations read.")
@click.option("--json", "json_output", is_flag=True, help="Print the report as JSON on stdout.")
def check(project_dir, profiles_dir, profile, target, target_path, vars_, select, exclude, state_schema,  # noqa: PLR0913 - a click command: one parameter per option
          production_path, allow_mixed_identifiers, skip_build_proof, json_output) -> None:
    """What production's next sync would do with this build (a pull request's, built into a CI
    schema): the models it would block (payload shape or identifier kind changed, too many people
    given a new identifier, removals or suppressions over their caps, a renamed relation), the
    synced models it adds and those it would no longer sync. Reads the build's artifacts, its
    relations and the production state; writes nothing, sends nothing.

    Exit codes: 0 nothing would block or leave the sync; 1 a model would be blocked, or a synced
    model would no longer be synced; 2 configuration or usage error (no build at --target-path, no
    state in --state-schema)."""
    from .._ops.check import BuildCheck, Production
    from .._output import Reporter
    from .._project.artifacts import Artifacts, close_adapter, open_adapter
    from .._project.gates import build_problem
    from .._project.hints import nothing_selected
    from .._state import StateStore

    reporter = Reporter(progress=False, json_mode=json_output)
    try:
        ctx = dbt_context(project_dir, profiles_dir, profile, target, target_path, vars_)
        artifacts = Artifacts.load(ctx.target_path)
        problem = build_problem(artifacts)
        if problem is not None:
            raise ConfigError(f"{ctx.target_path} holds no dbt build to check: {problem}")
        selection, excluded = flatten(select) or ("tag:cio",), flatten(exclude)
        specs, invalid = _synced(ctx, artifacts, selection, excluded)
        if not specs and not invalid:
            raise ConfigError(nothing_selected(selection, artifacts, ctx.selector))
        production = None
        if production_path is not None:
            if not (production_path / "manifest.json").is_file():
                raise ConfigError(f"--state {production_path}: no manifest.json there; give the directory of "
                                  "production's dbt artifacts (the target path of its last build)")
            theirs = Artifacts.load(production_path)
            production = Production(theirs, _synced(ctx, theirs, selection, excluded)[0])
        schema = resolve_state_schema(state_schema, ctx)
        adapter = open_adapter(ctx, artifacts)
        try:
            with adapter.connection_named("cio-export"):
                state = StateStore(adapter, schema, read_only=True).open()
                try:
                    if not state.available:
                        raise ConfigError(
                            f"no cio-export state in schema {schema} on {target or 'the default target'}: give "
                            "--state-schema the schema production's `cio-export run` keeps its state in (the "
                            "check compares the build with it; the build's target must be able to read it)")
                    proofs = None if skip_build_proof else resolve_state_schema(None, ctx)  # where the build wrote them
                    report = BuildCheck(state, adapter, artifacts, production, proofs).run(
                        specs, invalid, allow_mixed_identifiers)
                finally:
                    state.close()
        finally:
            close_adapter(adapter)
    except CioSyncError as exc:
        reporter.error(str(exc))
        sys.exit(exc.exit_code)
    _print(reporter, report, ctx.target_path)
    if json_output:
        import orjson

        sys.stdout.write(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2).decode() + "\n")
    sys.exit(report.exit_code)


def _synced(ctx, artifacts, select: tuple[str, ...], exclude: tuple[str, ...]) -> tuple[list, dict[str, str]]:
    """The selected models that sync (meta.cio, not enabled: false), as dbt's selection has them,
    and those whose meta.cio is invalid (name -> the error a run would stop with)."""
    from .._project.artifacts import select_models
    from .._project.model import ModelSpec

    specs, invalid = [], {}
    for unique_id in select_models(ctx, artifacts, select, exclude):
        node = artifacts.node(unique_id)
        try:
            spec = ModelSpec.from_node(node)
        except ConfigError as exc:
            invalid[node["name"]] = str(exc)
            continue
        if spec is not None and spec.meta.get("enabled") is not False:
            specs.append(spec)
    return specs, invalid


def _print(reporter, report, target_path: Path) -> None:
    """The report for people: a table of the models, then what each finding says."""
    from rich.table import Table

    from .._output import utc_text

    console = reporter.console
    production = f", production's manifest in {report.production_artifacts}" if report.production_artifacts else ""
    console.print(f"cio-export check: the build in {target_path} (dbt invocation {report.dbt_invocation_id}) against "
                  f"production's state in {report.state_schema}{production}", markup=False)
    table = Table(title_justify="left")
    for column in ("model", "kind", "verdict", "rows", "new or changed"):
        table.add_column(column, justify="right" if column in ("rows", "new or changed") else "left")
    for m in report.models:
        verdict = m.verdict + "".join(f", {_third_person(str(f.details['action']))} {f.details['leaving']:,}"
                                      for f in m.findings if f.check == "removals" and not f.blocks)
        table.add_row(m.model, m.kind or "-", verdict, *("-" if n is None else f"{n:,}" for n in (m.rows, m.changed)))
    console.print(table)
    for problem in report.problems:
        console.print(f"  production's run would stop: {problem}", markup=False)
    for m in report.models:
        for finding in m.findings:
            label = "WOULD BLOCK" if finding.blocks else "would remove"
            console.print(f"  {m.model}: {label} ({finding.check}): {finding.message}", markup=False)
        for note in m.notes:
            when = f" (last synced {utc_text(m.last_synced_at)})" if m.change == "removed" and m.last_synced_at else ""
            console.print(f"  {m.model}: {note}{when}", markup=False)
    blocked = sum(m.blocks for m in report.models)
    removed = sum(m.verdict == "removed" for m in report.models)
    new = sum(m.verdict == "new" for m in report.models)
    console.print(f"{blocked} would block, {removed} would leave the sync, {new} new: exit {report.exit_code}",
                  markup=False)


def _third_person(verb: str) -> str:
    """delete -> deletes, suppress -> suppresses."""
    return verb + ("es" if verb.endswith("s") else "s")
