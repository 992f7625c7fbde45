"""Rows to Track API items: payload shapes, deterministic ULIDs, per-row limits, batch packing."""

from __future__ import annotations

import hashlib
import random

import orjson
import pytest
from ulid import ULID

from cio_sync._encode import MAX_KEY_CHARS, Encoder, Item, Reject, event_id_hash, event_ulid, state_key
from cio_sync._errors import ConfigError
from cio_sync._project.model import (
    BOOLEAN,
    INTEGER,
    NESTED,
    NUMBER,
    TEXT,
    TIMESTAMP,
    Column,
    ModelSpec,
    check_identifier_kinds,
    people_models_waited_for,
    people_specs_of,
)
from cio_sync._send.batch import ENVELOPE_BYTES, BatchPacker


def spec(meta: dict, name: str = "m") -> ModelSpec:
    node = {
        "unique_id": f"model.p.{name}",
        "name": name,
        "relation_name": f'"db"."s"."{name}"',
        "database": "db",
        "schema": "s",
        "alias": name,
        "config": {"meta": {"cio": meta}},
    }
    return ModelSpec.from_node(node)


PEOPLE = {
    "kind": "people",
    "identifier": {"column": "customer_id", "kind": "id"},
    "exclude": ["secret"],
    "attribute_prefix": "wh_",
}
PEOPLE_COLUMNS = [
    Column("customer_id", TEXT),
    Column("email", TEXT),
    Column("created_at", TIMESTAMP),
    Column("ltv", NUMBER),
    Column("orders", INTEGER),
    Column("vip", BOOLEAN),
    Column("secret", TEXT),
]
EVENT = {
    "kind": "event",
    "identifier": {"column": "customer_id", "kind": "id"},
    "event_name": "order_placed",
    "event_id_column": "event_id",
    "timestamp_column": "event_at",
    "json_columns": ["items"],
}
EVENT_COLUMNS = [
    Column("event_id", TEXT),
    Column("customer_id", TEXT),
    Column("event_at", TIMESTAMP),
    Column("total", NUMBER),
    Column("items", TEXT),
]


def test_people_attributes_exclude_identifier_and_excluded_columns_and_prefix_non_reserved():
    model = spec(PEOPLE).resolve(PEOPLE_COLUMNS)
    assert [c.name for c in model.attributes] == ["email", "created_at", "ltv", "orders", "vip"]
    # email and created_at mean something to Customer.io: never prefixed.
    assert model.attribute_names == ("email", "created_at", "wh_ltv", "wh_orders", "wh_vip")


def person(identifier, key, *attributes, previous_hash=None):
    """A people row as the reader yields it: identifier, key, hash, previous hash, previous identifier, attributes."""
    return (identifier, key, "h" * 32, previous_hash, None, *attributes)


def test_identify_item_shape_and_nulls_left_out():
    model = spec(PEOPLE).resolve(PEOPLE_COLUMNS)
    encoder = Encoder(model, snapshot=1_780_000_000, n_head=5)
    item = encoder.encode(person("c1", "c1", "a@b.co", 1_700_000_000, 59.9, 3, True))
    assert isinstance(item, Item)
    assert orjson.loads(item.data) == {
        "type": "person",
        "identifiers": {"id": "c1"},
        "action": "identify",
        "timestamp": 1_780_000_000,
        "attributes": {"email": "a@b.co", "created_at": 1_700_000_000, "wh_ltv": 59.9, "wh_orders": 3, "wh_vip": True},
    }
    item = encoder.encode(person("c2", "c2", None, None, None, 0, False))
    assert orjson.loads(item.data)["attributes"] == {"wh_orders": 0, "wh_vip": False}
    # A person Customer.io already has: a value that became null is sent as null (removed there).
    item = encoder.encode(person("c2", "c2", None, None, None, 0, False, previous_hash="p" * 32))
    assert orjson.loads(item.data)["attributes"] == {"email": None, "created_at": None, "wh_ltv": None,
                                                      "wh_orders": 0, "wh_vip": False}


