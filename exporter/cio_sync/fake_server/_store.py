"""What the fake "Customer.io side" has accepted, and the counters tests assert on.

Two recording modes share one interface:

* :class:`MemoryStore` keeps profiles and events as Python objects so tests can look at them.
* :class:`DiskStore` appends every accepted item to ``accepted.ndjson`` and keeps only counters
  and the seen event ids in memory, so benchmark runs of millions of items stay small.

Both deduplicate events on their ``id`` the way Customer.io does, which is why the set of seen
ids lives in the shared base class.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from ._validation import OBJECT, PREFERENCES, RELATIONSHIPS, Identifier, identifier_of, object_identifier_of

RECORD_FILE = "accepted.ndjson"

Accepted = tuple[dict[str, Any], Identifier, bytes]
"""A validated item, the person it is about, and its compact JSON (what disk recording writes)."""


class Counters:
    """Totals since start or the last reset."""

    def __init__(self) -> None:
        self.requests_by_status: Counter[int] = Counter()
        self.items_accepted: Counter[str] = Counter()
        self.items_rejected: Counter[str] = Counter()
        self.duplicates = 0
        self.bytes_received = 0
        self.max_request_bytes_seen = 0
        self.rate_limited = 0
        self.errors_injected = 0
        self.dropped = 0
        self.slow = 0
        self.held = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.batch_requests = 0  # POST /api/v2/batch requests, and the time.monotonic() of the first
        self.first_batch_at: float | None = None  # and the last (batch_span_seconds)
        self.last_batch_at: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": sum(self.requests_by_status.values()) + self.dropped,
            "requests_by_status": {str(k): v for k, v in sorted(self.requests_by_status.items())},
            "items_accepted": dict(self.items_accepted),
            "items_rejected": dict(self.items_rejected),
            "duplicates": self.duplicates,
            "bytes_received": self.bytes_received,
            "max_request_bytes_seen": self.max_request_bytes_seen,
            "rate_limited": self.rate_limited,
            "errors_injected": self.errors_injected,
            "dropped": self.dropped,
            "slow": self.slow,
            "held": self.held,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "batch_requests": self.batch_requests,
            "batch_span_seconds": (round(self.last_batch_at - self.first_batch_at, 6)
                                   if self.first_batch_at is not None and self.last_batch_at is not None else None),
        }


@dataclass
class Profile:
    """One person as Customer.io would hold it, plus per-attribute update times for ordering."""

    kind: str
    value: str
    attributes: dict[str, Any] = field(default_factory=dict)
    attribute_timestamps: dict[str, int] = field(default_factory=dict)
    timestamp: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "identifiers": {self.kind: self.value},
            "attributes": self.attributes,
            "timestamp": self.timestamp,
        }


@dataclass
class StoredObject:
    """One object (a subscription, a household, ...) as Customer.io would hold it."""

    type_id: str
    object_id: str
    attributes: dict[str, Any] = field(default_factory=dict)
    attribute_timestamps: dict[str, int] = field(default_factory=dict)
    timestamp: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"identifiers": {"object_type_id": self.type_id, "object_id": self.object_id},
                "attributes": self.attributes, "timestamp": self.timestamp}


def action_label(item: dict[str, Any]) -> str:
    """Counter key of an item: its action, ``object_<action>`` for an object's."""
    return f"object_{item['action']}" if item.get("type") == OBJECT else item["action"]


def person_key(identifier: Identifier) -> str:
    """The key used for a person in ``/_fake/people``: ``"<kind>:<value>"``."""
    return f"{identifier[0]}:{identifier[1]}"


