"""`cio-export explain MODEL KEY` and `cio-export run --dry-run --person ID` on the example shop
built with dbt (DuckDB and PostgreSQL), against the project's Customer.io-compatible server over
real HTTP: what explain says of a row is what the next run does with it (checked against that
run), and neither command writes state or sends anything."""

from __future__ import annotations

import json
import uuid

import pytest
from conftest import SEND_HISTORY
from test_export_e2e import ENTITY_MODELS, EVENT_MODELS, build_fixture, credentials

from cio_sync.fake_server import FakeCustomerIO

SITE, KEY = "site-e2e", "key-e2e-0123456789abcdef"  # as test_export_e2e's credentials()


@pytest.fixture()
def server():
    with FakeCustomerIO(site_id=SITE, api_key=KEY) as srv:
        yield srv


@pytest.fixture(params=["duckdb", "postgres"])
def built(request):
    return request.getfixturevalue(f"{request.param}_build")


def explain(project, model: str, key: str, state: str, *args: str, code: int = 0, env=None) -> dict:
    proc = project.cio_export("explain", model, key, "--json", "--state-schema", state, *args, env=env)
    assert proc.returncode == code, proc.stdout + proc.stderr
    return json.loads(proc.stdout) if code == 0 else {"stderr": proc.stderr}


def sync(project, server, state: str, *select: str, code: int = 0) -> dict:
    proc = project.cio_export("--select", *(select or ("tag:cio",)), "--json", "--no-progress",
                              env=credentials(server), state_schema=state)
    assert proc.returncode == code, proc.stdout + proc.stderr
    return {r["model"]: r for r in json.loads(proc.stdout)["results"]}


def state_rows(project, state: str) -> dict[str, int]:
    """How many rows each state table holds (explain must leave them as they are)."""
    tables = ("cio_people_state", "cio_event_ledger", "cio_rejects", "cio_runs", "cio_inflight", "cio_leases",
              "cio_payload_schemas", "cio_model_scopes")
    return {table: project.query(f"select count(*) from {state}.{table}")[0][0] for table in tables}


def schema_exists(project, name: str) -> bool:
    return bool(project.query(f"select 1 from information_schema.schemata where schema_name = '{name}'"))


def without_sync_time(item: dict) -> str:
    """An item as JSON text, without an identify's timestamp (the time its run read the warehouse)."""
    return json.dumps({k: v for k, v in item.items() if not (k == "timestamp" and item["action"] == "identify")},
                      sort_keys=True)


def test_a_dry_run_of_one_person_previews_exactly_their_items_and_touches_nothing(built, server, tmp_path):
    """`run --dry-run --person c001` shows every item the run would send for c001 across the
    selected models (those of a full dry run whose identifiers are c001's), reads no one else's
    rows (the filter is in each model's query), writes no state and sends nothing, even with
    credentials set."""
    state = f"cio_state_{uuid.uuid4().hex[:10]}"
    outbox = tmp_path / "outbox"
    full = built.cio_export("--dry-run", "--outbox", str(outbox), "--json", "--no-progress", state_schema=state)
    assert full.returncode == 0, full.stderr
    everyone = json.loads(full.stdout)["results"]
    expected = sorted(without_sync_time(item) for path in outbox.glob("*.ndjson")
                      for line in path.read_text().splitlines() for item in json.loads(line)["batch"]
                      if item.get("identifiers") == {"id": "c001"})
    assert len(expected) >= 3  # an identify, a device and events

    proc = built.cio_export("--dry-run", "--person", "c001", "--json", "--no-progress", env=credentials(server),
                            state_schema=state)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["metadata"]["person"] == "c001"
    results = {r["model"]: r for r in summary["results"]}
    assert set(results) == {"cio_people", *ENTITY_MODELS, *EVENT_MODELS} - {"cio_subscription_objects"}
    previewed = sorted(without_sync_time(item) for r in results.values() for item in r["items"])
    assert previewed == expected
    # Only c001's rows were read: each row read became one of these items.
    assert sum(r["rows_scanned"] for r in results.values()) == len(expected)
    assert sum(r["rows_scanned"] for r in everyone) > 2 * len(expected)
    assert all(r["would_send"] == len(r["items"]) for r in results.values())
    text = built.cio_export("--dry-run", "--person", "c001", "--no-progress", state_schema=state).stderr
    assert '  cio_people: {"type":"person","identifiers":{"id":"c001"},"action":"identify"' in text, text
    assert "cio_subscription_objects: an object model, whose rows are no person's: not previewed" in text
    assert server.stats()["requests"] == 0
    assert not schema_exists(built, state)  # a dry run writes no state, not even its schema

    refused = built.cio_export("--person", "c001", env=credentials(server), state_schema=state)
    assert refused.returncode == 2 and "--person needs --dry-run" in refused.stderr
    assert server.stats()["requests"] == 0


