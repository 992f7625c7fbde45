"""The options and the project context every cio-export command shares: dbt's own options
(meaning what they mean to dbt), the state schema, and the models a selection names."""

from __future__ import annotations

from pathlib import Path

import click


def flatten(values: tuple) -> tuple[str, ...]:
    out: list[str] = []
    for value in values or ():
        for part in value if isinstance(value, tuple) else (value,):
            out.extend(p for p in str(part).split(" ") if p)
    return tuple(out)


def _directory(name: str, envvar: str, help: str):
    return click.option(name, type=click.Path(file_okay=False, path_type=Path), envvar=envvar, show_envvar=True,
                        default=None, help=help)


class _Values(click.Option):
    """An option that takes every value after it up to the next option, as dbt's `--select a b`
    does; given several times, each time adds a tuple. (Written here rather than taken from dbt,
    whose CLI module takes seconds to import: cio-export --help must not wait for it.)"""

    def add_to_parser(self, parser, ctx) -> None:
        super().add_to_parser(parser, ctx)
        for name in self.opts:
            option = parser._long_opt.get(name) or parser._short_opt.get(name)
            if option is not None:
                option.process = self._greedy(option.process)

    @staticmethod
    def _greedy(process):
        def take_all(value, state) -> None:
            values = [value]
            while state.rargs and not state.rargs[0].startswith("-"):
                values.append(state.rargs.pop(0))
            process(tuple(values), state)

        return take_all

    def type_cast_value(self, ctx, value):
        """One tuple of strings per time the option was given (click may nest the parser's tuple)."""
        def strings(item) -> list[str]:
            return [s for part in item for s in strings(part)] if isinstance(item, (tuple, list)) else [str(item)]

        return tuple(tuple(strings(item)) for item in value or ())


def _selector(*names: str, help: str):
    """A selector option read as dbt reads it: several values after one flag."""
    return click.option(*names, cls=_Values, multiple=True, default=None, help=help)


#: The environment variables of each kind of command, for the end of its --help (docs/exporter.md).
_TRACK = ("CUSTOMERIO_SITE_ID and CUSTOMERIO_API_KEY (the Track API credentials; not needed with --dry-run), "
          "CUSTOMERIO_REGION (us or eu) [default: us], CUSTOMERIO_TRACK_URL (another Track API base URL, e.g. a "
          "proxy), CUSTOMERIO_CA_BUNDLE (an extra CA file to trust)")
_CLOUD = ("DBT_CLOUD_URL, DBT_CLOUD_ACCOUNT_ID and DBT_CLOUD_API_TOKEN (dbt Cloud's Admin API), DBT_CLOUD_CA_BUNDLE "
          "(an extra CA file to trust)")
_APP = ("CUSTOMERIO_APP_API_KEY (an App API key), CUSTOMERIO_REGION (us or eu) [default: us], CUSTOMERIO_APP_URL "
        "(another App API base URL), CUSTOMERIO_APP_RATE_LIMIT (requests per second), CUSTOMERIO_CA_BUNDLE")
_ALERTS = ("CIO_ALERT_WEBHOOK_URL (alerts: a Slack incoming webhook or any JSON endpoint; unset, no alerts), "
           "CIO_ALERT_FORMAT (slack or json) [default: slack], CIO_ALERT_MAX_OPEN_REJECTS (open rejects a model "
           "may have before it is alerted) [default: 0]")
_TRACEBACK = "CIO_EXPORT_TRACEBACK (set: the traceback of an unexpected error). See docs/exporter.md."
RUN_ENVIRONMENT = f"Environment: {_TRACK}, {_ALERTS}, {_TRACEBACK}"
CLOUD_RUN_ENVIRONMENT = f"Environment: {_CLOUD}; {_TRACK}; {_ALERTS}; {_TRACEBACK}"
SERVE_ENVIRONMENT = (f"Environment: DBT_CLOUD_WEBHOOK_SECRET (the webhook's signing secret), {_CLOUD}; {_TRACK}; "
                     "CIO_STATUS_PAGE_PASSWORD with CIO_STATUS_PAGE_USER [default: cio], and/or "
                     f"CIO_STATUS_PAGE_TOKEN (the status page's basic auth or bearer token); {_ALERTS}; {_TRACEBACK}")
APP_API_ENVIRONMENT = f"Environment: {_APP}; {_TRACEBACK}"
RECONCILE_ENVIRONMENT = f"Environment: {_APP}; {_ALERTS}; {_TRACEBACK}"
STATUS_ENVIRONMENT = f"Environment: with --alert, {_ALERTS}. See docs/exporter.md."