class Store:
    """Counters, event-id deduplication and the request log, common to both modes."""

    mode = "base"

    def __init__(self, request_log_size: int) -> None:
        self.counters = Counters()
        self.requests: deque[dict[str, Any]] = deque(maxlen=request_log_size)
        self._seen_event_ids: set[str] = set()

    def accept(self, item: dict[str, Any], identifier: Identifier, raw: bytes) -> None:
        """Record a validated item; ``raw`` is its compact JSON, reused by disk recording."""
        self.accept_all([(item, identifier, raw)])

    def accept_all(self, entries: list[Accepted]) -> None:
        """Record validated items in request order: count them all, drop events already seen
        (they still count as accepted, as Customer.io answers them like any other), and hand
        the rest to the recording mode in one call."""
        actions = [action_label(entry[0]) for entry in entries]
        self.counters.items_accepted.update(actions)
        if "event" in actions:
            entries = [entry for entry in entries if not self._seen_before(entry[0])]
        if entries:
            self._record_all(entries)

    def _seen_before(self, item: dict[str, Any]) -> bool:
        """True for an event whose id was accepted before (counted as a duplicate); an event
        with a new id is remembered."""
        if item["action"] != "event":
            return False
        event_id = item.get("id")
        if event_id is None:
            return False
        # ULIDs are case-insensitive, so both spellings are the same event.
        key = event_id.upper()
        if key in self._seen_event_ids:
            self.counters.duplicates += 1
            return True
        self._seen_event_ids.add(key)
        return False

    def merge(self, primary: Identifier, secondary: Identifier, raw: bytes) -> None:
        """Record a v1 ``merge_customers`` call."""
        self.counters.items_accepted["merge"] += 1
        self._merge(primary, secondary, raw)

    def log_request(self, entry: dict[str, Any]) -> None:
        self.requests.append(entry)

    def resize_request_log(self, size: int) -> None:
        if size != self.requests.maxlen:
            self.requests = deque(self.requests, maxlen=size)

    def reset(self) -> None:
        """Forget everything accepted and zero the counters."""
        self.counters = Counters()
        self.requests.clear()
        self._seen_event_ids.clear()

    def end_request(self) -> None:
        """Called once per API request after its items were recorded."""

    def close(self) -> None:
        """Release files; the store is not used afterwards."""

    def summary(self) -> dict[str, Any]:
        """Mode-specific figures merged into ``/_fake/stats``."""
        return {"record": self.mode}

    def _record_all(self, entries: list[Accepted]) -> None:
        raise NotImplementedError

    def _merge(self, primary: Identifier, secondary: Identifier, raw: bytes) -> None:
        raise NotImplementedError


