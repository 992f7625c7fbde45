"""Track API limits and per-item validation.

Every check returns ``None`` for a valid item or an :class:`ItemError` naming the first problem
found. The batch endpoint turns those into 207 entries, so a bad item never sinks the rest of
its request. Checks are plain loops over already-parsed JSON because the server has to keep up
with 100,000+ items per second in benchmarks.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import orjson

# Published Customer.io limits (Track API docs and "invalid API requests" page).
MAX_REQUEST_BYTES = 500_000
"""A v2 batch body must be strictly smaller than this many bytes."""
MAX_ITEM_BYTES = 32_768
"""One batch item, serialized as compact JSON, may be at most this many bytes."""
MAX_IDENTIFIER_BYTES = 150
MAX_ATTRIBUTE_NAME_BYTES = 150
MAX_ATTRIBUTE_VALUE_BYTES = 1_000
MAX_ATTRIBUTES = 300
"""Attributes in one identify call."""
MAX_EVENT_NAME_BYTES = 100
MAX_EVENT_DATA_BYTES = 100_000

IDENTIFIER_KINDS = frozenset({"id", "email", "phone", "cio_id"})
PREFERENCES = "cio_subscription_preferences"
"""The identify attribute of per-topic subscription preferences: ``{"topics": {"topic_<id>":
bool}}``, or one topic in dot notation, ``cio_subscription_preferences.topics.topic_<id>``."""
_TOPIC = re.compile(r"topic_[0-9]+")
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
PERSON_ACTIONS = frozenset({"identify", "event", "delete", "suppress", "unsuppress", "add_relationships",
                            "delete_relationships", "add_device", "delete_device"})
PLATFORMS = frozenset({"ios", "android"})
OBJECT_ACTIONS = frozenset({"identify", "delete", "add_relationships", "delete_relationships"})
"""The ``type: object`` actions this server takes (Customer.io's ``identify_anonymous`` is not
modelled: cio-export never sends it)."""
OBJECT = "object"
"""The first half of an object's Identifier: ``("object", "<object_type_id>:<object_id>")``."""
RELATIONSHIPS = "cio_relationships"
_TYPE_ID = re.compile(r"[1-9][0-9]{0,9}")

# A ULID is 26 Crockford base32 characters; a first character above 7 would overflow 128 bits.
Identifier = tuple[str, str]
"""(kind, value) of a person, e.g. ``("email", "a@example.com")``."""

_ULID = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}", re.IGNORECASE)


class ItemError(NamedTuple):
    """Why one item was refused, in the shape of a 207 ``errors`` entry."""

    reason: str
    field: str
    message: str

    def for_batch(self, index: int) -> dict[str, Any]:
        """The entry for the v2 207 body, pointing at the item's position in ``batch``."""
        return {
            "batch_index": index,
            "reason": self.reason,
            "field": self.field,
            "message": self.message,
        }


def utf8_longer_than(text: str, limit: int) -> bool:
    """True when ``text`` encodes to more than ``limit`` UTF-8 bytes.

    Skips the encode for strings too short to exceed the limit even at 4 bytes per character,
    which is nearly every string in practice.
    """
    return len(text) * 4 > limit and len(text.encode("utf-8")) > limit


