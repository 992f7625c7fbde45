"""Alerts raised where they are evaluated: at the end of `run`, by `status --alert` and by
`reconcile`. An evaluation's incidents go through the ledger (cio_incidents); each new one is
posted to the webhook once, and each alerted one that recovered is announced once.

Nothing here raises or changes a command's exit code: what could not be done is a warning
(`note` gets lines starting "warning:"), and an alert the webhook did not take is tried again by
the next evaluation. When the state schema cannot be reached (the run failed because the
warehouse did), the incidents are sent anyway, each saying it could not be de-duplicated: a
failing sync is never silent."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

from ..._project.model import ModelSpec
from ..._state import StateStore, utcnow
from .config import AlertSettings
from .health import model_health
from .incidents import (
    Evaluation,
    Incident,
    RunOutcome,
    SegmentOutcome,
    health_incidents,
    reconcile_incidents,
    run_incidents,
)
from .ledger import IncidentLedger, Opened, Recovered
from .payload import Alert, body
from .webhook import Webhook

Note = Callable[[str], None]


def alert_after_run(settings: AlertSettings, run: RunOutcome, *, ctx: Any, artifacts: Any, state_schema: str | None,
                    note: Note) -> None:
    """The end of a run: a failed run and blocked models, and (after a run that got to its
    models) the selected models' rejects and lateness. `artifacts` None: loaded here, if they
    can be; `ctx` None: the run ended before it knew its project."""
    def evaluate(state: StateStore, artifacts: Any) -> Evaluation:
        evaluation = run_incidents(run)
        if run.error is None and run.results:
            nodes = [artifacts.node(r.unique_id) for r in run.results]
            specs = [spec for node in nodes if (spec := ModelSpec.from_node(node)) is not None]
            evaluation += health_incidents(model_health(state, specs), settings.max_open_rejects, utcnow())
        return evaluation

    _with_state(settings, ctx, artifacts, state_schema, evaluate, run_incidents(run), note)


def alert_on_status(settings: AlertSettings, state: StateStore, specs: Sequence[ModelSpec], note: Note) -> None:
    """`status --alert`: the selected models' rejects and lateness, from the state `status` read."""
    try:
        evaluation = health_incidents(model_health(state, specs), settings.max_open_rejects, utcnow())
    except Exception as exc:  # noqa: BLE001 - alerting never ends a command
        state._rollback()
        note(f"warning: alerts not evaluated: the state could not be read ({_why(exc)})")
        return
    raise_alerts(settings, evaluation, note, state)


def alert_on_reconcile(settings: AlertSettings, results: Sequence[SegmentOutcome], *, ctx: Any, artifacts: Any,
                       state_schema: str | None, note: Note) -> None:
    """`reconcile`: each segment beyond its tolerance."""
    evaluation = reconcile_incidents(results)
    _with_state(settings, ctx, artifacts, state_schema, lambda state, artifacts: evaluation, evaluation, note)


def _with_state(settings: AlertSettings, ctx: Any, artifacts: Any, state_schema: str | None,
                evaluate: Callable[[StateStore, Any], Evaluation], fallback: Evaluation, note: Note) -> None:
    """`evaluate` on the state schema, opened for the alerts, then raised; `fallback` raised
    without de-duplication when the state schema cannot be opened."""
    try:
        with ExitStack() as stack:
            try:
                state, artifacts = stack.enter_context(_opened_state(ctx, artifacts, state_schema))
            except Exception as exc:  # noqa: BLE001 - e.g. the warehouse the run lost
                unreachable = f"the state schema could not be reached ({_why(exc)})"
                raise_alerts(settings, fallback, note, None, unreachable)
                return
            try:
                evaluation = evaluate(state, artifacts)
            except Exception as exc:  # noqa: BLE001
                state._rollback()
                note(f"warning: only the run's own incidents are evaluated: the state could not be read ({_why(exc)})")
                evaluation = fallback
            raise_alerts(settings, evaluation, note, state)
    except Exception as exc:  # noqa: BLE001 - closing the connections
        note(f"warning: alerts: {_why(exc)}")


