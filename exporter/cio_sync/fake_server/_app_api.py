"""The read side of the fake: a few Customer.io **App API** endpoints served over what the
Track API side accepted, for reconciliation and spot checks.

Customer.io computes segment membership from its own segment definitions; here segments are
defined at runtime through an admin endpoint (``POST /_fake/segments``) as one condition on one
profile attribute, and membership is computed from the profiles held in memory whenever it is
asked for. Everything here needs memory recording.

Response shapes follow Customer.io's App API reference: attribute values are returned as
strings (Customer.io stores every attribute as a string), ``next`` tokens page through results,
``customer_count`` answers ``{"count": n}``.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import orjson

from ._store import MemoryStore, Profile

MEMBERSHIP_DEFAULT_LIMIT = 1000
MEMBERSHIP_MAX_LIMIT = 30_000
ACTIVITIES_DEFAULT_LIMIT = 10
ACTIVITIES_MAX_LIMIT = 100
APP_ID_TYPES = ("id", "email", "cio_id")

# Condition operators a fake segment understands: name -> test(value, operand).
_OPERATORS = {
    "equals": lambda value, operand: value == operand and type(value) is type(operand),
    "not_equals": lambda value, operand: not (value == operand and type(value) is type(operand)),
    "gt": lambda value, operand: _number(value) is not None and _number(value) > operand,
    "gte": lambda value, operand: _number(value) is not None and _number(value) >= operand,
    "lt": lambda value, operand: _number(value) is not None and _number(value) < operand,
    "lte": lambda value, operand: _number(value) is not None and _number(value) <= operand,
}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


@dataclass(frozen=True)
class Segment:
    """A data-driven segment: people whose ``attribute`` passes one condition.

    No attribute means every person. ``exists`` tests presence only; the comparison operators
    need the attribute to be present (``not_equals`` too: an absent attribute is not in it)."""

    id: int
    name: str
    attribute: str | None
    operator: str | None
    operand: Any

    @classmethod
    def parse(cls, document: Any) -> Segment:
        """From ``{"id": 7, "name": "VIPs", "attribute": "is_vip", "equals": true}``; raises
        ValueError naming what is wrong."""
        if not isinstance(document, dict):
            raise ValueError("a segment is a JSON object")
        segment_id = document.get("id")
        if isinstance(segment_id, bool) or not isinstance(segment_id, int) or segment_id < 1:
            raise ValueError("segment 'id' must be a positive integer")
        attribute = document.get("attribute")
        if attribute is not None and (not isinstance(attribute, str) or not attribute):
            raise ValueError("segment 'attribute' must be a non-empty string")
        conditions = [key for key in (*_OPERATORS, "exists") if key in document]
        unknown = sorted(set(document) - {"id", "name", "attribute", *_OPERATORS, "exists"})
        if unknown:
            raise ValueError(f"unknown segment key(s): {', '.join(unknown)}")
        if len(conditions) > 1:
            raise ValueError(f"a segment has at most one condition, not {', '.join(conditions)}")
        if conditions and attribute is None:
            raise ValueError(f"condition '{conditions[0]}' needs an 'attribute'")
        operator = conditions[0] if conditions else ("exists" if attribute is not None else None)
        operand = document.get(operator, True) if operator else None
        if operator in ("gt", "gte", "lt", "lte") and _number(operand) is None:
            raise ValueError(f"'{operator}' compares with a number")
        if operator == "exists" and not isinstance(operand, bool):
            raise ValueError("'exists' is true or false")
        name = document.get("name") or f"segment {segment_id}"
        return cls(segment_id, str(name), attribute, operator, operand)

    def matches(self, profile: Profile) -> bool:
        if self.attribute is None:
            return True
        present = self.attribute in profile.attributes
        if self.operator == "exists":
            return present is self.operand
        if not present:
            return False
        assert self.operator is not None  # (parse gives every segment with an attribute a condition)
        return _OPERATORS[self.operator](profile.attributes[self.attribute], self.operand)

    def as_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {"id": self.id, "name": self.name, "attribute": self.attribute}
        if self.operator is not None:
            document[self.operator] = self.operand
        return document


def cio_id_of(profile: Profile) -> str:
    """A stable stand-in for the ``cio_id`` Customer.io assigns to every person."""
    if profile.kind == "cio_id":
        return profile.value
    return hashlib.md5(f"{profile.kind}:{profile.value}".encode()).hexdigest()[:12]


def identifiers_of(profile: Profile) -> dict[str, Any]:
    """The person's identifiers as the App API lists them: id, email (when known), cio_id."""
    identifiers: dict[str, Any] = {"id": profile.value if profile.kind == "id" else None}
    email = profile.value if profile.kind == "email" else profile.attributes.get("email")
    identifiers["email"] = email if isinstance(email, str) else None
    identifiers["cio_id"] = cio_id_of(profile)
    return identifiers


