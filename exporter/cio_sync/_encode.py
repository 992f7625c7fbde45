"""Rows to Track API v2 items, with Customer.io's limits enforced per row before anything is
sent: an offending row becomes a Reject naming the model, the row key, the column and why, and
the rest of the model goes on."""

from __future__ import annotations

import functools
import hashlib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import msgspec
import orjson
from ulid_transform import bytes_to_ulid as _bytes_to_ulid

from ._project.model import (
    BOOLEAN,
    DATE,
    INTEGER,
    MAX_ATTRIBUTE_VALUE_BYTES,
    MAX_EVENT_NAME_BYTES,
    MAX_IDENTIFIER_BYTES,
    MAX_ITEM_BYTES,
    NUMBER,
    OUT_OF_RANGE_TIME,
    TEXT,
    TIMESTAMP,
    Column,
    SyncModel,
)
from ._read.rows import (
    E_HASH,
    E_ID_HASH,
    E_IDENTIFIER,
    E_KEY,
    E_LEDGER_STATUS,
    E_NAME,
    E_SENT_EVENT_ID,
    E_TIME,
    E_TIME_MS,
    P_HASH,
    P_IDENTIFIER,
    P_KEY,
    P_PREVIOUS_HASH,
    split_pair_key,
)


@dataclass(frozen=True)
class Reject:
    """A row Customer.io will not get (or refused), and why."""

    model: str
    row_key: str | None
    column: str | None
    reason: str
    message: str

    def as_dict(self) -> dict:
        return {
            "model": self.model,
            "row_key": self.row_key,
            "column": self.column,
            "reason": self.reason,
            "message": self.message,
        }


class Item(msgspec.Struct, frozen=True, gc=False):
    """One encoded Track API item and what it stands for. One is made per row: a Struct is built
    in C, about four times faster than a NamedTuple, and holds only scalars (so gc=False)."""

    data: bytes
    identifier: str
    row_key: str
    event_time: int | None = None
    row_hash: str | None = None
    event_id: str | None = None
    new: bool = False  # not in state when read: a first identify, an event not in the ledger


#: identifiers up to this many characters are within Customer.io's limit whatever they hold
_ID_CHARS = MAX_IDENTIFIER_BYTES // 4
#: a phone identifier as Customer.io takes it
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")

_INFINITE_TIME = "the time is 'infinity' or '-infinity', which Customer.io cannot take: fix the source (or null it)"

#: longest row key the state tables hold (their key columns are varchar(1024))
MAX_KEY_CHARS = 1024


def state_key(key: str) -> str:
    """`key` as the state tables can hold it: a key longer than MAX_KEY_CHARS becomes its start,
    `~` and the md5 of the whole key (so two long keys stay apart), MAX_KEY_CHARS in all."""
    if len(key) <= MAX_KEY_CHARS:
        return key
    digest = hashlib.md5(key.encode("utf-8", "surrogatepass")).hexdigest()
    return key[: MAX_KEY_CHARS - len(digest) - 1] + "~" + digest

def event_id_hash(name: str, key: str) -> str:
    """The md5 (hex) an event's id is made from, as the warehouse computes it: over the name's
    length in characters, `:`, the name, `|` and the key, so no two (name, key) pairs share it."""
    return hashlib.md5(f"{len(name)}:{name}|{key}".encode("utf-8", "surrogatepass")).hexdigest()


def event_ulid(epoch_ms: int, hash_hex: str) -> str:
    """A deterministic ULID: 48-bit time part = the event time in ms, 80 random bits = the first
    80 bits of event_id_hash(event name, event key). The same event always gets the same id, so a resend is
    deduplicated by Customer.io; two events of one checkout (different names) never share one.

    The text comes from ulid-transform's C encoder: one per event, it is about five times faster
    than building a `ulid.ULID` (the tests check that both agree)."""
    if not 0 <= epoch_ms < 1 << 48:
        raise OverflowError(f"{epoch_ms} ms does not fit a ULID's 48-bit time part")
    return _bytes_to_ulid(epoch_ms.to_bytes(6, "big") + bytes.fromhex(hash_hex[:20]))