@pytest.mark.parametrize(
    ("row", "column", "reason"),
    [
        (person(None, None, "a@b.co", 1, 1.0, 1, True), "customer_id", "null_identifier"),
        (person("  ", "  ", "a@b.co", 1, 1.0, 1, True), "customer_id", "null_identifier"),
        (person("é" * 76, "x", "a@b.co", 1, 1.0, 1, True), "customer_id", "identifier_too_long"),  # 152 bytes
        (person("c1", "c1", "é" * 501, 1, 1.0, 1, True), "email", "value_too_long"),  # 1002 bytes
        (person("c1", "c1", "a@b.co", 1, float("nan"), 1, True), "ltv", "not_a_number"),
        (person("c1", "c1", "a@b.co", 1, float("inf"), 1, True), "ltv", "not_a_number"),
    ],
)
def test_people_limits_reject_the_row_naming_the_column(row, column, reason):
    model = spec(PEOPLE).resolve(PEOPLE_COLUMNS)
    result = Encoder(model, snapshot=1, n_head=5).encode(row)
    assert isinstance(result, Reject)
    assert (result.model, result.column, result.reason) == ("m", column, reason)


def test_limits_at_the_boundary_are_accepted():
    model = spec(PEOPLE).resolve(PEOPLE_COLUMNS)
    encoder = Encoder(model, snapshot=1, n_head=5)
    assert isinstance(encoder.encode(person("i" * 150, "i" * 150, "x" * 1000, 1, 1.0, 1, True)), Item)


def event_row(event_id="k1", name="order_placed", at=1_780_000_000, items='[{"sku":"A"}]', total=59.9):
    digest = hashlib.md5(f"{len(name)}:{name}|{event_id}".encode()).hexdigest()
    return ("c1", event_id, at, at * 1000, digest, name, "h" * 32, None, None, None, 1, total, items)


def test_event_item_shape_with_parsed_json_and_deterministic_ulid():
    model = spec(EVENT).resolve(EVENT_COLUMNS)
    item = Encoder(model, snapshot=1, n_head=11).encode(event_row())
    body = orjson.loads(item.data)
    assert body == {
        "type": "person",
        "identifiers": {"id": "c1"},
        "action": "event",
        "name": "order_placed",
        "id": body["id"],
        "timestamp": 1_780_000_000,
        "attributes": {"total": 59.9, "items": [{"sku": "A"}]},
    }
    ulid = ULID.from_str(body["id"])
    assert int(ulid.milliseconds) == 1_780_000_000_000  # time part = event time
    assert ulid.bytes[6:] == hashlib.md5(b"12:order_placed|k1").digest()[:10]  # 80 bits from (name, event id)
    assert Encoder(model, snapshot=2, n_head=11).encode(event_row()).data == item.data  # same event, same id


def test_two_events_of_one_checkout_never_share_an_id():
    started = event_ulid(1_780_000_000_000, event_id_hash("checkout_started", "k1"))
    abandoned = event_ulid(1_780_000_000_000, event_id_hash("cart_abandoned", "k1"))
    assert started != abandoned
    assert event_ulid(1_780_000_000_000, event_id_hash("cart_abandoned", "k2")) != abandoned
    # The name's length keeps (name, key) pairs apart whatever they hold.
    assert event_id_hash("a", "b|c") != event_id_hash("a|b", "c")
    assert event_id_hash("a", "b|c") == hashlib.md5(b"1:a|b|c").hexdigest()


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (event_row(items="{not json"), "invalid_json"),
        (event_row(at=-5), "timestamp_before_1970"),
        (event_row(items="[" + ",".join(['"' + "x" * 100 + '"'] * 400) + "]"), "item_too_large"),
    ],
)
def test_event_rejects(row, reason):
    model = spec(EVENT).resolve(EVENT_COLUMNS)
    result = Encoder(model, snapshot=1, n_head=11).encode(row)
    assert isinstance(result, Reject) and result.reason == reason and result.row_key == "k1"


def test_missing_configured_column_names_model_key_and_column():
    with pytest.raises(ConfigError, match=r"model m:\n  meta.cio.timestamp_column: column 'event_at' is not in"):
        spec(EVENT).resolve([c for c in EVENT_COLUMNS if c.name != "event_at"])


def test_json_people_attribute_refused_unless_allowed():
    columns = [Column("customer_id", TEXT), Column("prefs", NESTED, "JSON")]
    meta = {"kind": "people", "identifier": {"column": "customer_id", "kind": "id"}}
    with pytest.raises(ConfigError, match="'prefs' is JSON: JSON, array or struct people attributes"):
        spec(meta).resolve(columns)
    assert spec({**meta, "allow_json_attributes": True}).resolve(columns).attributes[0].name == "prefs"


