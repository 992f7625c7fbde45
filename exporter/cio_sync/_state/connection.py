"""The state store's own connection and its queue of buffered writes: rows are buffered, flushed
in one transaction every few seconds or on demand, on a writer thread on PostgreSQL; a
flush's sequence number tells when it has committed (the commit-before-send handshake of
events in flight). What a flush writes is the subclass's `_write` (writes.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

from .._errors import ConfigError
from .._project.artifacts import STATE_SCHEMA_NAME
from .._read.dialects import dialect_for
from .._sql import literal
from .tables import DEFAULT_SCHEMA, FLUSH_ROWS, FLUSH_SECONDS, MAX_QUEUED_WRITES

_local = threading.local()  # .writer is True on the writer thread


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class StateConnection:
    """A connection to the state schema, its literals and its write queue."""

    def __init__(self, adapter, schema: str = DEFAULT_SCHEMA, read_only: bool = False) -> None:
        if not STATE_SCHEMA_NAME.match(schema):
            raise ConfigError(f"the state schema must be a plain SQL identifier (letters, digits, _), not {schema!r}: "
                              "set --state-schema or var cio_state_schema")
        self.adapter = adapter
        self.dialect = dialect_for(adapter)  # what the warehouse can do
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
        self.row_hash = "md5"  # how this schema's row hashes are made (one of _read.dialects.ROW_HASHES)

    @property
    def writable(self) -> bool:
        return self.available and not self.read_only

    # -- connection ----------------------------------------------------------------------
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
                    if not self.dialect.embedded:
                        self.handle.close()
                except Exception:  # noqa: BLE001 - closing is best effort
                    pass
                self._conn = None

    def table(self, name: str) -> str:
        return f"{self.adapter.quote(self.schema)}.{self.adapter.quote(name)}"

    def execute(self, sql: str, params: Sequence | None = None) -> list[tuple]:
        """Run one statement on the state connection; its rows, if it returns any. Values go as
        bind parameters (`params`), written `%s` in `sql` whatever the driver's style (DuckDB's
        `?` is put in their place)."""
        if params is not None and self.dialect.placeholder != "%s":
            sql = sql.replace("%s", self.dialect.placeholder)
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
            if not self.dialect.embedded:  # dbt-duckdb shares one cursor per connection
                cursor.close()

    def commit(self) -> None:
        if self.dialect.embedded:
            return  # autocommit: each statement commits
        self.handle.commit()

    # -- the write queue ---------------------------------------------------------------------
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
        raise NotImplementedError  # writes.StateWrites

    def abandon_open_work(self) -> None:
        """After an interruption (Ctrl-C, SIGTERM) between two statements of one change: the
        handed-over writes are let finish (each is a whole transaction), what the interrupted
        change left open is rolled back, never committed half done by the next write."""
        try:
            self.sync()
        finally:
            self._rollback()

    def _rollback(self) -> None:
        if not self.dialect.embedded:
            try:
                self.handle.rollback()
            except Exception:  # noqa: BLE001
                pass

    # -- literals: only in SQL composed with a model's query for the reading connection (build
    # proofs, baseline, who left), which runs as one statement there; every statement of the state
    # connection binds its values (execute's params)
    _lit = staticmethod(literal)