def test_explain_an_acknowledged_row_and_a_sent_event_reads_and_writes_nothing(built, server):
    state = f"cio_state_{uuid.uuid4().hex[:10]}"
    sync(built, server, state)
    before, requests = state_rows(built, state), server.stats()["requests"]

    person = explain(built, "cio_people", "c001", state)
    assert (person["will_send"], person["reason"], person["items"]) == (False, "unchanged", [])
    acknowledged = person["state"]["acknowledged"]
    assert acknowledged["identifier"] == "c001" and acknowledged["synced_at"].endswith("+00:00")
    assert person["verdict"].startswith("Will not be sent: unchanged since the last acknowledged sync (")
    assert person["verdict"].endswith(" UTC).")
    assert [row["customer_id"] for row in person["rows"]] == ["c001"] and person["key_column"] == "customer_id"
    assert acknowledged["row_hash"] == person["state"]["row_hash_now"]

    [(event_id,)] = built.query("select event_id from cio_event_order_placed where order_id = 'o1001'")
    event = explain(built, "cio_event_order_placed", event_id, state)
    assert (event["will_send"], event["reason"], event["person"]) == (False, "sent", "c001")
    ledger = event["state"]["ledger"]
    [received] = [e for e in server.events("order_placed") if e["attributes"]["order_id"] == "o1001"]
    assert ledger["status"] == "sent" and ledger["event_id"] == received["id"]
    assert f"event id {received['id']}), and an event is sent once" in event["verdict"]

    text = built.cio_export("explain", "cio_people", "c001", "--state-schema", state)
    assert text.returncode == 0, text.stderr
    lines = text.stderr.splitlines()
    assert lines[0].startswith("cio_people c001: a row of a people model (key customer_id), in ")
    assert any(line.split() == ["customer_id", "c001"] for line in lines)
    assert "The next run sends: nothing" in lines
    assert any(line.strip().startswith("last acknowledged") and " UTC (" in line and " ago), run " in line
               for line in lines), lines
    assert lines[-1] == person["verdict"]
    assert state_rows(built, state) == before and server.stats()["requests"] == requests


