"""The fake Customer.io Track API, exercised over real HTTP with httpx."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest

from cio_sync.fake_server import FakeCustomerIO, Settings
from cio_sync.fake_server.cli import main as cli_main

AUTH = ("site", "key")
ULID_A = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
ULID_B = "01M82F15CPNK9HDCHRV3NGCXB0"
FAULTS_OFF: dict[str, Any] = {
    "rate_limit": None,
    "error_rate": 0.0,
    "drop_rate": 0.0,
    "latency": 0.0,
    "slow_rate": 0.0,
    "slow_accepts": True,
    "seed": None,
    "max_request_bytes": 500_000,
    "max_item_bytes": 32_768,
}


def identify(value: Any = "42", kind: str = "id", **extra: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "type": "person",
        "identifiers": {kind: value},
        "action": "identify",
        "attributes": {"plan": "pro"},
    }
    item.update(extra)
    return item


def event(name: str = "order_placed", person: str = "42", **extra: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "type": "person",
        "identifiers": {"id": person},
        "action": "event",
        "name": name,
    }
    item.update(extra)
    return item


@pytest.fixture(scope="module")
def shared_server() -> Iterator[FakeCustomerIO]:
    with FakeCustomerIO(site_id="site", api_key="key") as server:
        yield server


@pytest.fixture
def srv(shared_server: FakeCustomerIO) -> Iterator[FakeCustomerIO]:
    """The module's server, emptied and with every fault off."""
    shared_server.configure(**FAULTS_OFF)
    shared_server.reset()
    yield shared_server


@pytest.fixture
def client(srv: FakeCustomerIO) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=srv.url, auth=AUTH, timeout=10) as http:
        yield http


def send_batch(client: httpx.Client, *items: dict[str, Any]) -> httpx.Response:
    return client.post("/api/v2/batch", json={"batch": list(items)})


# ------------------------------------------------------------------ auth and region


@pytest.mark.parametrize("auth", [None, ("site", "wrong"), ("other", "key")])
def test_bad_credentials_get_401(srv: FakeCustomerIO, auth: tuple[str, str] | None) -> None:
    response = httpx.post(f"{srv.url}/api/v2/batch", json={"batch": [identify()]}, auth=auth)
    assert response.status_code == 401
    assert response.json() == {"meta": {"error": "Unauthorized request"}}
    assert srv.people() == {}


def test_region_reports_this_server(client: httpx.Client, srv: FakeCustomerIO) -> None:
    response = client.get("/api/v1/accounts/region")
    assert response.status_code == 200
    assert response.json() == {"url": srv.url, "region": "us", "environment_id": 1}
    srv.configure(region="eu")
    assert client.get("/api/v1/accounts/region").json()["region"] == "eu"


# ------------------------------------------------------------------------- batch


def test_valid_batch_is_recorded(client: httpx.Client, srv: FakeCustomerIO) -> None:
    response = send_batch(
        client,
        identify(42, attributes={"plan": "pro", "seats": 3}, timestamp=1_700_000_000),
        event(id=ULID_A, timestamp=1_700_000_100, attributes={"total": 9.5}),
        identify("a@example.com", kind="email"),
    )
    assert response.status_code == 200
    assert response.json() == {}
    person = srv.person("id", "42")
    assert person is not None
    assert person["attributes"] == {"plan": "pro", "seats": 3}
    assert person["timestamp"] == 1_700_000_000
    assert srv.person("email", "a@example.com") is not None
    assert set(srv.people()) == {"id:42", "email:a@example.com"}
    assert srv.events(name="order_placed") == [
        {
            "identifiers": {"id": "42"},
            "name": "order_placed",
            "id": ULID_A,
            "timestamp": 1_700_000_100,
            "attributes": {"total": 9.5},
        }
    ]
    assert srv.events(name="other") == []
    stats = srv.stats()
    assert stats["items_accepted"] == {"identify": 2, "event": 1}
    assert stats["requests_by_status"] == {"200": 1}


