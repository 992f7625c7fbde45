"""The `cio-export` command line. `run` is the default command, so
`cio-export --select tag:cio` works exactly as analytics teams type it."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path

import click
import orjson

from . import __version__
from ._cli.options import (
    RUN_ENVIRONMENT,
    SELECTOR,
    STATUS_ENVIRONMENT,
    dbt_context,
    dbt_options,
    flatten,
    resolve_state_schema,
    state_options,
    synced_specs,
)
from ._errors import CioSyncError, ConfigError

EXIT_OK, EXIT_REJECTED, EXIT_CONFIG, EXIT_UNDELIVERED = 0, 1, 2, 3


class DefaultGroup(click.Group):
    """A group whose default command is `run`: any invocation that does not start with a known
    command (or --help/--version) is a `run`."""

    default_command = "run"

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("--help", "-h", "--version")):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


def _parse_shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        index, count = (int(p) for p in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard must be K/N, e.g. 0/4, not {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise ConfigError(f"--shard {text}: need 0 <= K < N")
    return index, count


def _fail(reporter, exc: CioSyncError) -> None:
    reporter.error(str(exc))
    sys.exit(exc.exit_code)


#: exit code of a run that lost its warehouse connection (as for undelivered rows: run again)
EXIT_CONNECTION_LOST = 3
#: exit code of a run ended by an error cio-export did not expect (a bug: report it)
EXIT_UNEXPECTED = 4
#: exit code of a run stopped by Ctrl-C or SIGTERM (as for undelivered rows: run again)
EXIT_STOPPED = 3


class _stop_on_sigterm:
    """SIGTERM is handled like Ctrl-C while the run goes on (KeyboardInterrupt in the main
    thread), so schedulers that stop a job with it get the same orderly end."""

    def __enter__(self) -> None:
        import signal
        import threading

        def interrupt(signum, frame) -> None:
            raise KeyboardInterrupt

        self._signal = signal
        self._previous = None
        if threading.current_thread() is threading.main_thread():  # only there can a handler be set
            self._previous = signal.signal(signal.SIGTERM, interrupt)

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            self._signal.signal(self._signal.SIGTERM, self._previous)


def _is_connection_loss(exc: BaseException) -> bool:
    """A dropped or refused warehouse connection (the drivers' OperationalError/InterfaceError,
    dbt's FailedToConnectError, an OSError), anywhere in the exception's chain."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, ConnectionError) or type(seen).__name__ in (
                "OperationalError", "InterfaceError", "FailedToConnectError", "ConnectionException"):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _write_failure(ctx, dry_run: bool, message: str, code: int) -> None:
    """A run that ended in an error still writes its results file (no earlier run's file is
    left to be mistaken for this one's): no model results, the error and the exit code."""
    if ctx is None:
        return
    import time
    import uuid

    from ._run.results import RunSummary, write_results

    try:
        write_results(RunSummary(invocation_id=str(uuid.uuid4()), dbt_invocation_id=None, dry_run=dry_run,
                                 started_at=time.time(), results=[], error=message, exit_code=code),
                      ctx.target_path)
    except OSError:
        pass


def _selection_text(select, exclude, shard) -> str:
    """A run's selection as typed (what its alerts are about): --select or --selector,
    --exclude, --shard."""
    selector = click.get_current_context().meta.get(SELECTOR)
    text = f"--selector {selector}" if selector else "--select " + " ".join(flatten(select) or ("tag:cio",))
    text += " --exclude " + " ".join(flatten(exclude)) if flatten(exclude) else ""
    return text + (f" --shard {shard}" if shard else "")


def _alert_settings(required: str):
    """The alert settings, for a command asked to alert: without CIO_ALERT_WEBHOOK_URL it is a
    usage error."""
    from ._ops.alerts import alert_settings_from_env

    settings = alert_settings_from_env()
    if settings is None:
        raise ConfigError(f"{required} needs CIO_ALERT_WEBHOOK_URL: the webhook to alert (docs/exporter.md, Alerts)")
    return settings


