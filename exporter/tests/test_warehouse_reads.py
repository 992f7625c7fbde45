"""Reading a model's rows on PostgreSQL, below the exporter: a rerun's diff is computed whole in
the warehouse before it is streamed (a cursor would keep PostgreSQL on one core), inside the
same snapshot, and read through the cursor when a temporary table cannot be made."""

from __future__ import annotations

from types import SimpleNamespace

import psycopg2
import pytest
from conftest import pg_settings
from test_state_store import PostgresStandIn

from cio_sync._read.reader import SnapshotReader


class PostgresAdapterStandIn(PostgresStandIn):
    """What SnapshotReader asks of a dbt adapter: its type and its thread's connection."""

    def __init__(self, handle) -> None:
        self.connections = SimpleNamespace(get_thread_connection=lambda: SimpleNamespace(handle=handle))


@pytest.fixture
def diff(pg_schema_factory):
    """A 'model' of 25,000 rows, 3 of which the query selects, and a connection to read it."""
    schema = pg_schema_factory("cio_reads")
    schema.execute(f"create schema {schema.name}")
    schema.execute(f"create table {schema.name}.people as select n, 'p' || n as key from generate_series(1, 25000) n")
    handle = psycopg2.connect(**pg_settings())
    sql = f"select key as c0, n as c1 from {schema.name}.people where n % 10000 = 7"
    yield PostgresAdapterStandIn(handle), handle, schema, sql
    handle.close()


def temporary_tables(handle) -> list[str]:
    with handle.cursor() as cursor:
        cursor.execute("select relname from pg_class where relpersistence = 't' and relname like 'cio_diff_%'")
        return [r[0] for r in cursor.fetchall()]


def test_a_materialized_diff_is_read_from_the_snapshot_and_leaves_nothing_behind(diff):
    adapter, handle, schema, sql = diff
    with SnapshotReader(adapter, fetch_rows=2) as reader:
        session_cost = reader.query("show parallel_tuple_cost")
        chunks = reader.stream(sql, materialize=True)
        first = next(chunks)
        assert len(temporary_tables(handle)) == 1  # computed whole, then streamed
        # A row changed by someone else after the diff was taken is not seen: one snapshot.
        schema.execute(f"update {schema.name}.people set key = 'changed' where n = 20007")
        rows = first + [row for chunk in chunks for row in chunk]
        # The diff's cheaper parallel transfer was for its statement only: later queries of the
        # snapshot are planned with the session's value.
        assert reader.query("show parallel_tuple_cost") == session_cost
    assert sorted(rows) == [("p10007", 10007), ("p20007", 20007), ("p7", 7)]
    assert temporary_tables(handle) == []  # gone with the transaction


def test_without_a_temporary_table_the_cursor_reads_the_diff(diff):
    adapter, handle, schema, sql = diff
    with SnapshotReader(adapter) as reader:
        with handle.cursor() as cursor:  # as on a read-only standby: CREATE is refused
            cursor.execute("set transaction read only")
        rows = [row for chunk in reader.stream(sql, materialize=True) for row in chunk]
        assert temporary_tables(handle) == []
    assert sorted(rows) == [("p10007", 10007), ("p20007", 20007), ("p7", 7)]


def test_every_query_of_a_reader_sees_one_snapshot(diff):
    """The build proof and the rows are read in one snapshot: a dbt build that commits between
    the two queries is not seen by the second (PostgreSQL's REPEATABLE READ, really in force)."""
    adapter, handle, schema, sql = diff
    with SnapshotReader(adapter) as reader:
        assert reader.query("show transaction_isolation") == [("repeatable read",)]
        before = reader.query(f"select count(*) from {schema.name}.people")
        schema.execute(f"insert into {schema.name}.people values (30007, 'late')")  # committed elsewhere
        assert reader.query(f"select count(*) from {schema.name}.people") == before
        rows = [row for chunk in reader.stream(sql) for row in chunk]
    assert ("late", 30007) not in rows
    with SnapshotReader(adapter) as reader:  # a new reader: a new snapshot
        assert ("late", 30007) in [row for chunk in reader.stream(sql) for row in chunk]