def identifier_of(identifiers: Any) -> Identifier | ItemError:
    """The (kind, value) pair of an ``identifiers`` object, or why it is unusable.

    Customer.io requires exactly one of id, email, phone or cio_id; numeric values are
    accepted and keyed as their decimal text, as the API treats ``42`` and ``"42"`` alike.
    """
    if not isinstance(identifiers, dict) or len(identifiers) != 1:
        return ItemError(
            "invalid_identifiers",
            "identifiers",
            "identifiers must hold exactly one of id, email, phone, cio_id",
        )
    ((kind, value),) = identifiers.items()
    if kind not in IDENTIFIER_KINDS:
        return ItemError(
            "invalid_identifiers",
            f"identifiers.{kind}",
            f"unknown identifier {kind!r}: use id, email, phone or cio_id",
        )
    if type(value) is not str:
        if type(value) is not int:
            return ItemError(
                "invalid_identifiers",
                f"identifiers.{kind}",
                f"{kind} must be a string or an integer",
            )
        value = str(value)
    if not value:
        return ItemError("invalid_identifiers", f"identifiers.{kind}", f"{kind} must not be empty")
    # utf8_longer_than(), inlined: this runs for every item.
    if len(value) * 4 > MAX_IDENTIFIER_BYTES and len(value.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
        return ItemError(
            "identifier_too_long",
            f"identifiers.{kind}",
            f"{kind} is longer than {MAX_IDENTIFIER_BYTES} bytes",
        )
    if kind == "phone" and not _E164.fullmatch(value):
        return ItemError("invalid_identifiers", "identifiers.phone", "phone must be an E.164 number, like +15551234567")
    return kind, value


def object_identifier_of(identifiers: Any) -> Identifier | ItemError:
    """``("object", "<type id>:<object id>")`` for an object's ``identifiers``, or why they are
    unusable: exactly ``object_type_id`` (a string integer, the id Customer.io gave the type)
    and ``object_id`` (1 to 150 bytes), or ``cio_object_id`` alone."""
    if isinstance(identifiers, dict) and set(identifiers) == {"cio_object_id"}:
        value = identifiers["cio_object_id"]
        if type(value) is not str or not value:
            return ItemError("invalid_identifiers", "identifiers.cio_object_id", "cio_object_id must be a string")
        return OBJECT, f"cio:{value}"
    if not isinstance(identifiers, dict) or set(identifiers) != {"object_type_id", "object_id"}:
        return ItemError("invalid_identifiers", "identifiers",
                         "an object's identifiers are object_type_id and object_id (or cio_object_id alone)")
    type_id, object_id = identifiers["object_type_id"], identifiers["object_id"]
    if type(type_id) is not str or not _TYPE_ID.fullmatch(type_id):
        return ItemError("invalid_identifiers", "identifiers.object_type_id",
                         'object_type_id must be the type\'s id as a string integer, like "1"')
    if type(object_id) is not str or not object_id:
        return ItemError("invalid_identifiers", "identifiers.object_id", "object_id must be a non-empty string")
    if utf8_longer_than(object_id, MAX_IDENTIFIER_BYTES):
        return ItemError("identifier_too_long", "identifiers.object_id",
                         f"object_id is longer than {MAX_IDENTIFIER_BYTES} bytes")
    return OBJECT, f"{type_id}:{object_id}"


def check_relationships(item: dict[str, Any], of_person: bool) -> ItemError | None:
    """``cio_relationships`` of an item: a non-empty list of ``{"identifiers": ...,
    "relationship_attributes": {...}}``, each naming an object (on a person's item) or a person
    (on an object's); relationship attributes within the attribute limits."""
    relationships = item.get(RELATIONSHIPS)
    if not isinstance(relationships, list) or not relationships:
        return ItemError("invalid_relationships", RELATIONSHIPS, f"{RELATIONSHIPS} must be a non-empty list")
    for i, relationship in enumerate(relationships):
        field = f"{RELATIONSHIPS}[{i}]"
        if not isinstance(relationship, dict) or not set(relationship) <= {"identifiers", "relationship_attributes"}:
            return ItemError("invalid_relationships", field,
                             "a relationship is {\"identifiers\": ..., \"relationship_attributes\": {...}}")
        found = (object_identifier_of if of_person else identifier_of)(relationship.get("identifiers"))
        if isinstance(found, ItemError):
            return found._replace(field=f"{field}.{found.field}")
        attributes = relationship.get("relationship_attributes", {})
        if not isinstance(attributes, dict):
            return ItemError("invalid_relationships", f"{field}.relationship_attributes",
                             "relationship_attributes must be an object")
        if len(attributes) > MAX_ATTRIBUTES:
            return ItemError("too_many_attributes", f"{field}.relationship_attributes",
                             f"cannot set more than {MAX_ATTRIBUTES} relationship attributes")
        for name, value in attributes.items():
            if utf8_longer_than(name, MAX_ATTRIBUTE_NAME_BYTES):
                return ItemError("attribute_name_too_long", f"{field}.relationship_attributes",
                                 f"attribute name {name[:40]!r}... is longer than {MAX_ATTRIBUTE_NAME_BYTES} bytes")
            if len(orjson.dumps(value)) > MAX_ATTRIBUTE_VALUE_BYTES:
                return ItemError("attribute_value_too_long", f"{field}.relationship_attributes.{name}",
                                 f"value of {name!r} is longer than {MAX_ATTRIBUTE_VALUE_BYTES} bytes")
    return None


def check_device(item: dict[str, Any]) -> ItemError | None:
    """``device`` of add_device: a ``token`` (non-empty string), a ``platform`` (ios or
    android), ``last_used`` as integer Unix seconds when present, ``attributes`` within an
    identify's limits; of delete_device: the ``token``."""
    device = item.get("device")
    if not isinstance(device, dict):
        return ItemError("invalid_device", "device", "device must be an object")
    token = device.get("token")
    if type(token) is not str or not token.strip():
        return ItemError("invalid_device", "device.token", "device.token must be a non-empty string")
    if item["action"] == "delete_device":
        return None
    if device.get("platform") not in PLATFORMS:
        return ItemError("invalid_device", "device.platform", "device.platform must be ios or android")
    if "last_used" in device and type(device["last_used"]) is not int:
        return ItemError("invalid_device", "device.last_used", "device.last_used must be integer Unix seconds")
    extra = set(device) - {"token", "platform", "last_used", "attributes"}
    if extra:
        return ItemError("invalid_device", "device", f"unknown device field {sorted(extra)[0]!r}")
    attributes = device.get("attributes", {})
    if not isinstance(attributes, dict):
        return ItemError("invalid_device", "device.attributes", "device.attributes must be an object")
    problem = check_identify({"attributes": attributes}, len(orjson.dumps(attributes)), preferences=False)
    return None if problem is None else problem._replace(field=f"device.{problem.field}")


def check_timestamp(item: dict[str, Any]) -> ItemError | None:
    """A present ``timestamp`` must be whole Unix seconds (booleans are not integers here)."""
    if type(item.get("timestamp", 0)) is not int:  # an absent one reads as 0
        return ItemError("invalid_timestamp", "timestamp", "timestamp must be integer Unix seconds")
    return None


def check_preferences(attributes: dict[str, Any]) -> ItemError | None:
    """``_update`` is a boolean; subscription preferences name topics ``topic_<id>`` and set
    each to a boolean."""
    if "_update" in attributes and type(attributes["_update"]) is not bool:
        return ItemError("invalid_attributes", "attributes._update", "_update must be true or false")
    for name, value in attributes.items():
        if name == PREFERENCES:
            topics = value.get("topics") if isinstance(value, dict) else None
            if not isinstance(topics, dict) or set(value) != {"topics"}:
                return ItemError("invalid_attributes", f"attributes.{name}",
                                 f'{PREFERENCES} must be {{"topics": {{"topic_<id>": true|false}}}}')
            pairs = list(topics.items())
        elif name.startswith(PREFERENCES + ".topics."):
            pairs = [(name[len(PREFERENCES) + 8 :], value)]
        elif name.startswith(PREFERENCES + "."):
            return ItemError("invalid_attributes", f"attributes.{name}",
                             f"only {PREFERENCES}.topics.topic_<id> can be set in dot notation")
        else:
            continue
        for topic, consent in pairs:
            if not _TOPIC.fullmatch(topic) or type(consent) is not bool:
                return ItemError("invalid_attributes", f"attributes.{name}",
                                 f"a topic is topic_<id> set to true or false, not {topic!r}: {consent!r}")
    return None


def check_identify(item: dict[str, Any], item_bytes: int, preferences: bool = True) -> ItemError | None:
    """Attribute count, name and value sizes of an identify call, and its timestamp.

    No name or string value can be longer than the item that contains it, so each per-attribute
    loop only runs for items big enough to hold an oversized one: typical items skip the one
    over values, and the one over names costs little more than iterating them.
    """
    attributes = item.get("attributes", {})
    if not isinstance(attributes, dict):
        return ItemError("invalid_attributes", "attributes", "attributes must be an object")
    if len(attributes) > MAX_ATTRIBUTES:
        return ItemError(
            "too_many_attributes",
            "attributes",
            f"cannot set more than {MAX_ATTRIBUTES} attributes in one call",
        )
    if item_bytes > MAX_ATTRIBUTE_NAME_BYTES:
        for name in attributes:
            # utf8_longer_than(), inlined: this loop runs for nearly every item.
            if len(name) * 4 > MAX_ATTRIBUTE_NAME_BYTES and len(name.encode("utf-8")) > MAX_ATTRIBUTE_NAME_BYTES:
                return ItemError(
                    "attribute_name_too_long",
                    "attributes",
                    f"attribute name {name[:40]!r}... is longer than "
                    f"{MAX_ATTRIBUTE_NAME_BYTES} bytes",
                )
    if item_bytes > MAX_ATTRIBUTE_VALUE_BYTES:
        for name, value in attributes.items():
            kind = type(value)
            if kind is str:
                too_long = utf8_longer_than(value, MAX_ATTRIBUTE_VALUE_BYTES)
            elif kind is dict or kind is list:
                too_long = len(orjson.dumps(value)) > MAX_ATTRIBUTE_VALUE_BYTES
            else:
                continue  # numbers, booleans and null serialize far below the limit
            if too_long:
                return ItemError(
                    "attribute_value_too_long",
                    f"attributes.{name}",
                    f"value of attribute {name!r} is longer than {MAX_ATTRIBUTE_VALUE_BYTES} bytes",
                )
    if preferences or "_update" in attributes:
        problem = check_preferences(attributes)
        if problem is not None:
            return problem
    return check_timestamp(item)


def check_event(item: dict[str, Any], item_bytes: int) -> ItemError | None:
    """Name, ULID id, timestamp and data size of an event.

    ``item_bytes`` is the compact size of the whole item, an upper bound for the size of its
    data, so the data is only serialized again when it could exceed the limit.
    """
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        return ItemError("invalid_event_name", "name", "event name must not be blank")
    if utf8_longer_than(name, MAX_EVENT_NAME_BYTES):
        return ItemError(
            "event_name_too_long", "name", f"event name is longer than {MAX_EVENT_NAME_BYTES} bytes"
        )
    if "id" in item:
        event_id = item["id"]
        if not isinstance(event_id, str) or not _ULID.fullmatch(event_id):
            return ItemError("invalid_event_id", "id", "event id must be a ULID")
    attributes = item.get("attributes", {})
    if not isinstance(attributes, dict):
        return ItemError("invalid_attributes", "attributes", "event attributes must be an object")
    if item_bytes > MAX_EVENT_DATA_BYTES and len(orjson.dumps(attributes)) > MAX_EVENT_DATA_BYTES:
        return ItemError(
            "event_data_too_large",
            "attributes",
            f"event data is longer than {MAX_EVENT_DATA_BYTES} bytes",
        )
    return check_timestamp(item)


def validate_item(item: Any, item_bytes: int, max_item_bytes: int, preferences: bool = True) -> Identifier | ItemError:
    """Validate one v2 batch item (or a v1 call rewritten into that shape).

    Returns the person's (kind, value) when the item is valid, so recording need not look
    the identifier up again. ``preferences``: the item may hold subscription preferences (false
    when its request's body does not mention them: their check is then skipped).
    """
    if not isinstance(item, dict):
        return ItemError("invalid_item", "item", "batch item must be an object")
    if item_bytes > max_item_bytes:
        return ItemError(
            "item_too_large", "item", f"item is {item_bytes} bytes, more than {max_item_bytes}"
        )
    kind = item.get("type")
    if kind == OBJECT:
        return _validate_object(item, item_bytes)
    if kind != "person":
        return ItemError("invalid_type", "type", "type must be 'person' or 'object'")
    action = item.get("action")
    if action not in PERSON_ACTIONS:
        return ItemError(
            "invalid_action",
            "action",
            "action must be one of " + ", ".join(sorted(PERSON_ACTIONS)),
        )
    found = identifier_of(item.get("identifiers"))
    if isinstance(found, ItemError):
        return found
    if action == "identify":
        problem = check_identify(item, item_bytes, preferences)
    elif action == "event":
        problem = check_event(item, item_bytes)
    elif action in ("add_relationships", "delete_relationships"):
        problem = check_relationships(item, of_person=True)
    elif action in ("add_device", "delete_device"):
        problem = check_device(item)
    else:
        problem = None
    return found if problem is None else problem


def _validate_object(item: dict[str, Any], item_bytes: int) -> Identifier | ItemError:
    """A ``type: object`` item: its action, identifiers, attributes (as an identify's, with
    no subscription preferences: those are a person's) and relationships to people."""
    action = item.get("action")
    if action not in OBJECT_ACTIONS:
        return ItemError("invalid_action", "action",
                         "an object's action must be one of " + ", ".join(sorted(OBJECT_ACTIONS)))
    found = object_identifier_of(item.get("identifiers"))
    if isinstance(found, ItemError):
        return found
    problem = None
    if action == "identify":
        attributes = item.get("attributes", {})
        if isinstance(attributes, dict) and any(name.startswith(PREFERENCES) for name in attributes):
            return ItemError("invalid_attributes", f"attributes.{PREFERENCES}",
                             "subscription preferences are a person's")
        problem = check_identify(item, item_bytes, preferences=False)
        if problem is None and RELATIONSHIPS in item:
            problem = check_relationships(item, of_person=False)
    elif action in ("add_relationships", "delete_relationships"):
        problem = check_relationships(item, of_person=False)
    return found if problem is None else problem
