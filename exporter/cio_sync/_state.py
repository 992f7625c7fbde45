"""State kept in the user's warehouse: what was synced, what is in flight, what was refused.

Tables (schema `cio_sync_state` unless configured), created and migrated here:

- cio_people_state   one row per synced person of a people model: stable key, identifier, the
                     hash of the row last acknowledged by Customer.io.
- cio_event_ledger   one row per event id of an event model: sent (acknowledged), rejected,
                     pending (sent or about to be sent by a run that stopped before the answer,
                     or undelivered: resent with the same id), baseline / backfill (recorded,
                     never sent), uncertain (pending longer than the dedupe window).
- cio_inflight       the event keys of batches a run is sending (committed before they are
                     sent, a few rows per batch), deleted in the transaction that records the
                     run's last answers. What a stopped run left here becomes `pending` in the
                     ledger before the next run of the model reads anything.
- cio_rejects        rows refused (by cio-export's checks or by Customer.io), with the reason,
                     first and last seen, resolved when later accepted.
- cio_runs           one row per model per run: counts, status, dbt invocation, lag.
- cio_payload_schemas  each model's attribute names and kinds, and identifier kind.
- cio_leases         one lease per (model, shard): who runs it, until when.
- cio_builds         written by the dbt package's post-hook: which invocation built a relation.
- cio_state_settings how this schema's state was made: `row_hash`, the function of the rows'
                     hashes (see StateStore.row_hash).
- cio_model_scopes   what each model's state describes: the relation it was synced from and the
                     Customer.io workspace (site id) it was sent to; a run reading another
                     relation or sending to another workspace is refused (see Exporter._scope_problem).

Writes go through a second connection (a commit on the reading connection would close its
streaming cursor) and are set-based: COPY into a temporary table then one upsert on PostgreSQL,
a multi-row insert then MERGE on Redshift (no client COPY, no ON CONFLICT), batched inserts
then an upsert on DuckDB. They are buffered and committed every few seconds, never per row;
the one exception is recording the keys of events in flight, which is committed before they
are sent (one row per batch, not per event: each event is written to the ledger once, when
Customer.io has answered for it).

On PostgreSQL the writes run on a writer thread that owns the state connection, so the
warehouse works on them while the exporter encodes the next rows: `flush()` hands the buffers
over and returns a sequence number, `committed(seq)` says whether that write has committed
(in order: a later sequence number implies every earlier one), and every other statement waits
for the writes handed over before it. Redshift (redshift_connector does not share connections
between threads) and DuckDB write inline.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
import uuid
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from itertools import accumulate, chain
from typing import Any

from ._errors import ConfigError
from ._model import OUT_OF_RANGE_TIME
from ._sql import literal

SCHEMA_VERSION = 4
DEFAULT_SCHEMA = "cio_sync_state"
FLUSH_SECONDS = 2.0
FLUSH_ROWS = 10_000
MAX_QUEUED_WRITES = 2  # writes handed to the writer thread and not yet committed, at most
# Per-model writes of one flush, in this order.
WRITE_ORDER = {"people_new": 1, "people": 1, "sent_new": 2, "sent": 2}
UNIQUE_VIOLATION = "23505"  # SQLSTATE
ANALYZE_MIN_ROWS = 10_000  # new ledger rows before its statistics are refreshed (see _keep_ledger_analyzed)
INFLIGHT_PART_CHARS = 60_000  # event keys of one cio_inflight row, as a JSON array (Redshift: varchar(65535))
INFLIGHT_PART_IDS = 2_000  # event ids of one row: 2,000 x 29 characters of JSON

#: PostgreSQL: columns COPYed rows leave out, which default to the writing transaction's time
NOW_DEFAULTS = {"cio_event_ledger": ("first_attempt_at", "last_attempt_at", "sent_at"),
                "cio_people_state": ("synced_at",)}

T_KEY = "varchar(1024)"
T_TEXT = "varchar(4096)"
T_TS = "timestamp"

TABLES: dict[str, tuple[tuple[tuple[str, str], ...], tuple[str, ...]]] = {
    # name: (columns, key columns)
    "cio_state_version": ((("version", "integer"), ("migrated_at", T_TS)), ()),
    "cio_people_state": (
        (("model", T_KEY), ("person_key", T_KEY), ("identifier", T_KEY), ("row_hash", "varchar(32)"),
         ("synced_at", T_TS), ("run_id", "varchar(64)")),
        ("model", "person_key"),
    ),
    "cio_event_ledger": (
        (("model", T_KEY), ("event_key", T_KEY), ("event_id", "varchar(26)"), ("status", "varchar(16)"),
         ("row_hash", "varchar(32)"), ("event_at", "bigint"), ("first_attempt_at", T_TS),
         ("last_attempt_at", T_TS), ("sent_at", T_TS), ("run_id", "varchar(64)"), ("reason", T_TEXT)),
        ("model", "event_key"),
    ),
    "cio_inflight": (
        (("model", T_KEY), ("shard", "varchar(16)"), ("run_id", "varchar(64)"), ("part", "integer"),
         ("created_at", T_TS), ("event_keys", "varchar(65535)"), ("event_ids", "varchar(65535)")),
        ("model", "shard", "run_id", "part"),
    ),
    "cio_rejects": (
        (("model", T_KEY), ("row_key", T_KEY), ("reason", "varchar(64)"), ("message", T_TEXT),
         ("transient", "boolean"), ("row_hash", "varchar(32)"), ("first_seen_at", T_TS), ("last_seen_at", T_TS),
         ("resolved_at", T_TS), ("run_id", "varchar(64)")),
        ("model", "row_key"),
    ),
    "cio_runs": (
        (("run_id", "varchar(64)"), ("model", T_KEY), ("shard", "varchar(16)"), ("started_at", T_TS),
         ("finished_at", T_TS), ("scanned", "bigint"), ("changed", "bigint"), ("sent", "bigint"),
         ("rejected", "bigint"), ("skipped", "bigint"), ("deleted", "bigint"), ("status", "varchar(16)"),
         ("dbt_invocation_id", "varchar(64)"), ("lag_p50_seconds", "double precision"),
         ("lag_p95_seconds", "double precision"), ("message", T_TEXT)),
        ("run_id", "model"),
    ),
    "cio_payload_schemas": (
        (("model", T_KEY), ("identifier_kind", "varchar(16)"), ("schema_json", "varchar(65535)"),
         ("updated_at", T_TS)),
        ("model",),
    ),
    "cio_leases": (
        (("model", T_KEY), ("shard", "varchar(16)"), ("holder", "varchar(64)"), ("heartbeat_at", T_TS),
         ("expires_at", T_TS)),
        ("model", "shard"),
    ),
    "cio_builds": (
        (("model_unique_id", "varchar(512)"), ("relation_name", "varchar(1024)"), ("invocation_id", "varchar(64)"),
         ("built_at", T_TS)),
        (),
    ),
    "cio_state_settings": ((("name", "varchar(64)"), ("value", T_KEY)), ("name",)),
    "cio_model_scopes": (
        (("model", T_KEY), ("relation_name", T_KEY), ("site_id", "varchar(256)"), ("recorded_at", T_TS)),
        ("model",),
    ),
}


_local = threading.local()  # .writer is True on the writer thread


def lease_holder(run_id: str) -> str:
    """A lease's holder as written in cio_leases: the run, and the host and process running it
    (within the column's 64 characters), so that a run on the same host can tell a dead one."""
    return f"{run_id}@{socket.gethostname()[:16]}:{os.getpid()}"


def holder_is_dead(holder: str) -> bool:
    """Whether a lease holder is known dead: a process of this host that no longer exists. A
    holder on another host, or written by an older cio-export, cannot be checked (False)."""
    _, at, place = holder.rpartition("@")
    host, _, pid = place.rpartition(":")
    if not at or host != socket.gethostname()[:16] or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists (another user's process): alive
        return False
    return False


def lease_lock_key(schema: str, model: str, shard: str) -> int:
    """PostgreSQL: the advisory lock key (a signed 64-bit integer) of the (model, shard) lease of
    the state schema `schema`."""
    digest = hashlib.md5(f"{schema}\x00{model}\x00{shard}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class StateStore:
    """The state tables of one warehouse, written through their own connection."""

    def __init__(self, adapter, schema: str = DEFAULT_SCHEMA, read_only: bool = False) -> None:
        self.adapter = adapter
        self.kind = adapter.type()
        self.schema = schema
        self.read_only = read_only  # --dry-run: read state to diff against, never write
        self.available = False  # the tables exist (always, once opened writable)
        self._conn: Any = None  # the state connection (a dbt Connection, or anything with a DB-API .handle)
        self._buffers: dict[str, list] = {}
        self._last_flush = time.monotonic()
        self._last_heartbeat = time.monotonic()
        self._pending_rows = 0
        # Writer thread (PostgreSQL): flushes handed over, in order; errors re-raised on the caller.
        self._writer: ThreadPoolExecutor | None = None
        self._writes: list[tuple[int, Future]] = []
        self._seq = 0  # last flush handed over
        self._done_seq = 0  # last flush known committed
        self._open_rejects: set[str] | None = None  # models with unresolved rejects
        self._ledger_rows = 0  # ledger rows its statistics know of (PostgreSQL), and inserted since
        self._ledger_growth = 0
        self._inflight_parts = 0  # cio_inflight rows this store has written (their `part`)
        self._now_defaults = False  # PostgreSQL: the NOW_DEFAULTS columns default to the transaction's time
        self.row_hash = "md5"  # how this schema's row hashes are made (one of _warehouse.ROW_HASHES)

    @property
    def writable(self) -> bool:
        return self.available and not self.read_only

    def tables(self):
        from ._warehouse import StateTables

        return StateTables(people=self.table("cio_people_state"), ledger=self.table("cio_event_ledger"),
                           rejects=self.table("cio_rejects"))

    # -- connection ----------------------------------------------------------------------
    def open(self) -> StateStore:
        """A second connection, opened by the adapter with the profile's credentials."""
        from dbt.adapters.contracts.connection import Connection, ConnectionState

        connection = Connection(type=self.kind, name="cio-export-state", state=ConnectionState.INIT,
                                transaction_open=False,
                                handle=None, credentials=self.adapter.config.credentials)
        return self.attach(self.adapter.connections.open(connection))

    def attach(self, connection) -> StateStore:
        """Use `connection` (anything with a DB-API `.handle`) as the state connection."""
        self._conn = connection
        handle = self._conn.handle
        if self.kind == "postgres":
            handle.autocommit = False
        if self.read_only:
            try:
                self.execute(f"select 1 from {self.table('cio_event_ledger')} where 1 = 0")
                self.execute(f"select 1 from {self.table('cio_people_state')} where 1 = 0")
                self.execute(f"select 1 from {self.table('cio_rejects')} where 1 = 0")
                self.available = True
            except Exception:  # noqa: BLE001 - no state yet: everything counts as new
                self._rollback()
                self.available = False
            self._rollback()
            self.row_hash = self._read_row_hash() if self.available else self._best_row_hash()
        else:
            self.ensure()
            self.available = True
            self._open_rejects = {r[0] for r in self.execute(
                f"select distinct model from {self.table('cio_rejects')} where resolved_at is null")}
            if self.kind == "postgres":
                rows = self.execute("select reltuples from pg_class where oid = to_regclass(%s)",
                                    (self.table("cio_event_ledger"),))
                self._ledger_rows = max(0, int(rows[0][0] or 0)) if rows else 0
            self.commit()
            if self.kind == "postgres":
                self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cio-state")
        return self

    @property
    def handle(self):
        if self._conn is None:
            raise RuntimeError("state store is not open")
        return self._conn.handle

    def close(self) -> None:
        if self._conn is not None:
            try:
                self.flush(force=True)
                self.sync()
            finally:
                if self._writer is not None:
                    self._writer.shutdown(wait=True)
                    self._writer = None
                try:
                    if self.kind != "duckdb":
                        self.handle.close()
                except Exception:  # noqa: BLE001 - closing is best effort
                    pass
                self._conn = None

    def table(self, name: str) -> str:
        return f"{self.adapter.quote(self.schema)}.{self.adapter.quote(name)}"

    def execute(self, sql: str, params: Sequence | None = None) -> list[tuple]:
        if self._writes and not getattr(_local, "writer", False):
            self.sync()  # after the writes handed over to the writer thread
        cursor = self.handle.cursor()
        try:
            cursor.execute(sql, params) if params is not None else cursor.execute(sql)
            try:
                return list(cursor.fetchall()) if cursor.description else []
            except Exception:  # noqa: BLE001 - some drivers raise when there is no result set
                return []
        finally:
            if self.kind != "duckdb":  # dbt-duckdb shares one cursor per connection
                cursor.close()

    def commit(self) -> None:
        if self.kind == "duckdb":
            return  # autocommit: each statement commits
        self.handle.commit()

    # -- schema and migrations -------------------------------------------------------------
    def ensure(self) -> None:
        """Create the schema and tables, or migrate them to SCHEMA_VERSION."""
        if self.kind == "redshift":
            self.execute(f"create schema if not exists {self.adapter.quote(self.schema)}")
        else:
            self.execute(f"create schema if not exists {self.adapter.quote(self.schema)}")
        for name, (columns, keys) in TABLES.items():
            cols = ", ".join(f"{c} {t}" for c, t in columns)
            primary = f", primary key ({', '.join(keys)})" if keys and self.kind != "redshift" else ""
            self.execute(f"create table if not exists {self.table(name)} ({cols}{primary})")
        rows = self.execute(f"select max(version) from {self.table('cio_state_version')}")
        current = rows[0][0] if rows and rows[0][0] is not None else 0
        if current > SCHEMA_VERSION:
            raise ConfigError(f"state schema {self.schema} is at version {current}, newer than this cio-export "
                              f"({SCHEMA_VERSION}): upgrade cio-sync")
        if current < SCHEMA_VERSION:
            # Version 1 is the first layout; later versions add their ALTERs here, in order.
            # Version 2 adds cio_inflight (created above); a run of an older cio-export, which
            # would not read it, then refuses the schema. Its ledger no longer updates every row
            # (pending, then sent), so new pages are filled.
            if current == 1 and self.kind == "postgres":
                self.execute(f"alter table {self.table('cio_event_ledger')} set (fillfactor = 100)")
            # Version 3 adds cio_state_settings: a schema made before keeps its md5 row hashes
            # (any other would differ from every stored one: each person sent again).
            # Version 4 adds cio_inflight.event_ids: the ids the keys went out with, so a resend
            # after a crash uses them whatever changed in the rows since.
            if 0 < current < 4:
                if self.kind == "redshift":  # no "if not exists" there: two runs migrating take turns
                    self.execute(f"lock {self.table('cio_inflight')}")
                    if not self.execute(
                            "select 1 from information_schema.columns where table_schema = "
                            f"{self._lit(self.schema)} and table_name = 'cio_inflight' and column_name = 'event_ids'"):
                        self.execute(f"alter table {self.table('cio_inflight')} add column event_ids varchar(65535)")
                else:
                    self.execute(f"alter table {self.table('cio_inflight')} add column if not exists "
                                 "event_ids varchar(65535)")
            self.execute(f"insert into {self.table('cio_state_version')} (version, migrated_at) values "
                         f"({SCHEMA_VERSION}, {self._ts(utcnow())})")
        self.commit()
        self.row_hash = self._settle_row_hash(self._best_row_hash() if current == 0 else "md5")
        if self.kind == "postgres" and not self.read_only:
            self._ensure_now_defaults()

    def _best_row_hash(self) -> str:
        """The row hash a new state schema gets: hash_record_extended on PostgreSQL 14 and
        later (a fifth of md5's cost per row in a diff), md5 elsewhere."""
        if self.kind == "postgres" and getattr(self.handle, "server_version", 0) >= 140000:
            return "pg_record"
        return "md5"

    def _read_row_hash(self) -> str:
        """The schema's row hash: the setting, or md5 for a schema made before it existed."""
        try:
            rows = self.execute(f"select value from {self.table('cio_state_settings')} where name = 'row_hash' "
                                "order by value")
        except Exception:  # noqa: BLE001 - a schema older than the table (read-only: not migrated)
            self._rollback()
            return "md5"
        self._rollback()
        return self._usable_row_hash(rows[0][0] if rows else "md5")

    def _settle_row_hash(self, default: str) -> str:
        """The schema's row hash, recorded as `default` if it has none yet (two first runs at
        once record one: the first insert wins)."""
        table = self.table("cio_state_settings")
        rows = self.execute(f"select value from {table} where name = 'row_hash' order by value")
        if not rows:
            if self.kind == "redshift":  # no primary keys: both may insert, both the same value
                self.execute(f"insert into {table} (name, value) select 'row_hash', {self._lit(default)} "
                             f"where not exists (select 1 from {table} where name = 'row_hash')")
            else:
                self.execute(f"insert into {table} (name, value) values ('row_hash', {self._lit(default)}) "
                             "on conflict (name) do nothing")
            self.commit()
            rows = self.execute(f"select value from {table} where name = 'row_hash' order by value")
        self.commit()
        return self._usable_row_hash(rows[0][0] if rows else default)

    def _usable_row_hash(self, kind: str) -> str:
        from ._warehouse import ROW_HASHES

        if kind not in ROW_HASHES:
            raise ConfigError(f"state schema {self.schema} hashes rows with {kind!r}, unknown to this cio-export: "
                              "upgrade cio-sync")
        if kind == "pg_record" and self._best_row_hash() != "pg_record":
            raise ConfigError(f"state schema {self.schema} hashes rows with PostgreSQL 14's hash_record_extended; "
                              "this warehouse does not have it (an older PostgreSQL?)")
        return kind

    def _ensure_now_defaults(self) -> None:
        """PostgreSQL: the time columns of rows COPYed straight in (first identifies, events
        acknowledged on their first sending) default to the time of the transaction that writes
        them, in UTC, so the COPY leaves them out: PostgreSQL parsing three timestamps of every
        ledger row cost more than the rest of the row. Added once (an ALTER when one is missing;
        older cio-export versions, which name every column, are not affected); until a default
        is there, the times are sent."""
        names = ", ".join(f"('{t}', '{c}')" for t, columns in NOW_DEFAULTS.items() for c in columns)
        found = {(t, c) for t, c in self.execute(
            "select c.relname, a.attname from pg_attrdef d join pg_attribute a on a.attrelid = d.adrelid and "
            "a.attnum = d.adnum join pg_class c on c.oid = d.adrelid join pg_namespace n on n.oid = c.relnamespace "
            f"where n.nspname = {self._lit(self.schema)} and (c.relname, a.attname) in ({names}) "
            # as PostgreSQL shows the default: 14 and later, or (13 and earlier) a function call
            "and replace(replace(lower(pg_get_expr(d.adbin, d.adrelid)), '::text', ''), ' ', '') "
            "in ('(now()attimezone''utc'')', 'timezone(''utc'',now())')")}
        missing = {t: [c for c in columns if (t, c) not in found] for t, columns in NOW_DEFAULTS.items()}
        try:
            if any(missing.values()):
                # not behind another run's long read of these tables: the ALTER would hold up every
                # statement queued after it; it is tried again by the next run
                self.execute("set local lock_timeout = '2s'")
            for table, columns in missing.items():
                if columns:
                    self.execute(f"alter table {self.table(table)} " + ", ".join(
                        f"alter column {c} set default (now() at time zone 'utc')" for c in columns))
            self.commit()
            self._now_defaults = True
        except Exception:  # noqa: BLE001 - e.g. not the tables' owner: the times are sent instead
            self._rollback()

    # -- reads -------------------------------------------------------------------------------
    def payload_schema(self, model: str) -> tuple[str, dict] | None:
        if not self.available:
            return None
        rows = self.execute(f"select identifier_kind, schema_json from {self.table('cio_payload_schemas')} "
                            f"where model = {self._lit(model)}")
        return (rows[0][0], json.loads(rows[0][1])) if rows else None

    def people_models_of_kind(self, identifier_kind: str) -> list[str]:
        """People models that have synced people into this state schema with this identifier kind."""
        if not self.available:
            return []
        schemas, people = self.table("cio_payload_schemas"), self.table("cio_people_state")
        rows = self.execute(f"select model from {schemas} where identifier_kind = {self._lit(identifier_kind)} "
                            f"and exists (select 1 from {people} s where s.model = {schemas}.model) order by 1")
        return [name for (name,) in rows]

    def save_payload_schema(self, model: str, identifier_kind: str, schema: dict) -> None:
        if not self.writable:
            return
        self.execute(f"delete from {self.table('cio_payload_schemas')} where model = {self._lit(model)}")
        values = ", ".join([self._lit(model), self._lit(identifier_kind),
                            self._lit(json.dumps(schema, sort_keys=True)), self._ts(utcnow())])
        self.execute(f"insert into {self.table('cio_payload_schemas')} "
                     f"(model, identifier_kind, schema_json, updated_at) values ({values})")
        self.commit()

    def build_proof_sql(self, unique_id: str, relation_name: str, schema: str | None = None) -> str:
        """Read on the reading connection, in the same snapshot as the rows."""
        builds = f"{self.adapter.quote(schema or self.schema)}.{self.adapter.quote('cio_builds')}"
        return (f"select invocation_id from {builds} where model_unique_id = {self._lit(unique_id)}"
                f" and relation_name = {self._lit(relation_name)} order by built_at desc limit 1")

    def record_baseline(self, model: str, source_sql: str, cutoff: int, run_id: str,
                        proof: tuple[str, str] | None = None) -> int:
        """First sync of an event model: record every event older than `cutoff` (Unix s) as
        baseline, set-based in the warehouse. Returns how many. `proof`: (build_proof_sql, the
        checked invocation id): in the same statement as the rows, so a relation a later
        build swapped in is never taken for history (nothing is recorded then; the read that
        follows finds the wrong proof and blocks the model)."""
        ledger = self.table("cio_event_ledger")
        lit = self._lit(model)
        guard = f"and ({proof[0]}) = {self._lit(proof[1])} " if proof else ""
        # Keys the ledger can hold, once each (a key shared by old rows is history all the same;
        # a null or too long key is left to the read, which rejects it).
        source = (f"(select s.*, row_number() over (partition by s.__key order by s.__ts) as __n "
                  f"from ({source_sql}) s where s.__key is not null and length(s.__key) <= 1024)")
        select = (f"select {lit}, h.__key, cast(null as varchar(26)), 'baseline', h.__hash, h.__ts, "
                  f"cast(null as timestamp), cast(null as timestamp), cast(null as timestamp), {self._lit(run_id)}, "
                  f"'first sync: older than initial_window' from {source} h where h.__n = 1 and h.__ts < {int(cutoff)} "
                  f"and h.__ts <> {OUT_OF_RANGE_TIME} "  # an infinite time is rejected, not history
                  f"{guard}and not exists (select 1 from {ledger} l where l.model = {lit} and l.event_key = h.__key)")
        count = self.execute(f"select count(*) from ({select}) b")[0][0]
        self.execute(f"insert into {ledger} ({', '.join(self._columns('cio_event_ledger'))}) {select}")
        self.commit()
        return int(count)

    def departed_people_sql(self, model: str, source_sql: str, key_filter: str | None = None) -> str:
        """The query of (person_key, identifier) of synced people whose rows are no longer in the
        model (an anti-join in the warehouse), and of how many are synced, as its third column.
        Run it in the snapshot the model's rows were read in, never on the state connection: a
        build swapped in after that read is not the checked one. `key_filter` restricts to one
        shard (a condition on s.person_key)."""
        lit = self._lit(model)
        extra = f" and {key_filter}" if key_filter else ""
        people = self.table("cio_people_state")
        return (f"select s.person_key, s.identifier, (select count(*) from {people} c where c.model = {lit}"
                f"{extra.replace('s.person_key', 'c.person_key')}) from {people} s where s.model = {lit}{extra} "
                f"and not exists (select 1 from ({source_sql}) h where h.__key = s.person_key)")

    def has_rows(self, model: str, events: bool) -> bool:
        """Whether the model has anything in state (people synced, or events in the ledger)."""
        table = self.table("cio_event_ledger" if events else "cio_people_state")
        return bool(self.execute(f"select 1 from {table} where model = {self._lit(model)} limit 1"))

    def has_history(self, model: str) -> bool:
        rows = self.execute(f"select 1 from {self.table('cio_event_ledger')} where model = {self._lit(model)} limit 1")
        if rows:
            return True
        rows = self.execute(f"select 1 from {self.table('cio_runs')} where model = {self._lit(model)} "
                            "and status in ('success', 'rejected') limit 1")
        return bool(rows)

    def recover_inflight(self, model: str, shard: str) -> int:
        """Before a run of (model, shard) reads anything: the events a stopped run was sending
        (cio_inflight rows of this shard, or of one whose lease is not live) become `pending`
        ledger rows, unless their answer was recorded (the ledger says `sent`, or was written for
        the key after it went in flight), so the diff resends them with the same ids within
        dedupe_window and reports them uncertain beyond it. Returns how many became pending."""
        if not self.writable:
            return 0
        inflight, ledger = self.table("cio_inflight"), self.table("cio_event_ledger")
        if self.kind == "redshift":
            self.execute(f"lock {inflight}")  # two shards' runs recovering at once take turns (no keys there)
        lit = self._lit(model)
        others_live = sorted(self.live_lease_shards(model) - {shard})
        where = f"i.model = {lit}" + (
            f" and i.shard not in ({', '.join(map(self._lit, others_live))})" if others_live else "")
        found = self.execute(f"select i.shard, i.run_id, i.part, i.created_at, i.event_keys, i.event_ids "
                             f"from {inflight} i where {where}")
        if not found:
            self.commit()
            return 0
        # event key -> (first in flight, last in flight, run of the last, id it went out with)
        flights: dict[str, tuple] = {}
        for _, run_id, _, created_at, keys, ids in found:
            keys = json.loads(keys)
            for key, event_id in zip(keys, json.loads(ids) if ids else [None] * len(keys), strict=True):
                first, last, last_run, last_id = flights.get(key, (created_at, created_at, run_id, event_id))
                newest = created_at >= last
                flights[key] = (min(first, created_at), max(last, created_at), run_id if newest else last_run,
                                (event_id or last_id) if newest else (last_id or event_id))
        rows = [(model, key, event_id, "pending", None, None, first, last, None, run_id,
                 "in flight when its run stopped")
                for key, (first, last, run_id, event_id) in flights.items()]
        temp = self._stage("cio_event_ledger", rows)
        columns = ", ".join(self._columns("cio_event_ledger"))
        match = "l.model = t.model and l.event_key = t.event_key"
        unanswered = "l.status <> 'sent' and (l.last_attempt_at is null or l.last_attempt_at < t.last_attempt_at)"
        count = self.execute(f"select count(*) from {temp} t where not exists (select 1 from {ledger} l where "
                             f"{match} and not ({unanswered}))")[0][0]
        # A key with a ledger row but no answer since it went in flight (a rejected event resent,
        # a pending one resent again): pending, its first attempt kept.
        self.execute(f"update {ledger} as l set status = 'pending', last_attempt_at = t.last_attempt_at, "
                     "first_attempt_at = coalesce(l.first_attempt_at, t.first_attempt_at), run_id = t.run_id, "
                     "event_id = coalesce(t.event_id, l.event_id), "
                     f"reason = t.reason from {temp} t where {match} and {unanswered}")
        conflict = " on conflict (model, event_key) do nothing" if self.kind != "redshift" else ""
        self.execute(f"insert into {ledger} ({columns}) select {columns} from {temp} t where not exists "
                     f"(select 1 from {ledger} l where {match}){conflict}")
        self.execute(f"drop table {temp}")
        self._delete_keys("cio_inflight", ("model", "shard", "run_id", "part"),
                          {(model, shard_, run_id, part) for shard_, run_id, part, _, _, _ in found})
        self.commit()
        return int(count)

    def count_people(self, model: str, key_filter: str | None = None) -> int:
        table = self.table("cio_people_state")
        extra = f" and {key_filter}" if key_filter else ""
        return self.execute(f"select count(*) from {table} s where s.model = {self._lit(model)}{extra}")[0][0]

    # -- leases --------------------------------------------------------------------------------
    def lease_lock_key(self, model: str, shard: str) -> int:
        return lease_lock_key(self.schema, model, shard)

    def acquire_lease(self, model: str, shard: str, holder: str, ttl: float) -> bool:
        """Take the (model, shard) lease unless a live one is held by someone else.

        On PostgreSQL the lease is a session-level advisory lock on the state connection, which
        PostgreSQL releases the moment the holder's connection ends: a killed run's lease is free
        at once, whatever its row in cio_leases says (the row, renewed by heartbeats, is what
        `status` shows). Elsewhere the row is the lease, and a killed run's expires after `ttl`."""
        if not self.writable:
            return True
        now = utcnow()
        table = self.table("cio_leases")
        expires = self._ts(datetime.fromtimestamp(now.timestamp() + ttl))
        if self.kind == "postgres":
            [(locked,)] = self.execute(f"select pg_try_advisory_lock({self.lease_lock_key(model, shard)})")
            if not locked:  # a live session holds it
                self.commit()
                return False
            self.execute(
                f"insert into {table} (model, shard, holder, heartbeat_at, expires_at) values "
                f"({self._lit(model)}, {self._lit(shard)}, {self._lit(holder)}, {self._ts(now)}, {expires}) "
                "on conflict (model, shard) do update set holder = excluded.holder, "
                "heartbeat_at = excluded.heartbeat_at, expires_at = excluded.expires_at")
            self.commit()
            return True
        where = f"model = {self._lit(model)} and shard = {self._lit(shard)}"
        if self.kind == "redshift":
            self.execute(f"lock {table}")
        rows = self.execute(f"select holder, expires_at from {table} where {where}")
        if rows and rows[0][0] != holder and rows[0][1] is not None and rows[0][1] > now \
                and not holder_is_dead(rows[0][0]):  # a killed run of this host frees it at once
            self.commit()
            return False
        self.execute(f"delete from {table} where {where}")
        self.execute(f"insert into {table} (model, shard, holder, heartbeat_at, expires_at) values "
                     f"({self._lit(model)}, {self._lit(shard)}, {self._lit(holder)}, {self._ts(now)}, {expires})")
        self.commit()
        return True

    def heartbeat_if_due(self, model: str, shard: str, holder: str, ttl: float) -> None:
        if self.writable and time.monotonic() - self._last_heartbeat > min(ttl / 4, 15):
            self._last_heartbeat = time.monotonic()
            self.in_background(lambda: self.heartbeat(model, shard, holder, ttl))

    def heartbeat(self, model: str, shard: str, holder: str, ttl: float) -> None:
        self._last_heartbeat = time.monotonic()
        now = utcnow()
        self.execute(f"update {self.table('cio_leases')} set heartbeat_at = {self._ts(now)}, expires_at = "
                     f"{self._ts(datetime.fromtimestamp(now.timestamp() + ttl))} where model = {self._lit(model)} "
                     f"and shard = {self._lit(shard)} and holder = {self._lit(holder)}")
        self.commit()

    def release_lease(self, model: str, shard: str, holder: str) -> None:
        if not self.writable:
            return
        self.execute(f"delete from {self.table('cio_leases')} where model = {self._lit(model)} and shard = "
                     f"{self._lit(shard)} and holder = {self._lit(holder)}")
        self.commit()
        if self.kind == "postgres":
            self.execute(f"select pg_advisory_unlock({self.lease_lock_key(model, shard)})")
            self.commit()

    def live_lease_shards(self, model: str) -> set[str]:
        """The shards of `model` whose lease a live run holds: on PostgreSQL those whose advisory
        lock is held (a killed run's row stays until overwritten, but its lock is gone), elsewhere
        those whose row has not expired and whose holder is not known dead."""
        rows = self.execute(f"select shard, expires_at, holder from {self.table('cio_leases')} "
                            f"where model = {self._lit(model)}")
        if self.kind != "postgres":
            now = utcnow()
            return {shard for shard, expires_at, holder in rows
                    if expires_at is not None and expires_at > now and not holder_is_dead(holder or "")}
        live = set()
        for shard, _, _ in rows:
            key = self.lease_lock_key(model, shard) & 0xFFFFFFFFFFFFFFFF
            held = self.execute("select count(*) from pg_locks where locktype = 'advisory' and granted and "
                                f"objsubid = 1 and classid::bigint = {key >> 32} and objid::bigint = {key & 0xFFFFFFFF}"
                                " and database = (select oid from pg_database where datname = current_database())")
            if held[0][0]:
                live.add(shard)
        return live

    # -- buffered writes ---------------------------------------------------------------------
    def people_synced(self, model: str, run_id: str, rows: Iterable[tuple], new: bool = False) -> None:
        """(person_key, identifier, row_hash) of acknowledged identifies of `model`. `new`: not in
        state when the rows were read (inserted as they are, falling back to an upsert)."""
        self._buffer(("people_new" if new else "people", model, run_id), rows)

    def inflight(self, model: str, shard: str, run_id: str, keys: Sequence[str],
                 event_ids: Sequence[str] | None = None) -> list[tuple]:
        """The keys of one batch of events about to be sent, and the ids they go out with:
        flush(force=True, only="inflight") and wait for committed() before sending it. Kept as
        JSON arrays of keys and of ids, a few rows per batch. Returns their row keys, for
        inflight_done() once the batch is answered."""
        if self.read_only or not keys:
            return []
        ids: list[str | None] = list(event_ids) if event_ids is not None else [None] * len(keys)
        now = utcnow()
        # Each key costs its JSON text and a comma; when no key needs escaping (the common case,
        # checked on all of them at once) that is its length + 3.
        joined = "".join(keys)
        if joined.isascii() and joined.isprintable() and '"' not in joined and "\\" not in joined:
            ends = list(accumulate(map((3).__add__, map(len, keys))))
        else:
            ends = list(accumulate(len(json.dumps(key)) + 1 for key in keys))
        parts, start, base = [], 0, 0
        while start < len(keys):  # as many keys as fit in INFLIGHT_PART_CHARS with the brackets, at least one
            stop = max(bisect_right(ends, base + INFLIGHT_PART_CHARS - 2, lo=start), start + 1)
            stop = min(stop, start + INFLIGHT_PART_IDS)  # and whose ids fit too
            parts.append((start, stop))
            base, start = ends[stop - 1], stop
        rows = []
        for start, stop in parts:
            self._inflight_parts += 1
            rows.append((model, shard, run_id, self._inflight_parts, now,
                         json.dumps(keys[start:stop], separators=(",", ":")),
                         json.dumps(ids[start:stop], separators=(",", ":"))))
        self._buffer("inflight", rows)
        return [row[:4] for row in rows]

    def inflight_done(self, parts: Iterable[tuple]) -> None:
        """The batch whose in-flight rows these are (from inflight()) has been answered and what
        became of each of its events is in the buffers: the rows go in the same transaction."""
        self._buffer("inflight_done", parts)

    def events_sent(self, model: str, run_id: str, rows: Iterable[tuple], new: bool = False) -> None:
        """(event_key, event_id, row_hash, event_at) acknowledged by Customer.io. `new`: no ledger
        row had these keys when the rows were read (they are then inserted as they are, falling
        back to an upsert if one has)."""
        self._buffer(("sent_new" if new else "sent", model, run_id), rows)

    def people_forgotten(self, rows: Iterable[tuple]) -> None:
        """(model, person_key) of people deleted or suppressed in Customer.io."""
        self._buffer("forget", rows)

    def ledger(self, rows: Iterable[tuple]) -> None:
        """Full ledger rows: model, event_key, event_id, status, row_hash, event_at, first_attempt_at,
        last_attempt_at, sent_at, run_id, reason."""
        self._buffer("ledger", rows)

    def rejects(self, rows: Iterable[tuple]) -> None:
        """(model, row_key, reason, message, transient, row_hash, seen_at, run_id)."""
        rows = list(rows)
        if self._open_rejects is not None:
            self._open_rejects.update(r[0] for r in rows)
        self._buffer("rejects", rows)

    def has_open_rejects(self, model: str) -> bool:
        """Whether `model` may have unresolved rejects (resolving is skipped for the others)."""
        return self._open_rejects is None or model in self._open_rejects

    def resolved(self, rows: Iterable[tuple]) -> None:
        """(model, row_key) now accepted."""
        self._buffer("resolved", (r for r in rows if self.has_open_rejects(r[0])))

    def _buffer(self, kind, rows: Iterable[tuple]) -> None:
        if self.read_only:
            return
        rows = list(rows)
        if rows:
            self._buffers.setdefault(kind, []).extend(rows)
            self._pending_rows += len(rows)

    def flush(self, force: bool = False, only: str | None = None) -> int:
        """Write what is buffered, in one transaction, when FLUSH_SECONDS have passed (or forced).
        Returns the sequence number of the last write handed over: on PostgreSQL it runs on the
        writer thread (see committed / wait), elsewhere it has committed on return. `only`: write
        that one kind of buffer now (forced), the others later."""
        self._check_writes()
        if only is not None:
            if only not in self._buffers:
                return 0  # nothing to wait for
            buffers = {only: self._buffers.pop(only)}
            self._pending_rows -= len(buffers[only])
        elif not self._buffers:
            self._last_flush = time.monotonic()
            return self._seq
        elif not force and time.monotonic() - self._last_flush < FLUSH_SECONDS and self._pending_rows < FLUSH_ROWS:
            return self._seq
        else:
            buffers, self._buffers, self._pending_rows = self._buffers, {}, 0
            self._last_flush = time.monotonic()
        self._seq += 1
        if self._writer is None:
            self._write(buffers)
            self._done_seq = self._seq
        else:
            self._writes.append((self._seq, self._writer.submit(self._on_writer, self._write, buffers)))
            while len(self._writes) > MAX_QUEUED_WRITES:  # the warehouse sets the pace: memory stays bounded
                self.wait(self._writes[0][0])
        return self._seq

    def in_background(self, task: Callable[[], Any]) -> None:
        """Run `task` (statements on this store) after the writes handed over, without waiting."""
        if self._writer is None:
            task()
            return
        self._seq += 1
        self._writes.append((self._seq, self._writer.submit(self._on_writer, task)))

    @staticmethod
    def _on_writer(task, *args):
        _local.writer = True
        return task(*args)

    def _check_writes(self) -> None:
        """Forget finished writes; re-raise the first one that failed."""
        while self._writes and self._writes[0][1].done():
            seq, future = self._writes.pop(0)
            future.result()
            self._done_seq = seq

    def committed(self, seq: int) -> bool:
        """Whether write `seq` (and every earlier one) has committed. Raises if a write failed."""
        self._check_writes()
        return seq <= self._done_seq or not self._writes

    def wait(self, seq: int) -> None:
        """Block until write `seq` (and every earlier one) has committed."""
        while self._writes and self._writes[0][0] <= seq:
            s, future = self._writes.pop(0)
            future.result()
            self._done_seq = s

    def sync(self) -> None:
        """Block until every write handed over has committed."""
        self.wait(self._seq)

    def _write(self, buffers: dict, direct: bool = True) -> None:
        """One flush, in one transaction. `direct`: keys new when read are COPYed straight in
        (PostgreSQL); if one turns out to be there already, the flush is redone with upserts."""
        direct = direct and self.kind == "postgres"
        now = utcnow()
        per_model = sorted(((key[0], key[1], key[2], rows) for key, rows in buffers.items() if isinstance(key, tuple)),
                           key=lambda write: WRITE_ORDER[write[0]])
        inserted = 0
        try:
            if self.kind == "postgres" and "inflight" not in buffers:
                # Outcomes only: the commit returns once it is in the write-ahead log's buffers,
                # without waiting for the disk. Nothing is acted on before it is durable: a batch
                # of events is sent once the write of its keys in flight has committed, and that
                # write commits synchronously (flushing every commit before it). A crash of
                # PostgreSQL can lose the last fraction of a second of outcome writes, whole: their
                # events are then still in flight, resent with the same ids within dedupe_window
                # like after any stop, and their people identified again.
                self.execute("set local synchronous_commit = off")
            if rows := buffers.get("inflight"):
                # this run's own parts, never there yet: no temporary table, no upsert
                self._insert(self.table("cio_inflight"), self._columns("cio_inflight"), rows)
            if rows := buffers.get("ledger"):
                self._upsert_ledger(rows)
            for kind, model, run_id, rows in per_model:
                if kind == "sent_new" and direct:
                    self._events_inserted(model, run_id, rows, now)
                    inserted += len(rows)
                elif kind == "people_new" and direct:
                    self._people_inserted(model, run_id, rows, now)
                elif kind in ("people", "people_new"):
                    self._people_synced(model, run_id, rows, now)
                else:
                    self._events_sent(model, run_id, rows, now, new=kind == "sent_new")
            if rows := buffers.get("inflight_done"):
                self._delete_inflight(rows)
            if rows := buffers.get("forget"):
                self._delete_keys("cio_people_state", ("model", "person_key"), rows)
            if rows := buffers.get("rejects"):
                self._upsert_rejects(rows)
            if rows := buffers.get("resolved"):
                self._resolve(rows)
            self.commit()
            if inserted:
                self._keep_ledger_analyzed(inserted)
        except BaseException as exc:
            self._rollback()
            if direct and getattr(exc, "pgcode", None) == UNIQUE_VIOLATION:  # a key seen twice: upsert instead
                self._write(buffers, direct=False)
                return
            raise

    def abandon_open_work(self) -> None:
        """After an interruption (Ctrl-C, SIGTERM) between two statements of one change: the
        handed-over writes are let finish (each is a whole transaction), what the interrupted
        change left open is rolled back, never committed half done by the next write."""
        try:
            self.sync()
        finally:
            self._rollback()

    def _rollback(self) -> None:
        if self.kind != "duckdb":
            try:
                self.handle.rollback()
            except Exception:  # noqa: BLE001
                pass

    # -- set-based upserts, per adapter -------------------------------------------------------------
    def _columns(self, table: str) -> list[str]:
        return [c for c, _ in TABLES[table][0]]

    def _stage(self, table: str, rows: list[tuple], columns: list[str] | None = None) -> str:
        """Load rows into a temporary table shaped like `table` (or its `columns`); returns its name.
        PostgreSQL: a COPY in its text format (see _copy_text)."""
        columns = columns or self._columns(table)
        types = dict(TABLES[table][0])
        temp = f"cio_tmp_{table}_{uuid.uuid4().hex[:8]}"
        cols = ", ".join(f"{c} {types[c]}" for c in columns)
        self.execute(f"create temporary table {temp} ({cols})")
        if self.kind == "postgres":
            self._copy(f"copy {temp} ({', '.join(columns)}) from stdin", _copy_text(rows, ()))
        else:
            self._insert(temp, columns, rows)
        return temp

    # Acknowledged people and events: on PostgreSQL only the varying columns are
    # staged (the model, times and run id are constants of the statement); elsewhere full rows.
    def _people_synced(self, model: str, run_id: str, rows: list[tuple], now: datetime) -> None:
        rows = self._dedupe(rows, 1)
        if self.kind != "postgres":
            self._upsert("cio_people_state", [(model, k, i, h, now, run_id) for k, i, h in rows])
            return
        temp = self._stage("cio_people_state", rows, ["person_key", "identifier", "row_hash"])
        self.execute(
            f"insert into {self.table('cio_people_state')} (model, person_key, identifier, row_hash, synced_at, "
            f"run_id) select {self._lit(model)}, person_key, identifier, row_hash, {self._ts(now)}, "
            f"{self._lit(run_id)} from {temp} on conflict (model, person_key) do update set "
            "identifier = excluded.identifier, row_hash = excluded.row_hash, synced_at = excluded.synced_at, "
            f"run_id = excluded.run_id")
        self.execute(f"drop table {temp}")

    def _people_inserted(self, model: str, run_id: str, rows: list[tuple], now: datetime) -> None:
        """First identifies (PostgreSQL): COPY straight into the people state."""
        times = () if self._now_defaults else NOW_DEFAULTS["cio_people_state"]
        self._copy_into("cio_people_state", ("person_key", "identifier", "row_hash", "model", "run_id", *times),
                        rows, (model, run_id) + (now.isoformat(sep=" "),) * len(times))

    def _events_inserted(self, model: str, run_id: str, rows: list[tuple], now: datetime) -> None:
        """Events acknowledged on their first sending (PostgreSQL): COPY straight into the ledger."""
        times = () if self._now_defaults else NOW_DEFAULTS["cio_event_ledger"]
        self._copy_into("cio_event_ledger", ("event_key", "event_id", "row_hash", "event_at", "model", "status",
                                             "run_id", *times),
                        rows, (model, "sent", run_id) + (now.isoformat(sep=" "),) * len(times))

    def _copy_into(self, table: str, columns: Sequence[str], rows: list[tuple], constants: tuple) -> None:
        """PostgreSQL: COPY rows + the same constants on every row straight into a state table, in
        COPY's text format; a key already there fails it (see _write's fallback)."""
        self._copy(f"copy {self.table(table)} ({', '.join(columns)}) from stdin", _copy_text(rows, constants))

    def _copy(self, sql: str, pieces: Iterator[str]) -> None:
        """COPY ... FROM STDIN of pieces of text made as the driver asks for them (whole pieces:
        read in 8 KB reads, a writer thread would wait for the GIL between every two of them)."""
        cursor = self.handle.cursor()
        try:
            cursor.copy_expert(sql, _Chunks(pieces), size=1 << 20)
        finally:
            cursor.close()

    def _events_sent(self, model: str, run_id: str, rows: list[tuple], now: datetime, new: bool = False) -> None:
        if self.kind != "postgres" or new:
            self._upsert_ledger([(model, k, i, "sent", h, at, now, now, now, run_id, None) for k, i, h, at in rows])
            return
        # The row exists (pending: sent before, by a run that stopped or could not deliver it). One
        # primary-key lookup per key. The planner would rather scan the model's whole ledger once
        # a flush's keys are a few percent of it (a large resend after a stopped run), which makes
        # the work grow with the ledger instead of with the keys; the scan is ruled out for this
        # statement only.
        # The id, hash and time are set too: a row recovered from flight has none, and a rejected
        # event accepted now has a new hash.
        ledger = self.table("cio_event_ledger")
        self.execute("set local enable_seqscan = off")
        self.execute(
            f"update {ledger} as l set status = 'sent', sent_at = {self._ts(now)}, last_attempt_at = {self._ts(now)}, "
            f"run_id = {self._lit(run_id)}, reason = null, event_id = coalesce(t.i, l.event_id), row_hash = t.h, "
            "event_at = t.a from unnest(%s::text[], %s::text[], %s::text[], %s::bigint[]) as t(k, i, h, a) "
            f"where l.model = {self._lit(model)} and l.event_key = t.k",
            tuple(list(column) for column in zip(*rows, strict=True)))
        self.execute("set local enable_seqscan to default")

    def _keep_ledger_analyzed(self, inserted: int) -> None:
        """PostgreSQL: ANALYZE the ledger each time it has doubled since its statistics were taken.
        A first sync of a large model starts with statistics of a nearly empty ledger; the planner
        then takes the model's whole ledger for a few rows and scans it in every statement that
        joins it (upserts of resent events and rejects; the sent update rules scans out itself).
        Autovacuum catches up only later."""
        self._ledger_growth += inserted
        if self._ledger_growth >= max(ANALYZE_MIN_ROWS, self._ledger_rows):
            self.execute(f"analyze {self.table('cio_event_ledger')}")
            self.commit()
            self._ledger_rows += self._ledger_growth
            self._ledger_growth = 0

    def _merge(self, table: str, temp: str, columns: list[str], keys: Sequence[str], update: Sequence[str],
               update_exprs: dict[str, str] | None = None) -> None:
        """Upsert temp into table on keys. update_exprs may use {T} (the existing row) and {S}
        (the incoming row)."""
        target = self.table(table)
        if self.kind == "redshift":
            ref_t, ref_s = "t.", "s."
        else:
            ref_t, ref_s = f"{target}.", "excluded."

        def expr(column: str) -> str:
            template = (update_exprs or {}).get(column, "{S}" + column)
            return template.replace("{T}", ref_t).replace("{S}", ref_s)

        sets = ", ".join(f"{c} = {expr(c)}" for c in update)
        if self.kind == "redshift":
            on = " and ".join(f"t.{k} = s.{k}" for k in keys)
            values = ", ".join("s." + c for c in columns)
            self.execute(f"merge into {target} t using {temp} s on {on} when matched then update set {sets} "
                         f"when not matched then insert ({', '.join(columns)}) values ({values})")
        else:
            self.execute(f"insert into {target} ({', '.join(columns)}) select {', '.join(columns)} from {temp} "
                         f"on conflict ({', '.join(keys)}) do update set {sets}")
        self.execute(f"drop table {temp}")

    def _dedupe(self, rows: list[tuple], key_len: int) -> list[tuple]:
        """Last write wins within one flush (an upsert cannot touch one key twice)."""
        latest: dict[tuple, tuple] = {}
        for row in rows:
            latest[row[:key_len]] = row
        return list(latest.values())

    def _upsert(self, table: str, rows: list[tuple]) -> None:
        columns = self._columns(table)
        keys = TABLES[table][1]
        rows = self._dedupe(rows, len(keys))
        temp = self._stage(table, rows)
        self._merge(table, temp, columns, keys, [c for c in columns if c not in keys])

    def _upsert_ledger(self, rows: list[tuple]) -> None:
        columns = self._columns("cio_event_ledger")
        keys = TABLES["cio_event_ledger"][1]
        rows = self._dedupe(rows, len(keys))
        temp = self._stage("cio_event_ledger", rows)
        # Keep the first attempt time (the dedupe window counts from it) and any id already known.
        self._merge("cio_event_ledger", temp, columns, keys, [c for c in columns if c not in keys], {
            "first_attempt_at": "coalesce({T}first_attempt_at, {S}first_attempt_at)",
            "event_id": "coalesce({S}event_id, {T}event_id)",
            "sent_at": "coalesce({S}sent_at, {T}sent_at)",
        })

    def _upsert_rejects(self, rows: list[tuple]) -> None:
        # rows: (model, row_key, reason, message, transient, row_hash, seen_at, run_id)
        full = [(m, k, r, msg, tr, h, seen, seen, None, run) for m, k, r, msg, tr, h, seen, run in rows]
        columns = self._columns("cio_rejects")
        keys = TABLES["cio_rejects"][1]
        full = self._dedupe(full, len(keys))
        temp = self._stage("cio_rejects", full)
        self._merge("cio_rejects", temp, columns, keys, [c for c in columns if c not in keys], {
            "first_seen_at": "case when {T}resolved_at is null then {T}first_seen_at else {S}first_seen_at end",
        })

    def _insert(self, target: str, columns: Sequence[str], rows: list[tuple], step: int = 500) -> None:
        """Plain multi-row INSERTs into `target` (a rendered table name), `step` rows each."""
        placeholders = "(" + ", ".join(["?" if self.kind == "duckdb" else "%s"] * len(columns)) + ")"
        for start in range(0, len(rows), step):
            chunk = rows[start:start + step]
            sql = f"insert into {target} ({', '.join(columns)}) values " + ", ".join([placeholders] * len(chunk))
            self.execute(sql, [v for row in chunk for v in row])

    def _delete_keys(self, table: str, keys: Sequence[str], rows: Iterable[tuple]) -> None:
        temp = self._stage(table, list(set(rows)), list(keys))
        on = " and ".join(f"{self.table(table)}.{k} = {temp}.{k}" for k in keys)
        self.execute(f"delete from {self.table(table)} where exists (select 1 from {temp} where {on})")
        self.execute(f"drop table {temp}")

    def _delete_inflight(self, rows: list[tuple]) -> None:
        """cio_inflight rows (model, shard, run_id, part) of answered batches: one DELETE per run
        (the parts are integers), not a temporary table per flush."""
        runs: dict[tuple, set[int]] = {}
        for model, shard, run_id, part in rows:
            runs.setdefault((model, shard, run_id), set()).add(int(part))
        for (model, shard, run_id), parts in runs.items():
            self.execute(f"delete from {self.table('cio_inflight')} where model = {self._lit(model)} and shard = "
                         f"{self._lit(shard)} and run_id = {self._lit(run_id)} and part in "
                         f"({', '.join(map(str, sorted(parts)))})")

    def _resolve(self, rows: list[tuple]) -> None:
        temp = self._stage("cio_rejects", list(set(rows)), ["model", "row_key"])
        target = self.table("cio_rejects")
        match = f"{temp}.model = {target}.model and {temp}.row_key = {target}.row_key"
        self.execute(f"update {target} set resolved_at = {self._ts(utcnow())} "
                     f"where resolved_at is null and exists (select 1 from {temp} where {match})")
        self.execute(f"drop table {temp}")

    # -- runs ------------------------------------------------------------------------------
    def run_started(self, run_id: str, model: str, shard: str, dbt_invocation_id: str | None) -> None:
        if not self.writable:
            return
        self.execute(f"insert into {self.table('cio_runs')} (run_id, model, shard, started_at, status, "
                     f"dbt_invocation_id, scanned, changed, sent, rejected, skipped, deleted) values "
                     f"({self._lit(run_id)}, {self._lit(model)}, {self._lit(shard)}, {self._ts(utcnow())}, "
                     f"'running', {self._lit(dbt_invocation_id)}, 0, 0, 0, 0, 0, 0)")
        self.commit()

    def run_finished(self, run_id: str, model: str, **fields: Any) -> None:
        if not self.writable:
            return
        sets = [f"finished_at = {self._ts(utcnow())}"]
        for name, value in fields.items():
            sets.append(f"{name} = {self._value(value)}")
        self.execute(f"update {self.table('cio_runs')} set {', '.join(sets)} where run_id = {self._lit(run_id)} "
                     f"and model = {self._lit(model)}")
        self.commit()

    # -- resets ----------------------------------------------------------------------------
    def model_scope(self, model: str) -> tuple[str, str | None] | None:
        """(relation name, site id) the model's state was made with, or None."""
        try:
            rows = self.execute(f"select relation_name, site_id from {self.table('cio_model_scopes')} "
                                f"where model = {self._lit(model)}")
        except Exception:  # noqa: BLE001 - read-only on a schema older than the table
            self._rollback()
            return None
        return (rows[0][0], rows[0][1]) if rows else None

    def record_model_scope(self, model: str, relation_name: str, site_id: str | None) -> None:
        """Record (or, after an accepted change, replace) what the model's state describes."""
        if not self.writable:
            return
        table = self.table("cio_model_scopes")
        self.execute(f"delete from {table} where model = {self._lit(model)}")
        self.execute(f"insert into {table} (model, relation_name, site_id, recorded_at) values ({self._lit(model)}, "
                     f"{self._lit(relation_name)}, {self._lit(site_id)}, {self._ts(utcnow())})")
        self.commit()

    def forget_scope(self, model: str) -> None:
        self.execute(f"delete from {self.table('cio_model_scopes')} where model = {self._lit(model)}")

    def forget_people(self, model: str) -> int:
        n = self.count_people(model)
        self.forget_scope(model)
        self.execute(f"delete from {self.table('cio_people_state')} where model = {self._lit(model)}")
        self.execute(f"delete from {self.table('cio_payload_schemas')} where model = {self._lit(model)}")
        self.execute(f"delete from {self.table('cio_rejects')} where model = {self._lit(model)}")
        self.commit()
        return n

    def forget_events(self, model: str) -> int:
        ledger = self.table("cio_event_ledger")
        n = self.execute(f"select count(*) from {ledger} where model = {self._lit(model)}")[0][0]
        self.forget_scope(model)
        self.execute(f"delete from {self.table('cio_event_ledger')} where model = {self._lit(model)}")
        self.execute(f"delete from {self.table('cio_inflight')} where model = {self._lit(model)}")
        self.execute(f"delete from {self.table('cio_payload_schemas')} where model = {self._lit(model)}")
        self.execute(f"delete from {self.table('cio_rejects')} where model = {self._lit(model)}")
        self.execute(f"delete from {self.table('cio_runs')} where model = {self._lit(model)}")
        self.commit()
        return n

    # -- literals ----------------------------------------------------------------------------
    _lit = staticmethod(literal)

    def _ts(self, value: datetime | None) -> str:
        return "null" if value is None else f"cast('{value.isoformat(sep=' ')}' as timestamp)"

    def _value(self, value: Any) -> str:
        if value is None:
            return "null"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return repr(value)
        if isinstance(value, datetime):
            return self._ts(value)
        return self._lit(str(value))


class _Chunks:
    """COPY data read by psycopg2's copy_expert one piece at a time, each made when it is asked
    for: the writer thread formats the next piece (holding the GIL) while PostgreSQL parses the
    last one (psycopg2 lets go of the GIL while it sends it)."""

    def __init__(self, pieces: Iterator[str]) -> None:
        self.pieces = pieces

    def read(self, size: int = -1) -> str:
        return next(self.pieces, "")


#: rows per piece of a COPY in text format (about 150 KB of ledger rows)
COPY_PIECE_ROWS = 1_000
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _text_value(value: Any) -> str:
    """One value in COPY's text format: null as \\N, booleans t/f, times ISO, separators and
    backslashes escaped."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value).translate(_ESCAPES)


def _copy_text(rows: list[tuple], constants: tuple, piece: int | None = None) -> Iterator[str]:
    """The rows of a COPY in PostgreSQL's text format, each followed by the constants, in pieces
    of `piece` rows. A piece is made by one `%` over all its values instead of a writer per row
    (about 4x faster than csv, which counts on the writer thread: it holds the GIL the reader
    and the encoder need). A piece with a null, a boolean (written t/f) or a value holding a
    tab, a line break or a backslash is made again value by value, escaped. The check counts
    the separators in the result, so a value that brings its own is found whatever its type."""
    if not rows:
        return
    piece = piece or COPY_PIECE_ROWS
    width = len(rows[0])
    tail = "\t".join(map(_text_value, constants))
    line = "\t".join(["%s"] * width) + ("\t" + tail.replace("%", "%%") if constants else "") + "\n"
    tabs = width - 1 + len(constants)
    end = ("\t" + tail if constants else "") + "\n"
    for start in range(0, len(rows), piece):
        chunk = rows[start:start + piece]
        values = tuple(chain.from_iterable(chunk))
        if len(values) == width * len(chunk) and None not in values and bool not in set(map(type, values)):
            text = (line * len(chunk)) % values
            if (text.count("\t") == len(chunk) * tabs and text.count("\n") == len(chunk)
                    and "\\" not in text and "\r" not in text):
                yield text
                continue
        yield "".join("\t".join(map(_text_value, row)) + end for row in chunk)

