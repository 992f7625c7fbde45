"""The rows' hashes on PostgreSQL: what a rerun's diff compares with the state. A new state
schema hashes rows with hash_record_extended (PostgreSQL 14+), a schema made before keeps md5;
either way a rerun sends exactly the rows whose payload changed."""

from __future__ import annotations

from types import SimpleNamespace

import psycopg2
import pytest
from conftest import pg_settings
from test_state_store import PostgresStandIn

from cio_sync._project.model import BOOLEAN, INTEGER, NUMBER, TEXT, TIMESTAMP, Column, ModelSpec
from cio_sync._read.dialects import PostgresDialect
from cio_sync._read.query import build_query
from cio_sync._state import SCHEMA_VERSION, StateStore

COLUMNS = [Column("customer_id", TEXT), Column("plan", TEXT), Column("ltv", NUMBER), Column("orders", INTEGER),
           Column("vip", BOOLEAN), Column("seen", TIMESTAMP)]


def people_model(columns=COLUMNS):
    node = {"unique_id": "model.p.people", "name": "people", "relation_name": "people", "database": "test",
            "schema": "s", "alias": "people",
            "config": {"meta": {"cio": {"kind": "people", "identifier": {"column": "customer_id", "kind": "id"}}}}}
    return ModelSpec.from_node(node).resolve(columns)


@pytest.fixture
def warehouse(pg_schema_factory):
    """A state store on a new schema and a table of people, both on the local PostgreSQL."""
    schema = pg_schema_factory("cio_hash")
    schema.execute(f"create schema {schema.name}")
    schema.execute(f"create table {schema.name}.people (customer_id text, plan text, ltv numeric(10, 2), "
                   "orders integer, vip boolean, seen timestamptz)")
    schema.execute(f"insert into {schema.name}.people values "
                   "('c1', 'pro', 0.0, 1, true, '2026-01-01 00:00:00+00'), "
                   "('c2', 'pro', null, 1, true, '2026-01-01 00:00:00+00'), "
                   "('c3', '', 12.5, 0, false, null), "
                   "('c4', null, 12.5, 0, false, null), "
                   "('c5', 'Chloé', -0.0, null, null, '2026-01-01 00:00:01+00')")
    handle = psycopg2.connect(**pg_settings())
    store = StateStore(PostgresStandIn(), schema.name).attach(SimpleNamespace(handle=handle))
    yield store, schema
    store.close()


def diff(store, schema, model=None, row_hash=None):
    """(key, hash, previous hash) of the rows a run would send."""
    query = build_query(model or people_model(), PostgresDialect(PostgresStandIn.quote), f"{schema.name}.people",
                        state=store.tables(), row_hash=row_hash or store.row_hash)
    rows = [(r[1], r[2], r[3]) for r in store.execute(query.sql)]
    store.commit()  # no lock left on the table
    return rows


def record(store, rows) -> None:
    """What a run records once Customer.io accepted the rows."""
    store.people_synced("people", "run", [(key, key, row_hash) for key, row_hash, _ in rows])
    store.flush(force=True)
    store.sync()


@pytest.mark.parametrize("row_hash", ["pg_record", "md5"])
def test_a_rerun_sends_exactly_the_rows_whose_payload_changed(warehouse, row_hash):
    store, schema = warehouse
    first = diff(store, schema, row_hash=row_hash)
    assert sorted(key for key, _, _ in first) == ["c1", "c2", "c3", "c4", "c5"]
    hashes = {key: h for key, h, _ in first}
    # a null and 0.0, a null and '': different payloads, different hashes
    assert len(set(hashes.values())) == 5
    record(store, first)
    assert diff(store, schema, row_hash=row_hash) == []
    changes = {"c1": "ltv = null", "c2": "ltv = 0.0", "c3": "plan = null", "c4": "plan = ''",
               "c5": "seen = seen + interval '1 second'"}
    for key, change in changes.items():
        schema.execute(f"update {schema.name}.people set {change} where customer_id = '{key}'")
    schema.execute(f"update {schema.name}.people set ltv = 12.50 where customer_id = 'c3'")  # the same number
    again = diff(store, schema, row_hash=row_hash)
    assert sorted(key for key, _, _ in again) == ["c1", "c2", "c3", "c4", "c5"]
    assert all(previous == hashes[key] and new != previous for key, new, previous in again)


