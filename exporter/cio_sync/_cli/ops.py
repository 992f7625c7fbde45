"""Operations commands of ``cio-export``: ``serve`` and ``cloud-run`` (dbt Cloud), ``reconcile``
and ``spot-check`` (is Customer.io right?), ``exposures`` (dbt lineage), ``report`` (the status
page).

``register(main)`` adds them to the ``cio-export`` group (cli.py calls it). The commands are
built when it is called, with the option sets every command shares (options), so they
take the same options as ``run``. This module never imports cli.py.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import click

from .._errors import CioSyncError, ConfigError
from .options import (
    APP_API_ENVIRONMENT,
    CLOUD_RUN_ENVIRONMENT,
    RECONCILE_ENVIRONMENT,
    SERVE_ENVIRONMENT,
    dbt_context,
    dbt_options,
    flatten,
    resolve_state_schema,
    state_options,
    synced_specs,
)

__all__ = ["register"]

_COMMANDS = ("serve", "cloud-run", "reconcile", "spot-check", "exposures", "report")


def register(main: click.Group) -> None:
    """Add serve, cloud-run, reconcile, spot-check and exposures to ``main`` (the cio-export
    group). Calling it again changes nothing."""
    for command in _build(main):
        if command.name not in main.commands:
            main.add_command(command)


def _without(func, names: tuple[str, ...]):
    """Drop shared options a command has no use for (e.g. --select for reconcile)."""
    func.__click_params__ = [p for p in getattr(func, "__click_params__", []) if p.name not in names]
    return func


def _exit_with(exc: CioSyncError) -> None:
    from .._output import Reporter

    Reporter(progress=False).error(str(exc))
    sys.exit(exc.exit_code)


def _console():
    from rich.console import Console

    console = Console(file=sys.stderr, highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console = Console(file=sys.stderr, highlight=False, soft_wrap=True, width=140)
    return console


def _build(main: click.Group) -> list[click.Command]:
    run_command = main.commands.get("run")
    commands = [] if run_command is None else [_cloud_run_command(run_command)]
    return [*commands, _serve_command(run_command), _reconcile_command(), _spot_check_command(), _exposures_command(),
            _report_command()]


def _serve_command(run_command: click.Command | None) -> click.Command:
    @click.command("serve", epilog=SERVE_ENVIRONMENT)
    @dbt_options
    @click.option("--config", "config_path", type=click.Path(dir_okay=False, exists=True, path_type=Path),
                  help="YAML file: jobs to act on and what to sync for each (see docs/operations.md).")
    @click.option("--job", "job_ids", multiple=True,
                  help="A dbt Cloud job id to act on, synced with --select/--exclude/--target (repeatable).")
    @click.option("--errored-runs", type=click.Choice(["skip", "gate"]), default="skip", show_default=True,
                  help="For --job jobs: 'skip' syncs nothing from a run that errored (tests that merely failed "
                  "still let the other models through); 'gate' lets the per-model gates decide anyway.")
    @click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
    @click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
                  help="Port to listen on (0 picks a free one, logged at start).")
    @click.option("--state-schema", envvar="CIO_SYNC_STATE_SCHEMA", show_envvar=True, default=None,
                  help="Warehouse schema holding cio_cloud_runs, passed on to the syncs [default: the config's "
                  "state_schema, else var cio_state_schema, else cio_sync_state].")
    @click.option("--dbt-cloud-url", default=None, help="dbt Cloud access URL [DBT_CLOUD_URL or https://cloud.getdbt.com].")
    @click.option("--account-id", default=None, help="dbt Cloud account id [DBT_CLOUD_ACCOUNT_ID].")
    @click.option("--work-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                  help="Where runs' artifacts are downloaded [a temporary directory].")
    @click.option("--keep-artifacts", is_flag=True, help="Keep each run's artifacts and results in --work-dir.")
    @click.option("--sync-timeout", type=click.FloatRange(min=1), default=3600, show_default=True,
                  help="Seconds a sync may take before it is stopped.")
    @click.option("--shutdown-grace", type=click.FloatRange(min=0), default=60, show_default=True,
                  help="On SIGTERM, seconds a sync in progress gets to finish (else it is resumed next start).")
    @click.option("--log-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
                  help="Append the JSON log lines here instead of stderr.")
    @click.option("--page-max-age", type=click.FloatRange(min=0), default=60, show_default=True,
                  help="Seconds a status page once made is served again before a new one is made.")
    def serve(project_dir, profiles_dir, profile, target, target_path, vars_, select, exclude, config_path,  # noqa: PLR0913 - a click command: one parameter per option
              job_ids, errored_runs, host, port, state_schema, dbt_cloud_url, account_id, work_dir, keep_artifacts,
              sync_timeout, shutdown_grace, log_file, page_max_age) -> None:  # fmt: skip
        """Receive dbt Cloud job webhooks and sync each completed run of the configured jobs; serve
        the status page.

        Verifies dbt Cloud's signature (DBT_CLOUD_WEBHOOK_SECRET), answers at once, remembers every
        run id in <state schema>.cio_cloud_runs so a redelivered or replayed run is never synced
        twice (also across restarts), and syncs one run at a time per job in a child process
        (`cio-export cloud-run`). GET /health reports the queues and the latest runs. With
        CIO_STATUS_PAGE_PASSWORD (or CIO_STATUS_PAGE_TOKEN) set, GET /status answers the page
        `cio-export report` writes for --select, behind those credentials; with no job configured,
        serve serves the page alone."""
        from .._cloud import (
            ChildLauncher,
            JsonLog,
            RunLedger,
            StatusPage,
            WebhookReceiver,
            bind_socket,
            page_only_app,
            report_command,
            serve_forever,
        )
        from .._cloud.status_page import PAGE_PATH

        try:
            serve_config, jobs, settings, page_auth = _serve_settings(config_path, job_ids, select, exclude,
                                                                      errored_runs, account_id, dbt_cloud_url)
            ctx = dbt_context(project_dir, profiles_dir, profile, target, target_path, vars_)
            schema = (
                state_schema
                or (serve_config.state_schema if serve_config else None)
                or resolve_state_schema(None, ctx)
            )
            ledger = RunLedger(ctx, schema) if jobs else None
            remembered = ledger.open() if ledger is not None else {}
            sock = bind_socket(host, port)
        except CioSyncError as exc:
            _exit_with(exc)
        except OSError as exc:
            _exit_with(ConfigError(f"cannot listen on {host}:{port}: {exc}"))

        stream = open(log_file, "a", encoding="utf-8") if log_file else sys.stderr  # noqa: SIM115
        log = JsonLog(stream)
        dbt_args = ["--project-dir", str(ctx.project_dir)]
        if profiles_dir is not None:
            dbt_args += ["--profiles-dir", str(profiles_dir)]
        if profile:
            dbt_args += ["--profile", profile]
        page = None
        if page_auth is not None:
            command = report_command(dbt_args, target=target, vars_=vars_, target_path=str(ctx.target_path),
                                     state_schema=schema, select=flatten(select), exclude=flatten(exclude))
            page = StatusPage(auth=page_auth, command=command, log=log, max_age=page_max_age)
        if ledger is None or settings is None:  # the status page alone
            assert page is not None  # (checked above: no job and no page is an error)
            log("serve.starting", jobs=[], status_page=PAGE_PATH, state_schema=schema)
            try:
                serve_forever(None, sock, log=log, shutdown_grace=shutdown_grace, app=page_only_app(page.routes()),
                              page_path=PAGE_PATH)
            finally:
                if log_file:
                    stream.close()
            return
        temporary = work_dir is None
        work = Path(tempfile.mkdtemp(prefix="cio-export-serve-")) if temporary else work_dir
        work.mkdir(parents=True, exist_ok=True)
        extra = []
        if run_command is not None and any(p.name == "state_schema" for p in run_command.params):
            extra = ["--state-schema", schema]
        launcher = ChildLauncher(
            dbt_args=dbt_args,
            cloud_args=["--dbt-cloud-url", settings.base_url, "--account-id", settings.account_id],
            work_dir=work,
            keep_artifacts=keep_artifacts,
            timeout=sync_timeout,
            log=log,
            extra_run_args=extra,
            default_target=target,
            default_vars=vars_,
        )
        receiver = WebhookReceiver(
            secret=settings.webhook_secret or "",
            jobs=jobs,
            account_id=settings.account_id,
            ledger=ledger,
            launcher=launcher,
            log=log,
            routes=page.routes() if page is not None else (),
        )
        if page is not None:
            page.exclusive = receiver.exclusive
        log("serve.starting", jobs=sorted(jobs), state_table=ledger.table, runs_remembered=len(remembered),
            warehouse=ledger.adapter_type, status_page=PAGE_PATH if page is not None else None)  # fmt: skip
        try:
            receiver.load(remembered)
            serve_forever(receiver, sock, log=log, shutdown_grace=shutdown_grace, launcher=launcher,
                          page_path=PAGE_PATH if page is not None else None)
        finally:
            if temporary:
                shutil.rmtree(work, ignore_errors=True)
            if log_file:
                stream.close()

    return serve


def _serve_settings(config_path, job_ids, select, exclude, errored_runs, account_id, dbt_cloud_url):  # noqa: PLR0913 - serve's options, passed through
    """serve's config file, its jobs (the file's and --job's), dbt Cloud's settings (when there
    is a job) and the status page's credentials (None: no page); neither a job nor a page is an
    error."""
    from .._cloud import JobConfig, cloud_settings_from_env, load_serve_config, page_auth_from_env

    serve_config = load_serve_config(config_path) if config_path else None
    jobs = dict(serve_config.jobs) if serve_config else {}
    for job_id in job_ids:
        if not job_id.isdigit():
            raise ConfigError(f"--job takes a dbt Cloud job id (a number), not {job_id!r}")
        jobs[job_id] = JobConfig(job_id, select=flatten(select) or ("tag:cio",), exclude=flatten(exclude),
                                 errored_runs=errored_runs)  # fmt: skip
    page_auth = page_auth_from_env(os.environ)
    if not jobs and page_auth is None:
        raise ConfigError("nothing to serve: give --config cio_serve.yml or --job JOB_ID (dbt Cloud webhooks), "
                          "and/or set CIO_STATUS_PAGE_PASSWORD or CIO_STATUS_PAGE_TOKEN (the status page)")
    if account_id is None and not os.environ.get("DBT_CLOUD_ACCOUNT_ID") and serve_config:
        account_id = serve_config.account_id
    settings = (cloud_settings_from_env(base_url=dbt_cloud_url, account_id=account_id, require_secret=True)
                if jobs else None)
    return serve_config, jobs, settings, page_auth


def _reconcile_command() -> click.Command:
    @click.command("reconcile", epilog=RECONCILE_ENVIRONMENT)
    @_without_selection
    @dbt_options
    @click.option("--config", "config_path", type=click.Path(dir_okay=False, exists=True, path_type=Path),
                  required=True, help="YAML file mapping Customer.io segments to SQL predicates over models.")
    @click.option("--tolerance", default="0", show_default=True,
                  help="Largest acceptable gap: a number of people, or a percentage of the warehouse count ('2%').")
    @click.option("--membership", is_flag=True,
                  help="Also compare members (paged through the App API) and list people found on one side only.")
    @click.option("--sample", type=click.IntRange(0, 10_000), default=20, show_default=True,
                  help="With --membership: how many identifiers to list per side.")
    @click.option("--json", "json_output", is_flag=True, help="Print the results as JSON on stdout.")
    @state_options
    def reconcile(project_dir, profiles_dir, profile, target, target_path, vars_, config_path, tolerance,  # noqa: PLR0913 - a click command: one parameter per option
                  membership, sample, json_output, state_schema) -> None:  # fmt: skip
        """Compare Customer.io segment counts (and members) with the warehouse.

        Each segment in --config is mapped to a model and a SQL predicate; the warehouse count is
        read through the dbt profile, Customer.io's through the App API (CUSTOMERIO_APP_API_KEY).
        The results are kept in the state schema (cio_reconciliations) for `cio-export report`.
        Exit 0 when every gap is within tolerance, 1 otherwise, 2 on configuration errors, 3 when
        the App API stays unavailable."""
        from .._ops.alerts import alert_on_reconcile, alert_settings_from_env
        from .._ops.app_api import AppApiClient, app_settings_from_env
        from .._ops.reconcile import Tolerance, load_reconcile_config, report_json
        from .._ops.reconcile import reconcile as run_reconcile
        from .._ops.reconcile.record import record_reconciliation
        from .._output import Reporter
        from .._project.artifacts import Artifacts

        try:
            alerts = alert_settings_from_env()
            default = Tolerance.parse(tolerance)
            mappings = load_reconcile_config(config_path)
            settings = app_settings_from_env()
            ctx = dbt_context(project_dir, profiles_dir, profile, target, target_path, vars_)
            artifacts = Artifacts.load(ctx.target_path)
            with AppApiClient(settings) as client:
                results = run_reconcile(ctx, artifacts, mappings, client, tolerance=default,
                                        membership=membership, sample=sample)  # fmt: skip
            schema = resolve_state_schema(state_schema, ctx)
        except CioSyncError as exc:
            _exit_with(exc)
        failed = [r for r in results if not r.ok]
        _print_reconcile(results, membership)
        try:
            record_reconciliation(ctx, artifacts, schema, results)
        except Exception as exc:  # noqa: BLE001 - the comparison stands: its exit code is not changed
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            _console().print(f"warning: this reconcile was not recorded in {schema}.cio_reconciliations "
                             f"({first}): `cio-export report` will not show it", markup=False)
        if alerts is not None:
            alert_on_reconcile(alerts, results, ctx=ctx, artifacts=artifacts, state_schema=schema,
                               note=Reporter(progress=False).note)
        if json_output:
            document = {"ok": not failed, "segments": [r.as_dict() for r in results]}
            sys.stdout.write(report_json(document).decode() + "\n")
        sys.exit(1 if failed else 0)

    return reconcile


def _spot_check_command() -> click.Command:
    @click.command("spot-check", epilog=APP_API_ENVIRONMENT)
    @dbt_options(select="Models to spot-check")
    @click.option("--model", "people_model", default=None,
                  help="The people model to sample [the one people model in the selection].")
    @click.option("--sample", type=click.IntRange(1, 10_000), default=20, show_default=True,
                  help="How many people to check.")
    @click.option("--seed", default=None, help="Seed of the random sample (printed, to repeat a check).")
    @click.option("--events", "last_events", type=click.IntRange(0, 100), default=5, show_default=True,
                  help="How many of each person's latest events to look for in their activity (0: none).")
    @click.option("--activity-window", default=None,
                  help="Only expect events younger than this (30m, 72h, 7d) or 'all' [the exporter's state "
                  "decides when present, else each model's max_event_age].")
    @click.option("--state-schema", envvar="CIO_SYNC_STATE_SCHEMA", show_envvar=True, default=None,
                  help="Where the exporter keeps its state: which events were delivered [var cio_state_schema, "
                  "else cio_sync_state].")
    @click.option("--json", "json_output", is_flag=True, help="Print the report as JSON on stdout.")
    def spot_check(project_dir, profiles_dir, profile, target, target_path, vars_, select, exclude, people_model,  # noqa: PLR0913 - a click command: one parameter per option
                   sample, seed, last_events, activity_window, state_schema, json_output) -> None:  # fmt: skip
        """Check a random sample of people against their Customer.io profiles.

        For each sampled row of the people model: the profile exists, every attribute holds what
        cio-export sends (types, prefix and excludes as sent; nulls absent), no other profile has
        the same email, and the person's latest events from the selected event models are in their
        recent activity with the right timestamps. Exit 1 when anything differs."""
        from .._ops.app_api import AppApiClient, app_settings_from_env
        from .._ops.reconcile import find_model, report_json
        from .._ops.reconcile import spot_check as run_spot_check
        from .._project.artifacts import Artifacts
        from .._project.model import ModelSpec

        try:
            if activity_window not in (None, "all"):
                from .._project.model import parse_duration

                parse_duration(activity_window)
            settings = app_settings_from_env()
            ctx = dbt_context(project_dir, profiles_dir, profile, target, target_path, vars_)
            state_schema = resolve_state_schema(state_schema, ctx)
            artifacts = Artifacts.load(ctx.target_path)
            specs = synced_specs(ctx, artifacts, flatten(select) or ("tag:cio",), flatten(exclude))
            specs = [s for s in specs if s.meta.get("enabled") is not False]
            if people_model:
                people = ModelSpec.from_node(find_model(artifacts, people_model))
                if people is None or people.kind != "people":
                    raise ConfigError(f"--model {people_model}: not a people model (meta.cio kind people)")
            else:
                candidates = [s for s in specs if s.kind == "people"]
                if len(candidates) != 1:
                    names = ", ".join(s.name for s in candidates) or "none"
                    raise ConfigError(
                        f"the selection holds {len(candidates)} people models ({names}): pick one with --model"
                    )
                people = candidates[0]
            events = [s for s in specs if s.kind == "event" and s.identifier_kind == people.identifier_kind]
            with AppApiClient(settings) as client:
                report = run_spot_check(
                    ctx, artifacts, people, events if last_events else [], client, sample=sample, seed=seed,
                    last_events=last_events, window=activity_window, state_schema=state_schema,
                )  # fmt: skip
        except CioSyncError as exc:
            _exit_with(exc)
        _print_spot_check(report)
        if json_output:
            sys.stdout.write(report_json(report.as_dict()).decode() + "\n")
        sys.exit(1 if report.mismatches else 0)

    return spot_check


def _exposures_command() -> click.Command:
    @click.command("exposures")
    @dbt_options(select="Models the exposure depends on")
    @click.option("--owner-name", envvar="CIO_EXPOSURE_OWNER_NAME", show_envvar=True, default=None,
                  help="Owner of the exposure [CIO_EXPOSURE_OWNER_NAME].")
    @click.option("--owner-email", envvar="CIO_EXPOSURE_OWNER_EMAIL", show_envvar=True, default=None,
                  help="Owner's email [CIO_EXPOSURE_OWNER_EMAIL].")
    @click.option("--name", "exposure", default="customerio", show_default=True,
                  help="Name of the single exposure (ignored with --per-model).")
    @click.option("--per-model", is_flag=True, help="One exposure per synced model: customerio_<model>.")
    @click.option("--url", default=None, help="Link to the Customer.io workspace [by CUSTOMERIO_REGION].")
    @click.option("--maturity", type=click.Choice(["high", "medium", "low"]), default="high", show_default=True)
    @click.option("--output", default=None,
                  help="File to write, relative to the project [models/cio_exposures.yml]; '-' for stdout.")
    @click.option("--force", is_flag=True, help="Replace an --output file that cio-export did not write.")
    def exposures(project_dir, profiles_dir, profile, target, target_path, vars_, select, exclude, owner_name,  # noqa: PLR0913 - a click command: one parameter per option
                  owner_email, exposure, per_model, url, maturity, output, force) -> None:  # fmt: skip
        """Write dbt exposures (type application) for the synced models in the selection, so
        lineage shows that Customer.io depends on them. Needs the manifest (dbt build or dbt parse)."""
        from .._ops.exposures import build_exposures, render_exposures, write_exposures
        from .._project.artifacts import Artifacts, select_models

        try:
            ctx = dbt_context(project_dir, profiles_dir, profile, target, target_path, vars_)
            artifacts = Artifacts.load(ctx.target_path)
            ids = select_models(ctx, artifacts, flatten(select) or ("tag:cio",), flatten(exclude))
            document = build_exposures(artifacts, ids, owner_name=owner_name, owner_email=owner_email,
                                       name=exposure, per_model=per_model, url=url, maturity=maturity)  # fmt: skip
            if output == "-":
                sys.stdout.write(render_exposures(document))
                return
            path = Path(output or "models/cio_exposures.yml")
            path = path if path.is_absolute() else ctx.project_dir / path
            written = write_exposures(document, path, force=force)
        except CioSyncError as exc:
            _exit_with(exc)
        names = ", ".join(e["name"] for e in document["exposures"])
        click.echo(f"wrote {written}: {names}", err=True)

    return exposures


def _report_command() -> click.Command:
    @click.command("report")
    @dbt_options(select="Models to report on")
    @state_options
    @click.option("--html", "html_path", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
                  default=None, help="Write the status page to this file, one self-contained HTML file that needs no "
                  "network to view ('-': stdout).")
    @click.option("--json", "json_output", is_flag=True, help="Print what the page shows as JSON on stdout.")
    @click.option("--runs", type=click.IntRange(1, 1000), default=50, show_default=True,
                  help="Runs of each model in the run history and its charts.")
    def report(project_dir, profiles_dir, profile, target, target_path, vars_, select, exclude, state_schema,  # noqa: PLR0913 - a click command: one parameter per option
               html_path, json_output, runs) -> None:  # fmt: skip
        """The status page: per model its state (ok, late, blocked, failing) against max_lag, last
        success, run history with charts of items sent, rejects and lag, rejects by reason (open and
        resolved, with samples), events in flight or uncertain, quarantine counts by input and
        reason, recorded reconciles, and the tests of the last build. Reads only; `cio-export serve`
        serves the same page."""
        from .._ops.reconcile import report_json
        from .._ops.report import collect_report, render_html
        from .._project.artifacts import Artifacts

        try:
            if html_path is None and not json_output:
                raise ConfigError("report needs --html PATH (the page; '-' for stdout) or --json")
            if json_output and str(html_path) == "-":
                raise ConfigError("--html - and --json both write to stdout: give --html a file")
            ctx = dbt_context(project_dir, profiles_dir, profile, target, target_path, vars_)
            artifacts = Artifacts.load(ctx.target_path)
            specs = synced_specs(ctx, artifacts, flatten(select) or ("tag:cio",), flatten(exclude))
            document = collect_report(ctx, artifacts, specs, resolve_state_schema(state_schema, ctx), runs=runs)
            if html_path is not None:
                page = render_html(document)
                if str(html_path) == "-":
                    sys.stdout.write(page)
                else:
                    _write_atomically(html_path, page)
        except CioSyncError as exc:
            _exit_with(exc)
        if json_output:
            sys.stdout.write(report_json(document.as_dict()).decode() + "\n")
        if html_path is not None and str(html_path) != "-":
            click.echo(f"wrote {html_path}", err=True)

    return report


def _write_atomically(path: Path, text: str) -> None:
    """The file is replaced whole (a page open in a browser, a web server serving it, never sees
    half of it)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.",
                                         delete=False) as handle:
            handle.write(text)
        os.replace(handle.name, path)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc}") from None


