"""What differs between warehouses, in one place: the SQL fragments a model's query is made of
(dispatched on adapter type, like the dbt macros) and what each warehouse and its driver can
do, which the state store, the leases and the reads ask instead of naming an adapter."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from .._errors import ConfigError
from .._project.model import BOOLEAN, DATE, INTEGER, NUMBER, OUT_OF_RANGE_TIME, TIMESTAMP

#: How a row's hash is computed (a state schema keeps one: see StateStore.row_hash).
#: md5: the md5 of the values as text, every adapter. pg_record: PostgreSQL 14's
#: hash_record_extended over the values as they are, about a fifth of md5's cost per row.
ROW_HASHES = ("md5", "pg_record")

#: the largest double and the smallest normal one; a numeric beyond them cannot be converted
#: (PostgreSQL stops the SELECT), whether 1e400 or 1e-330
_MAX_DOUBLE = "1.7976931348623157e308"
_MIN_DOUBLE = "2.2250738585072014e-308"


class Dialect:
    """SQL fragments that differ between adapters, and what each adapter can do."""

    # -- what the warehouse and its driver can do ------------------------------------------------
    #: one in-process connection whose single cursor dbt shares (never closed) and in which
    #: every statement commits by itself (DuckDB)
    embedded = False
    #: tables keep primary keys, and INSERT ... ON CONFLICT works on them (not Redshift)
    primary_keys = True
    #: `lock <table>` makes concurrent writers take turns where no key would (Redshift)
    table_locks = False
    #: session-level advisory locks, freed the moment their connection ends (PostgreSQL)
    advisory_locks = False
    #: the driver streams COPY ... FROM STDIN (psycopg2), and its connection may be handed to a
    #: writer thread of its own; with it come PostgreSQL's bulk paths: asynchronous commits of
    #: outcomes, arrays bound as parameters, column defaults of the transaction's time, planner
    #: statistics kept up to date and table storage parameters (PostgreSQL)
    bulk_copy = False
    #: ALTER TABLE ... ADD COLUMN IF NOT EXISTS (not Redshift)
    add_column_if_not_exists = True
    #: how a parameter is written in a statement for the driver
    placeholder = "%s"

    def __init__(self, quote) -> None:
        self.quote = quote

    # -- statements of the state store -----------------------------------------------------------
    def primary_key(self, keys: Sequence[str]) -> str:
        """A CREATE TABLE's primary-key clause (with its leading comma), or nothing."""
        return f", primary key ({', '.join(keys)})" if keys and self.primary_keys else ""

    def lock(self, table: str) -> list[str]:
        """Statements that make concurrent writers of `table` take turns where no key would."""
        return [f"lock {table}"] if self.table_locks else []

    def exclusive_lock(self, table: str) -> list[str]:
        """Statements that make every other writer of `table` wait until this transaction ends,
        for rows that concurrent processes decide on together (cio_incidents: one alert)."""
        return [f"lock table {table} in share row exclusive mode"]

    def upsert(self, target: str, source: str, columns: Sequence[str], keys: Sequence[str],
               update: dict[str, str]) -> str:
        """Insert `source`'s rows into `target`, updating those whose `keys` are there. `update`:
        column -> expression, in which {T} is the existing row and {S} the incoming one."""
        sets = ", ".join(f"{c} = {e.replace('{T}', f'{target}.').replace('{S}', 'excluded.')}"
                         for c, e in update.items())
        return (f"insert into {target} ({', '.join(columns)}) select {', '.join(columns)} from {source} "
                f"on conflict ({', '.join(keys)}) do update set {sets}")

    def best_row_hash(self, handle) -> str:
        """The row hash a new state schema gets on this connection (one of ROW_HASHES)."""
        return "md5"

    def ignore_conflict(self, keys: Sequence[str]) -> str:
        """A clause that lets a row another writer inserted first win (ON CONFLICT DO NOTHING),
        or nothing where there are no keys: the statement's own NOT EXISTS has to do."""
        return f" on conflict ({', '.join(keys)}) do nothing" if self.primary_keys else ""

    def unix_seconds(self, expr: str) -> str:
        return self._finite(expr, f"cast(floor(extract(epoch from {expr})) as bigint)")

    def epoch_ms(self, expr: str) -> str:
        return self._finite(expr, f"cast(floor(extract(epoch from {expr}) * 1000) as bigint)")

    def _finite(self, expr: str, converted: str) -> str:
        """`converted` for a finite time, OUT_OF_RANGE_TIME for an infinite one, null for null."""
        return f"case when isfinite({expr}) then {converted} when {expr} is not null then {OUT_OF_RANGE_TIME} end"

    def md5(self, expr: str) -> str:
        return f"md5({expr})"

    def length(self, expr: str) -> str:
        """Characters in a text."""
        return f"length({expr})"

    def text(self, expr: str) -> str:
        return f"cast({expr} as varchar)"

    def double(self, expr: str, dtype: str = "") -> str:
        """A number as a double; a numeric beyond a double's range (too large, or too close to
        zero) becomes infinity, which the encoder rejects (not_a_number) instead of the
        conversion stopping the SELECT."""
        if dtype.lower().startswith(("numeric", "decimal")):
            return (f"case when abs({expr}) <= {_MAX_DOUBLE} and ({expr} = 0 or abs({expr}) >= {_MIN_DOUBLE}) "
                    f"then cast({expr} as double precision) "
                    f"when {expr} is not null then cast('Infinity' as double precision) end")
        return f"cast({expr} as double precision)"

    def hash_part(self, expr: str, kind: str) -> str:
        """A value as text for the row hash, distinguishing null from any value."""
        return f"case when {expr} is null then 'n' else 'v' || {self.text(expr)} end"

    def row_hash(self, parts: list[tuple[str, str]], kind: str) -> str:
        """The hash of a row's values, as text (at most 32 characters): `parts` are (expression,
        column kind), the values the payload is made of, so the hash changes exactly when the
        payload would. `kind` is one of ROW_HASHES."""
        if kind != "md5":
            raise ConfigError(f"row hash {kind!r} needs PostgreSQL 14 or later; this warehouse hashes rows with md5")
        return self.md5(" || '|' || ".join(self.hash_part(e, k) for e, k in parts) if parts else "''")

    def shard(self, expr: str, count: int) -> str:
        """0..count-1 from the md5 of a key, identical for every run of this adapter."""
        return f"mod(cast(('x' || substr(md5({expr}), 1, 7))::bit(28) as bigint), {count})"

    #: ends the hashed subquery so its row hash is computed once per row, not once per use
    fence = ""