class MemoryStore(Store):
    """Keeps profiles, events, deletions and merges in memory for inspection by tests."""

    mode = "memory"

    def __init__(self, request_log_size: int) -> None:
        super().__init__(request_log_size)
        self.profiles: dict[Identifier, Profile] = {}
        self.events: list[dict[str, Any]] = []
        self.deletions: list[dict[str, Any]] = []
        self.merges: list[dict[str, Any]] = []
        self.objects: dict[str, StoredObject] = {}  # "<type id>:<object id>" -> object
        # (person, object key) -> relationship attributes
        self.relationships: dict[tuple[Identifier, str], dict[str, Any]] = {}
        # (person, token) -> {"platform", "last_used", "attributes"}
        self.devices: dict[tuple[Identifier, str], dict[str, Any]] = {}
        # Suppressed identifiers: their profile was deleted, and nothing about them is kept
        # until they are unsuppressed.
        self.suppressed: set[Identifier] = set()

    def reset(self) -> None:
        super().reset()
        self.objects.clear()
        self.relationships.clear()
        self.devices.clear()
        self.suppressed.clear()
        self.profiles.clear()
        self.events.clear()
        self.deletions.clear()
        self.merges.clear()

    def summary(self) -> dict[str, Any]:
        return {
            "record": self.mode,
            "people": len(self.profiles),
            "events": len(self.events),
            "deletions": len(self.deletions),
            "merges": len(self.merges),
            "objects": len(self.objects),
            "relationships": len(self.relationships),
            "devices": len(self.devices),
            "suppressed": len(self.suppressed),
        }

    def _record_all(self, entries: list[Accepted]) -> None:
        for item, identifier, _ in entries:
            if identifier in self.suppressed and item["action"] not in ("unsuppress", "suppress"):
                continue  # accepted, and dropped: a suppressed identifier cannot be added again
            if item.get("type") == OBJECT:
                self._record_object(item["action"], item, identifier[1])
            elif item["action"] in ("add_device", "delete_device"):
                self._device(item["action"], identifier, item["device"])
            elif item["action"] in ("add_relationships", "delete_relationships"):
                for relationship in item[RELATIONSHIPS]:  # validated: each names an object
                    self._relate(item["action"], identifier, object_identifier_of(relationship["identifiers"])[1],
                                 relationship)
            else:
                self._record(item["action"], item, identifier)

    def _record_object(self, action: str, item: dict[str, Any], key: str) -> None:
        """An object's identify (attributes merged as a person's are; an update-only one never
        creates it), delete (its relationships go with it) or relationships to people."""
        now = int(time.time())
        if action == "identify":
            attributes, timestamp = item.get("attributes", {}), item.get("timestamp", now)
            stored = self.objects.get(key)
            if stored is None:
                if attributes.get("_update") is True:
                    return
                type_id, _, object_id = key.partition(":")
                stored = self.objects[key] = StoredObject(type_id, object_id)
            _merge_attributes(stored.attributes, stored.attribute_timestamps, attributes, timestamp)
            if stored.timestamp is None or timestamp > stored.timestamp:
                stored.timestamp = timestamp
            for relationship in item.get(RELATIONSHIPS, []):
                person = identifier_of(relationship["identifiers"])
                self._relate("add_relationships", person, key, relationship)  # type: ignore[arg-type]
        elif action == "delete":
            self.objects.pop(key, None)
            for pair in [pair for pair in self.relationships if pair[1] == key]:
                del self.relationships[pair]
            self.deletions.append({"object": key, "at": now})
        else:
            for relationship in item[RELATIONSHIPS]:
                person = identifier_of(relationship["identifiers"])
                self._relate(action, person, key, relationship)  # type: ignore[arg-type]

    def _device(self, action: str, person: Identifier, device: dict[str, Any]) -> None:
        """Add (or update) or delete a person's device by its token; an added device's
        attributes merge into what it had, a null one removed."""
        pair = (person, device["token"])
        if action == "delete_device":
            self.devices.pop(pair, None)
            return
        held = self.devices.setdefault(pair, {"platform": None, "last_used": None, "attributes": {}})
        held["platform"] = device["platform"]
        if "last_used" in device:
            held["last_used"] = device["last_used"]
        for name, value in (device.get("attributes") or {}).items():
            if value is None:
                held["attributes"].pop(name, None)
            else:
                held["attributes"][name] = value

    def _relate(self, action: str, person: Identifier, object_key: str, relationship: dict[str, Any]) -> None:
        """Add (or update the attributes of) or delete one person-object relationship. A null
        or empty relationship attribute removes it."""
        pair = (person, object_key)
        if action == "delete_relationships":
            self.relationships.pop(pair, None)
            return
        attributes = self.relationships.setdefault(pair, {})
        for name, value in (relationship.get("relationship_attributes") or {}).items():
            if value is None or value == "":
                attributes.pop(name, None)
            else:
                attributes[name] = value

    def _record(self, action: str, item: dict[str, Any], identifier: Identifier) -> None:
        now = int(time.time())
        if action == "identify":
            self._identify(identifier, item.get("attributes", {}), item.get("timestamp", now))
        elif action == "event":
            self.events.append(
                {
                    "identifiers": {identifier[0]: identifier[1]},
                    "name": item["name"],
                    "id": item.get("id"),
                    "timestamp": item.get("timestamp", now),
                    "attributes": item.get("attributes", {}),
                }
            )
        elif action in ("delete", "suppress"):  # a suppression deletes the profile too
            self.profiles.pop(identifier, None)
            for pair in [pair for pair in self.relationships if pair[0] == identifier]:
                del self.relationships[pair]
            for pair in [pair for pair in self.devices if pair[0] == identifier]:
                del self.devices[pair]
            if action == "delete":
                self.deletions.append({"identifiers": {identifier[0]: identifier[1]}, "at": now})
            else:
                self.suppressed.add(identifier)
        else:
            self.suppressed.discard(identifier)

    def _profile(self, identifier: Identifier) -> Profile:
        profile = self.profiles.get(identifier)
        if profile is None:
            profile = self.profiles[identifier] = Profile(*identifier)
        return profile

    def _identify(self, identifier: Identifier, attributes: dict[str, Any], timestamp: int) -> None:
        """Merge attributes, letting each attribute keep its newest value.

        Ordering is per attribute: an older update cannot overwrite (or remove) a value set by
        a newer one, but can still fill attributes the newer update did not touch.
        """
        if attributes.get("_update") is True and identifier not in self.profiles:
            return  # update only: a profile Customer.io does not have is never created
        profile = self._profile(identifier)
        _merge_attributes(profile.attributes, profile.attribute_timestamps, attributes, timestamp)
        if profile.timestamp is None or timestamp > profile.timestamp:
            profile.timestamp = timestamp

    def _merge(self, primary: Identifier, secondary: Identifier, raw: bytes) -> None:
        """Fold the secondary person into the primary one and delete the secondary.

        The primary keeps its own values; attributes only the secondary had are copied over,
        and the secondary's events are re-attributed to the primary.
        """
        target = self._profile(primary)
        source = self.profiles.pop(secondary, None)
        if source is not None:
            for name, value in source.attributes.items():
                if name not in target.attributes:
                    target.attributes[name] = value
                    target.attribute_timestamps[name] = source.attribute_timestamps[name]
        old_ids = {secondary[0]: secondary[1]}
        for event in self.events:
            if event["identifiers"] == old_ids:
                event["identifiers"] = {primary[0]: primary[1]}
        self.merges.append(
            {"primary": {primary[0]: primary[1]}, "secondary": old_ids, "at": int(time.time())}
        )