def _without_selection(func):
    return _without(func, ("select", "exclude"))


def _cloud_run_command(run_command: click.Command) -> click.Command:
    """``cloud-run``: ``run`` on the artifacts of a dbt Cloud run, with all of run's options."""
    own = [
        click.Option(["--run-id"], default=None, help="The dbt Cloud run to sync."),
        click.Option(["--job-id"], default=None, help="Sync the latest finished run of this dbt Cloud job."),
        click.Option(["--dbt-cloud-url"], default=None,
                     help="dbt Cloud access URL [DBT_CLOUD_URL or https://cloud.getdbt.com]."),  # fmt: skip
        click.Option(["--account-id"], default=None, help="dbt Cloud account id [DBT_CLOUD_ACCOUNT_ID]."),
        click.Option(["--artifacts-dir"], type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="Keep the downloaded artifacts (and cio_export_results.json) here [a temporary "
                     "directory, removed afterwards]."),  # fmt: skip
        click.Option(["--errored-runs"], type=click.Choice(["skip", "gate"]), default="skip", show_default=True,
                     help="'skip': a run that errored syncs nothing (a run whose tests merely failed is gated "
                     "per model); 'gate': let the per-model gates decide anyway."),  # fmt: skip
    ]
    # --target-path is where the downloaded artifacts go: cloud-run sets it itself.
    shared = [p for p in run_command.params if p.name not in ("dbt_cloud_run", "dbt_cloud_job", "target_path")]

    @click.pass_context
    def callback(ctx: click.Context, run_id, job_id, dbt_cloud_url, account_id, artifacts_dir, errored_runs,
                 **run_options) -> None:  # fmt: skip
        from .._cloud import prepare_cloud_target

        try:
            if (run_id is None) == (job_id is None):
                raise ConfigError("give --run-id RUN_ID or --job-id JOB_ID")
            temporary = artifacts_dir is None
            dest = Path(tempfile.mkdtemp(prefix="cio-export-dbt-cloud-")) if temporary else artifacts_dir
            try:
                target = prepare_cloud_target(run_id, job_id, dest, errored_runs=errored_runs,
                                              base_url=dbt_cloud_url, account_id=account_id)  # fmt: skip
                run_options["target_path"] = target
                ctx.invoke(run_command, **run_options)
            finally:
                if temporary:
                    shutil.rmtree(dest, ignore_errors=True)
        except CioSyncError as exc:
            _exit_with(exc)

    return click.Command(
        "cloud-run",
        params=[*shared, *own],
        callback=callback,
        help="Sync the models of a dbt Cloud job run: download the artifacts of its `dbt build` step (not the "
        "last step, often `docs generate`) from the Admin API (DBT_CLOUD_URL, DBT_CLOUD_ACCOUNT_ID, "
        "DBT_CLOUD_API_TOKEN) and run `cio-export run` on them; the per-model gates decide as after a local "
        "build. Same options and exit codes as run.",
        epilog=CLOUD_RUN_ENVIRONMENT,
    )


