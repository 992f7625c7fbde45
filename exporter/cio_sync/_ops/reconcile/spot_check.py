"""`spot-check`: a random sample of people of a people model, the mart row (encoded exactly as
`cio-export` sends it) against the person's attributes in Customer.io, their latest events
against the person's recent activity, and duplicate profiles for one email."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson

from ..._encode import Encoder, Reject
from ..._errors import ConfigError
from ..._project.artifacts import (
    DEFAULT_STATE_SCHEMA,
    STATE_SCHEMA_NAME,
    Artifacts,
    DbtContext,
    close_adapter,
    open_adapter,
)
from ..._project.model import ModelSpec, SyncModel, parse_duration
from ..._read.dialects import dialect_for
from ..._sql import literal
from ..app_api import AppApiClient
from .common import EVENT_LEDGER, run_query
from .segments import _member_label


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
        if not dialect_for(adapter).embedded:
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
    from ..._read.query import build_query, relation_columns

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
            absent = [n for n, v in zip(model.attribute_names, values, strict=True)
                      if v is None and _profile_attribute(n)]
        item = encoder.encode(row)
        if isinstance(item, Reject):
            expected[identifier] = _Expected(identifier, {}, [], reject=item)
            continue
        sent = orjson.loads(item.data).get("attributes") or {}
        expected[identifier] = _Expected(
            identifier, {k: v for k, v in sent.items() if v is not None and _profile_attribute(k)}, absent)

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


def _no_profile(entry: PersonReport, update_only: bool) -> None:
    """A sampled person Customer.io has no profile for: a problem, except for an update-only
    model, which never creates one."""
    if update_only:
        entry.status = "not_sent"
        entry.note = "update-only model (meta.cio.create: false): Customer.io has no profile to update"
    else:
        entry.add(Problem("profile", None, "a profile", None, f"no profile for {entry.kind} {entry.identifier}"))


def _profile_attribute(name: str) -> bool:
    """Whether a sent attribute is one the profile shows as such: not the update-only flag, nor a
    subscription preference (meta.cio.topics), which Customer.io keeps apart."""
    return name != "_update" and not name.startswith("cio_subscription_preferences.")


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
    if not STATE_SCHEMA_NAME.match(state_schema):
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
            _no_profile(entry, model.update_only)
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