TOPICS = {"kind": "people", "identifier": {"column": "customer_id", "kind": "id"}, "attribute_prefix": "wh_",
          "create": False, "topics": {"newsletter": 3, "sms_offers": 7}}
TOPIC_COLUMNS = [Column("customer_id", TEXT), Column("tier", TEXT), Column("newsletter", BOOLEAN),
                 Column("sms_offers", BOOLEAN)]


def test_update_only_identifies_carry_update_and_topics_are_sent_by_id_never_as_null():
    model = spec(TOPICS).resolve(TOPIC_COLUMNS)
    assert model.attribute_names == ("wh_tier", "cio_subscription_preferences.topics.topic_3",
                                     "cio_subscription_preferences.topics.topic_7")
    encoder = Encoder(model, snapshot=1_780_000_000, n_head=5)
    item = encoder.encode(person("c1", "c1", "gold", True, False))
    assert isinstance(item, Item)
    assert orjson.loads(item.data)["attributes"] == {
        "wh_tier": "gold", "cio_subscription_preferences.topics.topic_3": True,
        "cio_subscription_preferences.topics.topic_7": False, "_update": True}
    # A person Customer.io has: a null attribute is sent as null (removed), a null topic not at all.
    item = encoder.encode(person("c1", "c1", None, None, True, previous_hash="p" * 32))
    assert orjson.loads(item.data)["attributes"] == {
        "wh_tier": None, "cio_subscription_preferences.topics.topic_7": True, "_update": True}
    # A topic id written 3.0 in YAML is topic 3.
    assert spec({**TOPICS, "topics": {"newsletter": 3.0}}).resolve(TOPIC_COLUMNS).attribute_names[-1] == (
        "cio_subscription_preferences.topics.topic_3")
    plain = spec({k: v for k, v in TOPICS.items() if k != "create"}).resolve(TOPIC_COLUMNS)
    assert "_update" not in orjson.loads(Encoder(plain, 1, 5).encode(person("c1", "c1", "x", True, None)).data)[
        "attributes"]


@pytest.mark.parametrize(
    ("meta", "columns", "message"),
    [
        (TOPICS, [*TOPIC_COLUMNS[:3], Column("sms_offers", TEXT, "VARCHAR")],
         "meta.cio.topics: 'sms_offers' is VARCHAR, not a boolean"),
        ({**TOPICS, "topics": {"newsletter": 3, "sms_offers": 3}}, TOPIC_COLUMNS,
         "columns 'newsletter' and 'sms_offers' are both topic 3"),
        ({**TOPICS, "exclude": ["newsletter"]}, TOPIC_COLUMNS, "'newsletter' is also in meta.cio.exclude"),
        ({**TOPICS, "topics": {"push": 4}}, TOPIC_COLUMNS, "meta.cio.topics: column 'push' is not in"),
        ({**EVENT, "create": False, "topics": {"total": 1}}, EVENT_COLUMNS,
         "meta.cio.topics: only people models have it\n  meta.cio.create: only people and object models have it"),
        ({**TOPICS, "on_delete": "delete"}, TOPIC_COLUMNS, "an update-only model .* never deletes or suppresses"),
        ({**TOPICS, "topics": {}}, [Column("customer_id", TEXT)] + [Column(f"a{i}", TEXT) for i in range(300)],
         "300 attributes; Customer.io takes at most 300 per identify, _update included"),
    ],
)
def test_topics_and_create_are_checked_against_the_columns(meta, columns, message):
    with pytest.raises(ConfigError, match=message):
        spec(meta).resolve(columns)


def test_a_phone_identifier_not_in_e164_is_rejected_naming_the_column():
    meta = {"kind": "people", "identifier": {"column": "phone", "kind": "phone"}}
    model = spec(meta).resolve([Column("phone", TEXT), Column("tier", TEXT)])
    encoder = Encoder(model, snapshot=1, n_head=5)
    item = encoder.encode(person("+15551234567", None, "gold"))
    assert isinstance(item, Item) and orjson.loads(item.data)["identifiers"] == {"phone": "+15551234567"}
    for bad in ("5551234567", "+1 555 123 4567", "+05551234567", "+1234567890123456", "+1"):
        result = encoder.encode(person(bad, None, "gold"))
        assert isinstance(result, Reject), bad
        assert (result.column, result.reason) == ("phone", "invalid_phone")