def test_partial_failure_is_207_and_keeps_the_other_items(
    client: httpx.Client, srv: FakeCustomerIO
) -> None:
    response = send_batch(
        client,
        identify("1"),
        event(name=""),
        identify("2"),
        identify("3", action="upsert"),
        event(name="ok", person="4"),
    )
    assert response.status_code == 207
    errors = response.json()["errors"]
    assert [(e["batch_index"], e["reason"], e["field"]) for e in errors] == [
        (1, "invalid_event_name", "name"),
        (3, "invalid_action", "action"),
    ]
    assert all(e["message"] for e in errors)
    assert set(srv.people()) == {"id:1", "id:2"}
    assert [e["name"] for e in srv.events()] == ["ok"]
    stats = srv.stats()
    assert stats["items_accepted"] == {"identify": 2, "event": 1}
    assert stats["items_rejected"] == {"event": 1, "invalid": 1}


def test_malformed_requests_are_refused_whole(client: httpx.Client) -> None:
    for body in (b"{not json", b'{"items": []}', b'{"batch": {}}', b'{"batch": []}'):
        response = client.post("/api/v2/batch", content=body)
        assert response.status_code == 400
        assert response.json()["errors"][0]["reason"] in {"invalid_json", "invalid_batch"}


def _item_of_size(size: int) -> dict[str, Any]:
    """An identify item whose compact JSON is exactly ``size`` bytes."""
    item = identify(attributes={f"a{i}": "x" * 900 for i in range(35)} | {"pad": ""})
    item["attributes"]["pad"] = "y" * (size - len(orjson.dumps(item)))
    assert len(orjson.dumps(item)) == size
    return item


def _attributes(count: int) -> dict[str, Any]:
    return {f"attr_{i}": i for i in range(count)}


LIMIT_CASES = {
    # name: (item at the limit, item just over it, reason for the second)
    "identifier_bytes": (
        identify("é" * 75),  # 150 UTF-8 bytes in 75 characters
        identify("é" * 75 + "a"),
        "identifier_too_long",
    ),
    "attribute_name_bytes": (
        identify(attributes={"n" * 150: 1}),
        identify(attributes={"n" * 151: 1}),
        "attribute_name_too_long",
    ),
    "attribute_value_bytes": (
        identify(attributes={"bio": "v" * 1000}),
        identify(attributes={"bio": "v" * 1001}),
        "attribute_value_too_long",
    ),
    "attribute_value_utf8_bytes": (
        identify(attributes={"bio": "€" * 333}),  # 999 bytes
        identify(attributes={"bio": "€" * 334}),  # 1002 bytes
        "attribute_value_too_long",
    ),
    "attribute_value_json_bytes": (
        identify(attributes={"tags": ["t" * 996]}),  # ["t..."] is 1000 bytes
        identify(attributes={"tags": ["t" * 997]}),
        "attribute_value_too_long",
    ),
    "attribute_count": (
        identify(attributes=_attributes(300)),
        identify(attributes=_attributes(301)),
        "too_many_attributes",
    ),
    "event_name_bytes": (event(name="e" * 100), event(name="e" * 101), "event_name_too_long"),
    "item_bytes": (_item_of_size(32_768), _item_of_size(32_769), "item_too_large"),
    "event_id_ulid": (event(id=ULID_B.lower()), event(id="8" + ULID_B[1:]), "invalid_event_id"),
    "event_id_length": (event(id=ULID_A), event(id=ULID_A[:-1]), "invalid_event_id"),
    "timestamp": (
        identify(timestamp=1_700_000_000),
        identify(timestamp="1700000000"),
        "invalid_timestamp",
    ),
    "one_identifier": (
        identify(),
        identify(identifiers={"id": "1", "email": "a@example.com"}),
        "invalid_identifiers",
    ),
}


@pytest.mark.parametrize("case", LIMIT_CASES)
def test_limit_boundaries(client: httpx.Client, srv: FakeCustomerIO, case: str) -> None:
    at_limit, over_limit, reason = LIMIT_CASES[case]
    response = send_batch(client, at_limit, over_limit)
    assert response.status_code == 207
    assert [(e["batch_index"], e["reason"]) for e in response.json()["errors"]] == [(1, reason)]
    assert sum(srv.stats()["items_accepted"].values()) == 1