def as_stored_text(value: Any) -> str:
    """An attribute value as Customer.io returns it: every attribute is stored as a string."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)):
        return repr(value)
    return orjson.dumps(value).decode()


def find_profiles(store: MemoryStore, id_type: str, value: str) -> list[Profile]:
    """Profiles a customer id of ``id_type`` designates, oldest first (insertion order)."""
    if id_type == "cio_id":
        return [p for p in store.profiles.values() if cio_id_of(p) == value]
    if id_type == "email":
        return [
            p
            for p in store.profiles.values()
            if (p.kind == "email" and p.value == value) or p.attributes.get("email") == value
        ]
    profile = store.profiles.get(("id", value))
    return [profile] if profile is not None else []


def attributes_document(profile: Profile, requested_id: str) -> dict[str, Any]:
    """``GET /v1/customers/{id}/attributes``: the profile with string attribute values."""
    identifiers = identifiers_of(profile)
    attributes = {name: as_stored_text(value) for name, value in profile.attributes.items()}
    for key, value in identifiers.items():
        if value is not None:
            attributes[key] = str(value)
    return {
        "customer": {
            "id": identifiers["id"] if identifiers["id"] is not None else requested_id,
            "identifiers": identifiers,
            "attributes": attributes,
            "timestamps": dict(profile.attribute_timestamps),
            "unsubscribed": False,
            "devices": [],
        }
    }


def activities_document(
    store: MemoryStore,
    profile: Profile,
    *,
    activity_type: str | None,
    name: str | None,
    start: int,
    limit: int,
) -> dict[str, Any]:
    """``GET /v1/customers/{id}/activities``: the person's events, newest first, paged.

    Only ``event`` activities exist here (attribute changes and message activity are not
    modelled); asking for another type answers an empty list."""
    if activity_type not in (None, "", "event"):
        return {"activities": [], "next": ""}
    key = (profile.kind, profile.value)
    events = [
        (position, event)
        for position, event in enumerate(store.events)
        if next(iter(event["identifiers"].items())) == key and (not name or event["name"] == name)
    ]
    events.sort(key=lambda pair: (pair[1]["timestamp"], pair[0]), reverse=True)
    page = events[start : start + limit]
    identifiers = identifiers_of(profile)
    activities = [
        {
            "id": event.get("id") or f"fake-{position}",
            "customer_id": identifiers["id"],
            "customer_identifiers": identifiers,
            "type": "event",
            "name": event["name"],
            "timestamp": event["timestamp"],
            "delivery_id": None,
            "delivery_type": None,
            "data": event.get("attributes") or {},
        }
        for position, event in page
    ]
    following = start + limit
    return {"activities": activities, "next": str(following) if following < len(events) else ""}


def membership_document(store: MemoryStore, segment: Segment, *, start: int, limit: int) -> dict[str, Any]:
    """``GET /v1/segments/{id}/membership``: members in a stable order, paged by ``next``."""
    members = sorted(
        (profile for profile in store.profiles.values() if segment.matches(profile)),
        key=lambda p: (p.kind, p.value),
    )
    page = members[start : start + limit]
    identifiers = [identifiers_of(profile) for profile in page]
    following = start + limit
    return {
        "identifiers": identifiers,
        "ids": [entry["id"] for entry in identifiers],
        "next": str(following) if following < len(members) else "",
    }


def count_document(store: MemoryStore, segment: Segment) -> dict[str, Any]:
    """``GET /v1/segments/{id}/customer_count``."""
    count = sum(1 for profile in store.profiles.values() if segment.matches(profile))
    return {"segment_id": segment.id, "count": count}


def email_search_document(store: MemoryStore, email: str) -> dict[str, Any]:
    """``GET /v1/customers?email=``: every person holding that email address."""
    results = []
    for profile in find_profiles(store, "email", email):
        identifiers = identifiers_of(profile)
        results.append({"email": email, "id": identifiers["id"], "cio_id": identifiers["cio_id"]})
    return {"results": results}


def parse_paging(start: str | None, limit: str | None, default: int, maximum: int) -> tuple[int, int]:
    """(offset, limit) from the ``start`` token and ``limit`` parameter; ValueError if invalid."""
    offset = 0
    if start:
        if not start.isdigit():
            raise ValueError("start must be a token returned as 'next'")
        offset = int(start)
    count = default
    if limit is not None and limit != "":
        if not limit.isdigit() or not 1 <= int(limit) <= maximum:
            raise ValueError(f"limit must be between 1 and {maximum}")
        count = int(limit)
    return offset, count
