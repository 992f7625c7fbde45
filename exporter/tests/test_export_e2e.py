"""cio-export end to end: the example shop built with dbt on DuckDB and PostgreSQL, then
`cio-export` run as a user runs it, against the project's Customer.io-compatible server over
real HTTP. Assertions are on what the server accepted."""

from __future__ import annotations

import calendar
import hashlib
import json
import uuid
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import SEND_HISTORY
from test_dbt_marts import EXPECTED_PEOPLE, PEOPLE_COLUMNS
from ulid import ULID

from cio_sync.fake_server import FakeCustomerIO

SITE, KEY = "site-e2e", "key-e2e-0123456789abcdef"
#: The package's object, relationship and device models (integration_tests sets
#: cio_subscription_object_type_id and cio_using_devices).
ENTITY_MODELS = ("cio_subscription_objects", "cio_subscription_relationships", "cio_devices")
EVENT_MODELS = {
    "cio_event_order_placed": ("order_placed", "order_id"),
    "cio_event_checkout_started": ("checkout_started", "checkout_id"),
    "cio_event_cart_abandoned": ("cart_abandoned", "checkout_id"),
    "cio_event_refund_issued": ("refund_issued", "refund_id"),
    "cio_event_subscription_canceled": ("subscription_canceled", "subscription_id"),
    "cio_event_subscription_paused": ("subscription_paused", "subscription_id"),
    "cio_event_replenishment_due": ("replenishment_due", "order_id"),
}


@pytest.fixture()
def server():
    with FakeCustomerIO(site_id=SITE, api_key=KEY) as srv:
        yield srv


def credentials(srv) -> dict[str, str]:
    return {"CUSTOMERIO_SITE_ID": SITE, "CUSTOMERIO_API_KEY": KEY, "CUSTOMERIO_TRACK_URL": srv.url}


def state_with_people(project) -> str:
    """A new state schema in which cio_people has been synced (to a server of its own), so that
    the package's events do not wait for their people's first identify."""
    state = f"cio_state_{uuid.uuid4().hex[:10]}"
    with FakeCustomerIO(site_id=SITE, api_key=KEY) as srv:
        proc = project.cio_export("--select", "cio_people", env=credentials(srv), state_schema=state)
    assert proc.returncode == 0, proc.stderr
    return state


def fixture_step(step: int, cap: int | None = None) -> dict[str, str]:
    """The environment of a build of a stepped fixture (subscription_objects, person_devices, ...):
    its step and, where it has one, its removal cap."""
    return {"CIO_FIXTURE_STEP": str(step), **({"CIO_FIXTURE_MAX": str(cap)} if cap is not None else {})}


def build_fixture(project, tag: str, step: int, cap: int | None = None) -> None:
    """Build a stepped fixture, unless the project's last build of it had the same step and cap:
    a sync run again on an unchanged build is what a scheduler's rerun does."""
    env = fixture_step(step, cap)
    if project.fixture_env != env:
        project.run("build", "--select", f"tag:{tag}", env=env)
        project.fixture_env = env


def unix(value: datetime) -> int:
    return calendar.timegm(value.timetuple())


def as_sent(value):
    if isinstance(value, datetime):
        return unix(value)
    if isinstance(value, Decimal):
        return float(value)
    return value


def expected_profiles() -> dict[str, dict]:
    names = [c.strip() for c in PEOPLE_COLUMNS.split(",")]
    profiles = {}
    for row in EXPECTED_PEOPLE:
        values = dict(zip(names, row, strict=True))
        attributes = {
            k: as_sent(v)
            for k, v in values.items()
            if v is not None and k not in ("customer_id", "days_since_last_order")
        }
        profiles[values["customer_id"]] = attributes
    return profiles


@pytest.fixture(params=["duckdb", "postgres"])
def built(request):
    return request.getfixturevalue(f"{request.param}_build")


def test_every_person_and_event_arrives_as_the_marts_say(built, server):
    proc = built.cio_export("--select", "tag:cio", env=credentials(server))
    assert proc.returncode == 0, proc.stderr

    people = {key.split(":", 1)[1]: profile for key, profile in server.people().items()}
    assert set(people) == set(expected_profiles())
    for customer_id, attributes in expected_profiles().items():
        assert people[customer_id]["attributes"] == attributes, customer_id

    received = server.events()
    assert len(received) == sum(len(built.query(f"select 1 from {m}")) for m in EVENT_MODELS)
    by_id = {e["id"]: e for e in received}
    for model, (name, key) in EVENT_MODELS.items():
        rows = built.query(f"select event_id, customer_id, event_at, {key} from {model}")
        for event_id, customer_id, event_at, natural_key in rows:
            event_at = event_at.replace(tzinfo=None)
            ms = unix(event_at) * 1000
            digest = hashlib.md5(f"{len(name)}:{name}|{event_id}".encode()).digest()
            ulid = str(ULID.from_bytes(ms.to_bytes(6, "big") + digest[:10]))
            event = by_id[ulid]
            assert (event["name"], event["identifiers"], event["timestamp"]) == (
                name,
                {"id": customer_id},
                unix(event_at),
            )
            assert event["attributes"][key] == str(natural_key)
            assert "email" not in event["attributes"] and "event_id" not in event["attributes"]

    order = next(e for e in received if e["name"] == "order_placed" and e["attributes"]["order_id"] == "o1001")
    assert order["attributes"]["items"][1] == {
        "sku": "SKU-MOIST",
        "quantity": 1,
        "line_total": 29.95,
        "product_category": "skincare",
    }
    assert order["attributes"]["total"] == 59.9

    results = json.loads((built.target_path / "cio_export_results.json").read_text())
    assert {r["model"]: r["status"] for r in results["results"]} == {
        m: "success" for m in ["cio_people", *ENTITY_MODELS, *EVENT_MODELS]
    }
    # Subscriptions as objects of type 1, each related to its customer with its status.
    assert set(server.objects()) == {f"1:{sid}" for (sid,) in built.query("select subscription_id from "
                                                                          "cio_subscription_objects")}
    assert {(r["person"]["id"], r["object"]["object_id"]): r["attributes"]["status"]
            for r in server.relationships()} == {
        (c, sid): status for c, sid, status in built.query(
            "select customer_id, subscription_id, status from cio_subscription_relationships")}
    # Each device token added to its person.
    assert {(d["person"]["id"], d["token"], d["platform"]) for d in server.devices()} == set(
        built.query("select customer_id, token, platform from cio_devices"))
    assert results["metadata"]["dbt_invocation_id"] == built.manifest()["metadata"]["invocation_id"]
    # Timing: each model's moments in order, and a model's work (its last answer, its last state
    # commit) ends before the next model starts; the run's phases add up to its elapsed time.
    moments = ("started_at", "first_row_at", "last_row_at", "last_ack_at", "committed_at")
    ordered = sorted(results["results"], key=lambda r: r["timing"]["started_at"])
    for result, following in zip(ordered, ordered[1:] + [None], strict=True):
        timing = result["timing"]
        assert [timing[m] for m in moments] == sorted(timing[m] for m in moments), result["model"]
        assert timing["end_to_end_seconds"] == pytest.approx(timing["committed_at"] - timing["first_row_at"], abs=0.01)
        if following is not None:
            assert timing["committed_at"] <= following["timing"]["started_at"]
    phases = results["timing"]
    assert set(phases) == {"artifacts_seconds", "preflight_seconds", "connect_seconds", "models_seconds",
                           "shutdown_seconds"}
    assert sum(phases.values()) == pytest.approx(results["elapsed_time"], abs=0.05)
    # Keys never appear in output or artifacts.
    assert KEY not in proc.stdout + proc.stderr + json.dumps(results)