def _batch_body(size: int) -> bytes:
    """A valid batch body of exactly ``size`` bytes (JSON whitespace as padding)."""
    body = orjson.dumps({"batch": [identify(attributes={"x": "y" * 900}) for _ in range(50)]})
    return body[:-1] + b" " * (size - len(body)) + b"}"


def test_request_size_limit(client: httpx.Client, srv: FakeCustomerIO) -> None:
    assert client.post("/api/v2/batch", content=_batch_body(499_999)).status_code == 200
    response = client.post("/api/v2/batch", content=_batch_body(500_000))
    assert response.status_code == 400
    assert response.json()["errors"][0]["reason"] == "request_too_large"
    stats = srv.stats()
    assert stats["max_request_bytes_seen"] == 500_000
    assert stats["bytes_received"] == 999_999
    assert [(r["status"], r["bytes"], r["items"]) for r in srv.requests()] == [
        (200, 499_999, 50),
        (400, 500_000, 0),
    ]


# --------------------------------------------------------------------- semantics


def test_duplicate_event_ids_are_stored_once(client: httpx.Client, srv: FakeCustomerIO) -> None:
    assert send_batch(client, event(id=ULID_A), event(id=ULID_A)).status_code == 200
    assert send_batch(client, event(id=ULID_A.lower()), event(), event()).status_code == 200
    events = srv.events()
    assert [e["id"] for e in events] == [ULID_A, None, None]
    stats = srv.stats()
    assert stats["duplicates"] == 2
    assert stats["items_accepted"] == {"event": 5}


def test_older_identify_does_not_overwrite_newer(client: httpx.Client, srv: FakeCustomerIO) -> None:
    send_batch(client, identify(attributes={"plan": "pro", "gone": 1}, timestamp=2_000))
    send_batch(client, identify(attributes={"plan": "free", "city": "Oslo"}, timestamp=1_000))
    send_batch(client, identify(attributes={"gone": None}, timestamp=3_000))
    send_batch(client, identify(attributes={"gone": 2}, timestamp=2_500))
    person = srv.person("id", "42")
    assert person is not None
    assert person["attributes"] == {"plan": "pro", "city": "Oslo"}
    assert person["timestamp"] == 3_000


def test_delete_and_suppress(client: httpx.Client, srv: FakeCustomerIO) -> None:
    send_batch(client, identify("1"), identify("2"))
    base = {"type": "person"}
    response = send_batch(
        client,
        base | {"identifiers": {"id": "1"}, "action": "delete"},
        base | {"identifiers": {"id": "2"}, "action": "suppress"},
    )
    assert response.status_code == 200
    assert srv.person("id", "1") is None
    assert srv.deletions()[0]["identifiers"] == {"id": "1"}
    # A suppression deletes the profile and keeps the identifier from being added again,
    # until it is unsuppressed (the profile is not restored).
    assert srv.person("id", "2") is None and srv.suppressed() == ["id:2"]
    assert send_batch(client, identify("2"), event(person="2", id=ULID_A)).status_code == 200
    assert srv.person("id", "2") is None and srv.events() == []
    send_batch(client, base | {"identifiers": {"id": "2"}, "action": "unsuppress"})
    assert srv.suppressed() == [] and srv.person("id", "2") is None
    send_batch(client, identify("2"))
    assert srv.person("id", "2") is not None


def test_a_phone_identifier_must_be_e164(client: httpx.Client, srv: FakeCustomerIO) -> None:
    response = send_batch(client, identify("+15551234567", "phone"), identify("555-123-4567", "phone"))
    assert response.status_code == 207
    assert response.json()["errors"] == [{"batch_index": 1, "reason": "invalid_identifiers",
                                          "field": "identifiers.phone",
                                          "message": "phone must be an E.164 number, like +15551234567"}]
    assert srv.person("phone", "+15551234567") is not None


