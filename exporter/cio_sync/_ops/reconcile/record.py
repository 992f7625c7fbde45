"""Each `reconcile` kept in the state schema (`cio_reconciliations`, one row per segment), and
read back, newest first, for `report`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..._project.artifacts import Artifacts, DbtContext, close_adapter, open_adapter
from ..._state import StateStore, utcnow
from ..history import iso_utc
from .segments import SegmentResult, count_gap

TABLE = "cio_reconciliations"
COLUMNS = ("reconcile_id", "checked_at", "segment_id", "segment_name", "model", "predicate", "identifier_kind",
           "warehouse_count", "customerio_count", "tolerance", "allowed", "only_in_warehouse", "only_in_customerio",
           "ok", "problem")


@dataclass(frozen=True)
class ReconcileRecord:
    """One segment's result of one reconcile, as recorded."""

    reconcile_id: str
    checked_at: datetime
    segment_id: int
    segment_name: str
    model: str
    predicate: str | None
    identifier_kind: str | None
    warehouse_count: int | None
    customerio_count: int | None
    tolerance: str | None
    allowed: float | None
    only_in_warehouse: int | None
    only_in_customerio: int | None
    ok: bool
    problem: str | None

    @property
    def gap(self) -> int | None:
        return count_gap(self.warehouse_count, self.customerio_count)

    def as_dict(self) -> dict[str, Any]:
        return {"reconcile_id": self.reconcile_id, "checked_at": iso_utc(self.checked_at),
                "segment_id": self.segment_id, "segment_name": self.segment_name, "model": self.model,
                "where": self.predicate, "identifier_kind": self.identifier_kind,
                "warehouse_count": self.warehouse_count, "customerio_count": self.customerio_count, "gap": self.gap,
                "tolerance": self.tolerance, "allowed": self.allowed, "only_in_warehouse": self.only_in_warehouse,
                "only_in_customerio": self.only_in_customerio, "ok": self.ok, "problem": self.problem}


def save_results(state: StateStore, results: Sequence[SegmentResult], *, reconcile_id: str | None = None,
                 checked_at: datetime | None = None) -> str:
    """Record one reconcile's results; returns its id."""
    reconcile_id = reconcile_id or str(uuid.uuid4())
    checked_at = checked_at or utcnow()
    placeholders = ", ".join(["%s"] * len(COLUMNS))
    for r in results:
        state.execute(f"insert into {state.table(TABLE)} ({', '.join(COLUMNS)}) values ({placeholders})",
                      (reconcile_id, checked_at, r.segment_id, r.name[:1024], r.model, (r.where or None),
                       r.identifier_kind, r.warehouse_count, r.customerio_count, r.tolerance, r.allowed,
                       r.only_in_warehouse, r.only_in_customerio, r.ok, (r.problem or "")[:4096] or None))
    state.commit()
    return reconcile_id


def record_reconciliation(ctx: DbtContext, artifacts: Artifacts, schema: str, results: Sequence[SegmentResult]) -> str:
    """Open the state schema (created where missing) through the dbt profile and record the
    results; returns the reconcile's id."""
    adapter = open_adapter(ctx, artifacts)
    try:
        with adapter.connection_named("cio-export"):
            state = StateStore(adapter, schema).open()
            try:
                return save_results(state, results)
            finally:
                state.close()
    finally:
        close_adapter(adapter)


def recent_reconciliations(state: StateStore, runs: int = 20) -> list[ReconcileRecord]:
    """The segments of the last `runs` reconciles, newest first (none in a state schema from
    before reconciles were recorded)."""
    table = state.table(TABLE)
    try:
        latest = state.execute(f"select reconcile_id, max(checked_at) from {table} group by reconcile_id "
                               f"order by 2 desc limit {int(runs)}")
        if not latest:
            state._rollback()
            return []
        ids = [row[0] for row in latest]
        rows = state.execute(f"select {', '.join(COLUMNS)} from {table} where reconcile_id in "
                             f"({', '.join(['%s'] * len(ids))}) order by checked_at desc, segment_id", ids)
    except Exception:  # noqa: BLE001 - no such table (read only: the schema is not migrated)
        state._rollback()
        return []
    state._rollback()
    return [_record(row) for row in rows]


def _record(row: tuple) -> ReconcileRecord:
    (reconcile_id, checked_at, segment_id, name, model, predicate, kind, warehouse, customerio, tolerance, allowed,
     only_warehouse, only_customerio, ok, problem) = row
    return ReconcileRecord(str(reconcile_id), checked_at, int(segment_id), str(name), str(model), predicate, kind,
                           warehouse, customerio, tolerance, None if allowed is None else float(allowed),
                           only_warehouse, only_customerio, bool(ok), problem)
