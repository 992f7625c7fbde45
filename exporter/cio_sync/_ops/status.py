"""`cio-export status`: per synced model, how the last runs went, what is stuck, how late
events arrive, its state (ok, late, blocked, failing), and (with --strict) whether anything
needs a person's attention."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from .._output import human_duration
from .._project.artifacts import Artifacts
from .._project.gates import Gate, gate
from .._project.model import ModelSpec, parse_duration
from .._state import SYNCED_RUN_STATUSES, StateStore, utcnow
from .history import iso_utc

#: A model's state, worst first: its last run failed to deliver or it never synced (failing), a
#: gate held it back (blocked), its last success (a run that delivered, rows refused or not) is
#: older than max_lag or its events arrive later than that (late), or none of these (ok; rows it
#: refused are counted apart, as open rejects).
STATES = ("failing", "blocked", "late", "ok")
#: Outcomes of a finished run (cio_runs.status) that delivered nothing it should have.
FAILED_RUNS = frozenset({"undelivered", "failed", "stopped"})


@dataclass
class ModelStatus:
    model: str
    kind: str
    state: str = "failing"  # one of STATES
    max_lag: str | None = None  # meta.cio.max_lag, as written
    last_run_at: datetime | None = None
    last_status: str | None = None
    last_sent: int | None = None
    last_success_at: datetime | None = None
    seconds_since_success: float | None = None
    lag_p50_seconds: float | None = None
    lag_p95_seconds: float | None = None
    open_rejects: int = 0
    top_reasons: list[tuple[str, int]] = field(default_factory=list)
    recent_average_sent: float | None = None
    in_flight: int | None = None  # event keys in cio_inflight (event models)
    in_flight_since: datetime | None = None  # the oldest (of those a stopped run left, if any)
    in_flight_stopped: int = 0  # of them, keys of a shard with no live lease: left by a run that stopped
    uncertain: int = 0  # events sent, never answered, past dedupe_window: open rejects 'uncertain'
    guardrails: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "model": self.model, "kind": self.kind, "state": self.state, "max_lag": self.max_lag,
            "last_run_at": iso_utc(self.last_run_at),
            "last_status": self.last_status, "last_sent": self.last_sent,
            "last_success_at": iso_utc(self.last_success_at),
            "seconds_since_success": self.seconds_since_success, "lag_p50_seconds": self.lag_p50_seconds,
            "lag_p95_seconds": self.lag_p95_seconds, "open_rejects": self.open_rejects,
            "top_reasons": [{"reason": r, "count": n} for r, n in self.top_reasons],
            "recent_average_sent": self.recent_average_sent, "in_flight": self.in_flight,
            "in_flight_since": iso_utc(self.in_flight_since), "in_flight_stopped": self.in_flight_stopped,
            "uncertain": self.uncertain,
            "guardrails": self.guardrails,
            "problems": self.problems,
        }


@dataclass(frozen=True)
class Thresholds:
    max_open_rejects: int = 0
    volume_factor: float = 5.0  # last run's events vs the recent average: outside [avg/f, avg*f] is odd
    volume_min_events: int = 100  # ... when either is at least this many (a quiet night is not odd)
    history: int = 10


def model_status(state: StateStore, spec: ModelSpec, relation: str | None, thresholds: Thresholds,
                 adapter=None, gate: Gate | None = None) -> ModelStatus:
    """The model's runs, rejects, lag, events in flight and guardrails from the state, and its
    state; `gate`: what the gates make of the model's last build (a build whose tests failed
    blocks it, though a blocked model's run leaves no row in cio_runs)."""
    status = ModelStatus(spec.name, spec.kind, max_lag=spec.meta.get("max_lag"))
    lit = state._lit(spec.name)
    runs = state.execute(
        f"select finished_at, status, sent, lag_p50_seconds, lag_p95_seconds from {state.table('cio_runs')} "
        f"where model = {lit} and finished_at is not null order by finished_at desc limit {thresholds.history + 1}")
    if runs:
        last = runs[0]
        status.last_run_at, status.last_status, status.last_sent = last[0], last[1], last[2]
        status.lag_p50_seconds, status.lag_p95_seconds = last[3], last[4]
        previous = [r[2] for r in runs[1:] if r[2] is not None]
        if previous:
            status.recent_average_sent = sum(previous) / len(previous)
    # A success: a run that delivered what it had (some rows refused or not: they are counted as
    # open rejects, apart).
    success = state.execute(f"select max(finished_at) from {state.table('cio_runs')} where model = {lit} "
                            f"and status in {SYNCED_RUN_STATUSES}")
    status.last_success_at = success[0][0] if success else None
    if status.last_success_at is not None:
        status.seconds_since_success = round((utcnow() - status.last_success_at).total_seconds(), 1)
    reasons = state.execute(f"select reason, count(*) from {state.table('cio_rejects')} where model = {lit} "
                            "and resolved_at is null group by reason order by count(*) desc, reason")
    status.top_reasons = [(r, int(n)) for r, n in reasons[:3]]
    status.open_rejects = sum(int(n) for _, n in reasons)
    status.uncertain = sum(int(n) for r, n in reasons if r == "uncertain")
    if spec.kind == "event":
        _in_flight(state, status, lit)

    # What needs attention (status --strict fails on any).
    max_lag = spec.meta.get("max_lag")
    late = False
    if status.last_success_at is None:
        status.problems.append("never synced successfully")
    elif max_lag and (status.seconds_since_success or 0) > parse_duration(max_lag):
        late = True
        status.problems.append(f"late: last success {human_duration(status.seconds_since_success)} ago, "
                               f"max_lag is {max_lag}")
    if max_lag and status.lag_p95_seconds is not None and spec.kind == "event" \
            and status.lag_p95_seconds > parse_duration(max_lag):
        late = True
        status.problems.append(f"events arrive late: p95 lag {human_duration(status.lag_p95_seconds)}, "
                               f"max_lag is {max_lag}")
    if status.last_status in FAILED_RUNS:
        status.problems.append(f"its last run ended {status.last_status}: the next run resends what was not "
                               "delivered")
    blocked = gate is not None and not gate.passed
    if blocked and gate is not None:
        status.problems.append(f"blocked by its last build: {gate.reason}")
    status.state = model_state(status.last_status, status.last_success_at is not None, late, blocked)
    if status.open_rejects > thresholds.max_open_rejects:
        status.problems.append(f"{status.open_rejects} open rejects (threshold {thresholds.max_open_rejects})")
    if spec.kind == "event" and status.recent_average_sent and status.last_sent is not None:
        average, factor = status.recent_average_sent, thresholds.volume_factor
        if max(status.last_sent, average) >= thresholds.volume_min_events and (
                status.last_sent > average * factor or status.last_sent < average / factor):
            status.problems.append(f"event volume {status.last_sent} far from the recent average {average:.0f}")
    if adapter is not None and relation is not None:
        _guardrails(state, spec, relation, status)
    return status