def test_invalid_meta_names_model_key_and_expectation():
    with pytest.raises(
        ConfigError, match=r"model m: invalid meta.cio\n  meta.cio.identifier.kind: 'mobile' is not one of"
    ):
        spec({"kind": "people", "identifier": {"column": "x", "kind": "mobile"}})


def test_mixed_identifier_kinds_are_an_error_unless_allowed():
    people = spec(PEOPLE, "people")
    by_email = spec({**EVENT, "identifier": {"column": "email", "kind": "email"}}, "events")
    with pytest.raises(ConfigError, match="identify people in different ways"):
        check_identifier_kinds([people, by_email])
    check_identifier_kinds([people, by_email], allow_mixed=True)
    check_identifier_kinds(
        [
            people,
            spec({**EVENT, "identifier": {"column": "email", "kind": "email"}, "allow_mixed_identifiers": True}, "e2"),
        ]
    )


def test_the_people_models_events_wait_for_are_the_projects_enabled_ones_selected_or_not():
    """A project's people models make its events wait for a first identify; one switched off
    (meta.cio.enabled: false, also through meta.cio_overrides, or a disabled dbt model) does not,
    nor does one whose meta.cio is invalid (it is reported when selected), nor a test or an
    event model."""

    def node(name, meta, **extra):
        return {"resource_type": "model", "unique_id": f"model.p.{name}", "name": name,
                "relation_name": f'"db"."s"."{name}"', "database": "db", "schema": "s", "alias": name,
                "config": {"meta": {"cio": meta}, **extra}}

    nodes = [
        node("people", PEOPLE),
        node("people_off", {**PEOPLE, "enabled": False}),
        {**node("package_people_off", PEOPLE),
         "config": {"meta": {"cio": PEOPLE, "cio_overrides": {"enabled": False}}}},  # the documented opt-out
        node("people_disabled", PEOPLE, enabled=False),
        node("people_broken", {"kind": "people"}),
        node("events", EVENT),
        {**node("a_test", PEOPLE), "resource_type": "test"},
    ]
    assert [s.name for s in people_specs_of(nodes)] == ["people"]


def test_events_never_wait_for_an_update_only_people_model():
    """Its acknowledged identify (`_update: true`) does not mean Customer.io has the person."""
    specs = [spec(PEOPLE, "people"), spec({**PEOPLE, "create": False}, "updates"),
             spec({**PEOPLE, "key_column": "email"}, "keyed_by_email"),
             spec({**PEOPLE, "identifier": {"column": "email", "kind": "email"}}, "by_email")]
    assert people_models_waited_for(specs, "id", ["updates", "old_model"]) == (
        ("keyed_by_email", False), ("old_model", False), ("people", True))


def test_batches_close_strictly_under_the_limit_and_lose_nothing():
    packer = BatchPacker(max_bytes=1_000)
    items = [orjson.dumps({"i": i, "pad": "x" * (i % 37)}) for i in range(500)]
    batches = [b for data in items if (b := packer.add(data, data)) is not None]
    batches.append(packer.flush())
    assert [d for b in batches for d in b.items] == items
    for batch in batches:
        body = batch.body()
        assert len(body) < 1_000
        assert orjson.loads(body) == {"batch": [orjson.loads(d) for d in batch.items]}
    # Full: the next item would not have fitted.
    for batch, following in zip(batches, batches[1:], strict=False):
        assert len(batch.body()) + 1 + len(following.items[0]) >= 1_000
    assert ENVELOPE_BYTES == len(b'{"batch":[]}')


def test_event_ulid_text_is_what_the_ulid_library_makes():
    rng = random.Random(7)
    for epoch_ms in [0, 1, (1 << 48) - 1, 1_780_000_000_000] + [rng.randrange(1 << 48) for _ in range(2000)]:
        digest = hashlib.md5(str(rng.random()).encode()).hexdigest()
        expected = str(ULID.from_bytes(epoch_ms.to_bytes(6, "big") + bytes.fromhex(digest[:20])))
        assert event_ulid(epoch_ms, digest) == expected
    with pytest.raises(OverflowError):
        event_ulid(1 << 48, "0" * 32)


TYPED_EVENT = {k: v for k, v in EVENT.items() if k != "json_columns"}
TYPED_EVENT_COLUMNS = [*EVENT_COLUMNS[:4], Column("coupon", TEXT), Column("paid", BOOLEAN), Column("units", INTEGER)]