def test_update_only_identify_never_creates_a_profile(client: httpx.Client, srv: FakeCustomerIO) -> None:
    send_batch(client, identify("1", attributes={"plan": "free"}))
    response = send_batch(client, identify("1", attributes={"plan": "pro", "_update": True}),
                          identify("2", attributes={"plan": "pro", "_update": True}))
    assert response.status_code == 200
    person = srv.person("id", "1")
    assert person is not None and person["attributes"] == {"plan": "pro"}
    assert srv.person("id", "2") is None
    response = send_batch(client, identify("1", attributes={"_update": "yes"}))
    assert response.status_code == 207
    assert response.json()["errors"][0]["field"] == "attributes._update"


def test_topic_preferences_set_one_topic_in_dot_notation_and_keep_the_others(
        client: httpx.Client, srv: FakeCustomerIO) -> None:
    prefs = "cio_subscription_preferences"
    send_batch(client, identify("1", attributes={prefs: {"topics": {"topic_3": True, "topic_7": True}}}))
    send_batch(client, identify("1", attributes={f"{prefs}.topics.topic_7": False}, timestamp=2_000_000_000))
    person = srv.person("id", "1")
    assert person is not None
    assert person["attributes"][prefs] == {"topics": {"topic_3": True, "topic_7": False}}
    bad = [{f"{prefs}.topics.topic_3": "yes"}, {f"{prefs}.topics.newsletter": True}, {f"{prefs}.channels": True},
           {prefs: {"topics": {"topic_3": 1}}}, {prefs: ["topic_3"]}]
    response = send_batch(client, *(identify("1", attributes=attributes) for attributes in bad))
    assert response.status_code == 207
    assert [error["batch_index"] for error in response.json()["errors"]] == [0, 1, 2, 3, 4]
    # An attribute whose name only starts like it is an ordinary attribute.
    assert send_batch(client, identify("1", attributes={f"{prefs}_updated_at": 1})).status_code == 200


def obj(object_id: str = "sub_42", type_id: Any = "1", action: str = "identify", **extra: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "object", "identifiers": {"object_type_id": type_id, "object_id": object_id},
                            "action": action}
    item.update(extra)
    return item


def relate(person: str, object_id: str, action: str = "add_relationships", **attributes: Any) -> dict[str, Any]:
    relationship: dict[str, Any] = {"identifiers": {"object_type_id": "1", "object_id": object_id}}
    if attributes:
        relationship["relationship_attributes"] = attributes
    return {"type": "person", "identifiers": {"id": person}, "action": action, "cio_relationships": [relationship]}


def test_objects_are_identified_updated_and_deleted_with_their_relationships(
        client: httpx.Client, srv: FakeCustomerIO) -> None:
    send_batch(client, obj(attributes={"plan": "monthly", "status": "active"}, timestamp=1_000))
    send_batch(client, obj(attributes={"status": "cancelled", "plan": None}, timestamp=2_000),
               obj("sub_43", attributes={"plan": "yearly", "_update": True}))
    assert srv.objects() == {"1:sub_42": {"identifiers": {"object_type_id": "1", "object_id": "sub_42"},
                                          "attributes": {"status": "cancelled"}, "timestamp": 2_000}}
    assert srv.people() == {}  # an object is not a person
    response = send_batch(client, relate("p1", "sub_42", status="active"), relate("p2", "sub_42"))
    assert response.status_code == 200
    send_batch(client, relate("p1", "sub_42", status="cancelled", since=""))
    assert srv.relationships() == [
        {"person": {"id": "p1"}, "object": {"object_type_id": "1", "object_id": "sub_42"},
         "attributes": {"status": "cancelled"}},
        {"person": {"id": "p2"}, "object": {"object_type_id": "1", "object_id": "sub_42"}, "attributes": {}}]
    send_batch(client, relate("p2", "sub_42", "delete_relationships"))
    assert [r["person"] for r in srv.relationships()] == [{"id": "p1"}]
    send_batch(client, obj(action="delete"))
    assert srv.objects() == {} and srv.relationships() == []
    assert srv.stats()["items_accepted"]["object_identify"] == 3
    assert srv.stats()["items_accepted"]["object_delete"] == 1


