"""How one dbt model syncs: `meta.cio` validated against the published JSON Schema, then
resolved against the columns of the relation that was built."""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import jsonschema

from .._errors import ConfigError

# Customer.io limits (Track API): see docs/exporter.md, "Limits".
MAX_IDENTIFIER_BYTES = 150
MAX_ATTRIBUTE_NAME_BYTES = 150
MAX_ATTRIBUTE_VALUE_BYTES = 1000
MAX_ATTRIBUTES = 300
MAX_EVENT_NAME_BYTES = 100
MAX_ITEM_BYTES = 32_000
MAX_EVENT_DATA_BYTES = 100_000

#: People attributes Customer.io gives a meaning of its own: never prefixed.
RESERVED_ATTRIBUTES = frozenset({"email", "created_at"})

#: The attribute a per-topic subscription preference is sent as (meta.cio.topics), in the dot
#: notation Customer.io accepts, so that one topic is set without touching the others.
TOPIC_PREFIX = "cio_subscription_preferences.topics."
TOPIC_ATTRIBUTE = TOPIC_PREFIX + "topic_{}"

DEFAULTS: dict[str, Any] = {
    "null_as": "null",
    "initial_window": "2h",
    "max_event_age": "72h",
    "backfill": "skip",
    "dedupe_window": "7d",
    "on_delete": "ignore",
    "max_identifier_changes": "5%",
}

#: The kinds of model whose rows are diffed against the state of what was acknowledged (one row
#: per key: a person, an object, a person-object relationship), and removed (on_delete) when
#: they leave the model; each row's attributes are within an identify's limits.
IDENTIFY_KINDS = frozenset({"people", "object", "relationship", "device", "suppression"})

#: Column kinds, from the warehouse's type names. They decide how a value is read and sent.
TEXT, INTEGER, NUMBER, BOOLEAN, TIMESTAMP, DATE, NESTED = (
    "text",
    "integer",
    "number",
    "boolean",
    "timestamp",
    "date",
    "nested",
)


@functools.cache
def meta_schema() -> dict:
    """The JSON Schema of meta.cio shipped with the package."""
    return json.loads(resources.files("cio_sync").joinpath("schemas/meta_cio.schema.json").read_text())


def column_kind(dtype: str) -> str:
    """Classify a warehouse type name (DuckDB, PostgreSQL, Redshift spellings)."""
    t = (dtype or "").upper()
    if any(n in t for n in ("JSON", "SUPER", "ARRAY", "STRUCT", "MAP", "[]", "UNION")):
        return NESTED
    if "TIMESTAMP" in t or "DATETIME" in t or t in ("TIMESTAMPTZ",):
        return TIMESTAMP
    if t == "DATE":
        return DATE
    if "BOOL" in t:
        return BOOLEAN
    if t in (
        "INTEGER",
        "INT",
        "INT2",
        "INT4",
        "INT8",
        "BIGINT",
        "SMALLINT",
        "TINYINT",
        "HUGEINT",
        "UBIGINT",
        "UINTEGER",
        "USMALLINT",
        "UTINYINT",
    ):
        return INTEGER
    if any(n in t for n in ("NUMERIC", "DECIMAL", "DOUBLE", "FLOAT", "REAL")):
        return NUMBER
    return TEXT


#: what a time that is not finite ('infinity', '-infinity') reads as, in seconds and in ms: far
#: outside any real time, so the encoder rejects its row (timestamp_out_of_range) instead of the
#: conversion stopping the model's SELECT (PostgreSQL) or silently giving null (DuckDB)
OUT_OF_RANGE_TIME = -(1 << 62)


@dataclass(frozen=True)
class Column:
    name: str
    kind: str
    dtype: str = ""


def _identifier_type(column: Column) -> bool:
    """Whether a column's type can hold a Customer.io identifier: an integer, or text (character
    types and uuid; TEXT is also the kind of every unrecognised type, such as time or interval)."""
    if column.kind == INTEGER:
        return True
    dtype = column.dtype.upper()
    return column.kind == TEXT and (not dtype or any(name in dtype for name in ("CHAR", "TEXT", "STRING", "UUID")))


