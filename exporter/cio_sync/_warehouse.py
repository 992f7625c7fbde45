"""Reading a model from the warehouse: one SELECT that computes in SQL what SQL computes best
(Unix seconds, event-id hashes, numbers as doubles), streamed in chunks so memory stays flat
whatever the table size.

Streaming differs per adapter: PostgreSQL uses a server-side (named) cursor, Redshift
`DECLARE ... CURSOR` / `FETCH` (redshift_connector would otherwise buffer the whole result),
DuckDB fetches chunks from its streaming result."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ._model import DATE, NUMBER, TIMESTAMP, Column, SyncModel

FETCH_ROWS = 10_000


class Dialect:
    """SQL fragments that differ between adapters (dispatched on adapter type, like the dbt macros)."""

    def __init__(self, quote) -> None:
        self.quote = quote

    def unix_seconds(self, expr: str) -> str:
        return f"cast(floor(extract(epoch from {expr})) as bigint)"

    def epoch_ms(self, expr: str) -> str:
        return f"cast(floor(extract(epoch from {expr}) * 1000) as bigint)"

    def md5(self, expr: str) -> str:
        return f"md5({expr})"

    def text(self, expr: str) -> str:
        return f"cast({expr} as varchar)"

    def double(self, expr: str) -> str:
        return f"cast({expr} as double precision)"


class PostgresDialect(Dialect):
    pass


class RedshiftDialect(PostgresDialect):
    def text(self, expr: str) -> str:
        return f"cast({expr} as varchar(65535))"


class DuckDBDialect(Dialect):
    def epoch_ms(self, expr: str) -> str:
        return f"epoch_ms(cast({expr} as timestamp))"


def dialect_for(adapter) -> Dialect:
    kind = adapter.type()
    cls = {"postgres": PostgresDialect, "redshift": RedshiftDialect, "duckdb": DuckDBDialect}.get(kind, Dialect)
    return cls(adapter.quote)


@dataclass(frozen=True)
class ModelQuery:
    """The SELECT for a model and the layout of its rows.

    Row layout: identifier, row key (people: identifier; events: event id), then for events
    timestamp (Unix s), time in ms, id hash (md5 hex of name|event_id), event name; then one
    value per attribute, timestamps already in Unix seconds and numbers as doubles."""

    sql: str
    n_head: int


def build_query(model: SyncModel, dialect: Dialect, relation: str, where: str | None = None) -> ModelQuery:
    q = dialect.quote

    def value(column: Column) -> str:
        expr = q(column.name)
        if column.kind in (TIMESTAMP, DATE):
            return dialect.unix_seconds(expr)
        if column.kind == NUMBER:
            return dialect.double(expr)
        return expr

    ident = dialect.text(q(model.identifier.name))
    head = [ident]
    if model.is_event:
        event_key = dialect.text(q(model.event_id.name))
        ts = q(model.timestamp.name)
        name = (
            dialect.text(q(model.event_name_column.name))
            if model.event_name_column
            else "'" + model.event_name.replace("'", "''") + "'"
        )
        head += [
            event_key,
            dialect.unix_seconds(ts),
            dialect.epoch_ms(ts),
            dialect.md5(f"{name} || '|' || {event_key}"),
            name,
        ]
    else:
        head.append(ident)
    columns = head + [value(c) for c in model.attributes]
    sql = "select\n    " + ",\n    ".join(columns) + f"\nfrom {relation}"
    if where:
        sql += f"\nwhere {where}"
    return ModelQuery(sql=sql, n_head=len(head))


def stream_rows(adapter, sql: str, fetch_rows: int = FETCH_ROWS) -> Iterator[list[tuple[Any, ...]]]:
    """Yield the result of `sql` in chunks of at most `fetch_rows` rows, on the adapter's open
    connection, without buffering the whole result."""
    handle = adapter.connections.get_thread_connection().handle
    kind = adapter.type()
    if kind == "postgres":
        yield from _stream_postgres(handle, sql, fetch_rows)
    elif kind == "redshift":
        yield from _stream_redshift(handle, sql, fetch_rows)
    else:
        yield from _stream_dbapi(handle, sql, fetch_rows)


def _stream_postgres(handle, sql: str, fetch_rows: int) -> Iterator[list[tuple]]:
    # A named cursor lives on the server; it needs a transaction, which we roll back (read only).
    if handle.autocommit:
        handle.autocommit = False
    cursor = handle.cursor(name=f"cio_export_{uuid.uuid4().hex[:12]}")
    cursor.itersize = fetch_rows
    try:
        cursor.execute(sql)
        while rows := cursor.fetchmany(fetch_rows):
            yield rows
    finally:
        cursor.close()
        handle.rollback()


def _stream_redshift(handle, sql: str, fetch_rows: int) -> Iterator[list[tuple]]:
    name = f"cio_export_{uuid.uuid4().hex[:12]}"
    cursor = handle.cursor()
    try:
        cursor.execute("begin")
        cursor.execute(f"declare {name} no scroll cursor for {sql}")
        while True:
            cursor.execute(f"fetch forward {fetch_rows} from {name}")
            rows = cursor.fetchall()
            if not rows:
                break
            yield [tuple(r) for r in rows]
        cursor.execute(f"close {name}")
    finally:
        cursor.execute("rollback")
        cursor.close()


def _stream_dbapi(handle, sql: str, fetch_rows: int) -> Iterator[list[tuple]]:
    # dbt-duckdb hands out one shared cursor per connection: closing it would close the
    # connection, so it is left open and simply read to the end.
    cursor = handle.cursor()
    cursor.execute(sql)
    while rows := cursor.fetchmany(fetch_rows):
        yield rows


def relation_columns(adapter, spec) -> list[Column]:
    """The built relation's columns, classified."""
    from ._model import column_kind

    relation = adapter.Relation.create(database=spec.database, schema=spec.schema, identifier=spec.alias)
    return [Column(c.name, column_kind(c.dtype), c.dtype) for c in adapter.get_columns_in_relation(relation)]