def test_object_items_are_checked_as_customerio_documents_them(client: httpx.Client, srv: FakeCustomerIO) -> None:
    bad = [
        obj(type_id=1),  # the type id is a string integer
        obj(type_id="subscriptions"),
        obj("x" * 151),  # object ids are at most 150 bytes
        {"type": "object", "identifiers": {"id": "42"}, "action": "identify"},
        obj(action="event", name="x"),  # objects have no events
        obj(attributes={"cio_subscription_preferences.topics.topic_1": True}),
        obj(attributes={f"a{i}": i for i in range(301)}),
        relate("p1", "sub_42") | {"cio_relationships": []},
        relate("p1", "sub_42") | {"cio_relationships": [{"identifiers": {"id": "p2"}}]},  # a person is no object
        relate("p1", "sub_42", note="x" * 1_001),
        {"type": "device", "identifiers": {"id": "p1"}, "action": "identify"},
    ]
    response = send_batch(client, obj("x" * 150), *bad)
    assert response.status_code == 207
    errors = response.json()["errors"]
    assert [e["batch_index"] for e in errors] == list(range(1, len(bad) + 1))
    assert [e["field"] for e in errors[:3]] == ["identifiers.object_type_id"] * 2 + ["identifiers.object_id"]
    assert errors[8]["field"] == "cio_relationships[0].identifiers"
    assert list(srv.objects()) == ["1:" + "x" * 150]
    assert srv.stats()["items_rejected"]["object_identify"] == 6


def device(person: str, token: str, action: str = "add_device", **fields: Any) -> dict[str, Any]:
    return {"type": "person", "identifiers": {"id": person}, "action": action, "device": {"token": token, **fields}}


def test_devices_are_added_updated_and_deleted_per_person(client: httpx.Client, srv: FakeCustomerIO) -> None:
    response = send_batch(client, device("p1", "tok-a", platform="ios", last_used=1_000, attributes={"app": "1.0"}),
                          device("p1", "tok-b", platform="android"))
    assert response.status_code == 200
    send_batch(client, device("p1", "tok-a", platform="ios", attributes={"app": "1.1", "beta": None}))
    assert srv.devices() == [
        {"person": {"id": "p1"}, "token": "tok-a", "platform": "ios", "last_used": 1_000, "attributes": {"app": "1.1"}},
        {"person": {"id": "p1"}, "token": "tok-b", "platform": "android", "last_used": None, "attributes": {}}]
    send_batch(client, device("p1", "tok-b", "delete_device"))
    assert [d["token"] for d in srv.devices()] == ["tok-a"]
    bad = [device("p1", "tok-c"), device("p1", "tok-c", platform="web"), device("p1", " ", platform="ios"),
           device("p1", "tok-c", platform="ios", last_used="yesterday"),
           device("p1", "tok-c", platform="ios", attributes={"x": "y" * 1_001}),
           {"type": "person", "identifiers": {"id": "p1"}, "action": "add_device"}]
    response = send_batch(client, *bad)
    assert [e["field"] for e in response.json()["errors"]] == [
        "device.platform", "device.platform", "device.token", "device.last_used", "device.attributes.x", "device"]
    send_batch(client, {"type": "person", "identifiers": {"id": "p1"}, "action": "delete"})
    assert srv.devices() == []


# ------------------------------------------------------------------------------ v1