def _plain(column: Column) -> bool:
    """Whether a column's values arrive as what the typed path may hand msgspec as they are: str,
    int within 64 bits, float, bool (numbers are read as doubles, times as Unix seconds). TEXT is
    also the kind of every unrecognised type (bytea, time, interval, uuid, ...), whose values
    msgspec would encode where orjson refuses them: those models take the general path. A column
    made without a warehouse type (tests) is taken at its kind."""
    dtype = column.dtype.upper()
    if not dtype:
        return True
    if column.kind == TEXT:
        return any(name in dtype for name in ("CHAR", "TEXT", "STRING"))
    if column.kind == INTEGER:
        return dtype not in ("HUGEINT", "UHUGEINT", "VARINT")
    return True


def _default(value):
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise TypeError("not a finite number")
        return orjson.Fragment(str(value).encode())
    raise TypeError(f"cannot send a {type(value).__name__}")


class Encoder:
    """Encodes the rows of one model. `snapshot` is the identify timestamp (Unix seconds): the
    time the warehouse state was read, so Customer.io applies updates in order."""

    def __init__(self, model: SyncModel, snapshot: int, n_head: int) -> None:
        self.model = model
        self.snapshot = snapshot
        self.n_head = n_head
        self.id_key = model.spec.identifier_kind
        # An object model's rows are objects of one type (meta.cio.object_type_id), identified
        # by type and object id; every other model's are people.
        self.object_type_id: str | None = model.spec.meta.get("object_type_id") if model.kind == "object" else None
        self.item_type = "object" if self.object_type_id else "person"
        # A relationship model's rows relate a person to an object of this type.
        self.related_type_id: str | None = model.spec.meta.get("object_type_id") if model.kind == "relationship" \
            else None
        self.phone = self.id_key == "phone"  # checked for E.164 on the checked path only
        self.id_column = model.identifier.name
        self.names = model.attribute_names
        self.columns = tuple(c.name for c in model.attributes)
        self.json_positions = frozenset(i for i, c in enumerate(self.columns) if c in model.json_columns)
        # The common row takes a lean path: which positions need which check is decided once from
        # the column kinds (numbers arrive as doubles, times as integers); any problem, a JSON
        # column or a column of another kind sends the row through the general path instead.
        kinds = [c.kind for c in model.attributes]
        self.number_positions = tuple(i for i, k in enumerate(kinds) if k == NUMBER)
        self.text_positions = tuple(i for i, k in enumerate(kinds) if k == TEXT)
        self.time_positions = tuple(i for i, k in enumerate(kinds) if k in (TIMESTAMP, DATE))
        # Topic columns (never sent as null) and update-only identifies take the general path.
        self.topic_positions = frozenset(i for i, c in enumerate(self.columns) if c in model.topic_columns)
        self.update_only = model.update_only
        self.general = bool(self.json_positions) or bool(self.topic_positions) or self.update_only or any(
            k not in (TEXT, NUMBER, INTEGER, BOOLEAN, TIMESTAMP, DATE) for k in kinds)
        # A person Customer.io already has (a previous hash in state) gets its nulls sent as
        # nulls, so a value that became null is removed; a first identify leaves them out.
        self.send_nulls = model.spec.option("null_as") == "null"
        self.rename: dict[str, str] = {}  # event name -> name sent (backfill: rename)
        self.valid_names: set[str] = set()  # event names already checked
        # The checked path; a model of plain columns gets the typed path's closure (see _structs).
        self.encode: Callable[[tuple], Item | Reject] = self._event_checked if model.is_event else self._person_checked
        if self.related_type_id:
            self.encode, self.fast = self._relationship_checked, False
            return
        if model.kind == "suppression":
            self.encode, self.fast = self._suppression_checked, False
            return
        if model.kind == "device":  # the device's platform and last use are read among the attributes
            spec = model.spec.meta
            self.device_positions = {field: self.columns.index(column) for field, column in (
                ("platform", spec.get("platform_column")), ("last_used", spec.get("last_used_column")))
                if column is not None and column in self.columns}
            self.encode, self.fast = self._device_checked, False
            return
        self._structs()

    def _structs(self) -> None:
        """The typed path: for a model whose columns are all of simple kinds, each item is a
        msgspec Struct built straight from the row's tuple and encoded in one call, with no dict
        per row (about 1 µs a row against 5 µs for dicts and orjson). The keys come out in the
        same order as on the general path; an attribute that is None is left out by
        `omit_defaults` (or sent as null, for a person Customer.io already has)."""
        self.fast = not self.phone and not self.general and all(_plain(c) for c in self.model.attributes)
        if not self.fast:
            return
        fields = [(f"a{i}", object, None) for i in range(len(self.names))]
        rename = {f"a{i}": name for i, name in enumerate(self.names)}
        self.attributes_without_nulls = msgspec.defstruct("Attributes", fields, omit_defaults=True, rename=rename)
        self.attributes_with_nulls = msgspec.defstruct("Attributes", fields, rename=rename)
        self.identifiers: Callable[..., msgspec.Struct]
        if self.object_type_id:
            struct = msgspec.defstruct("ObjectIdentifiers", [("object_type_id", str), ("object_id", object)])
            self.identifiers = functools.partial(struct, self.object_type_id)
        else:
            self.identifiers = msgspec.defstruct("Identifiers", [("value", object)], rename={"value": self.id_key})
        head = [("type", str), ("identifiers", object), ("action", str)]
        if self.model.is_event:
            self.item = msgspec.defstruct(
                "Event", [*head, ("name", object), ("id", str), ("timestamp", object), ("attributes", object)])
        else:
            self.item = msgspec.defstruct("Identify", [*head, ("timestamp", int), ("attributes", object)])
        # Numbers as JSON numbers, as on the general path (msgspec's default is a string).
        self.encode_struct = msgspec.json.Encoder(decimal_format="number").encode
        self.encode = self._typed_event() if self.model.is_event else self._typed_person()

    def _typed_person(self) -> Callable[[tuple], Item | Reject]:
        """The typed path's encoder of people rows, a closure like `_typed_event`."""
        without_nulls, with_nulls, identifiers, item, encode = (
            self.attributes_without_nulls, self.attributes_with_nulls, self.identifiers, self.item, self.encode_struct)
        head, numbers, snapshot, send_nulls, checked, item_type = (
            self.n_head, self.number_positions, self.snapshot, self.send_nulls, self._person_checked, self.item_type)
        times = self.time_positions

        def person(row: tuple) -> Item | Reject:
            identifier = row[P_IDENTIFIER]
            if type(identifier) is str and 0 < len(identifier) <= _ID_CHARS and not identifier.isspace():
                known = row[P_PREVIOUS_HASH] is not None  # previous row hash: Customer.io has this person
                nulls = known and send_nulls
                values = row[head:]
                for i in times:
                    if values[i] == OUT_OF_RANGE_TIME:
                        return checked(row)
                if nulls:  # nulls are sent: a NaN or an infinity must be found before (checked path)
                    for i in numbers:
                        value = values[i]
                        if value is not None and value - value != 0:
                            return checked(row)
                try:
                    data = encode(item(item_type, identifiers(identifier), "identify", snapshot,
                                       (with_nulls if nulls else without_nulls)(*values)))
                except (TypeError, ValueError):  # e.g. a lone surrogate: the checked path says why
                    return checked(row)
                # No value can be over its limit in an item this small; a larger one is checked.
                # Without nulls sent, a null is a NaN or an infinity (or text like one): checked.
                key = identifier if row[P_KEY] is None else str(row[P_KEY])
                if (len(data) <= MAX_ATTRIBUTE_VALUE_BYTES and (nulls or b":null" not in data)
                        and len(key) <= MAX_KEY_CHARS):
                    return Item(data, identifier, key, None, row[P_HASH], None, not known)
            return checked(row)

        return person

    def _typed_event(self) -> Callable[[tuple], Item | Reject]:
        """The typed path's encoder of event rows, a closure: it runs once per event, and locals
        are read faster than attributes. A row it has any doubt about goes to `_event_checked`,
        which says what is wrong, if anything."""
        attributes, identifiers, item, encode = self.attributes_without_nulls, self.identifiers, self.item, \
            self.encode_struct
        head, valid_names, checked = self.n_head, self.valid_names, self._event_checked
        times = tuple(head + i for i in self.time_positions)

        def event(row: tuple) -> Item | Reject:
            key, identifier, epoch_ms, name = row[E_KEY], row[E_IDENTIFIER], row[E_TIME_MS], row[E_NAME]
            for i in times:
                if row[i] == OUT_OF_RANGE_TIME:
                    return checked(row)
            if (key is not None and type(identifier) is str and 0 < len(identifier) <= _ID_CHARS
                    and not identifier.isspace() and epoch_ms is not None and epoch_ms >= 0 and name in valid_names):
                try:
                    event_id = row[E_SENT_EVENT_ID] or event_ulid(epoch_ms, row[E_ID_HASH])
                    data = encode(item("person", identifiers(identifier), "event", self.rename.get(name, name),
                                       event_id, row[E_TIME], attributes(*row[head:])))
                except (TypeError, ValueError, OverflowError):  # a lone surrogate, a time past 10889
                    return checked(row)
                # A None attribute is left out, so a null in the item is a NaN or an infinity
                # (msgspec writes them as null), or text that looks like one: the checked path.
                key = str(key)
                if len(data) <= MAX_ITEM_BYTES and b":null" not in data and len(key) <= MAX_KEY_CHARS:
                    return Item(data, identifier, key, row[E_TIME], row[E_HASH], event_id, row[E_LEDGER_STATUS] is None)
            return checked(row)

        return event

    def identifiers_of(self, identifier: str) -> dict[str, str]:
        """The `identifiers` of an item about `identifier` (a person's, or an object's id)."""
        if self.object_type_id:
            return {"object_type_id": self.object_type_id, "object_id": identifier}
        return {self.id_key: identifier}

    def _reject(self, key, column, reason, message) -> Reject:
        return Reject(self.model.name, None if key is None else state_key(str(key)), column, reason, message)

    def _long_key(self, key, column: str | None) -> Reject | None:
        """A reject for a row key the state cannot record (it would be sent and never recorded
        as sent, or wedge every later run), else None."""
        if len(str(key)) <= MAX_KEY_CHARS:
            return None
        return self._reject(key, column, "key_too_long",
                            f"the row key is {len(str(key))} characters; cio-export keeps keys of up to "
                            f"{MAX_KEY_CHARS} (use a shorter key column, e.g. a hash of this one)")

    def _identifier(self, value, key) -> str | Reject:
        if self.phone and value is not None and not _E164.fullmatch(str(value)):
            return self._reject(key, self.id_column, "invalid_phone",
                                f"{str(value)[:40]!r} is not a phone number in E.164 (+ and 2 to 15 digits, the "
                                "first not 0), the only form Customer.io takes as a phone identifier; normalize it "
                                "in the model")
        if type(value) is str and 0 < len(value) <= _ID_CHARS and not value.isspace():
            return value  # the common case: at most 4 bytes a character, so within the limit
        if value is None or not str(value).strip():
            return self._reject(key, self.id_column, "null_identifier", "the identifier is empty")
        value = str(value)
        if len(value.encode()) > MAX_IDENTIFIER_BYTES:
            return self._reject(
                key,
                self.id_column,
                "identifier_too_long",
                f"identifier is {len(value.encode())} bytes; Customer.io takes {MAX_IDENTIFIER_BYTES}",
            )
        return value

    def _attributes(self, row: tuple, key, check_value_size: bool, nulls: bool = False) -> dict | Reject:
        if self.general:
            return self._attributes_general(row, key, check_value_size, nulls)
        values = row[self.n_head :]
        for i in self.number_positions:
            value = values[i]
            if value is not None and value - value != 0:  # nan or an infinity
                return self._attributes_general(row, key, check_value_size, nulls)
        for i in self.time_positions:
            if values[i] == OUT_OF_RANGE_TIME:
                return self._attributes_general(row, key, check_value_size, nulls)
        if check_value_size:
            for i in self.text_positions:
                value = values[i]  # TEXT is also the kind of unrecognised types: not always a str
                if value is not None and (type(value) is not str or len(value) * 4 > MAX_ATTRIBUTE_VALUE_BYTES):
                    return self._attributes_general(row, key, check_value_size, nulls)
        if nulls:
            return dict(zip(self.names, values, strict=True))
        return {name: value for name, value in zip(self.names, values, strict=True) if value is not None}

    def _attributes_general(self, row: tuple, key, check_value_size: bool, nulls: bool = False) -> dict | Reject:
        attributes: dict = {}
        for i, value in enumerate(row[self.n_head :]):
            if value is None:
                if nulls and i not in self.topic_positions:  # a null topic leaves the preference as it is
                    attributes[self.names[i]] = None
                continue
            if isinstance(value, float) and not math.isfinite(value):
                return self._reject(key, self.columns[i], "not_a_number",
                                    f"{value} cannot be sent as a number (a NaN, an infinity, or a numeric "
                                    "beyond a double's range)")
            if value == OUT_OF_RANGE_TIME and i in self.time_positions:
                return self._reject(key, self.columns[i], "timestamp_out_of_range", _INFINITE_TIME)
            if i in self.json_positions and isinstance(value, str):
                try:
                    value = orjson.loads(value)
                except orjson.JSONDecodeError as exc:
                    return self._reject(key, self.columns[i], "invalid_json", f"not valid JSON: {exc}")
            elif check_value_size and isinstance(value, str) and len(value) * 4 > MAX_ATTRIBUTE_VALUE_BYTES:
                size = len(value.encode())
                if size > MAX_ATTRIBUTE_VALUE_BYTES:
                    return self._reject(
                        key,
                        self.columns[i],
                        "value_too_long",
                        f"value is {size} bytes; Customer.io takes {MAX_ATTRIBUTE_VALUE_BYTES}",
                    )
            attributes[self.names[i]] = value
        return attributes

    def _dump(self, item: dict, key) -> bytes | Reject:
        try:
            # An exact-size copy: orjson's own result keeps a larger allocation alive (about
            # 4 KB each, whatever the length), and thousands of items are held until acknowledged.
            data = bytes(memoryview(orjson.dumps(item, default=_default)))
        except TypeError as exc:
            return self._reject(key, None, "unserializable", str(exc))
        if len(data) > MAX_ITEM_BYTES:
            return self._reject(
                key, None, "item_too_large", f"item is {len(data)} bytes; Customer.io takes {MAX_ITEM_BYTES} per item"
            )
        return data

    def _person_checked(self, row: tuple) -> Item | Reject:
        key = row[P_KEY] if row[P_KEY] is not None else row[P_IDENTIFIER]
        identifier = self._identifier(row[P_IDENTIFIER], key)
        if isinstance(identifier, Reject):
            return identifier
        too_long = self._long_key(key, self.model.key_column.name)
        if too_long is not None:
            return too_long
        known = row[P_PREVIOUS_HASH] is not None  # previous row hash: Customer.io has this person
        attributes = self._attributes(row, key, check_value_size=True, nulls=known and self.send_nulls)
        if isinstance(attributes, Reject):
            return attributes
        if self.update_only:
            attributes["_update"] = True
        data = self._dump(
            {
                "type": self.item_type,
                "identifiers": self.identifiers_of(identifier),
                "action": "identify",
                "timestamp": self.snapshot,
                "attributes": attributes,
            },
            key,
        )
        if isinstance(data, Reject):
            return data
        return Item(data, identifier, str(key), None, row[P_HASH], None, not known)

    def relationship(self, object_id: str, attributes: dict | None = None) -> dict:
        """One entry of cio_relationships: the object of the model's type, and the relationship's
        attributes, if any."""
        entry: dict = {"identifiers": {"object_type_id": self.related_type_id, "object_id": object_id}}
        if attributes:
            entry["relationship_attributes"] = attributes
        return entry

    def _relationship_checked(self, row: tuple) -> Item | Reject:
        """A person related to an object (add_relationships), with the relationship's
        attributes: nulls left out when the pair is new, sent (removing the attribute) when
        Customer.io has it, as a person's are."""
        key = row[P_KEY]
        object_column = self.model.object_id.name if self.model.object_id else None
        identifier = self._identifier(row[P_IDENTIFIER], key)
        if isinstance(identifier, Reject):
            return identifier
        object_id = split_pair_key(key)[1] if key is not None else None
        if not object_id or object_id.isspace():
            return self._reject(None, object_column, "null_object_id", "the object id is empty")
        if len(object_id.encode()) > MAX_IDENTIFIER_BYTES:
            size = len(object_id.encode())
            return self._reject(key, object_column, "identifier_too_long",
                                f"object id is {size} bytes; Customer.io takes {MAX_IDENTIFIER_BYTES}")
        known = row[P_PREVIOUS_HASH] is not None  # previous row hash: Customer.io has this relationship
        attributes = self._attributes(row, key, check_value_size=True, nulls=known and self.send_nulls)
        if isinstance(attributes, Reject):
            return attributes
        data = self._dump({"type": "person", "identifiers": {self.id_key: identifier}, "action": "add_relationships",
                           "cio_relationships": [self.relationship(object_id, attributes)]}, key)
        if isinstance(data, Reject):
            return data
        return Item(data, identifier, key, None, row[P_HASH], None, not known)

    def _suppression_checked(self, row: tuple) -> Item | Reject:
        """A person to suppress (the row's only content is who)."""
        key = row[P_KEY] if row[P_KEY] is not None else row[P_IDENTIFIER]
        identifier = self._identifier(row[P_IDENTIFIER], key)
        if isinstance(identifier, Reject):
            return identifier
        data = self._dump({"type": "person", "identifiers": {self.id_key: identifier}, "action": "suppress"}, key)
        if isinstance(data, Reject):
            return data
        return Item(data, identifier, str(key), None, row[P_HASH], None, row[P_PREVIOUS_HASH] is None)

    def _device_checked(self, row: tuple) -> Item | Reject:
        """A person's device (add_device): its token, platform (ios or android), last use and
        attributes (nulls left out when the device is new, sent when Customer.io has it)."""
        key, meta = row[P_KEY], self.model.spec.meta
        identifier = self._identifier(row[P_IDENTIFIER], key)
        if isinstance(identifier, Reject):
            return identifier
        token = split_pair_key(key)[1] if key is not None else None
        if not token or token.isspace():
            return self._reject(None, meta["token_column"], "null_device_token", "the device token is empty")
        values = row[self.n_head:]
        positions = self.device_positions
        platform = values[positions["platform"]] if "platform" in positions else None
        if platform not in ("ios", "android"):
            return self._reject(key, meta["platform_column"], "invalid_platform",
                                f"platform is {str(platform)[:40]!r}; Customer.io takes ios or android (normalize it "
                                "in the model)")
        known = row[P_PREVIOUS_HASH] is not None  # previous row hash: Customer.io has this device
        attributes = self._attributes(row, key, check_value_size=True, nulls=known and self.send_nulls)
        if isinstance(attributes, Reject):
            return attributes
        for i in positions.values():
            attributes.pop(self.names[i], None)
        device: dict = {"token": token, "platform": platform}
        last_used = values[positions["last_used"]] if "last_used" in positions else None
        if last_used is not None:
            if last_used == OUT_OF_RANGE_TIME:
                return self._reject(key, meta.get("last_used_column"), "timestamp_out_of_range", _INFINITE_TIME)
            device["last_used"] = last_used
        if attributes:
            device["attributes"] = attributes
        data = self._dump({"type": "person", "identifiers": {self.id_key: identifier}, "action": "add_device",
                           "device": device}, key)
        if isinstance(data, Reject):
            return data
        return Item(data, identifier, key, None, row[P_HASH], None, not known)

    def _event_checked(self, row: tuple) -> Item | Reject:
        key = row[E_KEY]
        if key is None:
            return self._reject(None, self.model.event_key_column.name, "null_event_id", "the event id is empty")
        too_long = self._long_key(key, self.model.event_key_column.name)
        if too_long is not None:
            return too_long
        identifier = self._identifier(row[E_IDENTIFIER], key)
        if isinstance(identifier, Reject):
            return identifier
        timestamp, epoch_ms, hash_hex, name = row[E_TIME], row[E_TIME_MS], row[E_ID_HASH], row[E_NAME]
        if epoch_ms is None:
            return self._reject(key, self.model.time_column.name, "null_timestamp", "the event time is empty")
        if epoch_ms == OUT_OF_RANGE_TIME:
            return self._reject(key, self.model.time_column.name, "timestamp_out_of_range", _INFINITE_TIME)
        if epoch_ms < 0:
            return self._reject(
                key, self.model.time_column.name, "timestamp_before_1970", "event times before 1970 cannot be sent"
            )
        if epoch_ms >= 1 << 48:
            return self._reject(key, self.model.time_column.name, "timestamp_out_of_range",
                                "event times after the year 10889 do not fit an event id (ULID)")
        if name not in self.valid_names and (not name or len(name.encode()) > MAX_EVENT_NAME_BYTES):
            column = self.model.event_name_column.name if self.model.event_name_column else None
            return self._reject(
                key, column, "invalid_event_name", f"event name must be 1 to {MAX_EVENT_NAME_BYTES} bytes"
            )
        if len(self.valid_names) < 1000:
            self.valid_names.add(name)
        attributes = self._attributes(row, key, check_value_size=False)
        if type(attributes) is Reject:
            return attributes
        event_id = row[E_SENT_EVENT_ID] or event_ulid(epoch_ms, hash_hex)  # the id it already went out with, if any
        data = self._dump(
            {
                "type": "person",
                "identifiers": {self.id_key: identifier},
                "action": "event",
                "name": self.rename.get(name, name),
                "id": event_id,
                "timestamp": timestamp,
                "attributes": attributes,
            },
            key,
        )
        if isinstance(data, Reject):
            return data
        return Item(data, identifier, str(key), timestamp, row[E_HASH], event_id, row[E_LEDGER_STATUS] is None)
