"""What the state store records, buffered (people synced, events sent or in flight, ledger,
rejects), and how one flush writes it: set-based, per warehouse (COPY and upserts on
PostgreSQL, MERGE on Redshift, inserts and upserts on DuckDB)."""

from __future__ import annotations

import json
import uuid
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from itertools import accumulate

from .connection import StateConnection, utcnow
from .copy import _Chunks, _copy_text
from .tables import (
    ANALYZE_MIN_ROWS,
    INFLIGHT_PART_CHARS,
    INFLIGHT_PART_IDS,
    NOW_DEFAULTS,
    TABLES,
    UNIQUE_VIOLATION,
    WRITE_ORDER,
)


class StateWrites(StateConnection):
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

    def _write(self, buffers: dict, direct: bool = True) -> None:
        """One flush, in one transaction. `direct`: keys new when read are COPYed straight in
        (PostgreSQL); if one turns out to be there already, the flush is redone with upserts."""
        direct = direct and self.dialect.bulk_copy
        now = utcnow()
        per_model = sorted(((key[0], key[1], key[2], rows) for key, rows in buffers.items() if isinstance(key, tuple)),
                           key=lambda write: WRITE_ORDER[write[0]])
        inserted = 0
        try:
            if self.dialect.bulk_copy and "inflight" not in buffers:
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
        if self.dialect.bulk_copy:
            self._copy(f"copy {temp} ({', '.join(columns)}) from stdin", _copy_text(rows, ()))
        else:
            self._insert(temp, columns, rows)
        return temp

    # Acknowledged people and events: on PostgreSQL only the varying columns are
    # staged (the model, times and run id are constants of the statement); elsewhere full rows.
    def _people_synced(self, model: str, run_id: str, rows: list[tuple], now: datetime) -> None:
        rows = self._dedupe(rows, 1)
        if not self.dialect.bulk_copy:
            self._upsert("cio_people_state", [(model, k, i, h, now, run_id) for k, i, h in rows])
            return
        temp = self._stage("cio_people_state", rows, ["person_key", "identifier", "row_hash"])
        self.execute(
            f"insert into {self.table('cio_people_state')} (model, person_key, identifier, row_hash, synced_at, "
            f"run_id) select %s, person_key, identifier, row_hash, %s, %s from {temp} "
            "on conflict (model, person_key) do update set identifier = excluded.identifier, "
            "row_hash = excluded.row_hash, synced_at = excluded.synced_at, run_id = excluded.run_id",
            (model, now, run_id))
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
        if not self.dialect.bulk_copy or new:
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
            f"update {ledger} as l set status = 'sent', sent_at = %s, last_attempt_at = %s, run_id = %s, "
            "reason = null, event_id = coalesce(t.i, l.event_id), row_hash = t.h, event_at = t.a "
            "from unnest(%s::text[], %s::text[], %s::text[], %s::bigint[]) as t(k, i, h, a) "
            "where l.model = %s and l.event_key = t.k",
            (now, now, run_id, *(list(column) for column in zip(*rows, strict=True)), model))
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
        exprs = update_exprs or {}
        self.execute(self.dialect.upsert(self.table(table), temp, columns, keys,
                                         {c: exprs.get(c, "{S}" + c) for c in update}))
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
        placeholders = "(" + ", ".join(["%s"] * len(columns)) + ")"
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
            self.execute(f"delete from {self.table('cio_inflight')} where model = %s and shard = %s and run_id = %s "
                         f"and part in ({', '.join(map(str, sorted(parts)))})", (model, shard, run_id))

    def _resolve(self, rows: list[tuple]) -> None:
        temp = self._stage("cio_rejects", list(set(rows)), ["model", "row_key"])
        target = self.table("cio_rejects")
        match = f"{temp}.model = {target}.model and {temp}.row_key = {target}.row_key"
        self.execute(f"update {target} set resolved_at = %s "
                     f"where resolved_at is null and exists (select 1 from {temp} where {match})", (utcnow(),))
        self.execute(f"drop table {temp}")