def _alert_run(alerts, run, ctx, exporter, state_schema, reporter) -> None:  # noqa: PLR0913 - the run's parts, passed through
    """A run's alerts (when CIO_ALERT_WEBHOOK_URL is set): they never change its exit code."""
    if alerts is None:
        return
    from ._ops.alerts import alert_after_run

    if exporter is not None:  # the run's own (the option, else var cio_state_schema)
        state_schema = exporter.options.state_schema
    alert_after_run(alerts, run, ctx=ctx, artifacts=exporter and exporter.artifacts, state_schema=state_schema,
                    note=reporter.note)


@click.group(cls=DefaultGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="cio-export")
def main() -> None:
    """Sync dbt models to Customer.io after `dbt build`.

    Without a command, runs `run`: cio-export --select tag:cio"""


@main.command(epilog=RUN_ENVIRONMENT)
@dbt_options
@click.option("--dry-run", is_flag=True, help="Do everything except sending; no credentials needed.")
@click.option(
    "--outbox",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="With --dry-run: write the exact request bodies here, one NDJSON file per model.",
)
@click.option("--person", default=None, metavar="ID",
              help="With --dry-run: preview every item of this one person (their identifier, as each model's "
              "identifier column holds it), read through a filter in each model's query.")
@click.option("--json", "json_output", is_flag=True, help="Print the summary as JSON on stdout.")
@click.option("--quiet", "-q", is_flag=True,
              help="Log only what went wrong (errors, blocked models, rejects), as dbt's --quiet.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="How log lines are written on stderr: text, or one JSON object per line (ts, level, msg, and the "
              "model's figures), as dbt's --log-format json.")
@click.option("--concurrency", type=click.IntRange(1, 1024), default=None,
              help="Requests in flight at most: the bound of the limit that adapts to the measured latency "
              "[default: 256].")
@click.option("--max-bytes-in-flight", type=click.IntRange(1_000_000), default=None,
              help="Request bodies in flight at most, in bytes, whatever the concurrency [default: 64000000].")
@click.option(
    "--rate-limit",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Requests per second at most, across all workers and, on PostgreSQL, all shards sending to the "
    "workspace [default: 100].",
)
@click.option(
    "--batch-bytes",
    type=click.IntRange(1_000, 10_000_000),
    default=500_000,
    show_default=True,
    help="Request bodies stay strictly under this size.",
)
@click.option("--max-retries", type=click.IntRange(0, 100), default=None, help="Retries per request [default: 8].")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds per request [default: 30].")
@click.option("--max-backoff", type=click.FloatRange(min=0), default=None,
              help="Longest wait in seconds before retrying a request the server did not give a Retry-After "
              "[default: 60].")
@click.option(
    "--ignore-test-failures",
    is_flag=True,
    help="Sync models whose dbt tests failed (loudly). A model that failed to build is never synced.",
)
@click.option(
    "--allow-mixed-identifiers",
    is_flag=True,
    help="Allow selected models to identify people differently (email on some, id on others).",
)
@click.option("--progress/--no-progress", default=None, help="Progress bars [default: on a terminal].")
@state_options
@click.option("--full-refresh", is_flag=True,
              help="Resend every person of the selected people models (events are never replayed).")
@click.option("--retry-rejects", is_flag=True, help="Retry rows rejected before even if they have not changed.")
@click.option("--accept-schema-change", is_flag=True,
              help="Sync models whose payload shape changed (attributes removed, renamed or retyped).")
@click.option("--accept-relation-change", is_flag=True,
              help="Sync models whose relation moved (another database or schema) since their state was made.")
@click.option("--accept-identifier-changes", is_flag=True,
              help="Sync people models although more known people than max_identifier_changes (5%) get a new "
              "identifier.")
@click.option("--skip-build-proof", is_flag=True,
              help="Do not require proof (the cio_sync.record_build() post-hook) of which dbt run built a relation.")
@click.option("--lease-ttl", type=click.FloatRange(min=5), default=120.0, show_default=True,
              help="Seconds a model's lease lives without a heartbeat (Redshift, DuckDB: a killed run's lease expires "
              "after this; PostgreSQL frees it at once).")
@click.option("--dbt-cloud-run", default=None, help="Sync this dbt Cloud run (the artifacts of its dbt build step).")
@click.option("--dbt-cloud-job", default=None, help="Sync the latest finished run of this dbt Cloud job.")
@click.option("--shard", type=str, default=None, metavar="K/N",
              help="Sync only the rows whose key hashes to K of N (0 <= K < N); run N processes to share a model.")
@click.option("--shared-rate/--no-shared-rate", default=True, show_default=True,
              help="With --shard, on PostgreSQL: share --rate-limit with every shard sending to the workspace through "
              "this state schema; elsewhere, or off, each shard keeps --rate-limit / N.")
def run(  # noqa: PLR0913 - a click command: one parameter per option
    project_dir,
    profiles_dir,
    profile,
    target,
    target_path,
    vars_,
    select,
    exclude,
    dry_run,
    outbox,
    person,
    json_output,
    quiet,
    log_format,
    concurrency,
    max_bytes_in_flight,
    rate_limit,
    batch_bytes,
    max_retries,
    timeout,
    max_backoff,
    ignore_test_failures,
    allow_mixed_identifiers,
    progress,
    state_schema,
    full_refresh,
    retry_rejects,
    accept_schema_change,
    accept_identifier_changes,
    accept_relation_change,
    skip_build_proof,
    lease_ttl,
    dbt_cloud_run,
    dbt_cloud_job,
    shard,
    shared_rate,
) -> None:
    """Sync the selected models to Customer.io (the default command).

    Exit codes: 0 everything delivered; 1 rows rejected or models blocked by a failing build or
    test; 2 configuration or usage error (nothing sent); 3 delivery incomplete (retries
    exhausted, or the warehouse connection lost: run again); 4 an unexpected error (a bug)."""
    from ._ops.alerts import RunOutcome, alert_settings_from_env
    from ._output import Reporter
    from ._run.options import RunOptions
    from ._run.results import write_results
    from ._run.runner import Exporter
    from ._send.config import track_settings_from_env

    reporter = Reporter(json_mode=json_output, progress=progress, dry_run=dry_run, quiet=quiet, log_format=log_format)
    ctx = exporter = alerts = None
    selection = _selection_text(select, exclude, shard)
    try:
        alerts = None if dry_run else alert_settings_from_env()  # a dry run sends nothing, alerts neither
        if outbox and not dry_run:
            raise ConfigError("--outbox needs --dry-run")
        if person is not None and not dry_run:
            raise ConfigError("--person needs --dry-run: it previews one person's items and sends nothing")
        if dbt_cloud_run or dbt_cloud_job:
            from ._cloud import prepare_cloud_target

            target_path = prepare_cloud_target(dbt_cloud_run, dbt_cloud_job)
        ctx = dbt_context(project_dir, profiles_dir, profile, target, target_path, vars_)
        track = (
            None
            if dry_run
            else track_settings_from_env(
                os.environ,
                concurrency=concurrency,
                max_bytes_in_flight=max_bytes_in_flight,
                rate_limit=rate_limit,
                max_retries=max_retries,
                timeout=timeout,
                backoff_max=max_backoff,
                max_request_bytes=batch_bytes,
            )
        )
        # var cio_state_schema: where the package writes build proofs
        build_log_schema = resolve_state_schema(None, ctx)
        options = RunOptions(
            dbt=ctx,
            select=flatten(select) or ("tag:cio",),
            exclude=flatten(exclude),
            dry_run=dry_run,
            outbox=outbox,
            track=track,
            batch_bytes=batch_bytes,
            ignore_test_failures=ignore_test_failures,
            allow_mixed_identifiers=allow_mixed_identifiers,
            state_schema=state_schema or build_log_schema,
            build_log_schema=build_log_schema,
            full_refresh=full_refresh,
            retry_rejects=retry_rejects,
            accept_schema_change=accept_schema_change,
            accept_identifier_changes=accept_identifier_changes,
            accept_relation_change=accept_relation_change,
            require_build_proof=not skip_build_proof,
            lease_ttl=lease_ttl,
            shard=_parse_shard(shard),
            person=person,
            shared_rate=shared_rate,
        )
        if skip_build_proof:
            reporter.note("--skip-build-proof: relations are sent without proof of which dbt run built them")
        if ignore_test_failures:
            reporter.note("--ignore-test-failures: models whose dbt tests FAILED will be synced")
        exporter = Exporter(options, reporter)
        with _stop_on_sigterm():
            summary = exporter.run()
    except KeyboardInterrupt:
        # Ctrl-C or SIGTERM (a scheduler, Kubernetes): sending stops; what was acknowledged is
        # recorded, the leases are released, events in flight are resent by the next run.
        message = "stopped by a signal before the end: run again (what was in flight is resent safely)"
        _write_failure(ctx, dry_run, message, EXIT_STOPPED)
        reporter.error(message)
        sys.exit(EXIT_STOPPED)
    except CioSyncError as exc:
        _write_failure(ctx, dry_run, str(exc), exc.exit_code)
        _alert_run(alerts, RunOutcome(selection, exc.exit_code, str(exc)), ctx, exporter, state_schema, reporter)
        _fail(reporter, exc)
    except Exception as exc:  # noqa: BLE001 - anything unexpected ends as a result, not a traceback
        code = EXIT_CONNECTION_LOST if _is_connection_loss(exc) else EXIT_UNEXPECTED
        message = f"unexpected {type(exc).__name__}: {exc}".strip().splitlines()[0]
        _write_failure(ctx, dry_run, message, code)
        _alert_run(alerts, RunOutcome(selection, code, message), ctx, exporter, state_schema, reporter)
        reporter.error(message + ("; the warehouse connection was lost: run again" if code == EXIT_CONNECTION_LOST
                                  else "; please report it with the command line and this message"))
        if os.environ.get("CIO_EXPORT_TRACEBACK"):
            raise
        sys.exit(code)
    assert ctx is not None  # (every way out of the try above without it exits)
    path = write_results(summary, ctx.target_path)
    reporter.finish(summary, path)
    _alert_run(alerts, RunOutcome(selection, summary.exit_code, results=summary.results), ctx, exporter, state_schema,
               reporter)
    if json_output:
        sys.stdout.write(orjson.dumps(summary.as_dict(), option=orjson.OPT_INDENT_2).decode() + "\n")
    sys.exit(summary.exit_code)


@main.command()
@dbt_options(select="Models to check")
@click.option("--allow-mixed-identifiers", is_flag=True, help="As for run.")
def validate(  # noqa: PLR0913 - a click command: one parameter per option
    project_dir, profiles_dir, profile, target, target_path, vars_, select, exclude, allow_mixed_identifiers
) -> None:
    """Check the selected models' meta.cio and their built columns; send nothing.

    Exit 0 when every selected model can be synced, 2 otherwise."""
    from ._output import Reporter
    from ._project.artifacts import Artifacts, close_adapter, open_adapter, select_models
    from ._project.hints import nothing_selected
    from ._project.model import ModelSpec, check_identifier_kinds
    from ._read.query import relation_columns

    reporter = Reporter(progress=False)
    try:
        ctx = dbt_context(project_dir, profiles_dir, profile, target, target_path, vars_)
        artifacts = Artifacts.load(ctx.target_path)
        ids = select_models(ctx, artifacts, flatten(select) or ("tag:cio",), flatten(exclude))
        specs, errors = [], []
        for unique_id in ids:
            try:
                spec = ModelSpec.from_node(artifacts.node(unique_id))
            except ConfigError as exc:
                errors.append(str(exc))
                continue
            if spec is not None:
                specs.append(spec)
        if not errors:
            check_identifier_kinds(specs, allow_mixed_identifiers)
            adapter = open_adapter(ctx, artifacts)
            try:
                with adapter.connection_named("cio-export"):
                    for spec in specs:
                        try:
                            model = spec.resolve(relation_columns(adapter, spec))
                        except ConfigError as exc:
                            errors.append(str(exc))
                            continue
                        what = model.event_name or "identify"
                        reporter.note(
                            f"{spec.name}: ok ({spec.kind}, {what}, identifier {spec.identifier_kind} "
                            f"from {spec.identifier_column}, {len(model.attributes)} attributes)"
                        )
            finally:
                close_adapter(adapter)
        if errors:
            raise ConfigError("\n".join(errors))
        if not specs:
            raise ConfigError(nothing_selected(flatten(select) or ("tag:cio",), artifacts, ctx.selector))
    except CioSyncError as exc:
        _fail(reporter, exc)
    reporter.note(f"{len(specs)} model(s) valid")


@contextmanager
def _state_of_selected(project_dir, profiles_dir, profile, target, target_path, vars_, select, exclude,  # noqa: PLR0913 - the shared options, passed through
                       state_schema):
    """The selected synced models (default tag:cio), their state read-only, the adapter and the
    artifacts, for the commands that only look (status, history)."""
    from ._project.artifacts import Artifacts, close_adapter, open_adapter
    from ._state import StateStore

    ctx = dbt_context(project_dir, profiles_dir, profile, target, target_path, vars_)
    artifacts = Artifacts.load(ctx.target_path)
    specs = synced_specs(ctx, artifacts, flatten(select) or ("tag:cio",), flatten(exclude))
    adapter = open_adapter(ctx, artifacts)
    try:
        with adapter.connection_named("cio-export"):
            state = StateStore(adapter, resolve_state_schema(state_schema, ctx), read_only=True).open()
            try:
                yield specs, state, adapter, artifacts
            finally:
                state.close()
    finally:
        close_adapter(adapter)


@main.command(epilog=STATUS_ENVIRONMENT)
@dbt_options(select="Models to report on")
@state_options
@click.option("--json", "json_output", is_flag=True, help="Print the status as JSON on stdout.")
@click.option("--strict", is_flag=True, help="Exit 1 when a model is late, has open rejects over the threshold, "
              "had an odd event volume, or fails a drift guardrail.")
@click.option("--max-open-rejects", type=click.IntRange(min=0), default=0, show_default=True,
              help="With --strict: open rejects allowed per model.")
@click.option("--volume-factor", type=click.FloatRange(min=1), default=5.0, show_default=True,
              help="With --strict: a run sending this many times more or fewer events than the recent average is odd.")
@click.option("--volume-min-events", type=click.IntRange(min=0), default=100, show_default=True,
              help="With --strict: volume is judged only when the run or the recent average sent at least this many "
              "events (a quiet night is not odd).")
@click.option("--alert", is_flag=True, help="Alert (CIO_ALERT_WEBHOOK_URL) on the selected models that are stalled "
              "(last success older than max_lag) or have open rejects over CIO_ALERT_MAX_OPEN_REJECTS: for a cron "
              "check when runs may have stopped. Records incidents in the state schema.")
def status(project_dir, profiles_dir, profile, target, target_path, vars_, select, exclude, state_schema,  # noqa: PLR0913 - a click command: one parameter per option
           json_output, strict, max_open_rejects, volume_factor, volume_min_events, alert) -> None:
    """How each synced model is doing: its state (ok, late, blocked, failing), last run, outcome,
    rows sent, open rejects and their top reasons, time since the last success, lag between event
    time and send time (p50/p95)."""
    from rich.table import Table

    from ._ops.status import Thresholds, model_statuses
    from ._output import Reporter, human_duration, utc_text

    reporter = Reporter(progress=False, json_mode=json_output)
    thresholds = Thresholds(max_open_rejects=max_open_rejects, volume_factor=volume_factor,
                            volume_min_events=volume_min_events)
    statuses = []
    try:
        alerts = _alert_settings(required="status --alert") if alert else None
        with _state_of_selected(project_dir, profiles_dir, profile, target, target_path, vars_, select, exclude,
                                state_schema) as (specs, state, adapter, artifacts):
            statuses = model_statuses(state, specs, adapter, thresholds, artifacts)
            if alerts is not None and state.available:
                from ._ops.alerts import alert_on_status

                alert_on_status(alerts, state, specs, reporter.note)
    except CioSyncError as exc:
        _fail(reporter, exc)
    if json_output:
        sys.stdout.write(orjson.dumps({"models": [s.as_dict() for s in statuses]}, option=orjson.OPT_INDENT_2).decode()
                         + "\n")
    else:
        table = Table(title="cio-export status", title_justify="left")
        for column in ("model", "state", "last run", "outcome", "sent", "since success", "lag p50/p95",
                       "open rejects", "in flight"):
            table.add_column(column)
        for s in statuses:
            lag = ("-" if s.lag_p50_seconds is None
                   else f"{human_duration(s.lag_p50_seconds)}/{human_duration(s.lag_p95_seconds)}")
            since = human_duration(s.seconds_since_success)
            rejects = str(s.open_rejects) + (" (" + ", ".join(f"{r} {n}" for r, n in s.top_reasons) + ")"
                                             if s.top_reasons else "")
            last_run = utc_text(s.last_run_at) if s.last_run_at else "never"
            sent = "-" if s.last_sent is None else str(s.last_sent)
            flying = "-" if s.in_flight is None else str(s.in_flight)
            table.add_row(s.model, s.state, last_run, s.last_status or "-", sent, since, lag, rejects, flying)
        reporter.console.print(table)
        for s in statuses:
            if s.in_flight_stopped:
                reporter.console.print(
                    f"  {s.model}: {s.in_flight_stopped} events in flight since "
                    f"{utc_text(s.in_flight_since)}, "
                    "left by a run that stopped: the next run resends them with the same ids (or reports them "
                    "uncertain beyond dedupe_window)", markup=False)
            for problem in s.problems:
                reporter.console.print(f"  {s.model}: {problem}", markup=False)
    if strict and any(s.problems for s in statuses):
        sys.exit(1)


@main.command()
@dbt_options(select="Models to report on")
@state_options
@click.option("--limit", "-n", type=click.IntRange(min=1), default=10, show_default=True,
              help="Runs to show per model, newest first.")
@click.option("--json", "json_output", is_flag=True, help="Print the runs as JSON on stdout (ISO 8601 times with "
              "their offset, durations in seconds).")
def history(project_dir, profiles_dir, profile, target, target_path, vars_, select, exclude, state_schema,  # noqa: PLR0913 - a click command: one parameter per option
            limit, json_output) -> None:
    """The last runs of each synced model: when (UTC), how long, outcome, rows scanned, changed,
    sent, rejected, skipped and deleted, lag of events, and the dbt invocation synced."""
    from rich.table import Table

    from ._ops.history import model_history
    from ._output import Reporter, human_duration, utc_text

    reporter = Reporter(progress=False, json_mode=json_output)
    runs = []
    try:
        with _state_of_selected(project_dir, profiles_dir, profile, target, target_path, vars_, select, exclude,
                                state_schema) as (specs, state, _adapter, _artifacts):
            if state.available:
                for spec in specs:
                    runs.extend(model_history(state, spec.name, limit))
    except CioSyncError as exc:
        _fail(reporter, exc)
    if json_output:
        sys.stdout.write(orjson.dumps({"runs": [r.as_dict() for r in runs]}, option=orjson.OPT_INDENT_2).decode()
                         + "\n")
        return
    table = Table(title=f"cio-export history (last {limit} runs per model)", title_justify="left")
    for column in ("model", "started", "took", "outcome", "scanned", "changed", "sent", "rejected", "skipped",
                   "deleted", "lag p50/p95"):
        table.add_column(column, justify="left" if column in ("model", "started", "outcome") else "right")
    for r in runs:
        lag = ("-" if r.lag_p50_seconds is None
               else f"{human_duration(r.lag_p50_seconds)}/{human_duration(r.lag_p95_seconds)}")
        table.add_row(r.model, utc_text(r.started_at), human_duration(r.seconds), r.status or "running",
                      *("-" if n is None else f"{n:,}" for n in (r.scanned, r.changed, r.sent, r.rejected, r.skipped,
                                                                  r.deleted)), lag)
    reporter.console.print(table)
    if not runs:
        reporter.console.print("no runs recorded for the selected models", markup=False)


@main.command()
@dbt_options(select="Models whose sync state to forget", select_default=None)
@state_options
@click.option("--events", "events", is_flag=True, help="Re-baseline event models: forget their ledger; the next "
              "run records existing events as baseline again (nothing old is replayed).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def reset(project_dir, profiles_dir, profile, target, target_path, vars_, select, exclude, state_schema, events,  # noqa: PLR0913 - a click command: one parameter per option
          yes) -> None:
    """Forget what was synced for the selected models.

    People models: the next run resends every person (after fixing identities, or to accept
    an identifier change). With --events, event models are re-baselined instead."""
    from ._output import Reporter
    from ._project.artifacts import Artifacts, close_adapter, open_adapter
    from ._state import StateStore

    reporter = Reporter(progress=False)
    try:
        if not select and not click.get_current_context().meta.get(SELECTOR):
            raise ConfigError("reset needs --select (or --selector): name the models to forget")
        ctx = dbt_context(project_dir, profiles_dir, profile, target, target_path, vars_)
        artifacts = Artifacts.load(ctx.target_path)
        specs = synced_specs(ctx, artifacts, flatten(select), flatten(exclude))
        wanted = [spec for spec in specs if (spec.kind == "event") == events]
        if not wanted:
            raise ConfigError(f"no {'event' if events else 'people'} model with meta.cio in the selection")
        names = ", ".join(spec.name for spec in wanted)
        what = "re-baseline the event ledger of" if events else "forget every synced person of"
        if not yes and not click.confirm(f"This will {what}: {names}. Continue?", err=True):
            raise ConfigError("not confirmed; nothing changed")
        adapter = open_adapter(ctx, artifacts)
        try:
            with adapter.connection_named("cio-export"):
                state = StateStore(adapter, resolve_state_schema(state_schema, ctx)).open()
                try:
                    for spec in wanted:
                        n = state.forget_events(spec.name) if events else state.forget_people(spec.name)
                        reporter.note(f"{spec.name}: forgot {n} {'ledger entries' if events else 'people'}")
                finally:
                    state.close()
        finally:
            close_adapter(adapter)
    except CioSyncError as exc:
        _fail(reporter, exc)


@main.command(
    "fake-server", add_help_option=False, context_settings={"ignore_unknown_options": True, "allow_extra_args": True}
)
@click.pass_context
def fake_server(ctx: click.Context) -> None:
    """Run the Customer.io-compatible server used by tests and benchmarks (loopback only).

    Options: see `cio-export fake-server --help` (forwarded)."""
    from .fake_server.cli import main as fake_main

    sys.exit(fake_main(ctx.args, prog="cio-export fake-server"))


from ._cli.check import register as _register_check  # noqa: E402 - after every command of this module
from ._cli.explain import explain as _explain  # noqa: E402 - after every command of this module
from ._cli.ops import register as _register_ops  # noqa: E402 - after every command of this module

main.add_command(_explain)
_register_ops(main)
_register_check(main)

if __name__ == "__main__":  # pragma: no cover
    main()