def _merge_attributes(values: dict[str, Any], stamps: dict[str, int], attributes: dict[str, Any],
                      timestamp: int) -> None:
    """An identify's attributes merged into what is held, each attribute keeping its newest
    value: an older update cannot overwrite (or remove) a value set by a newer one, but can
    still fill attributes the newer update did not touch."""
    for name, value in attributes.items():
        if name == "_update":
            continue
        if stamps.get(name, timestamp) > timestamp:
            continue
        stamps[name] = timestamp
        if name.startswith(PREFERENCES + "."):
            # One topic in dot notation: set in the profile's preferences, the others kept.
            topics = values.setdefault(PREFERENCES, {}).setdefault("topics", {})
            topics[name.rsplit(".", 1)[1]] = value
        elif name == PREFERENCES and isinstance(value, dict):
            values.setdefault(PREFERENCES, {}).setdefault("topics", {}).update(value.get("topics", {}))
        elif value is None:
            values.pop(name, None)
        else:
            values[name] = value


class DiskStore(Store):
    """Appends each accepted item, as compact JSON, to ``<record_dir>/accepted.ndjson``.

    Lines are v2 batch items (v1 calls are rewritten to that shape; merges use
    ``"action": "merge"`` with ``primary``/``secondary``). Duplicate events are not written.
    Ordering by timestamp is not applied here: a reader replays the file and applies it.
    """

    mode = "disk"

    def __init__(self, request_log_size: int, record_dir: Path) -> None:
        super().__init__(request_log_size)
        record_dir.mkdir(parents=True, exist_ok=True)
        self.path = record_dir / RECORD_FILE
        self._file: BinaryIO = open(self.path, "ab", buffering=1 << 20)

    def _record_all(self, entries: list[Accepted]) -> None:
        # One write per request rather than one per item.
        self._file.write(b"\n".join([entry[2] for entry in entries]))
        self._file.write(b"\n")

    def _merge(self, primary: Identifier, secondary: Identifier, raw: bytes) -> None:
        self._file.write(raw + b"\n")

    def end_request(self) -> None:
        # One flush per request keeps the file readable by tests without a write per item.
        self._file.flush()

    def reset(self) -> None:
        super().reset()
        self._file.seek(0)
        self._file.truncate()

    def summary(self) -> dict[str, Any]:
        return {"record": self.mode, "record_file": str(self.path)}

    def close(self) -> None:
        self._file.close()


def open_store(record: str, record_dir: Path | None, request_log_size: int) -> Store:
    """Create the store for a recording mode (``memory`` or ``disk``)."""
    if record == "memory":
        return MemoryStore(request_log_size)
    if record == "disk":
        if record_dir is None:
            raise ValueError("disk recording needs a record_dir")
        return DiskStore(request_log_size, Path(record_dir))
    raise ValueError(f"unknown recording mode {record!r}: use 'memory' or 'disk'")