def _path(error: jsonschema.ValidationError) -> str:
    return "meta.cio" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)


@dataclass(frozen=True)
class ModelSpec:
    """A selected model's `meta.cio`, validated; columns not yet checked."""

    unique_id: str
    name: str
    relation_name: str
    database: str | None
    schema: str
    alias: str
    meta: dict

    @property
    def kind(self) -> str:
        return self.meta["kind"]

    @property
    def identifier_column(self) -> str:
        return self.meta["identifier"]["column"]

    @property
    def identifier_kind(self) -> str:
        return self.meta["identifier"]["kind"]

    def option(self, key: str) -> Any:
        return self.meta.get(key, DEFAULTS.get(key))

    @classmethod
    def from_node(cls, node: dict) -> ModelSpec | None:
        """The spec of a manifest node, or None when the node has no meta.cio (not a sync model).

        Raises ConfigError naming the model, the key and what is expected when meta.cio is invalid."""
        all_meta = node_meta(node)
        meta = all_meta.get("cio")
        if meta is None:
            return None
        name = node["name"]
        # meta.cio_overrides: keys that replace meta.cio's own, so that one key of a model whose
        # meta.cio someone else wrote (the package's marts) is changed without restating the rest
        # (dbt merges meta by its top-level keys: a `+meta: {cio: ...}` would replace all of cio).
        overrides = all_meta.get("cio_overrides")
        if overrides is not None:
            if not isinstance(overrides, dict):
                raise ConfigError(f"model {name}: meta.cio_overrides must be a mapping of meta.cio keys")
            meta = {**meta, **overrides}
        validator = jsonschema.Draft202012Validator(meta_schema())
        errors = sorted(validator.iter_errors(meta), key=lambda e: list(e.absolute_path))
        if errors:
            lines = [f"  {_path(e)}: {e.message}" for e in errors]
            raise ConfigError(
                f"model {name}: invalid meta.cio\n" + "\n".join(lines) + "\nSee docs/exporter.md, 'meta.cio'."
            )
        if not node.get("relation_name"):
            raise ConfigError(f"model {name}: it has no relation (ephemeral?); only tables and views can be synced")
        return cls(
            unique_id=node["unique_id"],
            name=name,
            relation_name=node["relation_name"],
            database=node.get("database"),
            schema=node["schema"],
            alias=node.get("alias") or name,
            meta=meta,
        )

    def _attribute_problems(self, attributes: tuple[Column, ...], json_columns: set[str], prefix: str) -> list[str]:
        problems = []
        for column in attributes:
            sent_name = self.attribute_name(column.name, prefix)
            if len(sent_name.encode()) > MAX_ATTRIBUTE_NAME_BYTES:
                problems.append(f"column '{column.name}': attribute name over {MAX_ATTRIBUTE_NAME_BYTES} bytes")
            if column.kind == NESTED and self.kind in IDENTIFY_KINDS and not self.meta.get("allow_json_attributes"):
                problems.append(
                    f"column '{column.name}' is {column.dtype}: JSON, array or struct {self.kind} attributes make "
                    "segments brittle; flatten it, exclude it, or set meta.cio.allow_json_attributes"
                )
            if column.name.lower() in json_columns and column.kind not in (TEXT, NESTED):
                problems.append(f"meta.cio.json_columns: '{column.name}' is {column.dtype}, not JSON text")
        return problems

    def resolve(self, columns: list[Column]) -> SyncModel:
        """Check the configured columns against the built relation and decide the attributes."""
        by_name = {c.name.lower(): c for c in columns}
        if not by_name:
            raise ConfigError(
                f"model {self.name}: relation {self.relation_name} does not exist or has no columns; "
                "run dbt build first"
            )
        problems: list[str] = []

        def need(key: str, column: str | None) -> Column | None:
            if column is None:
                return None
            found = by_name.get(column.lower())
            if found is None:
                problems.append(f"meta.cio.{key}: column '{column}' is not in {self.relation_name}")
            return found

        identifier = need("identifier.column", self.identifier_column)
        stable_key = need("key_column", self.meta.get("key_column")) if self.meta.get("key_column") else identifier
        event_id = need("event_id_column", self.meta.get("event_id_column"))
        timestamp = need("timestamp_column", self.meta.get("timestamp_column"))
        event_name = need("event_name_column", self.meta.get("event_name_column"))
        object_id, token, platform, last_used = self._pair_columns(need, problems)
        if timestamp is not None and timestamp.kind not in (TIMESTAMP, DATE):
            problems.append(f"meta.cio.timestamp_column: '{timestamp.name}' is {timestamp.dtype}, not a timestamp")
        if identifier is not None and not _identifier_type(identifier):
            problems.append(
                f"meta.cio.identifier.column: '{identifier.name}' is {identifier.dtype}, which would send ids like "
                "'2020-01-02' or '1 day' (a new profile per customer); select it as text or an integer"
            )
        for key in ("json_columns", "exclude", "attributes"):
            for column in self.meta.get(key, []):
                need(key, column)
        topics = self._topic_columns(need, problems)

        # (A device's platform and last use are read as attributes, and sent in the device.)
        structural = {c.name.lower() for c in (identifier, event_id, timestamp, event_name, object_id, token)
                      if c is not None}
        if "attributes" in self.meta:
            wanted = [by_name[c.lower()] for c in self.meta["attributes"] if c.lower() in by_name]
        else:
            excluded = {c.lower() for c in self.meta.get("exclude", [])}
            wanted = [c for c in columns if c.name.lower() not in excluded]
        attributes = tuple(c for c in wanted if c.name.lower() not in structural and c.name.lower() not in topics
                           and self.kind != "suppression")  # a suppression sends nothing but who
        attributes += tuple(topics.values())
        attributes += tuple(c for c in (platform, last_used) if c is not None and c not in attributes)

        json_columns = {c.lower() for c in self.meta.get("json_columns", [])}
        prefix = self.meta.get("attribute_prefix", "") if self.kind in IDENTIFY_KINDS else ""
        problems += self._attribute_problems(attributes, json_columns, prefix)
        # An update-only identify carries _update too.
        room = MAX_ATTRIBUTES - (1 if self.meta.get("create") is False else 0)
        if self.kind in IDENTIFY_KINDS and len(attributes) > room:
            problems.append(f"{len(attributes)} attributes; Customer.io takes at most {MAX_ATTRIBUTES} per identify"
                            + (", _update included" if room < MAX_ATTRIBUTES else ""))
        if self.meta.get("create") is False and self.meta.get("on_delete", "ignore") != "ignore":
            problems.append("meta.cio.on_delete: an update-only model (create: false) did not create its profiles, "
                            "so it never deletes or suppresses them; leave on_delete at ignore")
        if problems:
            raise ConfigError(f"model {self.name}:\n" + "\n".join(f"  {p}" for p in problems))
        assert identifier is not None and stable_key is not None  # (a missing one is among the problems)
        return SyncModel(
            spec=self,
            identifier=identifier,
            key_column=stable_key,
            event_id=event_id,
            timestamp=timestamp,
            event_name_column=event_name,
            attributes=attributes,
            attribute_names=tuple(self._sent_name(c.name, prefix) for c in attributes),
            json_columns=frozenset(c.name for c in attributes if c.name.lower() in json_columns),
            topic_columns=frozenset(c.name for c in topics.values()),
            object_id=object_id,
            token=token,
        )

    def _pair_columns(self, need, problems: list[str]) -> tuple[Column | None, ...]:
        """A relationship's object id column; a device's token, platform and last-use columns."""
        object_id = need("object_id_column", self.meta.get("object_id_column"))
        token = need("token_column", self.meta.get("token_column"))
        for key, column in (("object_id_column", object_id), ("token_column", token)):
            if column is not None and not _identifier_type(column):
                problems.append(f"meta.cio.{key}: '{column.name}' is {column.dtype}; select it as text or an integer")
        platform = need("platform_column", self.meta.get("platform_column"))
        last_used = need("last_used_column", self.meta.get("last_used_column"))
        if last_used is not None and last_used.kind not in (TIMESTAMP, DATE):
            problems.append(f"meta.cio.last_used_column: '{last_used.name}' is {last_used.dtype}, not a timestamp")
        return object_id, token, platform, last_used

    def _topic_columns(self, need, problems: list[str]) -> dict[str, Column]:
        """meta.cio.topics' columns, by lower-case name: people models only, boolean columns, one
        column per topic, never excluded."""
        topics = self.meta.get("topics") or {}
        if self.kind != "people":
            problems += [f"meta.cio.{key}: only people models have it" for key in ("topics",) if key in self.meta]
            if self.kind != "object" and "create" in self.meta:
                problems.append("meta.cio.create: only people and object models have it")
            return {}
        found: dict[str, Column] = {}
        by_topic: dict[int, str] = {}
        excluded = {c.lower() for c in self.meta.get("exclude", [])}
        for name, topic in topics.items():
            column = need("topics", name)
            if topic in by_topic:
                problems.append(f"meta.cio.topics: columns '{by_topic[topic]}' and '{name}' are both topic {topic}")
            by_topic[topic] = name
            if name.lower() in excluded:
                problems.append(f"meta.cio.topics: '{name}' is also in meta.cio.exclude")
            if column is None:
                continue
            if column.kind != BOOLEAN:
                problems.append(f"meta.cio.topics: '{column.name}' is {column.dtype}, not a boolean (opted in or out)")
            found[column.name.lower()] = column
        return found

    def _sent_name(self, column: str, prefix: str) -> str:
        topic = {name.lower(): t for name, t in (self.meta.get("topics") or {}).items()}.get(column.lower())
        return TOPIC_ATTRIBUTE.format(int(topic)) if topic is not None else self.attribute_name(column, prefix)

    @staticmethod
    def attribute_name(column: str, prefix: str) -> str:
        return column if not prefix or column.lower() in RESERVED_ATTRIBUTES else prefix + column