def test_people_are_sent_before_events(duckdb_build, tmp_path):
    """Every identify is acknowledged before the first event is sent, and the people before
    the objects, relationships and devices that name them."""
    with FakeCustomerIO(site_id=SITE, api_key=KEY, record="disk", record_dir=tmp_path) as srv:
        proc = duckdb_build.cio_export("--select", "tag:cio", env=credentials(srv))
        assert proc.returncode == 0, proc.stderr
        items = [json.loads(line) for line in srv.record_file.read_text().splitlines()]
    actions = [("object_" if item["type"] == "object" else "") + item["action"] for item in items]
    assert (actions.count("identify"), actions.count("object_identify"), actions.count("add_relationships"),
            actions.count("add_device"), actions.count("event")) == (8, 2, 2, 2, 21)
    order = ["identify", "object_identify", "add_relationships", "add_device", "event"]
    assert [order.index(action) for action in actions] == sorted(order.index(action) for action in actions)


def test_selection_and_exclude_mean_what_they_mean_to_dbt(duckdb_build, server):
    proc = duckdb_build.cio_export(
        "--select",
        "cio_event_*",
        "--exclude",
        "cio_event_order_placed",
        "cio_event_checkout_started",
        env=credentials(server),
        state_schema=state_with_people(duckdb_build),
    )
    assert proc.returncode == 0, proc.stderr
    assert server.people() == {}
    assert {e["name"] for e in server.events()} == {
        "cart_abandoned",
        "refund_issued",
        "subscription_canceled",
        "subscription_paused",
        "replenishment_due",
    }


