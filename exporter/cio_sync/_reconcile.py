"""Does Customer.io hold what the warehouse says? Two checks through the App API:

* :func:`reconcile`: for each Customer.io segment mapped to a SQL predicate over a model, the
  warehouse count against the segment's count (and, optionally, the members on each side);
* :func:`spot_check`: for a random sample of people of a people model, the mart row (encoded
  exactly as ``cio-export`` sends it) against the person's attributes in Customer.io, their
  latest events against the person's recent activity, and duplicate profiles for one email.

Both read the warehouse through the dbt profile's connection (read only) and close it before
calling Customer.io.
"""

from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from ._app_api import AppApiClient
from ._dbt import Artifacts, DbtContext, close_adapter, open_adapter, relation_name
from ._encode import Encoder, Reject
from ._errors import ConfigError
from ._model import ModelSpec, SyncModel, parse_duration
from ._sql import literal
from ._state import DEFAULT_SCHEMA as DEFAULT_STATE_SCHEMA

__all__ = [
    "PersonReport",
    "SegmentMapping",
    "SegmentResult",
    "SpotCheckReport",
    "Tolerance",
    "find_model",
    "load_reconcile_config",
    "reconcile",
    "same_value",
    "spot_check",
]

_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
EVENT_LEDGER = "cio_event_ledger"


# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tolerance:
    """How far Customer.io may be from the warehouse: an absolute number of people, or a
    percentage of the warehouse count (``"2%"``)."""

    value: float
    percent: bool = False

    @classmethod
    def parse(cls, text: str | int | float) -> Tolerance:
        raw = str(text).strip()
        percent = raw.endswith("%")
        number = raw[:-1].strip() if percent else raw
        try:
            value = float(number)
        except ValueError:
            raise ConfigError(f"a tolerance is a number of people or a percentage like '2%', not {text!r}") from None
        if value < 0 or not math.isfinite(value):
            raise ConfigError(f"a tolerance must not be negative: {text!r}")
        return cls(value, percent)

    def allowed(self, base: int) -> float:
        return base * self.value / 100.0 if self.percent else self.value

    def __str__(self) -> str:
        text = f"{self.value:g}"
        return text + "%" if self.percent else text


def run_query(adapter, sql: str) -> list[tuple]:
    """Rows of a read-only query on the adapter's open connection (its transaction, if any, is
    rolled back afterwards)."""
    handle = adapter.connections.get_thread_connection().handle
    kind = adapter.type()
    cursor = handle.cursor()
    try:
        cursor.execute(sql)
        return [tuple(row) for row in cursor.fetchall()]
    finally:
        # dbt-duckdb shares one cursor per connection: closing it would close the connection.
        if kind != "duckdb":
            cursor.close()
            handle.rollback()


def find_model(artifacts: Artifacts, name: str) -> dict[str, Any]:
    """The manifest node of a model given as ``name``, ``package.name`` or its unique_id."""
    nodes = [n for n in (artifacts.manifest_dict.get("nodes") or {}).values() if n.get("resource_type") == "model"]
    if name.startswith("model."):
        found = [n for n in nodes if n.get("unique_id") == name]
    elif "." in name:
        package, _, model = name.partition(".")
        found = [n for n in nodes if n.get("package_name") == package and n.get("name") == model]
    else:
        found = [n for n in nodes if n.get("name") == name]
    if not found:
        raise ConfigError(f"model {name!r} is not in the manifest ({artifacts.target_path}): check the name")
    if len(found) > 1:
        options = ", ".join(sorted(n["unique_id"] for n in found))
        raise ConfigError(f"model {name!r} is ambiguous ({options}): write it as package.model")
    return found[0]


def _identifier_of(node: Mapping[str, Any], override: Mapping[str, Any] | None) -> tuple[str, str]:
    """(column, kind) identifying people in the model: the config's, else its meta.cio's."""
    if override:
        column, kind = override.get("column"), override.get("kind", "id")
        if not column or kind not in ("id", "email", "cio_id"):
            raise ConfigError(f"{node['name']}: identifier needs a column and a kind (id, email or cio_id)")
        return str(column), str(kind)
    spec = ModelSpec.from_node(dict(node))
    if spec is None:
        raise ConfigError(
            f"{node['name']} has no meta.cio: say which column identifies people with "
            "identifier: {column: ..., kind: id|email|cio_id}"
        )
    return spec.identifier_column, spec.identifier_kind


def _load_yaml(path: Path) -> Any:
    import yaml  # PyYAML, a dependency of dbt-core

    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    raise TypeError