@dataclass(frozen=True)
class SyncModel:
    """A model ready to sync: spec plus the resolved columns, in the order they are read."""

    spec: ModelSpec
    identifier: Column
    key_column: Column
    event_id: Column | None
    timestamp: Column | None
    event_name_column: Column | None
    attributes: tuple[Column, ...]
    attribute_names: tuple[str, ...]
    json_columns: frozenset[str] = field(default_factory=frozenset)
    #: boolean columns sent as subscription preferences (meta.cio.topics); a null is never sent
    topic_columns: frozenset[str] = field(default_factory=frozenset)
    #: a relationship model's object id column (meta.cio.object_id_column)
    object_id: Column | None = None
    #: a device model's token column (meta.cio.token_column)
    token: Column | None = None

    @property
    def pair_column(self) -> Column | None:
        """What a relationship or device row pairs its person with (its key is the pair)."""
        return self.object_id or self.token

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def is_event(self) -> bool:
        return self.spec.kind == "event"

    @property
    def update_only(self) -> bool:
        """meta.cio.create is false: identifies never create a profile (attributes._update)."""
        return self.spec.meta.get("create") is False

    @property
    def event_name(self) -> str | None:
        return self.spec.meta.get("event_name")

    @property
    def event_key_column(self) -> Column:
        """An event model's event id column."""
        assert self.event_id is not None, f"{self.name} is not an event model"
        return self.event_id

    @property
    def time_column(self) -> Column:
        """An event model's timestamp column."""
        assert self.timestamp is not None, f"{self.name} is not an event model"
        return self.timestamp

    def without(self, columns: Iterable[str]) -> SyncModel:
        """This model without the attribute columns named in `columns` (any case)."""
        drop = {name.lower() for name in columns}
        kept = [(column, name) for column, name in zip(self.attributes, self.attribute_names, strict=True)
                if column.name.lower() not in drop]
        return dataclasses.replace(
            self, attributes=tuple(c for c, _ in kept), attribute_names=tuple(n for _, n in kept),
            json_columns=frozenset(c.name for c, _ in kept if c.name in self.json_columns),
            topic_columns=frozenset(c.name for c, _ in kept if c.name in self.topic_columns))

    def payload_schema(self) -> dict[str, str]:
        """Attribute name -> kind, as sent: the shape templates and segments depend on."""
        return {
            name: ("json" if col.name in self.json_columns else col.kind)
            for name, col in zip(self.attribute_names, self.attributes, strict=True)
        }


