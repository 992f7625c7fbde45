"""Redshift cannot run here: the exporter's Redshift SQL (state tables, MERGE upserts, leases,
baseline, the diff query, the cursor) is recorded through a DB-API driver stand-in and checked
like the dbt package's compiled SQL: sqlglot's Redshift dialect plus the denylist."""

from __future__ import annotations

from datetime import datetime

from test_redshift_compile import redshift_problems

from cio_sync._project.model import BOOLEAN, NUMBER, TEXT, TIMESTAMP, Column, ModelSpec
from cio_sync._read.dialects import RedshiftDialect
from cio_sync._read.query import StateTables, build_query
from cio_sync._state import StateStore


class RecordingCursor:
    """A redshift_connector-like cursor that records statements instead of running them."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.description = None

    def execute(self, sql, params=None):
        self.log.append(sql)
        self.last = sql.lstrip().lower()
        self.description = [("x",)] if self.last.startswith("select") else None

    def fetchall(self):
        if self.last.startswith("select i.shard"):  # what a stopped run left in flight
            return [("all", "run", 1, datetime(2026, 5, 1), '["k0","k1"]', '["01ARZ3NDEKTSV4RRFFQ69G5FAV",null]')]
        return [(0,)] if "count(" in self.last or "max(version)" in self.last else []

    def close(self):
        pass


class RecordingHandle:
    def __init__(self) -> None:
        self.log: list[str] = []

    def cursor(self):
        return RecordingCursor(self.log)

    def commit(self):
        pass

    def rollback(self):
        pass


class RedshiftAdapterStandIn:
    """What StateStore asks of a dbt adapter: its type and identifier quoting."""

    @staticmethod
    def type() -> str:
        return "redshift"

    @staticmethod
    def quote(name: str) -> str:
        return f'"{name}"'


def recorded_state_sql() -> list[str]:
    store = StateStore(RedshiftAdapterStandIn(), "cio_sync_state")
    handle = RecordingHandle()
    store._conn = type("Connection", (), {"handle": handle})()
    store.ensure()
    store.available = True
    now = datetime(2026, 5, 1, 12, 0, 0)
    store.people_synced("cio_people", "run", [("c1", "c1", "h" * 32)])
    parts = store.inflight("cio_event_order_placed", "all", "run", ["k0", "k5"])
    store.flush(force=True, only="inflight")
    store.events_sent("cio_event_order_placed", "run", [("k0", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "h" * 32, 1)], new=True)
    store.events_sent("cio_event_order_placed", "run", [("k5", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "h" * 32, 1)])
    store.inflight_done(parts)
    store.ledger([("cio_event_order_placed", "k1", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "sent", "h" * 32, 1, now, now, now,
                   "run", None)])
    store.rejects([("cio_people", "c2", "value_too_long", "too long", False, "h" * 32, now, "run")])
    store.resolved([("cio_people", "c3")])
    store.people_forgotten([("cio_people", "c4")])
    store.flush(force=True)
    store.acquire_lease("cio_people", "all", "run", 60)
    store.heartbeat("cio_people", "all", "run", 60)
    store.release_lease("cio_people", "all", "run")
    store.run_started("run", "cio_people", "all", "inv")
    store.run_finished("run", "cio_people", scanned=1, status="success", lag_p50_seconds=1.5)
    store.record_baseline("cio_event_order_placed", "select 'k' as __key, 'h' as __hash, 1 as __ts", 10, "run")
    store.recover_inflight("cio_event_order_placed", "all")
    return handle.log


def test_state_sql_is_redshift_sql():
    statements = recorded_state_sql()
    assert any(s.startswith("merge into") for s in statements)
    assert any(s.startswith("lock ") for s in statements)
    assert not any("on conflict" in s for s in statements)
    failures = {s[:80]: redshift_problems(s) for s in statements if redshift_problems(s)}
    assert not failures, failures


def test_diff_query_is_redshift_sql():
    node = {"unique_id": "model.p.people", "name": "people", "relation_name": '"db"."s"."people"',
            "database": "db", "schema": "s", "alias": "people",
            "config": {"meta": {"cio": {"kind": "people", "identifier": {"column": "customer_id", "kind": "id"}}}}}
    model = ModelSpec.from_node(node).resolve([Column("customer_id", TEXT), Column("vip", BOOLEAN),
                                               Column("ltv", NUMBER), Column("seen", TIMESTAMP)])
    dialect = RedshiftDialect(RedshiftAdapterStandIn.quote)
    tables = StateTables('"st"."cio_people_state"', '"st"."cio_event_ledger"', '"st"."cio_rejects"')
    query = build_query(model, dialect, '"db"."s"."people"', state=tables,
                        where=dialect.shard(dialect.text('"customer_id"'), 4) + " = 1")
    assert redshift_problems(query.sql) == []
    assert "case when a0 is null then 'n' when a0 then 'vt' else 'vf' end" in query.sql  # no boolean-to-text cast
    assert "strtol(" in query.sql


def test_the_status_pages_state_sql_is_redshift_sql():
    """What `report` reads of the state (runs, rejects by reason with samples, reconciles) and
    what `reconcile` records."""
    from cio_sync._ops.history import model_history
    from cio_sync._ops.reconcile import SegmentResult
    from cio_sync._ops.reconcile.record import recent_reconciliations, save_results
    from cio_sync._ops.rejects import reject_groups

    store = StateStore(RedshiftAdapterStandIn(), "cio_sync_state")
    handle = RecordingHandle()
    store._conn = type("Connection", (), {"handle": handle})()
    store.available = True
    save_results(store, [SegmentResult(7, "VIPs", "cio_people", "is_vip", "id", 1, 2, "0", 0.0, ok=False,
                                       problem="gap")], checked_at=datetime(2026, 5, 1))
    model_history(store, "cio_people", 50)
    reject_groups(store, ["cio_people", "cio_event_order_placed"])
    recent_reconciliations(store)
    statements = handle.log
    assert any(s.startswith("insert into") and "cio_reconciliations" in s for s in statements)
    assert any("row_number() over" in s and "cio_rejects" in s for s in statements)
    failures = {s[:80]: redshift_problems(s) for s in statements if redshift_problems(s)}
    assert not failures, failures