def model_state(last_status: str | None, ever_succeeded: bool, late: bool, blocked: bool = False) -> str:
    """ok, late, blocked or failing (STATES), from the last finished run's outcome, whether the
    model ever synced successfully, whether it is late against its max_lag, and whether the gates
    hold back its last build."""
    if blocked or last_status == "blocked":
        return "blocked"
    if last_status in FAILED_RUNS or not ever_succeeded:
        return "failing"
    return "late" if late else "ok"


def model_statuses(state: StateStore, specs: list[ModelSpec], adapter, thresholds: Thresholds,
                   artifacts: Artifacts | None = None) -> list[ModelStatus]:
    """The status of each model, in the order given; with `artifacts`, the gates of their last
    build too (no state schema yet: none ever synced)."""
    statuses = []
    for spec in specs:
        verdict = gate(artifacts, spec.unique_id) if artifacts is not None else None
        if not state.available:
            item = ModelStatus(spec.name, spec.kind, max_lag=spec.meta.get("max_lag"),
                               problems=["never synced successfully"])
            if verdict is not None and not verdict.passed:
                item.state = "blocked"
                item.problems.append(f"blocked by its last build: {verdict.reason}")
            statuses.append(item)
            continue
        relation = adapter.Relation.create(database=spec.database, schema=spec.schema, identifier=spec.alias).render()
        statuses.append(model_status(state, spec, relation, thresholds, adapter, verdict))
    return statuses


def _guardrails(state: StateStore, spec: ModelSpec, relation: str, status: ModelStatus) -> None:
    """meta.cio.guardrails checked on the built relation: each one's rows, and a problem when over."""
    for guardrail in spec.meta.get("guardrails", []):
        condition = guardrail["condition"]
        rows = state.execute(f"select sum(case when {condition} then 1 else 0 end), count(*) from {relation}")
        matching, total = (int(rows[0][0] or 0), int(rows[0][1] or 0)) if rows else (0, 0)
        limit = guardrail.get("max_rows", 0)
        share = guardrail.get("max_share")
        off = matching > limit and (share is None or matching > share * total)
        status.guardrails.append({"name": guardrail.get("name", condition), "condition": condition,
                                  "matching": matching, "total": total, "ok": not off})
        if off:
            status.problems.append(f"guardrail {guardrail.get('name', condition)}: {matching} of {total} rows")


def _in_flight(state: StateStore, status: ModelStatus, lit: str) -> None:
    """Events sent and not yet answered: by a live run, or left by one that stopped (the next run
    resends them with the same ids, or reports them uncertain beyond dedupe_window)."""
    try:
        flights = state.execute(f"select shard, created_at, event_keys from {state.table('cio_inflight')} "
                                f"where model = {lit}")
        live = state.live_lease_shards(status.model)
    except Exception:  # noqa: BLE001 - a state schema from before cio_inflight (status does not migrate)
        state._rollback()
        return
    keys = {key for _, _, text in flights for key in json.loads(text)}
    stopped = [(created, text) for shard, created, text in flights if shard not in live]  # per shard's lease
    status.in_flight = len(keys)
    status.in_flight_stopped = len({key for _, text in stopped for key in json.loads(text)})
    status.in_flight_since = min((created for created, _ in stopped), default=None) or \
        min((created for _, created, _ in flights), default=None)
