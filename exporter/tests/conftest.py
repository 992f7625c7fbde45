"""Shared fixtures: the local PostgreSQL (standard PG* variables), and builds of the example
dbt project on DuckDB and PostgreSQL, made once per session and dropped afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg2
import pytest
from dbt_project_runner import DbtProject


def pg_settings() -> dict[str, str]:
    return {
        "host": os.environ.get("PGHOST", "127.0.0.1"),
        "port": os.environ.get("PGPORT", "5432"),
        "user": os.environ.get("PGUSER", "postgres"),
        "password": os.environ.get("PGPASSWORD", ""),
        "dbname": os.environ.get("PGDATABASE", "test"),
    }


def _connect_pg():
    return psycopg2.connect(connect_timeout=5, **pg_settings())


@pytest.fixture(scope="session")
def pg_available() -> None:
    """PostgreSQL must be reachable. Outside CI a missing server skips; in CI it fails."""
    try:
        _connect_pg().close()
    except psycopg2.OperationalError as exc:
        message = f"PostgreSQL not reachable with PG* settings {pg_settings() | {'password': '***'}}: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


class PgSchema:
    """A throwaway schema on the local PostgreSQL."""

    def __init__(self, name: str) -> None:
        self.name = name

    def query(self, sql: str, params=None) -> list[tuple]:
        with _connect_pg() as conn, conn.cursor() as cur:
            cur.execute(f"set search_path to {self.name}")
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def execute(self, sql: str, params=None) -> None:
        self.query(sql, params)

    def drop(self) -> None:
        conn = _connect_pg()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"drop schema if exists {self.name} cascade")
        conn.close()


@pytest.fixture(scope="session")
def pg_schema_factory(pg_available) -> Iterator:
    made: list[PgSchema] = []

    def make(prefix: str = "cio_it") -> PgSchema:
        schema = PgSchema(f"{prefix}_{uuid.uuid4().hex[:10]}")
        made.append(schema)
        return schema

    yield make
    for schema in made:
        schema.drop()


class DuckDbBuild(DbtProject):
    def query(self, sql: str) -> list[tuple]:
        import duckdb

        with duckdb.connect(self.env["CIO_DUCKDB_PATH"], read_only=True) as conn:
            return conn.sql(sql).fetchall()


class PostgresBuild(DbtProject):
    schema: PgSchema

    def query(self, sql: str) -> list[tuple]:
        return self.schema.query(sql)


#: The example's events are months old; the session builds widen the backfill guard so that
#: cio-export sends them (tests of the guard itself build with the defaults).
SEND_HISTORY = {"cio_initial_window": "36500d", "cio_max_event_age": "36500d"}


@pytest.fixture(scope="session")
def duckdb_project_factory(tmp_path_factory):
    """A fresh DuckDB database and target path for a build of integration_tests."""

    def make(name: str = "duckdb", vars: dict | None = None) -> DuckDbBuild:
        workdir = tmp_path_factory.mktemp(name)
        return DuckDbBuild(
            target="duckdb",
            workdir=workdir,
            env={"CIO_DUCKDB_PATH": str(workdir / "shop.duckdb"), "CIO_TEST_SCHEMA": "main"},
            vars=vars,
        )

    return make


@pytest.fixture(scope="session")
def duckdb_build(duckdb_project_factory) -> DuckDbBuild:
    """integration_tests built on DuckDB (seed, run, test)."""
    project = duckdb_project_factory("duckdb_build", vars=dict(SEND_HISTORY))
    project.run("build")
    return project


@pytest.fixture(scope="session")
def postgres_build(tmp_path_factory, pg_schema_factory) -> PostgresBuild:
    """integration_tests built on the local PostgreSQL in a schema of its own."""
    schema = pg_schema_factory()
    project = PostgresBuild(
        target="postgres",
        workdir=tmp_path_factory.mktemp("postgres_build"),
        env={"CIO_TEST_SCHEMA": schema.name},
        vars={**SEND_HISTORY, "cio_state_schema": f"{schema.name}_builds"},
    )
    project.schema = schema
    project.state_schemas.append(f"{schema.name}_builds")
    project.run("build")
    yield project
    for name in project.state_schemas:
        PgSchema(name).drop()


#: Groups that hold minutes of work on one worker (xdist_group), longest first. They are started
#: before the rest, so that the other worker takes the many short tests meanwhile and neither
#: waits for the other at the end (the order of the rest is kept).
LONG_GROUPS = ("package_scale", "cloud", "check")


def pytest_collection_modifyitems(config, items) -> None:
    def rank(item) -> int:
        marker = item.get_closest_marker("xdist_group")
        name = marker.args[0] if marker is not None and marker.args else marker.kwargs.get("name") if marker else None
        return LONG_GROUPS.index(name) if name in LONG_GROUPS else len(LONG_GROUPS)

    items.sort(key=rank)
