"""Redshift cannot run here, so the whole example project is compiled with the redshift adapter
offline and every compiled statement is checked: it must parse in sqlglot's Redshift dialect and
use none of the PostgreSQL- or DuckDB-only constructs sqlglot would accept anyway."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlglot
from dbt_project_runner import DbtProject
from sqlglot.errors import ParseError

# Constructs Redshift rejects although sqlglot's Redshift dialect parses them.
DENYLIST = {
    "json_build_object": r"\bjson_build_object\s*\(",
    "json_agg": r"\bjson_agg\s*\(",
    "to_json": r"\bto_jsonb?\s*\(",
    "array_agg": r"\barray_agg\s*\(",
    "string_agg": r"\bstring_agg\s*\(",
    "distinct on": r"\bdistinct\s+on\s*\(",
    "is distinct from": r"\bis\s+(not\s+)?distinct\s+from\b",
    "generate_series": r"\bgenerate_series\s*\(",
    "::jsonb": r"::\s*jsonb\b",
    "now()": r"\bnow\s*\(\s*\)",
    "lateral": r"\blateral\b",
    "on conflict": r"\bon\s+conflict\b",
    "filter (where": r"\bfilter\s*\(\s*where\b",
    "returning": r"\breturning\b",
    # DuckDB-only functions a default__ implementation could leak into Redshift SQL.
    "try_cast": r"\btry_cast\s*\(",
    "regexp_full_match": r"\bregexp_full_match\s*\(",
    "regexp_matches": r"\bregexp_matches\s*\(",
    "strlen": r"\bstrlen\s*\(",
}


def strip_comments_and_strings(sql: str) -> str:
    sql = re.sub(r"/\*.*?\*/", " ", sql, flags=re.S)
    sql = re.sub(r"--[^\n]*", " ", sql)
    return re.sub(r"'(?:[^']|'')*'", "''", sql)


def redshift_problems(sql: str) -> list[str]:
    """What keeps `sql` from running on Redshift, as far as can be told without one."""
    problems = []
    try:
        statements = [s for s in sqlglot.parse(sql, read="redshift") if s is not None]
        if not statements:
            problems.append("no statement")
    except ParseError as exc:
        problems.append(f"does not parse as Redshift SQL: {str(exc).splitlines()[0]}")
    bare = strip_comments_and_strings(sql).lower()
    problems += [f"uses {name}" for name, pattern in DENYLIST.items() if re.search(pattern, bare)]
    return problems


@pytest.fixture(scope="module")
def redshift_compiled(tmp_path_factory) -> Path:
    project = DbtProject(target="redshift", workdir=tmp_path_factory.mktemp("redshift"))
    project.run("--no-populate-cache", "compile", "--no-introspect")
    return project.target_path / "compiled"


def test_whole_project_compiles_for_redshift(redshift_compiled):
    files = {p.stem for p in redshift_compiled.rglob("*.sql")}
    for model in (
        "cio_people",
        "cio_quarantine",
        "cio_event_order_placed",
        "cio_event_cart_abandoned",
        "cio_event_replenishment_due",
        "stg_cio__checkouts",
        "int_cio__orders",
    ):
        assert model in files
    assert sum(1 for f in files if f.startswith(("cio_sync_", "not_null_", "cio_people_"))) >= 20, "tests compiled too"


def test_every_compiled_statement_is_redshift_sql(redshift_compiled):
    failures = {}
    for path in sorted(redshift_compiled.rglob("*.sql")):
        problems = redshift_problems(path.read_text())
        if problems:
            failures[str(path.relative_to(redshift_compiled))] = problems
    assert not failures, failures


def test_redshift_overrides_are_used(redshift_compiled):
    sql = "\n".join(p.read_text() for p in redshift_compiled.rglob("*.sql")).lower()
    assert "listagg(" in sql and "within group" in sql  # json_array_agg
    assert "convert_timezone('america/new_york', 'utc'" in sql  # to_utc for naive columns
    # The example pins cio_now: the clock only stamps when rows were staged (sysdate, the
    # transaction's start), never a business time.
    assert "getdate()" not in sql
    stamps = re.findall(r"sysdate[^,\n]{0,60}", sql)
    assert stamps and all(re.search(r"as _cio_staged_at$", stamp.rstrip()) for stamp in stamps), stamps
    assert "varchar(65535)" in sql and "varchar(2048)" in sql  # real lengths, not text


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("select json_agg(x) from t", "uses json_agg"),
        ("select string_agg(x, ',') from t", "uses string_agg"),
        ("select distinct on (a) a from t", "uses distinct on"),
        ("select a from t where a is distinct from b", "uses is distinct from"),
        ("select now()", "uses now()"),
        ("insert into t values (1) on conflict do nothing", "uses on conflict"),
        ("select count(*) filter (where a) from t", "uses filter (where"),
        ("select '{\"a\":1}'::jsonb", "uses ::jsonb"),
        ("select try_cast(a as int) from t", "uses try_cast"),
        ("select from where", "does not parse"),
    ],
)
def test_checker_flags_postgres_only_sql(sql, expected):
    assert any(p.startswith(expected) for p in redshift_problems(sql))


def test_checker_ignores_words_inside_strings():
    assert redshift_problems("select 'returning customer' as label") == []