def test_v1_calls_of_the_official_library(client: httpx.Client, srv: FakeCustomerIO) -> None:
    email = "jo+test@example.com"
    path = f"/api/v1/customers/{quote(email, safe='')}"
    assert client.put(path, json={"plan": "pro", "_timestamp": 50}).status_code == 200
    assert client.put(path, json={"plan": "old", "_timestamp": 10}).status_code == 200
    person = srv.person("email", email)
    assert person is not None and person["attributes"] == {"plan": "pro"}

    slash_id = f"/api/v1/customers/{quote('a/b', safe='')}"
    assert client.put(slash_id, json={}).status_code == 200
    assert srv.person("id", "a/b") is not None

    body = {"name": "signed_up", "data": {"via": "web"}, "id": ULID_A, "timestamp": 5}
    assert client.post(f"{path}/events", json=body).status_code == 200
    assert client.post(f"{path}/events", json=body).status_code == 200
    assert [(e["name"], e["attributes"]) for e in srv.events()] == [("signed_up", {"via": "web"})]

    assert client.post(f"{path}/suppress", json={}).status_code == 200
    assert srv.suppressed() == [f"email:{email}"] and srv.person("email", email) is None
    assert client.post(f"{path}/unsuppress", json={}).status_code == 200
    assert client.put(path, json={"plan": "pro", "_timestamp": 50}).status_code == 200

    client.put("/api/v1/customers/7", json={"plan": "basic", "city": "Oslo"})
    merge = {"primary": {"email": email}, "secondary": {"id": "7"}}
    assert client.post("/api/v1/merge_customers", json=merge).status_code == 200
    assert srv.person("id", "7") is None
    assert srv.person("email", email)["attributes"] == {"plan": "pro", "city": "Oslo"}  # type: ignore[index]

    assert client.request("DELETE", path, json={}).status_code == 200
    assert srv.person("email", email) is None


def test_v1_errors_use_the_meta_shape(client: httpx.Client) -> None:
    response = client.post("/api/v1/customers/42/events", json={"name": "x" * 101})
    assert response.status_code == 400
    assert response.json()["meta"]["errors"][0].startswith("event name")
    response = client.put("/api/v1/customers/42", json={"n" * 151: 1})
    assert response.status_code == 400
    response = client.put("/api/v1/customers/42", json={"big": "x" * 33_000})
    assert response.status_code == 400
    response = client.post("/api/v1/merge_customers", json={"primary": {"id": "1"}})
    assert response.status_code == 400


# ---------------------------------------------------------------------------- faults


def test_rate_limit_answers_429_with_retry_after(client: httpx.Client, srv: FakeCustomerIO) -> None:
    srv.configure(rate_limit=1)
    assert send_batch(client, identify("1")).status_code == 200
    response = send_batch(client, identify("2"))
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"
    assert response.json() == {"meta": {"error": "rate limited"}}
    stats = srv.stats()
    assert stats["rate_limited"] == 1
    assert set(srv.people()) == {"id:1"}
    # Admin endpoints are never throttled.
    for _ in range(5):
        srv.stats()


def test_error_rate_one_answers_5xx_and_records_nothing(
    client: httpx.Client, srv: FakeCustomerIO
) -> None:
    srv.configure(error_rate=1.0)
    statuses = {send_batch(client, identify(), event(id=ULID_A)).status_code for _ in range(6)}
    assert statuses <= {500, 502, 503}
    assert srv.people() == {}
    assert srv.events() == []
    stats = srv.stats()
    assert stats["errors_injected"] == 6
    assert stats["items_accepted"] == {}
    srv.configure(error_rate=0.0)
    # The event id was never accepted, so it is not a duplicate now.
    assert send_batch(client, event(id=ULID_A)).status_code == 200
    assert len(srv.events()) == 1


def test_drop_rate_one_closes_connections_unanswered(
    client: httpx.Client, srv: FakeCustomerIO
) -> None:
    srv.configure(drop_rate=1.0)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        send_batch(client, identify())
    assert srv.people() == {}
    assert srv.stats()["dropped"] == 1


def test_seeded_faults_repeat_after_reset(client: httpx.Client, srv: FakeCustomerIO) -> None:
    srv.configure(error_rate=0.5, seed=1234)

    def statuses() -> list[int]:
        return [send_batch(client, identify()).status_code for _ in range(12)]

    first = statuses()
    assert 200 in first and set(first) - {200}
    srv.reset()
    assert statuses() == first