def node_meta(node: dict) -> dict:
    """A manifest node's meta: its config's, else (older manifests) the node's own."""
    own = (node.get("config") or {}).get("meta") or {}
    return own if own.get("cio") is not None else (node.get("meta") or {})


_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """Seconds in ``30s``, ``30m``, ``2h``, ``72h``, ``7d`` (meta.cio's durations, the CLI's
    windows)."""
    match = _DURATION.match(str(text))
    if not match:
        raise ConfigError(f"a duration is written like 30m, 2h, 72h or 7d, not {text!r}")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def _meta_kind(node: dict) -> str | None:
    """meta.cio.kind of a manifest node (meta.cio_overrides applied), unvalidated."""
    meta = node_meta(node)
    cio, overrides = meta.get("cio"), meta.get("cio_overrides")
    merged = {**(cio if isinstance(cio, dict) else {}), **(overrides if isinstance(overrides, dict) else {})}
    return merged.get("kind")


def not_people_models_of(nodes: Iterable[dict]) -> frozenset[str]:
    """The models among manifest nodes whose rows the people state holds but whose
    acknowledgement is no identify of a person: objects, relationships, devices, suppressions.
    (An event never waits for them.)"""
    return frozenset(node["name"] for node in nodes if node.get("resource_type") == "model"
                     and _meta_kind(node) in ("object", "relationship", "device", "suppression"))