# --------------------------------------------------------------------------------------------
# reconcile
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SegmentMapping:
    """One Customer.io segment and the warehouse rows that should be in it."""

    segment_id: int
    model: str
    where: str | None = None
    name: str | None = None
    tolerance: Tolerance | None = None
    identifier: Mapping[str, Any] | None = None

    @property
    def label(self) -> str:
        return self.name or f"segment {self.segment_id}"


RECONCILE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["segments"],
    "properties": {
        "segments": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["segment_id", "model"],
                "properties": {
                    "segment_id": {"type": "integer", "minimum": 1},
                    "model": {"type": "string", "minLength": 1},
                    "where": {"type": "string"},
                    "name": {"type": "string"},
                    "tolerance": {"type": ["integer", "number", "string"]},
                    "identifier": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["column"],
                        "properties": {"column": {"type": "string"}, "kind": {"enum": ["id", "email", "cio_id"]}},
                    },
                },
            },
        }
    },
}


def load_reconcile_config(path: Path) -> list[SegmentMapping]:
    """Read and validate a reconcile config file; errors name the file and the entry."""
    import jsonschema

    document = _load_yaml(path)
    errors = sorted(jsonschema.Draft202012Validator(RECONCILE_SCHEMA).iter_errors(document), key=str)
    if errors:
        lines = [f"  {'.'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}" for e in errors]
        raise ConfigError(f"{path}: invalid reconcile configuration\n" + "\n".join(lines))
    mappings = []
    for entry in document["segments"]:
        tolerance = entry.get("tolerance")
        mappings.append(
            SegmentMapping(
                segment_id=entry["segment_id"],
                model=entry["model"],
                where=(entry.get("where") or "").strip() or None,
                name=entry.get("name"),
                tolerance=Tolerance.parse(tolerance) if tolerance is not None else None,
                identifier=entry.get("identifier"),
            )
        )
    return mappings


@dataclass
class SegmentResult:
    segment_id: int
    name: str
    model: str
    where: str | None
    identifier_kind: str
    warehouse_count: int | None = None
    customerio_count: int | None = None
    tolerance: str = "0"
    allowed: float = 0.0
    only_in_warehouse: int | None = None
    only_in_customerio: int | None = None
    sample_only_in_warehouse: list[str] = field(default_factory=list)
    sample_only_in_customerio: list[str] = field(default_factory=list)
    ok: bool = True
    problem: str | None = None

    @property
    def gap(self) -> int | None:
        if self.warehouse_count is None or self.customerio_count is None:
            return None
        return self.customerio_count - self.warehouse_count

    def as_dict(self) -> dict[str, Any]:
        return {
            "segment_id": self.segment_id,
            "name": self.name,
            "model": self.model,
            "where": self.where,
            "identifier_kind": self.identifier_kind,
            "warehouse_count": self.warehouse_count,
            "customerio_count": self.customerio_count,
            "gap": self.gap,
            "tolerance": self.tolerance,
            "allowed": self.allowed,
            "only_in_warehouse": self.only_in_warehouse,
            "only_in_customerio": self.only_in_customerio,
            "sample_only_in_warehouse": self.sample_only_in_warehouse,
            "sample_only_in_customerio": self.sample_only_in_customerio,
            "ok": self.ok,
            "problem": self.problem,
        }


def _member_label(entry: Mapping[str, Any]) -> str:
    parts = [f"{k}={entry[k]}" for k in ("id", "email", "cio_id") if entry.get(k)]
    return ", ".join(parts) or "(no identifiers)"