@contextmanager
def _opened_state(ctx: Any, artifacts: Any, state_schema: str | None) -> Iterator[tuple[StateStore, Any]]:
    """The state schema through its own connection of the profile's target (read-only: only
    cio_incidents is written), and the artifacts (loaded if not given)."""
    from ..._project.artifacts import Artifacts, close_adapter, open_adapter, state_schema_for

    if ctx is None:
        raise RuntimeError("the run ended before it found its dbt project and profile")
    if artifacts is None:
        artifacts = Artifacts.load(ctx.target_path)
    adapter = open_adapter(ctx, artifacts)
    try:
        with adapter.connection_named("cio-export"):
            state = StateStore(adapter, state_schema or state_schema_for(ctx, None), read_only=True).open()
            try:
                yield state, artifacts
            finally:
                state.close()
    finally:
        close_adapter(adapter)


def raise_alerts(settings: AlertSettings, evaluation: Evaluation, note: Note, state: StateStore | None,
                 unreachable: str | None = None) -> None:
    """Record `evaluation` in cio_incidents and post what is new (incidents opened, and alerted
    incidents resolved); with no `state`, post every incident, saying why (`unreachable`)."""
    try:
        _raise_alerts(settings, evaluation, note, state, unreachable)
    except Exception as exc:  # noqa: BLE001 - alerting never ends a command
        note(f"warning: alerts: {settings.scrub(_why(exc))}")


def _raise_alerts(settings: AlertSettings, evaluation: Evaluation, note: Note, state: StateStore | None,
                  unreachable: str | None) -> None:
    if state is None:
        _post_each(settings, [_alert(Opened(i, utcnow()), None, unreachable) for i in evaluation.incidents], note)
        return
    ledger, claimant = IncidentLedger(state), uuid.uuid4().hex
    try:
        ledger.ensure()
        opened, recovered = ledger.observe(evaluation, utcnow(), claimant)
    except Exception as exc:  # noqa: BLE001
        why = f"the incidents could not be recorded in {state.schema}.cio_incidents ({_why(exc)})"
        note(f"warning: {why}: alerts are sent without de-duplication")
        _post_each(settings, [_alert(Opened(i, utcnow()), state.schema, why) for i in evaluation.incidents], note)
        return
    items: list[Opened | Recovered] = [*opened, *recovered]

    def taken(index: int) -> None:
        item = items[index]
        if isinstance(item, Opened):
            ledger.alerted(item.incident.key, claimant, utcnow())

    delivered = _post_each(settings, [_alert(item, state.schema) for item in items], note, taken)
    for item in opened[delivered:]:  # not delivered: the next evaluation claims them again
        ledger.release(item.incident.key, claimant)  # (if this fails, the claim expires: CLAIM_SECONDS)


def _alert(item: Opened | Recovered, state_schema: str | None, unreachable: str | None = None) -> Alert:
    if isinstance(item, Recovered):
        return Alert(item.kind, item.subject, item.summary, "", item.opened_at, item.resolved_at, state_schema)
    incident: Incident = item.incident
    return Alert(incident.kind, incident.subject, incident.summary, incident.advice, item.opened_at,
                 state_schema=state_schema, undeduplicated=unreachable)


def _post_each(settings: AlertSettings, alerts: Sequence[Alert], note: Note,
               taken: Callable[[int], None] | None = None) -> int:
    """Post the alerts in turn (`taken(index)` after each the webhook took) until it fails one:
    the rest wait for the next evaluation rather than each waiting out its retries. Returns
    how many were delivered."""
    with Webhook(settings) as hook:
        for index, alert in enumerate(alerts):
            problem = hook.post(body(alert, settings.format))
            if problem is not None:
                note(f"warning: the alert webhook ({settings.where}) did not take the alert '{alert.title}': "
                     f"{problem}. {len(alerts) - index} alert(s) not sent: the next evaluation that still finds "
                     "them sends them (this command's outcome is unchanged)")
                return index
            note(f"alert sent: {'resolved: ' if alert.resolved_at else ''}{alert.title}")
            if taken is not None:
                taken(index)
    return len(alerts)


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