def people_specs_of(nodes: Iterable[dict]) -> list[ModelSpec]:
    """The enabled people models among manifest nodes, whether selected or not. A model whose
    meta.cio is invalid is left out: it is reported when it is selected."""
    specs = []
    for node in nodes:
        if node.get("resource_type") != "model" or not (node.get("config") or {}).get("enabled", True):
            continue
        kind = _meta_kind(node)
        if kind != "people":
            continue  # only people models are validated (and their invalid meta left out) here
        try:
            spec = ModelSpec.from_node(node)
        except ConfigError:
            continue
        if spec is not None and spec.kind == "people" and spec.meta.get("enabled") is not False:
            specs.append(spec)
    return specs


def people_models_waited_for(specs: Iterable[ModelSpec], kind: str,
                             in_state: Iterable[str]) -> tuple[tuple[str, bool], ...]:
    """The people models whose acknowledged identify an event of identifier `kind` waits for:
    the project's of that kind (`specs`) and those with people of that kind in the state
    (`in_state`), each with whether its key is its identifier (known for the project's), in
    name order. An update-only model (meta.cio.create: false) is not one of them: its
    acknowledged identify does not mean that Customer.io has the person."""
    specs = [spec for spec in specs if spec.identifier_kind == kind]
    keyed = {spec.name: spec.meta.get("key_column") in (None, spec.identifier_column)
             for spec in specs if spec.meta.get("create") is not False}
    update_only = {spec.name for spec in specs if spec.meta.get("create") is False}
    names = sorted((set(keyed) | set(in_state)) - update_only)
    return tuple((name, keyed.get(name, False)) for name in names)


def check_identifier_kinds(models: list[ModelSpec], allow_mixed: bool = False) -> None:
    """All selected models must identify people the same way, unless explicitly allowed."""
    models = [m for m in models if m.kind != "object"]  # an object is not a person
    kinds = {m.identifier_kind for m in models if not m.meta.get("allow_mixed_identifiers")}
    if len(kinds) > 1 and not allow_mixed:
        detail = ", ".join(f"{m.name}: {m.identifier_kind} ({m.identifier_column})" for m in models)
        raise ConfigError(
            "the selected models identify people in different ways, which splits profiles in Customer.io: "
            f"{detail}. Use one identifier everywhere, or set meta.cio.allow_mixed_identifiers on the models "
            "that must differ (or pass --allow-mixed-identifiers)."
        )