class PostgresDialect(Dialect):
    advisory_locks = True
    bulk_copy = True

    # PostgreSQL pulls a plain subquery up into the outer query, copying the md5 expression into
    # every place that uses it: the state anti-join, the rejects anti-join and the output. When
    # most rows are new (a first sync) that is three md5s per row; OFFSET 0 keeps the subquery
    # and computes it once, halving the warehouse's work. When most rows are unchanged the copy
    # is cheaper (one md5 per row, the rest filtered out before the others), so it is used only
    # for first syncs (see build_query's `first`).
    fence = "\n    offset 0"

    def best_row_hash(self, handle) -> str:
        """hash_record_extended on PostgreSQL 14 and later (a fifth of md5's cost per row in a
        diff), md5 before."""
        return "pg_record" if getattr(handle, "server_version", 0) >= 140000 else "md5"

    def row_hash(self, parts: list[tuple[str, str]], kind: str) -> str:
        """pg_record: hash_record_extended (PostgreSQL 14+) over a row of the values as they are:
        no text made of each value, no concatenation, no md5 (the cost of a diff was mostly
        that). Text is hashed byte for byte (collation "C"), JSON and other types as their
        text; numbers are already doubles, times Unix seconds. The seed, made from the values'
        kinds, is never 0: a double 0.0 hashes to the seed, a null to 0, so the two differ; a
        column whose kind changes (an integer becoming a boolean, whose 1 and true hash alike)
        changes every hash, as it does every payload."""
        if kind != "pg_record":
            return super().row_hash(parts, kind)
        values = []
        for expr, column_kind in parts:
            if column_kind in (NUMBER, INTEGER, BOOLEAN, TIMESTAMP, DATE):
                values.append(expr)
            else:
                values.append(f'cast({expr} as varchar) collate "C"')
        signature = "cio_sync row hash 1:" + ",".join(k for _, k in parts)
        seed = int.from_bytes(hashlib.md5(signature.encode()).digest()[:8], "big", signed=True) | 1
        return f"cast(hash_record_extended(row({', '.join(values)}), {seed}) as varchar(32))"