def test_explain_says_what_the_next_run_does_with_a_changed_a_new_and_a_refused_row(duckdb_project_factory, server):
    """A changed person will be sent, and the next run sends exactly explain's item; a new
    person's new order will be sent when the run identifies them first, and waits when it does
    not; an identify Customer.io refused stays out until the row changes."""
    import duckdb

    project = duckdb_project_factory("explain_changes", vars=dict(SEND_HISTORY))
    project.run("build", "--select", "+cio_people", "+cio_event_order_placed")
    state, models = "cio_state_explain", ("cio_people", "cio_event_order_placed")
    sync(project, server, state, *models)

    def change(sql: str) -> None:
        with duckdb.connect(project.env["CIO_DUCKDB_PATH"]) as conn:
            conn.execute(sql)

    change("update cio_people set lifetime_value = lifetime_value + 1 where customer_id = 'c001'")
    changed = explain(project, "cio_people", "c001", state, "--select", *models)
    assert (changed["will_send"], changed["reason"]) == (True, "changed")
    assert changed["verdict"].startswith("Will be sent on the next run (identify): its attributes changed since the "
                                         "last acknowledged sync (last acknowledged ")
    assert changed["state"]["row_hash_now"] != changed["state"]["acknowledged"]["row_hash"]
    [item] = changed["items"]
    server.reset()
    assert sync(project, server, state, *models)["cio_people"]["items_accepted"] == 1
    sent_now = {name: value for name, value in item["attributes"].items() if value is not None}  # null: removed
    assert server.person("id", "c001")["attributes"] == sent_now

    change("insert into cio_people (customer_id, email, orders_count) values ('c099', 'new@example.org', 1)")
    change("insert into cio_event_order_placed (event_id, event_name, customer_id, event_at, order_id) values "
           "('ev-c099', 'order_placed', 'c099', timestamp '2026-05-30 10:00:00', 'o9999')")
    new = explain(project, "cio_event_order_placed", "ev-c099", state, "--select", *models)
    assert (new["will_send"], new["reason"], new["people_models"]) == (True, "new", ["cio_people"])
    alone = explain(project, "cio_event_order_placed", "ev-c099", state, "--select", "cio_event_order_placed")
    assert (alone["will_send"], alone["reason"]) == (False, "waiting")
    assert "its person c099 by cio_people, and it goes out with the first run after that identify" in alone["verdict"]
    preview = project.cio_export("--dry-run", "--person", "c099", "--json", "--select", *models, state_schema=state)
    assert [(r["model"], [i["action"] for i in r["items"]]) for r in json.loads(preview.stdout)["results"]] == [
        ("cio_people", ["identify"]), ("cio_event_order_placed", ["event"])]
    server.reset()
    sync(project, server, state, *models)
    [sent] = server.events("order_placed")
    assert (sent["id"], sent["attributes"]) == (new["items"][0]["id"], new["items"][0]["attributes"])

    # Customer.io refuses c001's next identify (its largest items no longer fit)
    change("update cio_people set lifetime_value = lifetime_value + 1 where customer_id = 'c001'")
    server.configure(max_item_bytes=300)
    assert sync(project, server, state, "cio_people", code=1)["cio_people"]["rejected"] >= 1
    refused = explain(project, "cio_people", "c001", state, "--select", *models)
    assert (refused["will_send"], refused["reason"], refused["items"]) == (False, "rejected", [])
    assert refused["verdict"].startswith("Will not be sent: rejected by Customer.io on ")
    assert "and unchanged since; fix the row" in refused["verdict"] and "--retry-rejects" in refused["verdict"]
    [reject] = refused["state"]["rejects"]
    assert reject["resolved_at"] is None and reject["last_seen_at"].endswith("+00:00")
    change("update cio_people set lifetime_value = lifetime_value + 1 where customer_id = 'c001'")
    again = explain(project, "cio_people", "c001", state, "--select", *models)
    assert (again["will_send"], again["reason"]) == (True, "changed_after_reject")


def test_explain_a_held_event_and_a_row_cio_exports_checks_reject(duckdb_project_factory, server):
    """The limits fixture: p2's identify is over a value limit, so in a run of the fixture's
    models its event e2 is held back; explain says so, naming the reject, and the run agrees."""
    project = duckdb_project_factory("explain_limits", vars={"cio_exporter_fixtures": True, **SEND_HISTORY})
    project.run("build", "--select", "tag:cio_limits")
    state = "cio_state_explain_limits"
    held = explain(project, "limits_events", "e2", state, "--select", "tag:cio_limits")
    assert (held["will_send"], held["reason"], held["person"]) == (False, "held", "p2")
    assert held["verdict"] == ("Will not be sent: held back, as the identify of its person p2 by limits_people "
                               "(row k-p2) is rejected in the same run (value_too_long: value is 1001 bytes; "
                               "Customer.io takes 1000).")
    person = explain(project, "limits_people", "k-p2", state, "--select", "tag:cio_limits")
    assert (person["will_send"], person["reason"]) == (False, "rejected")
    assert "cio-export's checks reject it (value_too_long, column note)" in person["verdict"]
    # Explained for a run without the people model, e2 is not held.
    alone = explain(project, "limits_events", "e2", state, "--select", "limits_events")
    assert (alone["will_send"], alone["reason"]) == (True, "new")
    results = sync(project, server, state, "tag:cio_limits", code=1)
    assert ("e2", "held") in {(r["row_key"], r["reason"]) for r in results["limits_events"]["rejects"]}


