"""Reading a model's rows in one snapshot, streamed in chunks so memory stays flat whatever the
table size. Streaming differs per warehouse, one reader class each: PostgreSQL uses a
server-side (named) cursor, Redshift `DECLARE ... CURSOR` / `FETCH` (redshift_connector would
otherwise buffer the whole result), DuckDB fetches chunks from its streaming result."""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Iterator
from typing import Any

FETCH_ROWS = 10_000
PREFETCH = 1  # chunks fetched ahead (each ~10,000 rows): enough to hide the wait, little memory


class SnapshotReader:
    """Reads on the adapter's connection inside one transaction, so every query of a model (its
    build proof, its rows, the state it is diffed against) sees the same snapshot: on
    PostgreSQL a REPEATABLE READ transaction, Redshift's default serializable isolation,
    DuckDB's snapshot isolation. Read only: rolled back at the end. `SnapshotReader(adapter)`
    makes the reader of the adapter's warehouse (one subclass each)."""

    def __new__(cls, adapter, fetch_rows: int = FETCH_ROWS) -> SnapshotReader:
        if cls is SnapshotReader:
            cls = {"postgres": PostgresReader, "redshift": RedshiftReader}.get(adapter.type(), DuckDBReader)
        return super().__new__(cls)

    def __init__(self, adapter, fetch_rows: int = FETCH_ROWS) -> None:
        self.adapter = adapter
        self.handle = adapter.connections.get_thread_connection().handle
        self.fetch_rows = fetch_rows

    def __enter__(self) -> SnapshotReader:
        self._begin()
        return self

    def __exit__(self, *exc) -> None:
        self.handle.rollback()

    def _begin(self) -> None:
        raise NotImplementedError

    def restart(self) -> None:
        """After a failed statement (PostgreSQL aborts the transaction): a fresh snapshot."""
        self.__exit__(None, None, None)
        self.__enter__()

    def query(self, sql: str) -> list[tuple]:
        cursor = self.handle.cursor()
        cursor.execute(sql)
        rows = list(cursor.fetchall())
        cursor.close()
        return rows

    def stream(self, sql: str, materialize: bool = False) -> Iterator[list[tuple[Any, ...]]]:
        """The result of `sql` in chunks, without buffering it whole. `materialize`: compute it
        whole first, in the warehouse, where that is faster (PostgreSQL: see _materialized)."""
        raise NotImplementedError


class PostgresReader(SnapshotReader):
    def _begin(self) -> None:
        self.handle.rollback()
        self.handle.autocommit = False
        cursor = self.handle.cursor()
        # psycopg2 opens the transaction (BEGIN) before the first statement: set its level
        # (a second BEGIN would do it too, with a warning in the server's log every run).
        cursor.execute("set transaction isolation level repeatable read")
        cursor.close()

    def stream(self, sql: str, materialize: bool = False) -> Iterator[list[tuple[Any, ...]]]:
        return self._stream(self._materialized(sql) if materialize else sql)

    def _stream(self, sql: str) -> Iterator[list[tuple[Any, ...]]]:
        """The next chunk is fetched on a reader thread while this one is encoded (psycopg2 lets
        go of the GIL while it waits on the server): at most PREFETCH chunks ahead."""
        n = self.fetch_rows
        cursor = self.handle.cursor(name=f"cio_export_{uuid.uuid4().hex[:12]}")
        cursor.itersize = n
        chunks: queue.Queue = queue.Queue(maxsize=PREFETCH)
        stop = threading.Event()

        def fetch() -> None:
            try:
                cursor.execute(sql)
                while not stop.is_set():
                    rows = cursor.fetchmany(n)
                    chunks.put(rows)
                    if not rows:
                        return
            except BaseException as exc:  # noqa: BLE001 - handed to the reading thread
                chunks.put(exc)

        reader = threading.Thread(target=fetch, name="cio-read", daemon=True)
        reader.start()
        try:
            while True:
                rows = chunks.get()
                if isinstance(rows, BaseException):
                    raise rows
                if not rows:
                    break
                yield rows
        finally:
            stop.set()
            while reader.is_alive():  # unblock a put() on a full queue
                try:
                    chunks.get(timeout=0.05)
                except queue.Empty:
                    pass
            reader.join()
            cursor.close()

    def _materialized(self, sql: str) -> str:
        """PostgreSQL plans no parallel query for a cursor, so streaming a rerun's diff runs the
        whole model's hashing and anti-join on one core while its result is mostly empty. The
        diff is computed first into a temporary table (CREATE TABLE AS may use parallel workers),
        inside this snapshot, and streamed from there; the table goes with the transaction. A
        role without the TEMP privilege reads the diff through the cursor instead.

        The planner cannot know how few rows changed: it expects every row to come out of the
        anti-join and prices their transfer from the workers (parallel_tuple_cost) at more than
        the work shared, once the row hash is cheap. That transfer is priced lower for this
        statement only, and put back to the session's value after it."""
        name = f"cio_diff_{uuid.uuid4().hex[:12]}"
        cursor = self.handle.cursor()
        try:
            cursor.execute("savepoint cio_diff")
            try:
                cursor.execute("set local parallel_tuple_cost = 0.01")
                cursor.execute(f"create temporary table {name} as {sql}")
                cursor.execute("set local parallel_tuple_cost to default")  # the diff's statement only
            except Exception:  # noqa: BLE001 - any failure: the cursor reads it (and reports a real error)
                cursor.execute("rollback to savepoint cio_diff")
                return sql
            cursor.execute("release savepoint cio_diff")
            return f"select * from {name}"
        finally:
            cursor.close()


class RedshiftReader(SnapshotReader):
    def _begin(self) -> None:
        cursor = self.handle.cursor()
        cursor.execute("begin")
        cursor.close()

    def stream(self, sql: str, materialize: bool = False) -> Iterator[list[tuple[Any, ...]]]:
        name = f"cio_export_{uuid.uuid4().hex[:12]}"
        cursor = self.handle.cursor()
        try:
            cursor.execute(f"declare {name} no scroll cursor for {sql}")
            while True:
                cursor.execute(f"fetch forward {self.fetch_rows} from {name}")
                rows = cursor.fetchall()
                if not rows:
                    break
                yield [tuple(r) for r in rows]
            cursor.execute(f"close {name}")
        finally:
            cursor.close()


class DuckDBReader(SnapshotReader):
    """dbt-duckdb hands out one shared cursor per connection: it is never closed (closing it
    would close the connection)."""

    def _begin(self) -> None:
        cursor = self.handle.cursor()
        try:  # end the transaction dbt may have open, so the snapshot starts now
            cursor.execute("commit")
        except Exception:  # noqa: BLE001 - none was open
            pass
        cursor.execute("begin transaction")

    def __exit__(self, *exc) -> None:
        self.handle.cursor().execute("rollback")

    def query(self, sql: str) -> list[tuple]:
        cursor = self.handle.cursor()
        cursor.execute(sql)
        return list(cursor.fetchall())

    def stream(self, sql: str, materialize: bool = False) -> Iterator[list[tuple[Any, ...]]]:
        """Read to the end (the shared cursor is never closed)."""
        cursor = self.handle.cursor()
        cursor.execute(sql)
        while rows := cursor.fetchmany(self.fetch_rows):
            yield rows