@pytest.mark.parametrize("accepts", [True, False])
def test_slow_responses_time_out_clients(
    client: httpx.Client, srv: FakeCustomerIO, accepts: bool
) -> None:
    srv.configure(slow_rate=1.0, slow_seconds=5.0, slow_accepts=accepts)
    with pytest.raises(httpx.ReadTimeout):
        client.post("/api/v2/batch", json={"batch": [identify()]}, timeout=0.3)
    assert (srv.person("id", "42") is not None) is accepts
    assert srv.stats()["slow"] == 1


def test_latency_delays_every_response(client: httpx.Client, srv: FakeCustomerIO) -> None:
    srv.configure(latency=0.2)
    started = time.monotonic()
    assert client.get("/api/v1/accounts/region").status_code == 200
    assert time.monotonic() - started >= 0.2


def test_every_setting_can_be_changed_at_runtime(srv: FakeCustomerIO) -> None:
    defaults = Settings().as_dict()
    assert srv.configure(**defaults) == defaults
    assert srv.stats()["settings"] == defaults


def test_bad_settings_are_refused(srv: FakeCustomerIO) -> None:
    with pytest.raises(RuntimeError, match="error_rate"):
        srv.configure(error_rate=2)
    with pytest.raises(RuntimeError, match="unknown setting"):
        srv.configure(nonsense=1)
    with pytest.raises(ValueError, match="drop_rate"):
        FakeCustomerIO(drop_rate=-1)


# ------------------------------------------------------------ TLS, process, disk, CLI


def test_tls_needs_the_ca_bundle() -> None:
    with FakeCustomerIO(tls=True) as server:
        assert server.url.startswith("https://127.0.0.1:")
        assert server.ca_bundle is not None and Path(server.ca_bundle).is_file()
        context = server.ssl_context()
        with httpx.Client(base_url=server.url, auth=AUTH, verify=context) as client:
            assert send_batch(client, identify()).status_code == 200
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{server.url}/api/v1/accounts/region", auth=AUTH)
        assert server.person("id", "42") is not None


def test_subprocess_mode_with_tls() -> None:
    with FakeCustomerIO(in_process=False, tls=True, error_rate=0.0) as server:
        with httpx.Client(base_url=server.url, auth=AUTH, verify=server.ssl_context()) as client:
            assert send_batch(client, identify(), event(id=ULID_A)).status_code == 200
            region = client.get("/api/v1/accounts/region").json()
        assert region["url"] == server.url
        assert server.stats()["items_accepted"] == {"identify": 1, "event": 1}
        assert len(server.events()) == 1
        ca_bundle = server.ca_bundle
        assert ca_bundle is not None
    assert not Path(ca_bundle).exists()  # temporary certificates are removed on stop


def test_disk_mode_writes_ndjson(tmp_path: Path) -> None:
    with FakeCustomerIO(record="disk", record_dir=tmp_path) as server:
        with httpx.Client(base_url=server.url, auth=AUTH) as client:
            response = send_batch(
                client, identify(), event(id=ULID_A), event(id=ULID_A), event(name="")
            )
            assert response.status_code == 207
            assert client.put("/api/v1/customers/7", json={"a": 1}).status_code == 200
        assert server.record_file == tmp_path / "accepted.ndjson"
        lines = [orjson.loads(line) for line in server.record_file.read_bytes().splitlines()]
        assert [(line["action"], line["identifiers"]) for line in lines] == [
            ("identify", {"id": "42"}),
            ("event", {"id": "42"}),
            ("identify", {"id": "7"}),
        ]
        stats = server.stats()
        assert stats["record"] == "disk" and stats["duplicates"] == 1
        with pytest.raises(RuntimeError, match="409"):
            server.people()
        server.reset()
        assert server.record_file.read_bytes() == b""


def test_subprocess_startup_failure_is_reported() -> None:
    with pytest.raises(RuntimeError, match="loopback"):
        FakeCustomerIO(in_process=False, host="0.0.0.0").start()


def test_cli_refuses_non_loopback_addresses(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["--host", "0.0.0.0"])
    assert exit_info.value.code == 2
    assert "loopback" in capsys.readouterr().err