def random_value(rng: random.Random, kind: str):
    if rng.random() < 0.2:
        return None
    if kind == TEXT:
        alphabet = "aZ09 é€😀\"\\/\n\t\x00\x1f\u2028<>&'"
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))
    if kind == NUMBER:
        return rng.choice([0.0, -0.0, 0.1, 1e-7, 1e16, 1e22, -123456.789, 5e-324, 1.7976931348623157e308,
                           rng.uniform(-1e6, 1e6)])
    if kind in (INTEGER, TIMESTAMP):
        return rng.choice([0, -1, 1, 2**31, -(2**63), 2**63 - 1, rng.randrange(-(10**12), 10**12)])
    return rng.random() < 0.5


def test_typed_path_sends_what_the_general_path_sends():
    """Models of simple column kinds take the typed (msgspec) path; it must produce the same
    items as the general (dict + orjson) path, for people new and known and for events."""
    rng = random.Random(7)
    people = spec(PEOPLE).resolve(PEOPLE_COLUMNS)
    events = spec(TYPED_EVENT).resolve(TYPED_EVENT_COLUMNS)
    for model, n_head in ((people, 5), (events, 11)):
        typed, general = Encoder(model, snapshot=1_780_000_000, n_head=n_head), Encoder(model, 1_780_000_000, n_head)
        general.encode = general._event_checked if model.is_event else general._person_checked
        assert typed.fast
        kinds = [c.kind for c in model.attributes]
        for n in range(3000):
            values = tuple(random_value(rng, k) for k in kinds)
            if model is people:
                row = person(f"c{n}", f"k{n}", *values, previous_hash=rng.choice([None, "p" * 32]))
            else:
                at = rng.randrange(0, 2_000_000_000)
                name = rng.choice(["order_placed", "refund_issued"])
                digest = hashlib.md5(f"{len(name)}:{name}|k{n}".encode()).hexdigest()
                row = (f"c{n}", f"k{n}", at, at * 1000 + rng.randrange(1000), digest, name, "h" * 32, None, None,
                       None, 1, *values)
            a, b = typed.encode(row), general.encode(row)
            assert isinstance(a, Item) and isinstance(b, Item), (row, a, b)
            assert orjson.loads(a.data) == orjson.loads(b.data), row
            assert (a.identifier, a.row_key, a.event_time, a.row_hash, a.event_id, a.new) == (
                b.identifier, b.row_key, b.event_time, b.row_hash, b.event_id, b.new)


OBJECT = {"kind": "object", "object_type_id": "4", "identifier": {"column": "subscription_id", "kind": "object_id"}}
OBJECT_COLUMNS = [Column("subscription_id", TEXT, "VARCHAR"), Column("plan", TEXT, "VARCHAR"),
                  Column("next_charge_at", TIMESTAMP, "TIMESTAMP"), Column("amount", NUMBER, "DOUBLE")]


def test_an_object_is_identified_by_type_and_id_on_both_paths():
    model = spec(OBJECT).resolve(OBJECT_COLUMNS)
    typed, general = Encoder(model, snapshot=1_780_000_000, n_head=5), Encoder(model, 1_780_000_000, 5)
    general.encode = general._person_checked
    assert typed.fast
    for row in (person("sub_1", "sub_1", "monthly", 1_790_000_000, None),
                person("sub_1", "sub_1", "monthly", None, 9.5, previous_hash="p" * 32)):
        a, b = typed.encode(row), general.encode(row)
        assert isinstance(a, Item) and isinstance(b, Item)
        assert orjson.loads(a.data) == orjson.loads(b.data)
    assert orjson.loads(a.data) == {"type": "object", "identifiers": {"object_type_id": "4", "object_id": "sub_1"},
                                    "action": "identify", "timestamp": 1_780_000_000,
                                    "attributes": {"plan": "monthly", "next_charge_at": None, "amount": 9.5}}
    # An integer object id is sent as text; one over 150 bytes is rejected naming its column.
    item = typed.encode(person(42, "42", "monthly", None, None))
    assert isinstance(item, Item) and orjson.loads(item.data)["identifiers"]["object_id"] == "42"
    reject = typed.encode(person("s" * 151, "s" * 151, "monthly", None, None))
    assert isinstance(reject, Reject) and (reject.column, reject.reason) == ("subscription_id", "identifier_too_long")