class RedshiftDialect(PostgresDialect):
    fence = ""
    primary_keys = False  # declared keys are not enforced: MERGE, and locks where writers race
    table_locks = True
    advisory_locks = False
    bulk_copy = False  # redshift_connector: no client COPY, no connection shared with a thread
    add_column_if_not_exists = False

    def exclusive_lock(self, table: str) -> list[str]:
        return [f"lock {table}"]

    def upsert(self, target: str, source: str, columns: Sequence[str], keys: Sequence[str],
               update: dict[str, str]) -> str:
        sets = ", ".join(f"{c} = {e.replace('{T}', 't.').replace('{S}', 's.')}" for c, e in update.items())
        on = " and ".join(f"t.{k} = s.{k}" for k in keys)
        values = ", ".join("s." + c for c in columns)
        return (f"merge into {target} t using {source} s on {on} when matched then update set {sets} "
                f"when not matched then insert ({', '.join(columns)}) values ({values})")

    def _finite(self, expr: str, converted: str) -> str:
        return converted  # Redshift has no infinite times

    def double(self, expr: str, dtype: str = "") -> str:
        return f"cast({expr} as double precision)"  # numeric(38) is within a double's range

    def row_hash(self, parts: list[tuple[str, str]], kind: str) -> str:
        return Dialect.row_hash(self, parts, kind)  # no hash_record_extended: md5

    def best_row_hash(self, handle) -> str:
        return "md5"

    def text(self, expr: str) -> str:
        return f"cast({expr} as varchar(65535))"

    def hash_part(self, expr: str, kind: str) -> str:
        if kind == "boolean":  # Redshift cannot cast boolean to text
            return f"case when {expr} is null then 'n' when {expr} then 'vt' else 'vf' end"
        return super().hash_part(expr, kind)

    def shard(self, expr: str, count: int) -> str:
        return f"mod(strtol(substring(md5({expr}), 1, 7), 16), {count})"


class DuckDBDialect(Dialect):
    embedded = True
    placeholder = "?"

    def exclusive_lock(self, table: str) -> list[str]:
        return []  # one process at a time writes a DuckDB database

    def epoch_ms(self, expr: str) -> str:
        return self._finite(expr, f"epoch_ms(cast({expr} as timestamp))")

    def double(self, expr: str, dtype: str = "") -> str:
        return f"cast({expr} as double precision)"  # DECIMAL(38) is within a double's range

    def shard(self, expr: str, count: int) -> str:
        return f"mod(cast(('0x' || substr(md5({expr}), 1, 7)) as bigint), {count})"


def quote_identifier(name: str) -> str:
    """`name` as a quoted SQL identifier, a `"` in it doubled (dbt's adapter.quote leaves it as it
    is, which breaks the statement): every adapter here quotes with double quotes."""
    return '"' + name.replace('"', '""') + '"'


def dialect_for(adapter) -> Dialect:
    kind = adapter.type()
    cls = {"postgres": PostgresDialect, "redshift": RedshiftDialect, "duckdb": DuckDBDialect}.get(kind, Dialect)
    return cls(quote_identifier)