def reconcile(
    ctx: DbtContext,
    artifacts: Artifacts,
    mappings: Sequence[SegmentMapping],
    client: AppApiClient,
    *,
    tolerance: Tolerance,
    membership: bool = False,
    sample: int = 20,
) -> list[SegmentResult]:
    """Warehouse counts (and members) for every mapping, then Customer.io's. A result is not ok
    when the count gap, or with ``membership`` the people found on one side only, exceed the
    mapping's tolerance (else ``tolerance``)."""
    from ._warehouse import dialect_for

    results: list[SegmentResult] = []
    plans = []
    for mapping in mappings:
        node = find_model(artifacts, mapping.model)
        column, kind = _identifier_of(node, mapping.identifier)
        chosen = mapping.tolerance or tolerance
        results.append(
            SegmentResult(mapping.segment_id, mapping.label, node["name"], mapping.where, kind, tolerance=str(chosen))
        )
        plans.append((mapping, node, column, chosen))
    warehouse_members: list[set[str] | None] = []
    adapter = open_adapter(ctx, artifacts)
    try:
        with adapter.connection_named("cio-export"):
            dialect = dialect_for(adapter)
            for (mapping, node, column, _), result in zip(plans, results, strict=True):
                relation = relation_name(node)
                where = f"\nwhere ({mapping.where})" if mapping.where else ""
                [(count,)] = run_query(adapter, f"select count(*) from {relation}{where}")
                result.warehouse_count = int(count)
                if membership:
                    ident = dialect.text(dialect.quote(column))
                    condition = f"({mapping.where}) and " if mapping.where else ""
                    not_null = f"{dialect.quote(column)} is not null"
                    rows = run_query(adapter, f"select distinct {ident} from {relation}\nwhere {condition}{not_null}")
                    warehouse_members.append({str(r[0]) for r in rows})
                else:
                    warehouse_members.append(None)
    finally:
        close_adapter(adapter)

    for (mapping, _node, _column, chosen), result, members in zip(plans, results, warehouse_members, strict=True):
        result.customerio_count = client.segment_count(mapping.segment_id)
        result.allowed = chosen.allowed(result.warehouse_count or 0)
        problems = []
        if abs(result.gap or 0) > result.allowed:
            problems.append(
                f"Customer.io has {result.customerio_count}, the warehouse {result.warehouse_count} "
                f"(gap {result.gap:+d}, allowed {result.allowed:g})"
            )
        if members is not None:
            in_cio: set[str] = set()
            without_kind: list[str] = []
            for entry in client.segment_members(mapping.segment_id):
                value = entry.get(result.identifier_kind)
                if value is None or value == "":
                    without_kind.append(_member_label(entry))
                else:
                    in_cio.add(str(value))
            only_wh = sorted(members - in_cio)
            only_cio = sorted(in_cio - members) + sorted(without_kind)
            result.only_in_warehouse, result.only_in_customerio = len(only_wh), len(only_cio)
            result.sample_only_in_warehouse = only_wh[:sample]
            result.sample_only_in_customerio = only_cio[:sample]
            if len(only_wh) + len(only_cio) > result.allowed:
                problems.append(
                    f"{len(only_wh)} in the warehouse only, {len(only_cio)} in Customer.io only "
                    f"(allowed {result.allowed:g})"
                )
        result.ok = not problems
        result.problem = "; ".join(problems) or None
    return results


# --------------------------------------------------------------------------------------------
# spot-check
# --------------------------------------------------------------------------------------------


def same_value(expected: Any, actual: Any) -> bool:
    """Whether Customer.io's value is the one sent. The App API returns every attribute as a
    string, so numbers, booleans and JSON are compared by meaning: 59.9 == "59.9", 12 == "12.0",
    True == "true", [..] == "[..]"."""
    if isinstance(actual, bool) and not isinstance(expected, bool):
        return False
    if isinstance(expected, bool):
        if isinstance(actual, str):
            return actual.strip().lower() == ("true" if expected else "false")
        return actual is expected
    if isinstance(expected, (int, float)):
        if isinstance(actual, str):
            try:
                actual = float(actual.strip())
            except ValueError:
                return False
        if not isinstance(actual, (int, float)):
            return False
        return math.isclose(float(actual), float(expected), rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(expected, (dict, list)):
        if isinstance(actual, str):
            try:
                actual = orjson.loads(actual)
            except orjson.JSONDecodeError:
                return False
        return actual == expected
    if isinstance(expected, str):
        return isinstance(actual, str) and actual == expected
    return actual == expected


@dataclass
class Problem:
    check: str  # attribute | profile | duplicate | event
    field: str | None
    expected: Any
    actual: Any
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "field": self.field,
            "expected": self.expected,
            "actual": self.actual,
            "message": self.message,
        }


@dataclass
class PersonReport:
    identifier: str
    kind: str
    status: str = "ok"  # ok | mismatch | not_sent
    attributes_checked: int = 0
    events_checked: int = 0
    problems: list[Problem] = field(default_factory=list)
    note: str | None = None

    def add(self, problem: Problem) -> None:
        self.problems.append(problem)
        self.status = "mismatch"

    def as_dict(self) -> dict[str, Any]:
        return {
            "identifier": self.identifier,
            "kind": self.kind,
            "status": self.status,
            "attributes_checked": self.attributes_checked,
            "events_checked": self.events_checked,
            "problems": [p.as_dict() for p in self.problems],
            "note": self.note,
        }


@dataclass
class SpotCheckReport:
    model: str
    seed: str
    sample: int
    event_models: list[str]
    events_expected_from: str  # ledger | window | none
    people: list[PersonReport] = field(default_factory=list)

    @property
    def mismatches(self) -> int:
        return sum(1 for p in self.people if p.status == "mismatch")

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "seed": self.seed,
            "sample": self.sample,
            "checked": len(self.people),
            "mismatches": self.mismatches,
            "event_models": self.event_models,
            "events_expected_from": self.events_expected_from,
            "people": [p.as_dict() for p in self.people],
        }