@pytest.mark.parametrize(("meta", "message"), [
    ({k: v for k, v in OBJECT.items() if k != "object_type_id"}, "'object_type_id' is a required property"),
    ({**OBJECT, "object_type_id": "subscriptions"}, "does not match"),
    ({**OBJECT, "identifier": {"column": "subscription_id", "kind": "id"}}, "'object_id' was expected"),
    ({**OBJECT, "on_delete": "suppress"}, "'suppress' is not one of ['ignore', 'delete']"),
    ({**OBJECT, "key_column": "plan"}, "should not be valid"),
    ({**PEOPLE, "identifier": {"column": "customer_id", "kind": "object_id"}}, "should not be valid"),
    ({**PEOPLE, "object_type_id": "1"}, "should not be valid"),
])
def test_object_models_are_validated(meta, message):
    with pytest.raises(ConfigError, match="invalid meta.cio") as caught:
        spec(meta)
    assert message in str(caught.value)


RELATIONSHIP = {"kind": "relationship", "object_type_id": "4", "identifier": {"column": "customer_id", "kind": "id"},
                "object_id_column": "subscription_id"}


def test_a_relationship_relates_the_person_to_the_object_with_its_attributes():
    model = spec(RELATIONSHIP).resolve(OBJECT_COLUMNS + [Column("customer_id", TEXT, "VARCHAR")])
    assert [c.name for c in model.attributes] == ["plan", "next_charge_at", "amount"]
    encoder = Encoder(model, snapshot=1_780_000_000, n_head=5)
    key = "2:c1|sub_1"  # pair_key: the identifier's length, the identifier, the object id
    item = encoder.encode(person("c1", key, "monthly", None, 9.5))
    assert isinstance(item, Item) and item.row_key == key
    assert orjson.loads(item.data) == {
        "type": "person", "identifiers": {"id": "c1"}, "action": "add_relationships",
        "cio_relationships": [{"identifiers": {"object_type_id": "4", "object_id": "sub_1"},
                               "relationship_attributes": {"plan": "monthly", "amount": 9.5}}]}
    known = encoder.encode(person("c1", key, "monthly", None, 9.5, previous_hash="p" * 32))
    assert orjson.loads(known.data)["cio_relationships"][0]["relationship_attributes"]["next_charge_at"] is None
    # An id with the separators in it splits back exactly.
    item = encoder.encode(person("a|1:b", "5:a|1:b|x|y", None, None, None))
    assert orjson.loads(item.data)["cio_relationships"] == [
        {"identifiers": {"object_type_id": "4", "object_id": "x|y"}}]
    reject = encoder.encode(person("c1", None, "monthly", None, None))
    assert isinstance(reject, Reject) and (reject.column, reject.reason) == ("subscription_id", "null_object_id")


@pytest.mark.parametrize(("meta", "message"), [
    ({k: v for k, v in RELATIONSHIP.items() if k != "object_id_column"}, "'object_id_column' is a required property"),
    ({**RELATIONSHIP, "on_delete": "suppress"}, "'suppress' is not one of ['ignore', 'delete']"),
    ({**RELATIONSHIP, "create": False}, "should not be valid"),
    ({**PEOPLE, "object_id_column": "x"}, "should not be valid"),
])
def test_relationship_models_are_validated(meta, message):
    with pytest.raises(ConfigError, match="invalid meta.cio") as caught:
        spec(meta)
    assert message in str(caught.value)


DEVICE = {"kind": "device", "identifier": {"column": "customer_id", "kind": "id"}, "token_column": "token",
          "platform_column": "platform", "last_used_column": "used_at"}
DEVICE_COLUMNS = [Column("customer_id", TEXT, "VARCHAR"), Column("token", TEXT, "VARCHAR"),
                  Column("platform", TEXT, "VARCHAR"), Column("used_at", TIMESTAMP, "TIMESTAMP"),
                  Column("app_version", TEXT, "VARCHAR")]


