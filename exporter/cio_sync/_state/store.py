"""The state store: the tables created and migrated, what is read before and during a sync,
the run log, model scopes and resets, on top of the connection, the writes and the leases."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .._errors import ConfigError
from .._project.model import OUT_OF_RANGE_TIME
from .connection import utcnow
from .leases import StateLeases
from .tables import NOW_DEFAULTS, SCHEMA_VERSION, SYNCED_RUN_STATUSES, TABLES
from .writes import StateWrites


class StateStore(StateWrites, StateLeases):
    """The state tables of one warehouse, written through their own connection."""

    def tables(self):
        from .._read.query import StateTables

        return StateTables(people=self.table("cio_people_state"), ledger=self.table("cio_event_ledger"),
                           rejects=self.table("cio_rejects"))

    def open(self) -> StateStore:
        """A second connection, opened by the adapter with the profile's credentials."""
        from dbt.adapters.contracts.connection import Connection, ConnectionState

        connection = Connection(type=self.adapter.type(), name="cio-export-state", state=ConnectionState.INIT,
                                transaction_open=False,
                                handle=None, credentials=self.adapter.config.credentials)
        return self.attach(self.adapter.connections.open(connection))

    def attach(self, connection) -> StateStore:
        """Use `connection` (anything with a DB-API `.handle`) as the state connection."""
        self._conn = connection
        handle = self._conn.handle
        if not self.dialect.embedded:
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
            if self.dialect.bulk_copy:  # the ledger's statistics are kept up to date
                rows = self.execute("select reltuples from pg_class where oid = to_regclass(%s)",
                                    (self.table("cio_event_ledger"),))
                self._ledger_rows = max(0, int(rows[0][0] or 0)) if rows else 0
            self.commit()
            if self.dialect.bulk_copy:
                self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cio-state")
        return self

    # -- schema and migrations -------------------------------------------------------------
    def ensure(self) -> None:
        """Create the schema and tables, or migrate them to SCHEMA_VERSION."""
        self.execute(f"create schema if not exists {self.adapter.quote(self.schema)}")
        for name, (columns, keys) in TABLES.items():
            cols = ", ".join(f"{c} {t}" for c, t in columns)
            self.execute(f"create table if not exists {self.table(name)} ({cols}{self.dialect.primary_key(keys)})")
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
            if current == 1 and self.dialect.bulk_copy:
                self.execute(f"alter table {self.table('cio_event_ledger')} set (fillfactor = 100)")
            # Version 3 adds cio_state_settings: a schema made before keeps its md5 row hashes
            # (any other would differ from every stored one: each person sent again).
            # Version 4 adds cio_inflight.event_ids: the ids the keys went out with, so a resend
            # after a crash uses them whatever changed in the rows since.
            if 0 < current < 4:
                self._add_column("cio_inflight", "event_ids", "varchar(65535)")
            self.execute(f"insert into {self.table('cio_state_version')} (version, migrated_at) values (%s, %s)",
                         (SCHEMA_VERSION, utcnow()))
        self.commit()
        self.row_hash = self._settle_row_hash(self._best_row_hash() if current == 0 else "md5")
        if self.dialect.bulk_copy and not self.read_only:
            self._ensure_now_defaults()

    def _add_column(self, table: str, column: str, type_: str) -> None:
        """A column a migration adds, unless it is there (two runs migrating at once take turns
        where the warehouse has no IF NOT EXISTS)."""
        target = self.table(table)
        if self.dialect.add_column_if_not_exists:
            self.execute(f"alter table {target} add column if not exists {column} {type_}")
            return
        for lock in self.dialect.lock(target):
            self.execute(lock)
        if not self.execute("select 1 from information_schema.columns where table_schema = %s and table_name = %s "
                            "and column_name = %s", (self.schema, table, column)):
            self.execute(f"alter table {target} add column {column} {type_}")

    def _best_row_hash(self) -> str:
        """The row hash a new state schema gets: hash_record_extended on PostgreSQL 14 and
        later (a fifth of md5's cost per row in a diff), md5 elsewhere."""
        return self.dialect.best_row_hash(self.handle)

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
            # two first runs at once: the first insert wins (both the same value where no key says so)
            self.execute(f"insert into {table} (name, value) select 'row_hash', %s "
                         f"where not exists (select 1 from {table} where name = 'row_hash')"
                         f"{self.dialect.ignore_conflict(['name'])}", (default,))
            self.commit()
            rows = self.execute(f"select value from {table} where name = 'row_hash' order by value")
        self.commit()
        return self._usable_row_hash(rows[0][0] if rows else default)

    def _usable_row_hash(self, kind: str) -> str:
        from .._read.dialects import ROW_HASHES

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
            f"where n.nspname = %s and (c.relname, a.attname) in ({names}) "
            # as PostgreSQL shows the default: 14 and later, or (13 and earlier) a function call
            "and replace(replace(lower(pg_get_expr(d.adbin, d.adrelid)), '::text', ''), ' ', '') "
            "in ('(now()attimezone''utc'')', 'timezone(''utc'',now())')", (self.schema,))}
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
                            "where model = %s", (model,))
        return (rows[0][0], json.loads(rows[0][1])) if rows else None

    def people_models_of_kind(self, identifier_kind: str) -> list[str]:
        """People models that have synced people into this state schema with this identifier kind."""
        if not self.available:
            return []
        schemas, people = self.table("cio_payload_schemas"), self.table("cio_people_state")
        rows = self.execute(f"select model from {schemas} where identifier_kind = %s "
                            f"and exists (select 1 from {people} s where s.model = {schemas}.model) order by 1",
                            (identifier_kind,))
        return [name for (name,) in rows]

    def save_payload_schema(self, model: str, identifier_kind: str, schema: dict) -> None:
        if not self.writable:
            return
        self.execute(f"delete from {self.table('cio_payload_schemas')} where model = %s", (model,))
        self.execute(f"insert into {self.table('cio_payload_schemas')} "
                     "(model, identifier_kind, schema_json, updated_at) values (%s, %s, %s, %s)",
                     (model, identifier_kind, json.dumps(schema, sort_keys=True), utcnow()))
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
        return bool(self.execute(f"select 1 from {table} where model = %s limit 1", (model,)))

    def has_history(self, model: str) -> bool:
        rows = self.execute(f"select 1 from {self.table('cio_event_ledger')} where model = %s limit 1", (model,))
        if rows:
            return True
        rows = self.execute(f"select 1 from {self.table('cio_runs')} where model = %s "
                            f"and status in {SYNCED_RUN_STATUSES} limit 1", (model,))
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
        for lock in self.dialect.lock(inflight):  # two shards' runs recovering at once take turns
            self.execute(lock)
        others_live = sorted(self.live_lease_shards(model) - {shard})
        where = "i.model = %s" + (
            f" and i.shard not in ({', '.join(['%s'] * len(others_live))})" if others_live else "")
        found = self.execute(f"select i.shard, i.run_id, i.part, i.created_at, i.event_keys, i.event_ids "
                             f"from {inflight} i where {where}", (model, *others_live))
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
        conflict = self.dialect.ignore_conflict(["model", "event_key"])
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
        return self.execute(f"select count(*) from {table} s where s.model = %s{extra}", (model,))[0][0]

    # -- runs ------------------------------------------------------------------------------
    def run_started(self, run_id: str, model: str, shard: str, dbt_invocation_id: str | None) -> None:
        if not self.writable:
            return
        self.execute(f"insert into {self.table('cio_runs')} (run_id, model, shard, started_at, status, "
                     "dbt_invocation_id, scanned, changed, sent, rejected, skipped, deleted) values "
                     "(%s, %s, %s, %s, 'running', %s, 0, 0, 0, 0, 0, 0)",
                     (run_id, model, shard, utcnow(), dbt_invocation_id))
        self.commit()

    def run_finished(self, run_id: str, model: str, **fields: Any) -> None:
        if not self.writable:
            return
        sets = ", ".join(["finished_at = %s", *(f"{name} = %s" for name in fields)])
        self.execute(f"update {self.table('cio_runs')} set {sets} where run_id = %s and model = %s",
                     (utcnow(), *fields.values(), run_id, model))
        self.commit()

    # -- resets ----------------------------------------------------------------------------
    def model_scope(self, model: str) -> tuple[str, str | None] | None:
        """(relation name, site id) the model's state was made with, or None."""
        try:
            rows = self.execute(f"select relation_name, site_id from {self.table('cio_model_scopes')} "
                                "where model = %s", (model,))
        except Exception:  # noqa: BLE001 - read-only on a schema older than the table
            self._rollback()
            return None
        return (rows[0][0], rows[0][1]) if rows else None

    def record_model_scope(self, model: str, relation_name: str, site_id: str | None) -> None:
        """Record (or, after an accepted change, replace) what the model's state describes."""
        if not self.writable:
            return
        table = self.table("cio_model_scopes")
        self.execute(f"delete from {table} where model = %s", (model,))
        self.execute(f"insert into {table} (model, relation_name, site_id, recorded_at) values (%s, %s, %s, %s)",
                     (model, relation_name, site_id, utcnow()))
        self.commit()

    def forget_scope(self, model: str) -> None:
        self.execute(f"delete from {self.table('cio_model_scopes')} where model = %s", (model,))

    def forget_people(self, model: str) -> int:
        n = self.count_people(model)
        self.forget_scope(model)
        self.execute(f"delete from {self.table('cio_people_state')} where model = %s", (model,))
        self.execute(f"delete from {self.table('cio_payload_schemas')} where model = %s", (model,))
        self.execute(f"delete from {self.table('cio_rejects')} where model = %s", (model,))
        self.commit()
        return n

    def forget_events(self, model: str) -> int:
        ledger = self.table("cio_event_ledger")
        n = self.execute(f"select count(*) from {ledger} where model = %s", (model,))[0][0]
        self.forget_scope(model)
        self.execute(f"delete from {self.table('cio_event_ledger')} where model = %s", (model,))
        self.execute(f"delete from {self.table('cio_inflight')} where model = %s", (model,))
        self.execute(f"delete from {self.table('cio_payload_schemas')} where model = %s", (model,))
        self.execute(f"delete from {self.table('cio_rejects')} where model = %s", (model,))
        self.execute(f"delete from {self.table('cio_runs')} where model = %s", (model,))
        self.commit()
        return n