@dataclass
class _Expected:
    """One sampled person as the warehouse says Customer.io should hold them."""

    identifier: str
    attributes: dict[str, Any]
    absent: list[str]
    reject: Reject | None = None
    events: list[tuple[int, str, str, str]] = field(default_factory=list)  # (timestamp, name, model, event key)


def _relation(adapter, spec: ModelSpec) -> str:
    return adapter.Relation.create(database=spec.database, schema=spec.schema, identifier=spec.alias).render()


def _sent_event_keys(adapter, state_schema: str, models: Sequence[str]) -> set[tuple[str, str]] | None:
    """(model, event key) of events the exporter's state records as delivered, or None when that
    state is not there (or not readable)."""
    names = ", ".join(literal(m) for m in models)
    sql = f"select model, event_key from {state_schema}.{EVENT_LEDGER} where status = 'sent' and model in ({names})"
    try:
        return {(str(m), str(k)) for m, k in run_query(adapter, sql)}
    except Exception:  # no state schema, no table, another layout: fall back to a time window
        handle = adapter.connections.get_thread_connection().handle
        if adapter.type() != "duckdb":
            handle.rollback()
        return None


def _read_expected(
    adapter,
    people: ModelSpec,
    events: Sequence[ModelSpec],
    *,
    sample: int,
    seed: str,
    state_schema: str,
) -> tuple[SyncModel, list[_Expected], set[tuple[str, str]] | None]:
    from ._warehouse import build_query, dialect_for, relation_columns

    dialect = dialect_for(adapter)
    model = people.resolve(relation_columns(adapter, people))
    relation = _relation(adapter, people)
    ident = dialect.text(dialect.quote(model.identifier.name))
    picked = run_query(
        adapter,
        f"select {ident} from {relation}\nwhere {dialect.quote(model.identifier.name)} is not null\n"
        f"order by {dialect.md5(f'{ident} || {literal(seed)}')}\nlimit {int(sample)}",
    )
    identifiers = [str(row[0]) for row in picked]
    if not identifiers:
        return model, [], None
    in_list = ", ".join(literal(i) for i in identifiers)
    query = build_query(model, dialect, relation, where=f"{ident} in ({in_list})")
    encoder = Encoder(model, int(time.time()), query.n_head)
    null_as = people.option("null_as")
    expected: dict[str, _Expected] = {}
    for row in run_query(adapter, query.sql):
        identifier = str(row[0])
        values = row[query.n_head :]
        absent = []
        if null_as == "null":
            absent = [n for n, v in zip(model.attribute_names, values, strict=True) if v is None]
        item = encoder.encode(row)
        if isinstance(item, Reject):
            expected[identifier] = _Expected(identifier, {}, [], reject=item)
            continue
        sent = orjson.loads(item.data).get("attributes") or {}
        expected[identifier] = _Expected(identifier, {k: v for k, v in sent.items() if v is not None}, absent)

    for spec in events:
        event_model = spec.resolve(relation_columns(adapter, spec))
        event_ident = dialect.text(dialect.quote(event_model.identifier.name))
        event_query = build_query(event_model, dialect, _relation(adapter, spec), where=f"{event_ident} in ({in_list})")
        event_encoder = Encoder(event_model, int(time.time()), event_query.n_head)
        for row in run_query(adapter, event_query.sql):
            item = event_encoder.encode(row)
            if isinstance(item, Reject) or item.identifier not in expected:
                continue
            sent = orjson.loads(item.data)
            expected[item.identifier].events.append((int(sent["timestamp"]), sent["name"], spec.name, item.row_key))
    sent_keys = _sent_event_keys(adapter, state_schema, [s.name for s in events]) if events else None
    return model, [expected[i] for i in identifiers if i in expected], sent_keys