def test_a_device_is_added_with_its_platform_last_use_and_attributes():
    model = spec(DEVICE).resolve(DEVICE_COLUMNS)
    encoder = Encoder(model, snapshot=1_780_000_000, n_head=5)
    item = encoder.encode(person("c1", "2:c1|tok", "ios", 1_777_000_000, "1.0"))
    assert isinstance(item, Item)
    assert orjson.loads(item.data) == {
        "type": "person", "identifiers": {"id": "c1"}, "action": "add_device",
        "device": {"token": "tok", "platform": "ios", "last_used": 1_777_000_000, "attributes": {"app_version": "1.0"}}}
    item = encoder.encode(person("c1", "2:c1|tok", "android", None, None))
    assert orjson.loads(item.data)["device"] == {"token": "tok", "platform": "android"}
    for platform in ("web", "iOS", None):
        reject = encoder.encode(person("c1", "2:c1|tok", platform, None, None))
        assert isinstance(reject, Reject) and (reject.column, reject.reason) == ("platform", "invalid_platform")
    reject = encoder.encode(person("c1", None, "ios", None, None))
    assert isinstance(reject, Reject) and (reject.column, reject.reason) == ("token", "null_device_token")


SUPPRESSION = {"kind": "suppression", "identifier": {"column": "customer_id", "kind": "id"}, "max_suppressions": 10}


def test_a_suppression_sends_only_who():
    model = spec(SUPPRESSION).resolve(PEOPLE_COLUMNS)
    assert model.attributes == ()
    item = Encoder(model, snapshot=1_780_000_000, n_head=5).encode(person("c1", "c1"))
    assert isinstance(item, Item)
    assert orjson.loads(item.data) == {"type": "person", "identifiers": {"id": "c1"}, "action": "suppress"}


@pytest.mark.parametrize(("meta", "message"), [
    ({k: v for k, v in SUPPRESSION.items() if k != "max_suppressions"}, "'max_suppressions' is a required property"),
    ({**SUPPRESSION, "on_delete": "delete"}, "'delete' is not one of ['ignore', 'unsuppress']"),
    ({**SUPPRESSION, "attributes": ["email"]}, "should not be valid"),
    ({**PEOPLE, "on_delete": "unsuppress"}, "should not be valid"),
    ({**PEOPLE, "max_suppressions": 1}, "should not be valid"),
])
def test_suppression_models_are_validated(meta, message):
    with pytest.raises(ConfigError, match="invalid meta.cio") as caught:
        spec(meta)
    assert message in str(caught.value)


def test_objects_do_not_count_as_a_second_way_of_identifying_people():
    check_identifier_kinds([spec(PEOPLE, "people"), spec(OBJECT, "subscriptions")])
    with pytest.raises(ConfigError, match="identify people in different ways"):  # a relationship's person does
        check_identifier_kinds([spec(PEOPLE, "people"), spec({**RELATIONSHIP, "identifier": {
            "column": "email", "kind": "email"}}, "subscribers")])


@pytest.mark.parametrize(
    ("change", "column", "reason"),
    [
        ({"coupon": "x" * 32_000}, None, "item_too_large"),
        ({"total": float("nan")}, "total", "not_a_number"),
        ({"at": -5}, "event_at", "timestamp_before_1970"),
        ({"at": 300_000_000_000}, "event_at", "timestamp_out_of_range"),  # year 11476: PostgreSQL allows it
        ({"name": ""}, None, "invalid_event_name"),
        ({"customer": " "}, "customer_id", "null_identifier"),
    ],
)
def test_typed_events_are_checked_like_the_others(change, column, reason):
    model = spec(TYPED_EVENT).resolve(TYPED_EVENT_COLUMNS)
    encoder = Encoder(model, snapshot=1, n_head=11)
    good = event_row(items="SAVE10", total=59.9) + (True, 2)
    assert isinstance(encoder.encode(good), Item)  # its name is now known: the next rows take the typed path
    at = change.get("at", 1_780_000_000)
    name = change.get("name", "order_placed")
    row = (change.get("customer", "c1"), "k1", at, at * 1000, good[4], name, "h" * 32, None, None, None, 1,
           change.get("total", 59.9), change.get("coupon", "SAVE10"), True, 2)
    result = encoder.encode(row)
    assert isinstance(result, Reject), result
    assert (result.row_key, result.column, result.reason) == ("k1", column, reason)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        (Column("blob", TEXT, "bytea"), b"ab"),
        (Column("big", INTEGER, "HUGEINT"), 2**70),
        (Column("wait", TEXT, "interval"), __import__("datetime").timedelta(days=1)),
    ],
)
def test_values_msgspec_would_encode_but_orjson_refuses_are_rejected_not_sent(column, value):
    """TEXT is the kind of every unrecognised warehouse type: such a model takes the general
    path, where orjson refuses what Customer.io should not get (bytes as base64, say)."""
    model = spec(PEOPLE).resolve([Column("customer_id", TEXT, "text"), column, Column("secret", TEXT, "text")])
    encoder = Encoder(model, snapshot=1, n_head=5)
    assert not encoder.fast
    result = encoder.encode(person("c1", "c1", value))
    assert isinstance(result, Reject) and result.reason == "unserializable", result