def _print_reconcile(results, membership: bool) -> None:
    from rich.table import Table

    table = Table(title="cio-export reconcile", title_justify="left")
    columns = ["segment", "model", "warehouse", "Customer.io", "gap", "allowed", "status"]
    if membership:
        columns[5:5] = ["only warehouse", "only Customer.io"]
    for column in columns:
        table.add_column(column, justify="left" if column in ("segment", "model", "status") else "right")
    for r in results:
        gap = "-" if r.gap is None else (f"{r.gap:+d}" if r.gap else "0")
        row = [f"{r.segment_id} {r.name}", r.model, str(r.warehouse_count), str(r.customerio_count), gap,
               f"{r.allowed:g}", "ok" if r.ok else "GAP"]  # fmt: skip
        if membership:
            row[5:5] = [str(r.only_in_warehouse), str(r.only_in_customerio)]
        table.add_row(*row)
    console = _console()
    console.print(table)
    for r in results:
        if r.problem:
            console.print(f"  segment {r.segment_id} ({r.name}): {r.problem}", markup=False)
        if r.sample_only_in_warehouse:
            console.print(f"    in the warehouse only: {', '.join(r.sample_only_in_warehouse)}", markup=False)
        if r.sample_only_in_customerio:
            console.print(f"    in Customer.io only: {', '.join(r.sample_only_in_customerio)}", markup=False)


def _print_spot_check(report) -> None:
    console = _console()
    console.print(
        f"spot-check of {report.model}: {len(report.people)} people (seed {report.seed}), events expected from "
        f"{report.events_expected_from}",
        markup=False,
    )
    for person in report.people:
        counts = f"{person.attributes_checked} attributes, {person.events_checked} events"
        console.print(f"  {person.kind} {person.identifier}: {person.status} ({counts})", markup=False)
        if person.note:
            console.print(f"    {person.note}", markup=False)
        for problem in person.problems:
            console.print(f"    {problem.check}: {problem.message}", markup=False)
    console.print(f"{report.mismatches} of {len(report.people)} people differ", markup=False)