#: Where --selector's value is kept (in the command's click context) for dbt_context to read: no
#: command function needs it as a parameter of its own.
SELECTOR = "cio_sync.selector"


def _keep_selector(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    ctx.meta[SELECTOR] = value
    return value


def dbt_options(func=None, *, select: str = "Models to sync", select_default: str | None = "tag:cio"):
    """The options cio-export shares with dbt, meaning what they mean to dbt. `select` says what
    the command does with the models it selects; `select_default`, None when --select is required."""
    if func is None:
        return lambda f: dbt_options(f, select=select, select_default=select_default)
    selected = f"[default: {select_default}]" if select_default else "[required, or --selector]"
    decorators = [
        _directory("--project-dir", "DBT_PROJECT_DIR",
                   "The dbt project [default: the nearest directory at or above this one with dbt_project.yml]."),
        _directory("--profiles-dir", "DBT_PROFILES_DIR",
                   "Where profiles.yml is [default: this directory if it has one, else ~/.dbt, as dbt does]."),
        click.option("--profile", default=None, help="Profile to use [default: the project's]."),
        click.option("--target", "-t", default=None,
                     help="Target of the profile: the warehouse to read from [default: the profile's]."),
        _directory("--target-path", "DBT_TARGET_PATH",
                   "Where dbt wrote manifest.json and run_results.json [default: the project's target-path]."),
        click.option(
            "--vars", "vars_", default=None, help="dbt vars, as a YAML or JSON string, as given to dbt build."
        ),
        _selector("--select", "-s", help=f"{select}, in dbt's selector syntax {selected}."),
        _selector("--exclude", help="Models to leave out, in dbt's selector syntax."),
        click.option("--selector", default=None, expose_value=False, callback=_keep_selector,
                     help="A selector of the project's selectors.yml, resolved by dbt, in place of --select and "
                     "--exclude."),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def dbt_context(project_dir, profiles_dir, profile, target, target_path, vars_):
    """The dbt project, profile and target the command works on; not being in a dbt project is
    an error that says so (rather than a missing manifest)."""
    from .._errors import ConfigError
    from .._project.artifacts import DbtContext

    command = click.get_current_context(silent=True)
    params = command.params if command is not None else {}
    selector = command.meta.get(SELECTOR) if command is not None else None
    if selector and (params.get("select") or params.get("exclude")):
        raise ConfigError(f"--selector {selector} cannot be combined with --select or --exclude: the selector "
                          "says which models (as with dbt, which would ignore them); give one or the other")
    ctx = DbtContext.create(
        project_dir, profiles_dir=profiles_dir, target=target, target_path=target_path, vars=vars_, profile=profile,
        selector=selector,
    )
    if not (ctx.project_dir / "dbt_project.yml").is_file():
        where = f"--project-dir {project_dir}" if project_dir is not None else f"{Path.cwd()} or any directory above it"
        raise ConfigError(
            f"No dbt project here: no dbt_project.yml in {where}. Run cio-export in your dbt project's directory "
            "(or below it), or give --project-dir."
        )
    return ctx


def state_options(func):
    return click.option("--state-schema", envvar="CIO_SYNC_STATE_SCHEMA", show_envvar=True, default=None,
                        help="Warehouse schema of cio-export's state [default: var cio_state_schema, else "
                        "cio_sync_state]. Build proofs are read where dbt wrote them: meta.cio.build_log_schema "
                        "or var cio_state_schema.")(func)


def synced_specs(ctx, artifacts, select: tuple[str, ...], exclude: tuple[str, ...]) -> list:
    """The selected models that have meta.cio, as ModelSpecs (dbt's own selection); a selection
    that has none is an error naming the synced models and the closest to what was typed."""
    from .._errors import ConfigError
    from .._project.artifacts import select_models
    from .._project.hints import nothing_selected
    from .._project.model import ModelSpec

    ids = select_models(ctx, artifacts, select, exclude)
    specs = [spec for uid in ids if (spec := ModelSpec.from_node(artifacts.node(uid))) is not None]
    if not specs:
        raise ConfigError(nothing_selected(select, artifacts, ctx.selector))
    return specs


def resolve_state_schema(option: str | None, ctx) -> str:
    from .._project.artifacts import state_schema_for

    return state_schema_for(ctx, option)
