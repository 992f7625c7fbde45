"""What the state holds of one row key of one model (for `cio-export explain`): the row
Customer.io last acknowledged (people, objects, relationships, devices, suppressions) or the
event's ledger entry, the row's rejects, whether it is in flight, and whether the model has
synced before (a first sync records older events as baseline). Read only."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from .._output import iso_utc
from .store import StateStore


@dataclass(frozen=True)
class Acknowledged:
    """The key's row in cio_people_state: what Customer.io last acknowledged of it."""

    identifier: str | None
    row_hash: str | None
    synced_at: datetime | None
    run_id: str | None


@dataclass(frozen=True)
class LedgerEntry:
    """The key's row in cio_event_ledger."""

    event_id: str | None
    status: str
    row_hash: str | None
    event_at: int | None  # Unix seconds
    first_attempt_at: datetime | None
    last_attempt_at: datetime | None
    sent_at: datetime | None
    run_id: str | None
    reason: str | None


@dataclass(frozen=True)
class RejectEntry:
    """A row of cio_rejects for the key."""

    reason: str
    message: str | None
    transient: bool
    row_hash: str | None
    first_seen_at: datetime | None
    last_seen_at: datetime | None
    resolved_at: datetime | None
    run_id: str | None

    @property
    def open(self) -> bool:
        return self.resolved_at is None


@dataclass(frozen=True)
class InFlight:
    """A batch of events in cio_inflight that holds the key: sent, its answer not recorded."""

    shard: str
    run_id: str
    since: datetime | None
    event_id: str | None
    live: bool  # a live run holds the shard's lease (else a run that stopped left it)


@dataclass(frozen=True)
class RowState:
    schema: str
    available: bool  # the state tables exist (a model never synced into them has none of the rest)
    acknowledged: Acknowledged | None = None
    ledger: LedgerEntry | None = None
    rejects: tuple[RejectEntry, ...] = ()
    in_flight: tuple[InFlight, ...] = ()
    synced_before: bool = False  # events: the model has history (no baseline at its next run)

    @property
    def empty(self) -> bool:
        """Nothing in the state about the key."""
        return self.acknowledged is None and self.ledger is None and not self.rejects and not self.in_flight

    @property
    def open_rejects(self) -> tuple[RejectEntry, ...]:
        return tuple(r for r in self.rejects if r.open)

    def as_dict(self) -> dict[str, Any]:
        def times(record) -> dict[str, Any] | None:
            if record is None:
                return None
            return {k: iso_utc(v) if isinstance(v, datetime) else v for k, v in asdict(record).items()}

        return {"schema": self.schema, "available": self.available, "acknowledged": times(self.acknowledged),
                "ledger": times(self.ledger), "rejects": [times(r) for r in self.rejects],
                "in_flight": [times(f) for f in self.in_flight], "synced_before": self.synced_before}


def row_state(state: StateStore, model: str, key: str, events: bool) -> RowState:
    """What `state` holds of `model`'s row `key` (an event model's, when `events`)."""
    if not state.available:
        return RowState(state.schema, False)
    table = state.table
    rejects = tuple(RejectEntry(reason, message, bool(transient), *rest) for reason, message, transient, *rest in
                    state.execute("select reason, message, transient, row_hash, first_seen_at, last_seen_at, "
                                  f"resolved_at, run_id from {table('cio_rejects')} where model = %s and row_key = %s "
                                  "order by last_seen_at desc", (model, key)))
    if not events:
        found = state.execute(f"select identifier, row_hash, synced_at, run_id from {table('cio_people_state')} "
                              "where model = %s and person_key = %s", (model, key))
        return RowState(state.schema, True, acknowledged=Acknowledged(*found[0]) if found else None,
                        rejects=rejects)
    found = state.execute("select event_id, status, row_hash, event_at, first_attempt_at, last_attempt_at, sent_at, "
                          f"run_id, reason from {table('cio_event_ledger')} where model = %s and event_key = %s",
                          (model, key))
    return RowState(state.schema, True, ledger=LedgerEntry(*found[0]) if found else None, rejects=rejects,
                    in_flight=_in_flight(state, model, key), synced_before=state.has_history(model))


def _in_flight(state: StateStore, model: str, key: str) -> tuple[InFlight, ...]:
    """The batches in flight that hold `key` (a few rows a batch, deleted with its answers)."""
    try:
        rows = state.execute(f"select shard, run_id, created_at, event_keys, event_ids from "
                             f"{state.table('cio_inflight')} where model = %s order by created_at", (model,))
    except Exception:  # noqa: BLE001 - a state schema from before cio_inflight (read only: not migrated)
        state._rollback()
        return ()
    if not rows:
        return ()
    live = state.live_lease_shards(model)
    found = []
    for shard, run_id, created_at, keys, ids in rows:
        keys = json.loads(keys)
        if key in keys:
            event_ids = json.loads(ids) if ids else []
            position = keys.index(key)
            event_id = event_ids[position] if position < len(event_ids) else None
            found.append(InFlight(shard, run_id, created_at, event_id, shard in live))
    return tuple(found)