def spot_check(  # noqa: PLR0913 - keyword-only options of the spot-check command
    ctx: DbtContext,
    artifacts: Artifacts,
    people: ModelSpec,
    events: Sequence[ModelSpec],
    client: AppApiClient,
    *,
    sample: int = 20,
    seed: str | None = None,
    last_events: int = 5,
    window: str | None = None,
    state_schema: str = DEFAULT_STATE_SCHEMA,
    now: float | None = None,
) -> SpotCheckReport:
    """Compare a random sample of ``people`` (reproducible with ``seed``) with Customer.io.

    Attributes are compared as sent (prefix, excludes, Unix seconds, numbers, booleans, parsed
    JSON); a column that is null in the warehouse must be absent in Customer.io (``null_as:
    null``). Each person's ``last_events`` most recent events of the ``events`` models must be
    in their recent activity with the same timestamp: when the exporter's state records which
    events were delivered, only those are expected; otherwise only events younger than
    ``window`` (default: each model's max_event_age), ``"all"`` for every event. People sharing
    an email with another profile are flagged as duplicates."""
    if sample < 1:
        raise ConfigError("--sample must be at least 1")
    if not _SCHEMA_NAME.match(state_schema):
        raise ConfigError(f"--state-schema must be a plain SQL identifier, not {state_schema!r}")
    seed = seed or f"{random.SystemRandom().randrange(16**8):08x}"
    now = time.time() if now is None else now
    adapter = open_adapter(ctx, artifacts)
    try:
        with adapter.connection_named("cio-export"):
            model, expected, sent_keys = _read_expected(
                adapter, people, events, sample=sample, seed=seed, state_schema=state_schema
            )
    finally:
        close_adapter(adapter)

    windows: dict[str, int | None] = {}
    for spec in events:
        if window == "all" or (window is None and sent_keys is not None):
            windows[spec.name] = None
        else:
            windows[spec.name] = parse_duration(window or spec.option("max_event_age"))
    report = SpotCheckReport(
        model=people.name,
        seed=seed,
        sample=sample,
        event_models=[s.name for s in events],
        events_expected_from="none" if not events else ("ledger" if sent_keys is not None else "window"),
    )
    kind = people.identifier_kind
    for person in expected:
        entry = PersonReport(person.identifier, kind)
        report.people.append(entry)
        if person.reject is not None:
            entry.status = "not_sent"
            entry.note = f"cio-export does not send this row: {person.reject.reason}: {person.reject.message}"
            continue
        profile = client.customer(person.identifier, kind)
        if profile is None:
            entry.add(Problem("profile", None, "a profile", None, f"no profile for {kind} {person.identifier}"))
            continue
        attributes = profile.get("attributes") or {}
        for name, value in person.attributes.items():
            entry.attributes_checked += 1
            if name not in attributes:
                entry.add(Problem("attribute", name, value, None, f"{name} is missing in Customer.io"))
            elif not same_value(value, attributes[name]):
                entry.add(
                    Problem("attribute", name, value, attributes[name], f"{name}: warehouse {value!r}, "
                            f"Customer.io {attributes[name]!r}")  # fmt: skip
                )
        for name in person.absent:
            entry.attributes_checked += 1
            if name in attributes:
                entry.add(
                    Problem("attribute", name, None, attributes[name],
                            f"{name} is null in the warehouse but {attributes[name]!r} in Customer.io")  # fmt: skip
                )
        email = person.attributes.get("email") if kind != "email" else person.identifier
        if isinstance(email, str) and email:
            holders = client.customers_by_email(email)
            if len(holders) > 1:
                labels = "; ".join(_member_label(h) for h in holders)
                entry.add(Problem("duplicate", "email", 1, len(holders),
                                  f"{len(holders)} profiles share {email}: {labels}"))  # fmt: skip
        _check_events(client, person, entry, kind, last_events, windows, sent_keys, now)
    return report


def _check_events(
    client: AppApiClient,
    person: _Expected,
    entry: PersonReport,
    kind: str,
    last_events: int,
    windows: Mapping[str, int | None],
    sent_keys: set[tuple[str, str]] | None,
    now: float,
) -> None:
    wanted = []
    for timestamp, name, model, key in sorted(person.events, reverse=True):
        if sent_keys is not None and (model, key) not in sent_keys:
            continue
        limit = windows.get(model)
        if limit is not None and timestamp < now - limit:
            continue
        wanted.append((timestamp, name, model, key))
        if len(wanted) >= last_events:
            break
    by_name: dict[str, list[tuple[int, str, str]]] = {}
    for timestamp, name, model, key in wanted:
        by_name.setdefault(name, []).append((timestamp, model, key))
    for name, expected in by_name.items():
        activities = client.activities(person.identifier, kind, activity_type="event", name=name, limit=100) or []
        stamps = {a.get("timestamp") for a in activities if a.get("name") in (None, name)} - {None}
        seen = sorted((s for s in stamps if s is not None), reverse=True)
        for timestamp, model, key in expected:
            entry.events_checked += 1
            if timestamp not in seen:
                when = datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
                message = f"event {name} ({model} {key}) at {when} is not in the person's recent activity"
                entry.add(Problem("event", name, timestamp, seen[:5], message))


def report_json(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2, default=_json_default)