def test_dry_run_needs_no_credentials_and_writes_the_exact_bodies(duckdb_build, tmp_path, server):
    outbox = tmp_path / "outbox"
    proc = duckdb_build.cio_export("--dry-run", "--outbox", str(outbox), "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["metadata"]["dry_run"] is True
    bodies = {p.stem: [json.loads(line) for line in p.read_text().splitlines()] for p in outbox.glob("*.ndjson")}
    assert set(bodies) == {"cio_people", *ENTITY_MODELS, *EVENT_MODELS}
    assert sum(len(b["batch"]) for b in bodies["cio_people"]) == 8
    # It says what it would send, never that anything was sent or accepted.
    people = next(r for r in summary["results"] if r["model"] == "cio_people")
    assert people["would_send"] == 8 and "items_accepted" not in people and "items_sent" not in people
    assert set(summary["transport"]) == {"would_send"}
    text = duckdb_build.cio_export("--dry-run", "--outbox", str(tmp_path / "again"), "--no-progress").stderr
    assert "would send" in text and "accepted" not in text, text
    # The same events a real run sends, byte for byte apart from transport.
    assert duckdb_build.cio_export("--select", "tag:cio", env=credentials(server)).returncode == 0
    dry_events = {i["id"]: i for body in bodies.values() for b in body for i in b["batch"] if i["action"] == "event"}
    assert set(dry_events) == {e["id"] for e in server.events()}


def test_rows_over_the_limits_are_rejected_by_name_and_the_rest_delivered(duckdb_project_factory, server):
    project = duckdb_project_factory("limits", vars={"cio_exporter_fixtures": True, **SEND_HISTORY})
    project.run("build", "--select", "tag:cio_limits")
    proc = project.cio_export("--select", "tag:cio_limits", "--json", env=credentials(server))
    assert proc.returncode == 1, proc.stderr
    results = {r["model"]: r for r in json.loads(proc.stdout)["results"]}
    people = results["limits_people"]
    rejects = {(r["row_key"], r["column"], r["reason"]) for r in people["rejects"]}
    assert rejects == {  # by the stable key, person_key
        ("k-p2", "note", "value_too_long"),
        ("k-p4", "score", "not_a_number"),
        ("k-" + "i" * 151, "person_id", "identifier_too_long"),
    }
    assert set(server.people()) == {"id:p1", "id:p5"}
    assert server.people()["id:p1"]["attributes"] == {"note": "fine", "score": 1.5, "seen_at": 1777629600, "flag": True}
    assert server.people()["id:p5"]["attributes"] == {"score": 5.0}  # nulls left out of a first identify
    events = results["limits_events"]
    assert {(r["row_key"], r["reason"]) for r in events["rejects"]} == {("e2", "held"), ("e3", "invalid_json")}
    [event] = server.events()
    assert event["attributes"] == {"payload": {"a": [1, 2]}}
    assert "limits_people: row k-p2, column note: value_too_long" in proc.stderr


def test_an_update_only_model_never_creates_a_profile_and_sets_each_topic_alone(duckdb_project_factory, server):
    """meta.cio.create: false and meta.cio.topics (fixture topics_people): the people Customer.io
    has are updated, one it does not have is not created; each topic column sets its own
    topic and a null one leaves what another source set; a rerun sends nothing."""
    import httpx

    prefs = "cio_subscription_preferences"
    project = duckdb_project_factory("topics", vars={"cio_exporter_fixtures": True, **SEND_HISTORY})
    project.run("build", "--select", "tag:cio_topics")
    answer = httpx.post(f"{server.url}/api/v2/batch", auth=(SITE, KEY), json={"batch": [
        {"type": "person", "identifiers": {"id": person}, "action": "identify",
         "attributes": {prefs: {"topics": {"topic_3": True, "topic_7": True}}}} for person in ("p1", "p2")]})
    assert answer.status_code == 200, answer.text

    def sync():
        proc = project.cio_export("--select", "tag:cio_topics", "--json", "--no-progress", env=credentials(server),
                                  state_schema="cio_state_topics")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        [result] = json.loads(proc.stdout)["results"]
        return result

    assert sync()["items_accepted"] == 3
    people = server.people()
    assert set(people) == {"id:p1", "id:p2"}  # p3 was sent, update only: never created
    assert people["id:p1"]["attributes"] == {"tier": "gold", prefs: {"topics": {"topic_3": True, "topic_7": False}}}
    assert people["id:p2"]["attributes"] == {"tier": "silver", prefs: {"topics": {"topic_3": True, "topic_7": True}}}
    assert sync()["items_accepted"] == 0


def test_objects_are_identified_diffed_and_deleted_only_within_max_deletes(duckdb_project_factory, server, tmp_path):
    """meta.cio.kind: object (fixture subscription_objects, object type 1): objects are
    identified with their attributes (nulls left out of a first identify), a rerun sends
    nothing, a changed object is sent again, one that leaves the model is deleted as an object
    (never as a person), and one another source made is never deleted; more leaving than
    max_deletes blocks the model and deletes nothing; a dry run lists the deletes it would send."""
    project = duckdb_project_factory("objects", vars={"cio_exporter_fixtures": True, **SEND_HISTORY})

    def sync(step: int, *args: str, max_deletes: int = 1):
        build_fixture(project, "cio_objects", step, max_deletes)
        proc = project.cio_export("--select", "tag:cio_objects", "--json", "--no-progress", *args,
                                  env=credentials(server), state_schema="cio_state_objects")
        [result] = json.loads(proc.stdout)["results"]
        return proc, result

    def ids(key: str) -> dict:
        return {"object_type_id": "1", "object_id": key}

    import httpx

    other = {"type": "object", "identifiers": ids("sub_9"), "action": "identify", "attributes": {"plan": "gift"}}
    assert httpx.post(f"{server.url}/api/v2/batch", auth=(SITE, KEY), json={"batch": [other]}).status_code == 200
    proc, result = sync(1)
    assert proc.returncode == 0, proc.stderr
    assert result["items_accepted"] == 3
    objects = server.objects()
    assert set(objects) == {"1:sub_1", "1:sub_2", "1:sub_3", "1:sub_9"}
    assert objects["1:sub_1"]["attributes"] == {"plan": "monthly", "status": "active", "next_charge_at": 1782864000}
    assert objects["1:sub_3"]["attributes"] == {"plan": "monthly", "status": "paused", "paused_reason": "travel"}
    assert server.people() == {}
    assert sync(1)[1]["items_accepted"] == 0

    proc, result = sync(2)
    assert proc.returncode == 0, proc.stderr
    assert (result["items_accepted"], result["deleted"]) == (3, 1)  # sub_2 changed, sub_4 new, sub_3 deleted
    assert set(server.objects()) == {"1:sub_1", "1:sub_2", "1:sub_4", "1:sub_9"}
    assert server.objects()["1:sub_2"]["attributes"]["status"] == "cancelled"
    assert [d["object"] for d in server.deletions()] == ["1:sub_3"]

    proc, result = sync(3)  # sub_1 and sub_2 leave: two, over max_deletes 1
    assert proc.returncode == 1 and result["status"] == "blocked"
    assert "2 of 3 synced objects left the model, over max_deletes (1)" in result["message"]
    assert len(server.deletions()) == 1 and set(server.objects()) == {"1:sub_1", "1:sub_2", "1:sub_4", "1:sub_9"}

    outbox = tmp_path / "outbox"
    proc, result = sync(3, "--dry-run", "--outbox", str(outbox), max_deletes=2)
    assert proc.returncode == 0, proc.stderr
    items = [item for line in (outbox / "subscription_objects.ndjson").read_text().splitlines()
             for item in json.loads(line)["batch"]]
    assert sorted(items, key=str) == [{"type": "object", "identifiers": ids(key), "action": "delete"}
                                      for key in ("sub_1", "sub_2")]
    assert len(server.deletions()) == 1
    proc, result = sync(3, max_deletes=2)
    assert proc.returncode == 0, proc.stderr
    assert result["deleted"] == 2 and set(server.objects()) == {"1:sub_4", "1:sub_9"}  # sub_9: not ours, kept
    assert sync(3, max_deletes=2)[1]["items_accepted"] == 0


def test_relationships_are_added_updated_and_removed_only_when_this_tool_added_them(duckdb_project_factory, server,
                                                                                   tmp_path):
    """meta.cio.kind: relationship (fixture subscription_relationships): each person is related
    to their subscription object with the relationship's attributes; a rerun sends nothing; a
    changed attribute is sent again (one that became null is removed); a pair that leaves the
    model is removed with delete_relationships, listed first by a dry run, and a relationship
    another source added is never touched; more leaving than max_deletes blocks the model and
    removes nothing."""
    import httpx

    project = duckdb_project_factory("relationships", vars={"cio_exporter_fixtures": True, **SEND_HISTORY})
    other = {"type": "person", "identifiers": {"id": "p9"}, "action": "add_relationships",
             "cio_relationships": [{"identifiers": {"object_type_id": "1", "object_id": "sub_9"}}]}
    assert httpx.post(f"{server.url}/api/v2/batch", auth=(SITE, KEY), json={"batch": [other]}).status_code == 200

    def sync(step: int, *args: str, code: int = 0):
        build_fixture(project, "cio_relationships", step)
        proc = project.cio_export("--select", "tag:cio_relationships", "--json", "--no-progress", *args,
                                  env=credentials(server), state_schema="cio_state_relationships")
        assert proc.returncode == code, proc.stdout + proc.stderr
        [result] = json.loads(proc.stdout)["results"]
        return result

    def pairs() -> dict:
        return {(r["person"]["id"], r["object"]["object_id"]): r["attributes"] for r in server.relationships()}

    assert sync(1)["items_accepted"] == 3
    assert pairs() == {("p1", "sub_1"): {"status": "active", "since": 1767225600},
                       ("p2", "sub_2"): {"status": "active", "since": 1769904000},
                       ("p3", "sub_3"): {"status": "paused", "since": 1772323200}, ("p9", "sub_9"): {}}
    assert sync(1)["items_accepted"] == 0
    outbox = tmp_path / "outbox"
    sync(2, "--dry-run", "--outbox", str(outbox))
    removals = [item for line in (outbox / "subscription_relationships.ndjson").read_text().splitlines()
                for item in json.loads(line)["batch"] if item["action"] == "delete_relationships"]
    assert removals == [{"type": "person", "identifiers": {"id": "p3"}, "action": "delete_relationships",
                         "cio_relationships": [{"identifiers": {"object_type_id": "1", "object_id": "sub_3"}}]}]
    assert len(pairs()) == 4  # a dry run sends nothing
    result = sync(2)
    assert (result["items_accepted"], result["deleted"]) == (4, 1)  # p1, p2 changed, p4 new; p3 removed
    assert pairs() == {("p1", "sub_1"): {"status": "active"},
                       ("p2", "sub_2"): {"status": "cancelled", "since": 1769904000},
                       ("p4", "sub_4"): {"status": "active", "since": 1775001600}, ("p9", "sub_9"): {}}
    assert server.stats()["items_accepted"]["delete_relationships"] == 1
    assert sync(2)["items_accepted"] == 0
    result = sync(3, code=1)  # p1's and p2's leave: two, over max_deletes 1
    assert result["status"] == "blocked" and "over max_deletes (1): none was deleted" in result["message"]
    assert len(pairs()) == 4


def test_devices_are_added_updated_and_deleted_only_when_this_tool_added_them(duckdb_project_factory, server, tmp_path):
    """meta.cio.kind: device (fixture person_devices): each token is added to its person with
    its platform, last use and attributes; a rerun sends nothing; a token used again is sent
    again; one that leaves the model is deleted (delete_device), listed first by a dry run, and a
    device another source added is never touched; more leaving than max_deletes blocks the model
    and removes nothing."""
    import httpx

    project = duckdb_project_factory("devices", vars={"cio_exporter_fixtures": True, **SEND_HISTORY})
    other = {"type": "person", "identifiers": {"id": "p2"}, "action": "add_device",
             "device": {"token": "tok-sdk", "platform": "ios"}}
    assert httpx.post(f"{server.url}/api/v2/batch", auth=(SITE, KEY), json={"batch": [other]}).status_code == 200

    def sync(step: int, *args: str):
        build_fixture(project, "cio_devices", step)
        proc = project.cio_export("--select", "tag:cio_devices", "--json", "--no-progress", *args,
                                  env=credentials(server), state_schema="cio_state_devices")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        [result] = json.loads(proc.stdout)["results"]
        return result

    def devices() -> dict:
        return {(d["person"]["id"], d["token"]): (d["platform"], d["last_used"], d["attributes"])
                for d in server.devices()}

    assert sync(1)["items_accepted"] == 3
    assert devices() == {("p1", "tok-a"): ("ios", 1777629600, {"app_version": "1.0"}),
                         ("p1", "tok-b"): ("android", None, {"app_version": "1.0"}),
                         ("p2", "tok-d"): ("android", 1777716000, {"app_version": "2.0"}),
                         ("p2", "tok-sdk"): ("ios", None, {})}
    assert sync(1)["items_accepted"] == 0
    outbox = tmp_path / "outbox"
    sync(2, "--dry-run", "--outbox", str(outbox))
    removals = [item for line in (outbox / "person_devices.ndjson").read_text().splitlines()
                for item in json.loads(line)["batch"] if item["action"] == "delete_device"]
    assert removals == [{"type": "person", "identifiers": {"id": "p2"}, "action": "delete_device",
                         "device": {"token": "tok-d"}}]
    result = sync(2)
    assert (result["items_accepted"], result["deleted"]) == (3, 1)  # tok-a used again, tok-e new, tok-d deleted
    assert devices() == {("p1", "tok-a"): ("ios", 1777802400, {"app_version": "1.1"}),
                         ("p1", "tok-b"): ("android", None, {"app_version": "1.0"}),
                         ("p3", "tok-e"): ("ios", None, {"app_version": "1.1"}),
                         ("p2", "tok-sdk"): ("ios", None, {})}
    assert sync(2)["items_accepted"] == 0
    build_fixture(project, "cio_devices", 3)  # two leave: over the cap
    proc = project.cio_export("--select", "tag:cio_devices", "--json", "--no-progress", env=credentials(server),
                              state_schema="cio_state_devices")
    [result] = json.loads(proc.stdout)["results"]
    assert proc.returncode == 1 and result["status"] == "blocked"
    assert "2 of 3 synced devices left the model, over max_deletes (1): none was deleted" in result["message"]
    assert len(devices()) == 4


def test_suppressions_stay_within_max_suppressions_are_listed_by_a_dry_run_and_undone_only_for_our_own(
        duckdb_project_factory, server, tmp_path):
    """meta.cio.kind: suppression (fixture suppressed_people, max_suppressions 2): the people on
    the list are suppressed once; a list that would suppress more than the cap blocks the model
    and suppresses nobody; a dry run lists exactly who would be suppressed and unsuppressed;
    a person who leaves the list is unsuppressed (on_delete: unsuppress) only if this tool
    suppressed them."""
    import httpx

    project = duckdb_project_factory("suppression", vars={"cio_exporter_fixtures": True, **SEND_HISTORY})
    other = {"type": "person", "identifiers": {"id": "p9"}, "action": "suppress"}  # by another source
    known = {"type": "person", "identifiers": {"id": "p1"}, "action": "identify", "attributes": {"a": 1}}
    assert httpx.post(f"{server.url}/api/v2/batch", auth=(SITE, KEY), json={"batch": [other, known]}).status_code == 200

    def sync(step: int, *args: str, cap: int = 2):
        build_fixture(project, "cio_suppression", step, cap)
        proc = project.cio_export("--select", "tag:cio_suppression", "--json", "--no-progress", *args,
                                  env=credentials(server), state_schema="cio_state_suppression")
        [result] = json.loads(proc.stdout)["results"]
        return proc, result

    proc, result = sync(1)
    assert proc.returncode == 0, proc.stderr
    assert result["items_accepted"] == 2
    assert server.suppressed() == ["id:p1", "id:p2", "id:p9"] and server.person("id", "p1") is None
    assert sync(1)[1]["items_accepted"] == 0

    proc, result = sync(2)  # p3, p4, p5: three, over max_suppressions 2
    assert proc.returncode == 1 and result["status"] == "blocked"
    assert result["message"].startswith("3 people would be suppressed, over max_suppressions (2): nobody was.")
    assert server.suppressed() == ["id:p1", "id:p2", "id:p9"]

    outbox = tmp_path / "outbox"
    proc, result = sync(2, "--dry-run", "--outbox", str(outbox), cap=3)
    assert proc.returncode == 0, proc.stderr
    items = [(item["action"], item["identifiers"]["id"]) for line in
             (outbox / "suppressed_people.ndjson").read_text().splitlines() for item in json.loads(line)["batch"]]
    assert sorted(items) == [("suppress", "p3"), ("suppress", "p4"), ("suppress", "p5"), ("unsuppress", "p1")]
    proc, result = sync(2, cap=3)
    assert proc.returncode == 0, proc.stderr
    assert (result["items_accepted"], result["deleted"]) == (4, 1)
    assert server.suppressed() == ["id:p2", "id:p3", "id:p4", "id:p5", "id:p9"]  # p9: not ours, kept
    assert sync(2, cap=3)[1]["items_accepted"] == 0


def test_a_cancelled_subscription_changes_its_object_and_relationship_and_a_rerun_sends_nothing(
        duckdb_project_factory, server):
    """The package's subscriptions as objects related to their customers, in one
    `--select tag:cio` with the people, devices and events: between two builds subscription 2
    (Hank's) is cancelled, Jane starts subscription 4 and her app unregisters her token; the
    next sync sends the cancelled object's new status (its next charge removed), the
    relationship's new status attribute, the subscription_canceled event, the new object and
    relationship, and removes Jane's device; a rerun sends nothing at all."""
    # (The default cap, 5% of the synced devices, is under one device in this example.)
    project = duckdb_project_factory("subscription_objects", vars={**SEND_HISTORY, "cio_device_max_deletes": 1})
    project.run("build")

    def sync() -> dict:
        proc = project.cio_export("--select", "tag:cio", "--json", "--no-progress", env=credentials(server),
                                  state_schema="cio_state_subscription_objects")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return {r["model"]: r["items_accepted"] for r in json.loads(proc.stdout)["results"]}

    def relationship(customer: str) -> dict:
        [found] = [r for r in server.relationships() if r["person"] == {"id": customer}]
        return found

    first = sync()
    assert first["cio_subscription_objects"] == 2 and first["cio_subscription_relationships"] == 2
    assert server.objects()["1:2"]["attributes"]["status"] == "active"
    assert relationship("c012")["attributes"]["status"] == "active"
    cancelled = ("(select * from {{ ref('raw_subscriptions') }} union all select 2, 'c012', 'Cancelled', "
                 "timestamp '2026-05-31 09:00:00', 'yearly', null union all select 4, 'c001', 'active', "
                 "timestamp '2026-05-30 09:00:00', 'monthly', timestamp '2026-06-30 09:00:00')")
    unregistered = ("(select token, customer_id, platform, last_used_at, case when token = 'tok-jane-1' then "
                    "timestamp '2026-05-31 10:00:00' else deleted_at end as deleted_at, "
                    "case when token = 'tok-jane-1' then timestamp '2026-05-31 10:00:00' end as loaded_at "
                    "from {{ ref('raw_devices') }})")
    changed = {"cio_subscriptions": cancelled, "cio_devices": unregistered}
    assert {d["token"] for d in server.devices()} == {"tok-jane-1", "tok-bob-1"}
    project.run("build", "--exclude", "resource_type:seed", vars=changed)
    second = sync()
    assert {model: n for model, n in second.items() if n} == {
        "cio_subscription_objects": 2, "cio_subscription_relationships": 2, "cio_event_subscription_canceled": 1,
        "cio_people": 2, "cio_devices": 1}  # Hank's and Jane's subscription_status; Jane's token removed
    assert [(d["person"], d["token"]) for d in server.devices()] == [({"id": "c002"}, "tok-bob-1")]
    hank = server.objects()["1:2"]["attributes"]
    assert hank["status"] == "canceled" and "next_charge_at" not in hank and hank["plan"] == "yearly"
    assert relationship("c012") == {"person": {"id": "c012"}, "object": {"object_type_id": "1", "object_id": "2"},
                                    "attributes": {"status": "canceled", "started_at": 1769954400}}
    assert relationship("c001")["object"]["object_id"] == "4"
    assert server.objects()["1:4"]["attributes"]["next_charge_at"] == 1782824400
    assert [e["attributes"]["subscription_id"] for e in server.events("subscription_canceled")] == ["1", "2"]
    project.run("build", "--exclude", "resource_type:seed", vars=changed)
    assert not any(sync().values())


def test_bad_meta_cio_is_a_clear_error_and_nothing_is_sent(duckdb_project_factory, server):
    project = duckdb_project_factory("bad_meta", vars={"cio_exporter_fixtures": True, **SEND_HISTORY})
    project.run("build", "--select", "tag:cio_bad_meta")
    proc = project.cio_export("--select", "tag:cio_bad_meta", env=credentials(server))
    assert proc.returncode == 2
    assert "model bad_meta: invalid meta.cio" in proc.stderr
    kinds = "['people', 'event', 'object', 'relationship', 'device', 'suppression']"
    assert f"meta.cio.kind: 'events' is not one of {kinds}" in proc.stderr
    assert "meta.cio.identifier.kind: 'mobile' is not one of" in proc.stderr
    validate = project.cio_export("validate", "--select", "tag:cio_bad_meta")
    assert validate.returncode == 2 and "model bad_meta: invalid meta.cio" in validate.stderr
    assert server.stats()["requests"] == 0


def test_mixed_identifiers_are_refused_unless_allowed(duckdb_project_factory, server):
    project = duckdb_project_factory("mixed", vars={"cio_exporter_fixtures": True, **SEND_HISTORY})
    project.run("build", "--select", "+cio_people", "email_events")
    proc = project.cio_export("--select", "cio_people", "email_events", env=credentials(server))
    assert proc.returncode == 2
    assert "identify people in different ways" in proc.stderr and "email_events: email (email)" in proc.stderr
    assert server.stats()["requests"] == 0
    proc = project.cio_export(
        "--select", "cio_people", "email_events", "--allow-mixed-identifiers", env=credentials(server)
    )
    # Allowed: it runs. The event waits for its person's identify by one of the project's
    # people models identified by email (none has synced jane.doe@example.com).
    assert proc.returncode == 0, proc.stderr
    waits = "email_events: 1 events wait for their person's first identify by email_people_merge"
    assert waits in proc.stderr, proc.stderr
    assert server.events() == [] and len(server.people()) == 8


def test_missing_credentials_exit_2_before_reading(duckdb_build):
    proc = duckdb_build.cio_export("--select", "tag:cio")
    assert proc.returncode == 2
    assert "CUSTOMERIO_SITE_ID and CUSTOMERIO_API_KEY not set" in proc.stderr


def test_wrong_key_exits_2_after_preflight_and_never_prints_it(duckdb_build, server):
    wrong = "wrong-key-9876543210fedcba"
    proc = duckdb_build.cio_export("--select", "tag:cio", env={**credentials(server), "CUSTOMERIO_API_KEY": wrong})
    assert proc.returncode == 2
    assert "401" in proc.stderr or "rejected" in proc.stderr.lower()
    assert wrong not in proc.stdout + proc.stderr
    assert server.stats()["requests_by_status"] == {"401": 1}  # the preflight, nothing else
    assert server.events() == [] and server.people() == {}


def test_a_model_whose_tests_failed_is_blocked(duckdb_build, server, tmp_path):
    """run_results.json says a test on cio_people failed: cio_people is not sent, the rest is."""
    target = tmp_path / "target"
    target.mkdir()
    (target / "manifest.json").write_text((duckdb_build.target_path / "manifest.json").read_text())
    run_results = json.loads((duckdb_build.target_path / "run_results.json").read_text())
    failed = next(
        r for r in run_results["results"] if r["unique_id"].startswith("test.cio_sync.cio_sync_one_row_per_person")
    )
    failed["status"] = "fail"
    (target / "run_results.json").write_text(json.dumps(run_results))
    proc = duckdb_build.cio_export("--select", "tag:cio", "--json", target_path=target, env=credentials(server))
    assert proc.returncode == 1, proc.stderr
    results = {r["model"]: r for r in json.loads(proc.stdout)["results"]}
    assert results["cio_people"]["status"] == "blocked"
    assert results["cio_people"]["failing_tests"]
    assert server.people() == {}
    assert results["cio_event_order_placed"]["status"] == "success"
    assert "cio_people: BLOCKED" in proc.stderr


def test_customerio_rejections_are_reported_and_hold_that_persons_events(duckdb_build, server):
    """A 207 that rejects identifies: those people are reported with Customer.io's reason, and
    their events in the same run are held back instead of landing on a profile that may not exist."""
    server.configure(max_item_bytes=420)  # the largest identifies (c001, c004, c012) no longer fit
    proc = duckdb_build.cio_export("--select", "tag:cio", "--json", env=credentials(server))
    assert proc.returncode == 1, proc.stderr
    results = {r["model"]: r for r in json.loads(proc.stdout)["results"]}
    rejected = {r["row_key"] for r in results["cio_people"]["rejects"]}
    assert rejected and rejected.isdisjoint(k.split(":", 1)[1] for k in server.people())
    assert len(rejected) + len(server.people()) == 8
    held = {
        r["row_key"] for m, res in results.items() if m != "cio_people" for r in res["rejects"] if r["reason"] == "held"
    }
    assert held
    assert all(e["identifiers"]["id"] not in rejected for e in server.events())


def test_retries_exhausted_exit_3(duckdb_build, server):
    server.configure(error_rate=1.0, fault_paths=["/api/v2/"])  # the preflight passes, every batch fails
    proc = duckdb_build.cio_export(
        "--select", "cio_people", "--max-retries", "1", "--json", env={**credentials(server)}
    )
    assert proc.returncode == 3, proc.stderr
    [result] = json.loads(proc.stdout)["results"]
    assert result["status"] == "undelivered" and result["undelivered"] == 8


def test_an_undelivered_event_is_pending_from_when_its_batch_went_in_flight(duckdb_build, server):
    """Its resend within dedupe_window counts from its first attempt, before the retries, not
    from when they ran out: each attempt here takes a second."""
    import duckdb

    state = state_with_people(duckdb_build)
    server.configure(error_rate=1.0, latency=1.0, fault_paths=["/api/v2/"])
    proc = duckdb_build.cio_export("--select", "cio_event_order_placed", "--max-retries", "1", "--json",
                                   env=credentials(server), state_schema=state)
    assert proc.returncode == 3, proc.stderr
    with duckdb.connect(duckdb_build.env["CIO_DUCKDB_PATH"], read_only=True) as conn:
        attempts = conn.sql(f"select first_attempt_at, last_attempt_at from {state}.cio_event_ledger "
                            "where status = 'pending'").fetchall()
    assert len(attempts) == json.loads(proc.stdout)["results"][0]["undelivered"] > 0
    assert all((last - first).total_seconds() >= 1.9 for first, last in attempts), attempts


def test_customerio_unavailable_at_preflight_exits_3_and_sends_nothing(duckdb_build, server):
    server.configure(error_rate=1.0)
    proc = duckdb_build.cio_export("--select", "cio_people", "--max-retries", "1", env=credentials(server))
    assert proc.returncode == 3 and "Nothing was sent" in proc.stderr


def test_fake_server_command_serves_the_track_api(tmp_path):
    import subprocess
    import sys

    import httpx

    exe = str(Path(sys.executable).with_name("cio-export"))
    proc = subprocess.Popen(
        [exe, "fake-server", "--port", "0", "--site-id", "s", "--api-key", "k"], stdout=subprocess.PIPE, text=True
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("cio-fake-server listening on http://127.0.0.1:")
        url = line.split(" on ")[1].strip()
        response = httpx.get(f"{url}/api/v1/accounts/region", auth=("s", "k"))
        assert response.status_code == 200 and response.json()["region"] == "us"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_infinite_times_on_duckdb_reject_their_rows_and_are_never_read_as_null(duckdb_project_factory, server):
    """DuckDB reads the epoch of 'infinity' as null: a person's created_at would be blanked and
    an event judged timeless. Each such row is rejected, naming the column; the rest is sent."""
    import duckdb

    project = duckdb_project_factory("infinite", vars={"cio_big_rows": 20, "cio_exporter_fixtures": True})
    project.run("build", "--select", "tag:cio_big")
    with duckdb.connect(project.env["CIO_DUCKDB_PATH"]) as conn:
        conn.execute("update big_people set created_at = '-infinity' where n = 1")
        conn.execute("insert into big_events values ('ev-inf', 'person-3', timestamp 'infinity', 3, 'x')")
    proc = project.cio_export("--select", "tag:cio_big", "--json", "--no-progress", env=credentials(server))
    assert proc.returncode == 1, proc.stderr
    results = {r["model"]: r for r in json.loads(proc.stdout)["results"]}
    assert [(r["row_key"], r["column"], r["reason"]) for r in results["big_people"]["rejects"]] == [
        ("person-1", "created_at", "timestamp_out_of_range")]
    # person-1's event is held back with it.
    assert sorted((r["row_key"], r["column"], r["reason"]) for r in results["big_events"]["rejects"]) == [
        ("ev-1", "person_id", "held"), ("ev-inf", "event_at", "timestamp_out_of_range")]
    assert len(server.people()) == 19 and len(server.events()) == 19


def test_a_passing_uniqueness_test_of_the_event_key_spares_the_duplicate_check(duckdb_build):
    """The package's event marts test their key (unique_event_key): cio-export reads them
    without a sort for duplicate keys. A model without such a test gets the check."""
    from cio_sync._project.artifacts import Artifacts

    artifacts = Artifacts.load(duckdb_build.target_path)
    placed = "model.cio_sync.cio_event_order_placed"
    assert artifacts.column_tested_unique(placed, "event_id")
    assert not artifacts.column_tested_unique(placed, "customer_id")


@pytest.mark.parametrize("url", ["", "   ", "track.customer.io", "ftp://127.0.0.1:1", "https://", "https://host:port"])
def test_an_empty_or_malformed_track_url_is_a_configuration_error_never_the_production_host(duckdb_build, url):
    env = {"CUSTOMERIO_SITE_ID": SITE, "CUSTOMERIO_API_KEY": KEY, "CUSTOMERIO_TRACK_URL": url}
    proc = duckdb_build.cio_export("--select", "tag:cio", "--no-progress", env=env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    output = proc.stdout + proc.stderr
    assert "CUSTOMERIO_TRACK_URL" in output
    assert "https://track" not in output, output  # the production host was never tried


def test_an_unreachable_track_url_reports_each_retry_then_fails_as_configuration(duckdb_build):
    import socket

    with socket.socket() as sock:  # a port nothing listens on: connection refused at once
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {"CUSTOMERIO_SITE_ID": SITE, "CUSTOMERIO_API_KEY": KEY, "CUSTOMERIO_TRACK_URL": f"http://127.0.0.1:{port}"}
    proc = duckdb_build.cio_export("--select", "tag:cio", "--no-progress", "--max-retries", "2", env=env)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    retries = [line for line in output.splitlines() if "retrying in" in line]
    assert len(retries) == 2, output
    assert f"http://127.0.0.1:{port}/api/v1/accounts/region" in retries[0]
    assert "attempt 1 of 3" in retries[0] and "attempt 2 of 3" in retries[1]
    assert "cannot reach the Customer.io Track API" in output


def test_the_readme_order_syncs_and_a_dbt_command_in_between_is_named_with_what_to_do(duckdb_project_factory,
                                                                                     tmp_path):
    project = duckdb_project_factory("readme_order", vars=dict(SEND_HISTORY))

    def dry_run():
        proc = project.cio_export("--select", "tag:cio", "--dry-run", "--no-progress", "--outbox",
                                  str(tmp_path / "out"))
        return proc, proc.stdout + proc.stderr

    project.run("build")
    # the README's step 3: the summary in a target path of its own leaves the build's artifacts alone
    project.run("run-operation", "print_sync_summary", target_path=project.workdir / "summary")
    proc, output = dry_run()
    assert proc.returncode == 0, output

    project.run("run-operation", "print_sync_summary")  # in the build's target path
    proc, output = dry_run()
    assert proc.returncode == 1
    assert "BLOCKED" in output and "run_results.json is from `dbt run-operation`, which builds no model" in output
    assert "--target-path target/summary" in output

    project.run("run")
    proc, output = dry_run()
    assert proc.returncode == 1 and "did not run (`dbt run` runs no tests: use `dbt build`)" in output

    project.run("test")
    proc, output = dry_run()
    assert proc.returncode == 1 and "run_results.json is from `dbt test`, which builds no model" in output

    project.run("run", "--select", "cio_people")
    proc, output = dry_run()
    assert proc.returncode == 1
    assert "cio_event_order_placed: BLOCKED, not synced: the last dbt command (`dbt run`" in output
    assert "did not build this model" in output


def test_dev_and_prod_builds_in_one_database_keep_their_own_state_from_the_projects_var(tmp_path, server):
    """Two targets of one project in one database (schemas dev and prod), the state schema set
    per target in dbt_project.yml (here through an env_var, as `{{ target.name }}_...` would) and
    never passed to cio-export: the dev sync first, then prod still delivers every person and
    event, and each sync's state and build proofs sit in its own schema."""
    from conftest import DuckDbBuild

    database = str(tmp_path / "warehouse.duckdb")
    builds = {
        name: DuckDbBuild(target="duckdb", workdir=tmp_path / name, vars=dict(SEND_HISTORY),
                          env={"CIO_DUCKDB_PATH": database, "CIO_TEST_SCHEMA": name,
                               "CIO_TEST_STATE_SCHEMA": f"cio_state_{name}"})
        for name in ("dev", "prod")
    }
    accepted = {}
    for name, build in builds.items():
        build.workdir.mkdir()
        build.run("build")
        server.reset()
        proc = build.cio_export("--select", "tag:cio", "--json", "--no-progress", env=credentials(server),
                                state_schema="")
        assert proc.returncode == 0, proc.stderr
        accepted[name] = {r["model"]: r["items_accepted"] for r in json.loads(proc.stdout)["results"]}
        assert len(server.people()) == len(expected_profiles())
    assert accepted["prod"] == accepted["dev"] and accepted["prod"]["cio_people"] == len(expected_profiles())
    states = builds["prod"].query("select schema_name from information_schema.schemata "
                                  "where schema_name like 'cio_state_%' order by 1")
    assert states == [("cio_state_dev",), ("cio_state_prod",)]
    for name, build in builds.items():
        [(runs,)] = build.query(f"select count(*) from cio_state_{name}.cio_runs where status = 'success'")
        assert runs == len(accepted[name])


def test_a_shop_without_emails_or_opt_ins_never_blanks_what_another_source_set(duckdb_project_factory, server,
                                                                               tmp_path):
    """An input without opt-in columns and with `null as email`: those people attributes are
    null in every row, so they are never sent; the email and opt-in another integration set on a
    profile survive the first sync and a later change of that person."""
    import httpx

    customers = ("(select * exclude (sms_opt_in, email_opt_in) replace (cast(null as varchar) as email) "
                 "from {{ ref('raw_customers') }})")
    project = duckdb_project_factory("emailless", vars={**SEND_HISTORY, "cio_customers": customers})
    project.run("build", "--select", "+cio_people")
    other_source = {"email": "jane@elsewhere.example", "sms_opt_in": True, "email_opt_in": True}
    answer = httpx.post(f"{server.url}/api/v2/batch", auth=(SITE, KEY), json={"batch": [
        {"type": "person", "identifiers": {"id": "c001"}, "action": "identify", "attributes": other_source}]})
    assert answer.status_code == 200, answer.text
    state = "cio_state_emailless"

    def sync():
        proc = project.cio_export("--select", "cio_people", "--json", "--no-progress", env=credentials(server),
                                  state_schema=state)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        [result] = json.loads(proc.stdout)["results"]
        assert sorted(result["unsupplied_attributes"]) == ["email", "email_opt_in", "sms_opt_in"]
        assert "null in every row: not sent" in proc.stderr
        return result

    assert sync()["items_accepted"] > 1
    import duckdb

    with duckdb.connect(project.env["CIO_DUCKDB_PATH"]) as conn:  # the person changes in the warehouse
        conn.execute("update cio_people set lifetime_value = lifetime_value + 1 where customer_id = 'c001'")
    assert sync()["items_accepted"] == 1
    attributes = server.person("id", "c001")["attributes"]
    assert {key: attributes.get(key) for key in other_source} == other_source
    assert "lifetime_value" in attributes


def test_a_state_schema_shared_by_two_targets_or_two_workspaces_is_refused_not_mixed_up(tmp_path, server):
    """dev synced first into a state schema; prod (another relation) pointed at the same state
    schema is blocked with what to do, and so is dev sending to another workspace; nothing is
    sent by either, and dev's own rerun still works."""
    from conftest import DuckDbBuild

    database = str(tmp_path / "warehouse.duckdb")
    builds = {name: DuckDbBuild(target="duckdb", workdir=tmp_path / name, vars=dict(SEND_HISTORY),
                                env={"CIO_DUCKDB_PATH": database, "CIO_TEST_SCHEMA": name})
              for name in ("dev", "prod")}
    for build in builds.values():
        build.workdir.mkdir()
        build.run("build", "--select", "+cio_people")

    def sync(build, srv, *args):
        env = {**credentials(srv), "CUSTOMERIO_SITE_ID": srv.site_id}
        proc = build.cio_export("--select", "cio_people", "--json", "--no-progress", *args, env=env,
                                state_schema="shared_state")
        return proc, json.loads(proc.stdout)["results"][0]

    proc, result = sync(builds["dev"], server)
    assert proc.returncode == 0 and result["items_accepted"] > 0, proc.stderr
    server.reset()
    proc, result = sync(builds["prod"], server)
    assert proc.returncode == 1 and result["status"] == "blocked"
    assert "the state of cio_people in shared_state was made syncing" in result["message"]
    assert '"dev"."cio_people"' in result["message"] and '"prod"."cio_people"' in result["message"]
    assert "cio_state_{{ target.name }}" in result["message"] and server.people() == {}
    with FakeCustomerIO(site_id="another-workspace", api_key=KEY) as other:
        proc, result = sync(builds["dev"], other)
        assert proc.returncode == 1 and result["status"] == "blocked"
        assert "belongs to Customer.io workspace site-e2e; this run sends to workspace another-workspace" \
            in result["message"]
        assert other.people() == {}
    proc, result = sync(builds["dev"], server)
    assert proc.returncode == 0 and result["status"] == "success", proc.stderr
    # A state schema named with more than letters, digits and _ is refused before anything is sent.
    server.reset()
    env = {**credentials(server), "CUSTOMERIO_SITE_ID": server.site_id}
    proc = builds["dev"].cio_export("--select", "cio_people", "--no-progress", "--full-refresh", env=env,
                                    state_schema="shared%state")
    assert proc.returncode == 2 and "the state schema must be a plain SQL identifier" in proc.stderr, proc.stderr
    assert server.people() == {}


@pytest.mark.parametrize(("identifier", "jane", "bob"), [("customer_id", "id:c001", "id:c002"),
                                                     ("email", "email:jane.doe@example.com", "email:bob@example.org")])
def test_customer_columns_named_in_a_var_reach_customer_io_as_people_attributes(duckdb_project_factory, server,
                                                                               identifier, jane, bob):
    """var cio_customer_attributes passes the customers input's own columns (first_name, ...)
    through staging to cio_people_attributes, synced as a second identify: Customer.io gets them
    beside cio_people's attributes, typed; a null one is not sent."""
    customers = ("(select *, case when customer_id = 'c002' then null else '  Name ' || customer_id || ' ' end "
                 "as first_name, length(customer_id) as id_length from {{ ref('raw_customers') }})")
    project = duckdb_project_factory("passthrough", vars={**SEND_HISTORY, "cio_customers": customers,
                                                          "cio_customer_attributes": ["first_name", "id_length"],
                                                          "cio_identifier": identifier})
    project.run("build", "--select", "+cio_people", "+cio_people_attributes")
    [(persons,)] = project.query("select count(*) from cio_people")
    assert project.query("select count(*) from cio_people_attributes") == [(persons,)]
    proc = project.cio_export("--select", "cio_people", "cio_people_attributes", "--json", "--no-progress",
                              env=credentials(server))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    people = server.people()
    assert people[jane]["attributes"]["first_name"] == "Name c001"
    assert people[jane]["attributes"]["id_length"] == 4
    assert "lifetime_value" in people[jane]["attributes"]  # cio_people's own
    assert "first_name" not in people[bob]["attributes"]


@pytest.mark.parametrize(("names", "message"), [
    (["first_name"], "var cio_customer_attributes names 'first_name', which input 'customers' (var cio_customers) "
                     "does not have"),
    (["lifetime_value"], "var cio_customer_attributes names 'lifetime_value': give plain lower-case column names"),
])
def test_a_customer_attribute_the_input_lacks_or_that_is_taken_stops_the_build(duckdb_project_factory, names,
                                                                                message):
    project = duckdb_project_factory("passthrough_bad")
    project.run("seed", "--select", "raw_customers")
    proc = project.run("compile", "--select", "stg_cio__customers", vars={"cio_customer_attributes": names},
                       check=False)
    assert proc.returncode != 0 and message in proc.stdout, proc.stdout[-3000:]


def test_on_duckdb_a_lease_left_by_a_dead_process_of_this_host_is_taken_over_at_once(duckdb_project_factory,
                                                                                    server):
    """Where the lease is a row (DuckDB, Redshift), a holder on this host whose process is gone
    is known dead: its lease, an hour from expiry, is taken over by the next run; a live one
    (this test's own process) still locks the model."""
    import os
    import socket
    import subprocess
    import sys

    import duckdb

    project = duckdb_project_factory("lease_duckdb", vars=dict(SEND_HISTORY))
    project.run("build", "--select", "+cio_people")
    state = "cio_state_lease"

    def sync():
        proc = project.cio_export("--select", "cio_people", "--json", "--no-progress", env=credentials(server),
                                  state_schema=state)
        return proc, json.loads(proc.stdout)["results"][0]["status"]

    def hold(pid: int) -> None:
        with duckdb.connect(project.env["CIO_DUCKDB_PATH"]) as conn:
            conn.execute(f"delete from {state}.cio_leases")
            conn.execute(f"insert into {state}.cio_leases values ('cio_people', 'all', "
                         f"'other-run@{socket.gethostname()[:16]}:{pid}', current_timestamp::timestamp, "
                         "current_timestamp::timestamp + interval 1 hour)")

    assert sync()[1] == "success"
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout)
    hold(dead)
    proc, status = sync()
    assert proc.returncode == 0 and status == "success", proc.stderr
    hold(os.getpid())
    proc, status = sync()
    assert proc.returncode == 1 and status == "locked"