def test_explain_an_identity_conflict_reported_or_merged(duckdb_project_factory, server):
    """People identified by email with a stable key (fixtures email_people_report and _merge):
    a person whose email changed is held back as an identity conflict by the model that reports
    it, and sent then merged by the model that merges it; explain says which, as the run does."""
    import duckdb

    project = duckdb_project_factory("explain_identity", vars={"cio_exporter_fixtures": True, "cio_big_rows": 20})
    project.run("build", "--select", "tag:cio_big", "tag:cio_identity")
    state = "cio_state_explain_identity"
    sync(project, server, state, "tag:cio_identity")
    with duckdb.connect(project.env["CIO_DUCKDB_PATH"]) as conn:
        conn.execute("update big_people set email = 'new3@example.org' where n = 3")
    report = explain(project, "email_people_report", "person-3", state, "--select", "tag:cio_identity")
    assert (report["will_send"], report["reason"]) == (False, "identifier_changed")
    assert "identifier changed from p3@example.org to new3@example.org for the same person" in report["verdict"]
    merge = explain(project, "email_people_merge", "person-3", state, "--select", "tag:cio_identity")
    assert (merge["will_send"], merge["reason"]) == (True, "merge")
    assert merge["items"][0]["identifiers"] == {"email": "new3@example.org"}
    results = sync(project, server, state, "tag:cio_identity", code=1)
    assert [(r["row_key"], r["reason"]) for r in results["email_people_report"]["rejects"]] == [
        ("person-3", "identifier_changed")]
    assert results["email_people_merge"]["merged"] == 1


def test_explain_a_baseline_event_before_and_after_the_first_sync(duckdb_project_factory, server):
    """With the package's defaults (initial_window 2h) the example's months-old events are
    history: the first sync records them as baseline, and explain says so before it and after."""
    project = duckdb_project_factory("explain_baseline")
    project.run("build", "--select", "+cio_event_order_placed")
    state = "cio_state_explain_baseline"
    [(event_id,)] = project.query("select event_id from cio_event_order_placed where order_id = 'o1001'")
    before = explain(project, "cio_event_order_placed", event_id, state)
    assert (before["will_send"], before["reason"]) == (False, "baseline")
    assert before["verdict"].startswith("Will not be sent: older than initial_window (2h) at the model's first sync "
                                        "(baseline)")
    assert sync(project, server, state, "cio_event_order_placed")["cio_event_order_placed"]["skipped"] > 0
    assert server.events() == []
    after = explain(project, "cio_event_order_placed", event_id, state)
    assert (after["will_send"], after["reason"], after["state"]["ledger"]["status"]) == (False, "baseline", "baseline")


def test_explain_a_departure_held_by_max_deletes(duckdb_project_factory, server):
    """Objects fixture, max_deletes 1: two objects leave the model, so the next run deletes
    neither; explain says why the one asked about is held, and what it would send once allowed."""
    project = duckdb_project_factory("explain_objects", vars={"cio_exporter_fixtures": True, **SEND_HISTORY})
    state = "cio_state_explain_objects"
    for step in (1, 2):  # sub_1, sub_2, sub_3; then sub_3 left (deleted) and sub_4 came
        build_fixture(project, "cio_objects", step, 1)
        sync(project, server, state, "tag:cio_objects")
    build_fixture(project, "cio_objects", 3, 1)  # sub_1 and sub_2 leave
    held = explain(project, "subscription_objects", "sub_1", state, "--select", "tag:cio_objects")
    assert (held["will_send"], held["reason"], held["rows"]) == (False, "blocked", [])
    assert "2 of 3 synced objects left the model, over max_deletes (1): none was deleted" in held["verdict"]
    build_fixture(project, "cio_objects", 3, 2)
    allowed = explain(project, "subscription_objects", "sub_1", state, "--select", "tag:cio_objects")
    assert (allowed["will_send"], allowed["reason"]) == (True, "left")
    assert allowed["items"] == [{"type": "object", "identifiers": {"object_type_id": "1", "object_id": "sub_1"},
                                 "action": "delete"}]


def test_explain_an_unknown_model_or_key_is_a_usage_error_naming_them(duckdb_build):
    state = f"cio_state_{uuid.uuid4().hex[:10]}"
    model = explain(duckdb_build, "cio_peple", "c001", state, code=2)["stderr"]
    assert "no synced model named 'cio_peple'" in model and "Did you mean cio_people?" in model
    key = explain(duckdb_build, "cio_people", "c999", state, code=2)["stderr"]
    assert "cio_people has no row with key 'c999' (column customer_id)" in key
    assert "keys look like 'c" in key
