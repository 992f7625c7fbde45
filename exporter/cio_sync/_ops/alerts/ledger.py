"""Which incidents are new, in the state schema's cio_incidents: one row per incident key, open
from the first time it is found (first and last seen) until an evaluation that looked at it no
longer finds it (resolved). An open incident is alerted once (alerted_at); a recurrence after
it was resolved opens it again, and alerts again.

Processes that evaluate at the same moment (cron runs, the shards of one model) take turns: each
decides inside one transaction that holds cio_incidents' exclusive lock (PostgreSQL: SHARE ROW
EXCLUSIVE; Redshift: LOCK; DuckDB has one writing process), and claims (claimed_by) the
incidents it is to alert before the lock is let go, so only one sends each. The claimant marks
the incident alerted once the webhook took it, or lets the claim go when it could not: the next
evaluation tries again. A claim left by a process that died is taken over after CLAIM_SECONDS."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..._state import TABLES, StateStore
from .incidents import Evaluation, Incident

TABLE = "cio_incidents"
CLAIM_SECONDS = 600.0  # a claim older than this was left by a process that stopped before it ended
SUMMARY_CHARS = 4000
_COLUMNS = ("incident_key", "kind", "subject", "summary", "opened_at", "last_seen_at", "alerted_at", "resolved_at",
            "claimed_by", "claimed_at")


@dataclass(frozen=True)
class Opened:
    """An open incident this process is to alert (it holds the claim)."""

    incident: Incident
    opened_at: datetime


@dataclass(frozen=True)
class Recovered:
    """An alerted incident that this evaluation found resolved."""

    kind: str
    subject: str
    summary: str
    opened_at: datetime
    resolved_at: datetime


class IncidentLedger:
    """cio_incidents, through a state store's connection (opened read-only or not: this table
    is written whatever the store's mode)."""

    def __init__(self, state: StateStore) -> None:
        self.state = state
        self.table = state.table(TABLE)

    def ensure(self) -> None:
        """Create the table (and the schema) unless they are there."""
        columns, keys = TABLES[TABLE]
        definition = ", ".join(f"{c} {t}" for c, t in columns) + self.state.dialect.primary_key(keys)
        try:
            self.state.execute(f"create schema if not exists {self.state.adapter.quote(self.state.schema)}")
            self.state.execute(f"create table if not exists {self.table} ({definition})")
            self.state.commit()
        except Exception:  # noqa: BLE001 - another process created it at the same moment; what follows tells
            self.state._rollback()

    def observe(self, evaluation: Evaluation, now: datetime, claimant: str) -> tuple[list[Opened], list[Recovered]]:
        """Record what `evaluation` found: new incidents opened, incidents found again kept open,
        those of its scope not found again resolved. Returns the open incidents not yet alerted
        that `claimant` now holds the claim of, and the alerted incidents it resolved."""
        found: dict[str, Incident] = {}
        for incident in evaluation.incidents:
            found.setdefault(incident.key, incident)
        keys = sorted(set(found) | evaluation.scope)
        if not keys:
            return [], []
        try:
            self._lock()
            marks = ", ".join(["%s"] * len(keys))
            rows = {row[0]: row for row in self.state.execute(
                f"select {', '.join(_COLUMNS)} from {self.table} where incident_key in ({marks})", keys)}
            opened = [o for k in keys if k in found and (o := self._found(found[k], rows.get(k), now, claimant))]
            recovered = [r for k in keys if k not in found and (r := self._resolve(rows.get(k), now))]
            self.state.commit()
        except BaseException:
            self.state._rollback()
            raise
        return opened, recovered

    def _found(self, incident: Incident, row: Sequence | None, now: datetime, claimant: str) -> Opened | None:
        summary = incident.summary[:SUMMARY_CHARS]
        if row is None:
            self.state.execute(f"insert into {self.table} ({', '.join(_COLUMNS)}) values "
                               f"({', '.join(['%s'] * len(_COLUMNS))})",
                               (incident.key, incident.kind, incident.subject[:1024], summary, now, now, None, None,
                                claimant, now))
            return Opened(incident, now)
        _, _, _, _, opened_at, _, alerted_at, resolved_at, claimed_by, claimed_at = row
        if resolved_at is not None:  # it recovered, and is back: a new incident under the same key
            self.state.execute(f"update {self.table} set opened_at = %s, last_seen_at = %s, summary = %s, "
                               "alerted_at = null, resolved_at = null, claimed_by = %s, claimed_at = %s "
                               "where incident_key = %s", (now, now, summary, claimant, now, incident.key))
            return Opened(incident, now)
        free = claimed_by is None or claimed_at is None or claimed_at < now - timedelta(seconds=CLAIM_SECONDS)
        if alerted_at is None and free:
            self.state.execute(f"update {self.table} set last_seen_at = %s, summary = %s, claimed_by = %s, "
                               "claimed_at = %s where incident_key = %s", (now, summary, claimant, now, incident.key))
            return Opened(incident, opened_at)
        self.state.execute(f"update {self.table} set last_seen_at = %s, summary = %s where incident_key = %s",
                           (now, summary, incident.key))
        return None

    def _resolve(self, row: Sequence | None, now: datetime) -> Recovered | None:
        if row is None or row[7] is not None:
            return None
        key, kind, subject, summary, opened_at, _, alerted_at, _, _, _ = row
        self.state.execute(f"update {self.table} set resolved_at = %s, claimed_by = null, claimed_at = null "
                           "where incident_key = %s", (now, key))
        return Recovered(kind, subject, summary, opened_at, now) if alerted_at is not None else None

    def alerted(self, key: str, claimant: str, now: datetime) -> None:
        """The webhook took the alert of `key`: it is not sent again while the incident is open."""
        self._release(key, claimant, now)

    def release(self, key: str, claimant: str) -> None:
        """The alert of `key` could not be delivered: the next evaluation tries again."""
        self._release(key, claimant, None)

    def _release(self, key: str, claimant: str, alerted_at: datetime | None) -> None:
        sets = "alerted_at = %s, " if alerted_at is not None else ""
        params = (alerted_at,) if alerted_at is not None else ()
        try:
            self._lock()
            self.state.execute(f"update {self.table} set {sets}claimed_by = null, claimed_at = null "
                               "where incident_key = %s and claimed_by = %s", (*params, key, claimant))
            self.state.commit()
        except BaseException:
            self.state._rollback()
            raise

    def _lock(self) -> None:
        """End what the connection had open (reads: a snapshot taken before the lock would not
        see the last holder's writes on Redshift), then take the table's exclusive lock."""
        self.state.commit()
        for statement in self.state.dialect.exclusive_lock(self.table):
            self.state.execute(statement)