def test_the_record_hash_depends_on_the_kinds_of_the_values(warehouse):
    """An integer column that becomes a boolean (1 and true hash alike) changes every hash, as
    it changes every payload: the kinds are in the seed."""
    store, schema = warehouse
    schema.execute(f"alter table {schema.name}.people add column flag integer")
    schema.execute(f"update {schema.name}.people set flag = 1")
    as_integer = diff(store, schema, people_model(COLUMNS + [Column("flag", INTEGER)]))
    schema.execute(f"alter table {schema.name}.people alter column flag type boolean using flag = 1")
    as_boolean = diff(store, schema, people_model(COLUMNS + [Column("flag", BOOLEAN)]))
    assert {k: h for k, h, _ in as_integer}.keys() == {k: h for k, h, _ in as_boolean}.keys()
    assert not {h for _, h, _ in as_integer} & {h for _, h, _ in as_boolean}


def test_a_new_state_schema_hashes_rows_with_hash_record_extended_and_keeps_it(warehouse):
    store, schema = warehouse
    assert store.row_hash == "pg_record"
    assert schema.query(f"select name, value from {schema.name}.cio_state_settings") == [("row_hash", "pg_record")]
    assert schema.query(f"select max(version) from {schema.name}.cio_state_version") == [(SCHEMA_VERSION,)]
    handle = psycopg2.connect(**pg_settings())
    reader = StateStore(PostgresStandIn(), schema.name, read_only=True).attach(SimpleNamespace(handle=handle))
    assert reader.row_hash == "pg_record"  # a dry run diffs with the schema's hashes
    reader.close()


def test_a_schema_made_before_keeps_md5_and_its_people_are_not_sent_again(pg_schema_factory):
    """A version 2 schema (every hash md5) migrates to version 3 with md5 kept: a hash of
    another kind would differ from every stored one, and every person would be sent again."""
    schema = pg_schema_factory("cio_hash_v2")
    schema.execute(f"create schema {schema.name}")
    schema.execute(f"create table {schema.name}.people (customer_id text, plan text, ltv numeric(10, 2), "
                   "orders integer, vip boolean, seen timestamptz)")
    schema.execute(f"insert into {schema.name}.people values ('c1', 'pro', 1.5, 1, true, now())")
    StateStore(PostgresStandIn(), schema.name).attach(SimpleNamespace(handle=psycopg2.connect(**pg_settings()))).close()
    schema.execute(f"drop table {schema.name}.cio_state_settings")  # what version 2 did not have
    schema.execute(f"update {schema.name}.cio_state_version set version = 2")
    handle = psycopg2.connect(**pg_settings())
    reader = StateStore(PostgresStandIn(), schema.name, read_only=True).attach(SimpleNamespace(handle=handle))
    assert reader.row_hash == "md5"  # not migrated yet (a dry run): md5 all the same
    reader.close()
    handle = psycopg2.connect(**pg_settings())
    store = StateStore(PostgresStandIn(), schema.name).attach(SimpleNamespace(handle=handle))
    try:
        assert store.row_hash == "md5"
        assert schema.query(f"select max(version) from {schema.name}.cio_state_version") == [(SCHEMA_VERSION,)]
        record(store, diff(store, schema, row_hash="md5"))  # as the version 2 exporter recorded it
        assert diff(store, schema) == []
    finally:
        store.close()


def test_a_column_name_with_a_double_quote_is_read_and_hashed(pg_schema_factory):
    """`say "hi"` is a valid PostgreSQL column name; the model's query quotes it (dbt's
    adapter.quote does not double the quote, which broke the statement)."""
    from cio_sync._read.dialects import dialect_for

    schema = pg_schema_factory("cio_quote")
    schema.execute(f"create schema {schema.name}")
    schema.execute(f'create table {schema.name}.people (customer_id text, "say ""hi""" text)')
    schema.execute(f"insert into {schema.name}.people values ('c1', 'hello')")
    model = people_model([Column("customer_id", TEXT), Column('say "hi"', TEXT)])
    adapter = SimpleNamespace(type=lambda: "postgres", quote=PostgresStandIn.quote)
    query = build_query(model, dialect_for(adapter), f"{schema.name}.people")
    assert [(r[0], r[-1]) for r in schema.query(query.sql)] == [("c1", "hello")]
