"""`cio-export explain MODEL KEY`: the command, and its explanation written for people (a text
block: the row, the item, the state, the verdict) or as JSON. The explanation itself is
_run.explain's. Heavy modules (dbt, rich) are imported when the command runs."""

from __future__ import annotations

import sys
from datetime import datetime, timezone

import click

from .._errors import CioSyncError
from .options import dbt_context, dbt_options, flatten, resolve_state_schema, state_options

_WIDTH = 22  # the labels' column, at least


@click.command("explain")
@click.argument("model")
@click.argument("key")
@dbt_options(select="The models of the run explained (an event's person is looked up in the people models among "
             "them, synced first as that run does)")
@state_options
@click.option("--json", "json_output", is_flag=True,
              help="Print the explanation as JSON on stdout (ISO 8601 times with their offset).")
def explain(model, key, project_dir, profiles_dir, profile, target, target_path, vars_, select, exclude,  # noqa: PLR0913 - a click command: one parameter per option
            state_schema, json_output) -> None:
    """Everything about one row of MODEL: the row, the exact item the next run sends of it, what
    the state holds of it (hash, when last acknowledged, ledger status, open rejects, baseline),
    and in one sentence why it will or will not be sent.

    KEY is the row's key as cio-export records it: a people or object model's key column (the
    identifier unless meta.cio.key_column), an event's event id, a relationship's or a device's
    `<length of the identifier>:<identifier>|<object id or token>`. The answer comes from a dry
    run of that row alone (a filter in the model's query): it writes no state and sends nothing.
    Exit 2 for an unknown model or key. Give MODEL and KEY before --select and --exclude, which
    take every value after them (as dbt's do)."""
    import orjson

    from .._output import Reporter
    from .._run.explain import Explainer
    from .._run.options import RunOptions

    reporter = Reporter(progress=False, json_mode=json_output)
    try:
        ctx = dbt_context(project_dir, profiles_dir, profile, target, target_path, vars_)
        build_log_schema = resolve_state_schema(None, ctx)
        options = RunOptions(dbt=ctx, select=flatten(select) or ("tag:cio",), exclude=flatten(exclude), dry_run=True,
                             state_schema=resolve_state_schema(state_schema, ctx), build_log_schema=build_log_schema)
        explanation = Explainer(options, model, key).explain()
    except CioSyncError as exc:
        reporter.error(str(exc))
        sys.exit(exc.exit_code)
    if json_output:
        sys.stdout.write(orjson.dumps(explanation.as_dict(), option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    for line in text(explanation):
        reporter.console.print(line, markup=False, highlight=False)


def text(explanation) -> list[str]:
    """The explanation as lines for people: the row, the item, the state, the verdict."""
    import orjson

    e = explanation
    width = max([_WIDTH, *(len(column) + 2 for column in e.columns)])
    article = "an" if e.kind[0] in "aeiou" else "a"
    lines = [f"{e.model} {e.key}: a row of {article} {e.kind} model (key {e.key_column}), in {e.relation}", ""]
    if not e.rows:
        lines.append("In the model: no row has this key")
    for n, row in enumerate(e.rows, 1):
        lines.append("In the model:" if len(e.rows) == 1 else f"In the model, row {n} of {len(e.rows)}:")
        lines += [f"  {column:<{width}}{_value(value)}" for column, value in zip(e.columns, row, strict=True)]
    if e.person is not None:
        lines.append(f"  {'(person)':<{width}}{e.person}: its rows of {', '.join(e.people) or 'no people model'} "
                     "are synced first, as the run does")
    lines += ["", "The next run sends:" if e.items else "The next run sends: nothing"]
    for item in e.items:
        lines += ["  " + line for line in orjson.dumps(item, option=orjson.OPT_INDENT_2).decode().splitlines()]
    lines += ["", f"State in {e.state.schema}:", *_state_lines(e, width), "", e.verdict.sentence]
    return lines


def _state_lines(e, width: int) -> list[str]:
    from .._output import human_duration, utc_text
    from .._state import utcnow

    state, now = e.state, utcnow()

    def when(value) -> str:
        if value is None:
            return "-"
        return f"{utc_text(value)} ({human_duration(max(0.0, (now - value).total_seconds()))} ago)"

    def field(label: str, value: str) -> str:
        return f"  {label:<{width}}{value}"

    if not state.available:
        return [field("state", "none yet: nothing was ever synced into this state schema")]
    lines = []
    if e.kind == "event":
        ledger = state.ledger
        lines.append(field("ledger", "no entry" if ledger is None else
                           f"{ledger.status}, event id {ledger.event_id or '-'}, run {ledger.run_id or '-'}"
                           + (f", reason: {ledger.reason}" if ledger.reason else "")))
        if ledger is not None:
            event_at = None if ledger.event_at is None else datetime.fromtimestamp(ledger.event_at, timezone.utc)
            lines += [field("event time", _utc(event_at)), field("first attempt", when(ledger.first_attempt_at)),
                      field("sent", when(ledger.sent_at))]
        lines.append(field("row hash", f"{ledger.row_hash if ledger else '-'} (now {e.row_hash or '-'})"))
        lines += [field("in flight", f"since {when(f.since)}, run {f.run_id}, "
                        + ("a run sending it now" if f.live else "left by a run that stopped"))
                  for f in state.in_flight] or [field("in flight", "no")]
        lines.append(field("first sync", "done" if state.synced_before else
                           "not yet: events older than initial_window are recorded as baseline, never sent"))
    else:
        acknowledged = state.acknowledged
        lines.append(field("last acknowledged", "never" if acknowledged is None else
                           f"{when(acknowledged.synced_at)}, run {acknowledged.run_id or '-'}"))
        if acknowledged is not None:
            lines.append(field("identifier", str(acknowledged.identifier)))
        lines.append(field("row hash", f"{acknowledged.row_hash if acknowledged else '-'} (now {e.row_hash or '-'})"))
    rejects = [r for r in state.rejects if r.open]
    lines += [field("open reject", f"{r.reason}: {r.message} (first seen {_utc(r.first_seen_at)}, last seen "
                    f"{_utc(r.last_seen_at)}{', transient' if r.transient else ''})") for r in rejects] \
        or [field("open rejects", "none")]
    return lines


def _utc(value) -> str:
    from .._output import utc_text

    return utc_text(value)


def _value(value) -> str:
    return "null" if value is None else str(value)