def test_a_string_that_is_not_unicode_is_rejected_on_the_typed_path_too():
    model = spec(PEOPLE).resolve([Column("customer_id", TEXT, "text"), Column("email", TEXT, "character varying"),
                                  Column("secret", TEXT, "text")])
    encoder = Encoder(model, snapshot=1, n_head=5)
    assert encoder.fast
    result = encoder.encode(person("c1", "c1", "a\ud800b"))  # a lone surrogate
    assert isinstance(result, Reject) and (result.reason, result.row_key) == ("unserializable", "c1")


@pytest.mark.parametrize("max_items", [None, 7])
def test_packing_many_items_at_once_closes_the_same_batches_as_one_by_one(max_items):
    rng = random.Random(11)
    # sizes around the limit too: an item alone over it still goes, in a batch of its own
    items = [b"x" * rng.choice([1, 5, 40, 300, 985, 986, 987, 1_500]) for _ in range(3_000)]
    one = BatchPacker(max_bytes=1_000, max_items=max_items)
    expected = [b for data in items if (b := one.add(data, data)) is not None] + [one.flush()]
    many = BatchPacker(max_bytes=1_000, max_items=max_items)
    got, start = [], 0
    while start < len(items):  # chunks of random lengths, as rows arrive
        stop = start + rng.randrange(0, 200)
        got += many.extend(items[start:stop], items[start:stop])
        start = stop
    got.append(many.flush())
    assert [(b.items, b.refs) for b in got] == [(b.items, b.refs) for b in expected]
    assert len(expected) > 10 and any(len(b.items) == 1 and len(b.items[0]) > 1_000 for b in expected)


def test_a_row_key_longer_than_the_state_holds_is_rejected_not_sent():
    """A key the state tables cannot record would be sent and never recorded as sent (resent
    by every run) or wedge the model: the row is rejected, naming the key column, under a key
    the state can hold that still tells two long keys apart."""
    events = Encoder(spec(EVENT).resolve(EVENT_COLUMNS), snapshot=1, n_head=11)
    long_key, other = "k" * 1500, "k" * 1499 + "x"
    result = events.encode(event_row(event_id=long_key))
    assert isinstance(result, Reject) and (result.reason, result.column) == ("key_too_long", "event_id")
    assert len(result.row_key) == MAX_KEY_CHARS and result.row_key.startswith("k" * 900)
    assert events.encode(event_row(event_id=other)).row_key != result.row_key
    assert isinstance(events.encode(event_row(event_id="k" * MAX_KEY_CHARS)), Item)  # at the limit: sent

    people = Encoder(spec({**PEOPLE, "key_column": "email"}).resolve(PEOPLE_COLUMNS), snapshot=1, n_head=5)
    result = people.encode(person("c1", "n" * 2000, "a@b.co", 1, 1.0, 1, True))
    assert isinstance(result, Reject) and (result.reason, result.column) == ("key_too_long", "email")
    assert state_key("short") == "short"


def test_meta_cio_overrides_change_one_key_and_keep_the_rest():
    """dbt merges meta by its top-level keys: cio_overrides changes one key of a meta.cio written
    elsewhere (the package's marts) without restating it; the result is validated as a whole."""
    people = {"kind": "people", "identifier": {"column": "customer_id", "kind": "id"}, "exclude": ["secret"],
              "null_as": "null"}
    node = {"unique_id": "model.p.m", "name": "m", "relation_name": '"db"."s"."m"', "database": "db", "schema": "s",
            "alias": "m", "config": {"meta": {"cio": people, "cio_overrides": {"null_as": "omit"}}}}
    merged = ModelSpec.from_node(node)
    assert merged.meta["null_as"] == "omit" and merged.meta["exclude"] == ["secret"]
    assert merged.meta["identifier"] == people["identifier"]
    node["config"]["meta"]["cio_overrides"] = {"null_as": "blank"}
    with pytest.raises(ConfigError, match="null_as"):
        ModelSpec.from_node(node)
