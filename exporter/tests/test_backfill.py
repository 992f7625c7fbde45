"""The backfill guard on the example shop with the package's defaults (initial_window 2h,
max_event_age 72h): its events are months old, so none may reach live journeys."""

from __future__ import annotations

import json

import pytest

from cio_sync.fake_server import FakeCustomerIO

SITE, KEY = "site-backfill", "key-backfill-0123456789"


@pytest.fixture()
def server():
    with FakeCustomerIO(site_id=SITE, api_key=KEY) as srv:
        yield srv


def run(project, server, state, select=("tag:cio",)):
    proc = project.cio_export("--select", *select, "--json", "--no-progress", state_schema=state,
                              env={"CUSTOMERIO_SITE_ID": SITE, "CUSTOMERIO_API_KEY": KEY,
                                   "CUSTOMERIO_TRACK_URL": server.url})
    assert proc.returncode == 0, proc.stderr
    return {r["model"]: r for r in json.loads(proc.stdout)["results"]}


def test_a_backfill_of_last_years_checkouts_sends_no_cart_abandoned(duckdb_project_factory, server):
    project = duckdb_project_factory("backfill")  # package defaults: the guard is on
    project.run("build")
    state = "cio_state_backfill"
    first = run(project, server, state)
    # First sync: every existing event is history (older than initial_window): baseline.
    assert first["cio_event_cart_abandoned"]["skipped"] == 3
    assert server.events() == [] and len(server.people()) == 8

    # Later a backfill lands: last year's checkouts, abandoned. Older than max_event_age:
    # recorded as backfill, never sent under the live name.
    import duckdb

    with duckdb.connect(project.env["CIO_DUCKDB_PATH"]) as conn:
        conn.execute("insert into raw_checkouts values "
                     "('k900', 'c010', null, timestamptz '2025-03-01 10:00:00+00', '120', 'u', 1, 'true', false), "
                     "('k901', 'c011', null, timestamptz '2025-03-02 10:00:00+00', '130', 'u', 1, 'true', false)")
    rebuilt = ("cio_event_cart_abandoned", "cio_event_checkout_started")
    # Rows this old (and without loaded_at) are outside the staging lookback: a backfill goes
    # with --full-refresh of the models and everything upstream of them (but the seeds, which
    # would reload the example's rows over the backfill).
    upstream = ("--select", *(f"+{model}" for model in rebuilt), "--exclude", "resource_type:seed")
    project.run("build", *upstream, "--full-refresh")
    second = run(project, server, state, rebuilt)
    assert second["cio_event_cart_abandoned"]["skipped"] == 2
    assert second["cio_event_checkout_started"]["skipped"] == 2
    assert server.events() == []

    with duckdb.connect(project.env["CIO_DUCKDB_PATH"], read_only=True) as conn:
        statuses = conn.sql(f"select status, count(*) from {state}.cio_event_ledger "
                            "where model = 'cio_event_cart_abandoned' group by status order by 1").fetchall()
    assert statuses == [("backfill", 2), ("baseline", 3)]


def test_backfill_rename_sends_under_a_separate_name(duckdb_project_factory, server):
    project = duckdb_project_factory("backfill_rename", vars={"cio_backfill": "rename"})
    project.run("build")
    state = "cio_state_rename"
    run(project, server, state)
    import duckdb

    with duckdb.connect(project.env["CIO_DUCKDB_PATH"]) as conn:
        conn.execute("insert into raw_checkouts values "
                     "('k900', 'c010', null, timestamptz '2025-03-01 10:00:00+00', '120', 'u', 1, 'true', false)")
    rebuilt = ("cio_event_cart_abandoned", "cio_event_checkout_started")
    upstream = ("--select", *(f"+{model}" for model in rebuilt), "--exclude", "resource_type:seed")
    project.run("build", *upstream, "--full-refresh")
    run(project, server, state, rebuilt)
    assert sorted(e["name"] for e in server.events()) == ["cart_abandoned_backfill", "checkout_started_backfill"]


def test_a_dry_run_first_sync_counts_history_as_baseline(duckdb_project_factory):
    """A first sync's dry run records nothing, so it must skip, row by row, what the real run
    would record as baseline: events older than initial_window (2h), here even with
    max_event_age widened so the age rule alone would let them through."""
    project = duckdb_project_factory("backfill_dry", vars={"cio_max_event_age": "3650d"})
    project.run("build")
    proc = project.cio_export("--select", "tag:cio", "--json", "--no-progress", "--dry-run",
                              "--outbox", str(project.workdir / "outbox"), state_schema="cio_state_backfill_dry")
    assert proc.returncode == 0, proc.stderr
    results = {r["model"]: r for r in json.loads(proc.stdout)["results"]}
    assert results["cio_event_cart_abandoned"]["skipped"] == 3
    assert results["cio_event_cart_abandoned"]["would_send"] == 0
