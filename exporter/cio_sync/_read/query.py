"""A model's query: one SELECT that computes in SQL what SQL computes best (Unix seconds,
event-id hashes, numbers as doubles, row hashes), its head in the named layout of rows, and
the diff against the state (only rows new or changed since the last acknowledged sync)."""

from __future__ import annotations

from dataclasses import dataclass

from .._project.model import DATE, NUMBER, TIMESTAMP, Column, SyncModel
from .._sql import literal
from .dialects import Dialect
from .rows import EVENT_HEAD, PERSON_HEAD


def id_hash_input(dialect: Dialect, name: str, key: str) -> str:
    """The text an event's id hash is the md5 of: the name's length, `:`, the name, `|`, the key.
    The length makes it unambiguous: name `a` with key `b|c` and name `a|b` with key `c` differ."""
    return f"{dialect.text(dialect.length(name))} || ':' || {name} || '|' || {key}"


def pair_key(dialect: Dialect, identifier: str, object_id: str) -> str:
    """A relationship's key: the person's identifier and the object id, unambiguous as an
    event's id hash input is (`<length of the identifier>:<identifier>|<object id>`, see
    split_pair_key); null when either is."""
    return id_hash_input(dialect, identifier, object_id)


def identifier_sql(model: SyncModel, dialect: Dialect) -> str:
    """A row's identifier (a person's, an object's id) as the model's query selects it, as text."""
    return dialect.text(dialect.quote(model.identifier.name))


def key_sql(model: SyncModel, dialect: Dialect) -> str:
    """A row's key as the model's query selects it and the state records it, as text: an event's
    event id, a relationship's or a device's pair (the person and the object or token), else the
    key column (the identifier unless meta.cio.key_column)."""
    q = dialect.quote
    if model.is_event:
        return dialect.text(q(model.event_key_column.name))
    if model.pair_column is not None:
        return pair_key(dialect, identifier_sql(model, dialect), dialect.text(q(model.pair_column.name)))
    return dialect.text(q(model.key_column.name))


def only_rows(model: SyncModel, dialect: Dialect, *, key: str | None = None, person: str | None = None) -> str:
    """The condition on the relation's rows that keeps those of one key (as key_sql makes it) or
    of one person (their identifier, as the model's identifier column holds it): a preview's
    filter, pushed into the model's query so the warehouse reads no other row to the exporter."""
    if key is not None:
        return f"{key_sql(model, dialect)} = {literal(key)}"
    assert person is not None, "a key or a person"
    return f"{identifier_sql(model, dialect)} = {literal(person)}"


@dataclass(frozen=True)
class ModelQuery:
    """The SELECT for a model: its rows are the head of rows (PERSON_HEAD or EVENT_HEAD), then
    one value per attribute. Timestamps are already Unix seconds and numbers doubles; the row
    hash covers exactly what is sent, so it changes exactly when the payload would."""

    sql: str
    n_head: int
    source_sql: str  # the hashed rows of the model (a subquery), for set-based state writes


@dataclass(frozen=True)
class StateTables:
    people: str
    ledger: str
    rejects: str


def _hashed_source(model: SyncModel, dialect: Dialect, relation: str, where: str | None,
                   fence: bool = False, row_hash: str = "md5", key_rows: bool = False) -> tuple[str, list[str]]:
    q = dialect.quote

    def value(column: Column) -> str:
        expr = q(column.name)
        if column.kind in (TIMESTAMP, DATE):
            return dialect.unix_seconds(expr)
        if column.kind == NUMBER:
            return dialect.double(expr, column.dtype)
        return expr

    head = {"__ident": identifier_sql(model, dialect)}
    if model.is_event:
        event_key = key_sql(model, dialect)
        ts = q(model.time_column.name)
        name = (dialect.text(q(model.event_name_column.name)) if model.event_name_column
                else literal(model.event_name))
        head.update({
            "__key": event_key,
            "__ts": dialect.unix_seconds(ts),
            "__ms": dialect.epoch_ms(ts),
            "__idhash": dialect.md5(id_hash_input(dialect, name, event_key)),
            "__name": name,
        })
        if key_rows:  # rows of the model (of this shard: shards split by key) sharing the event key
            head["__keyrows"] = f"count(*) over (partition by {event_key})"
    else:
        head["__key"] = key_sql(model, dialect)
    attrs = {f"a{i}": value(c) for i, c in enumerate(model.attributes)}
    inner = ",\n        ".join(f"{expr} as {alias}" for alias, expr in {**head, **attrs}.items())
    sql = f"select\n        {inner}\n    from {relation}" + (f"\n    where {where}" if where else "")
    hashed = [("__ident", "text")] + ([("__ts", TIMESTAMP), ("__name", "text")] if model.is_event else [])
    parts = hashed + [(alias, model.attributes[i].kind) for i, alias in enumerate(attrs)]
    names = list(head) + list(attrs)
    source = (f"select m.*, {dialect.row_hash(parts, row_hash)} as __hash from (\n    {sql}\n) m"
              f"{dialect.fence if fence else ''}")
    return source, names


def build_query(model: SyncModel, dialect: Dialect, relation: str, *, where: str | None = None,  # noqa: PLR0913 - keyword-only switches of the diff, each documented below
                state: StateTables | None = None, full_refresh: bool = False,
                retry_rejects: bool = False, first: bool = False, row_hash: str = "md5",
                key_checked: bool = True, people_models: tuple[tuple[str, bool], ...] = ()) -> ModelQuery:
    """The model's SELECT: with `state`, only what changed since the last acknowledged sync
    (an anti-join in the warehouse; previous state is never loaded into memory). `first`: most
    rows are expected to be sent (nothing in state yet, or a full refresh). `row_hash`: how the
    state's hashes were made (one of ROW_HASHES). `people_models`: for an event model, the
    people models (name, whether its key is the identifier) whose acknowledged identifies an
    event's person must be among (the last head column says whether it is; true when there
    are none)."""
    source, names = _hashed_source(model, dialect, relation, where, fence=first, row_hash=row_hash,
                                   key_rows=model.is_event and not key_checked)
    attrs = [n for n in names if n.startswith("a") and n[1:].isdigit()]
    lit = literal(model.name)
    if model.is_event:
        head = {"identifier": "h.__ident", "key": "h.__key", "time": "h.__ts", "time_ms": "h.__ms",
                "id_hash": "h.__idhash", "name": "h.__name", "row_hash": "h.__hash"}
        if state is None:
            head.update(ledger_status="cast(null as varchar(16))", first_attempt="cast(null as bigint)",
                        sent_event_id="cast(null as varchar(26))")
            joins, conditions = "", []
        else:
            # l.event_id: the id an event already went out with (pending, or rejected and
            # retried); a resend uses it, whatever has changed in the row since. A pending event
            # recorded without its id (in flight under cio-export before state version 4) went
            # out with the id hash of then: md5(name | key).
            legacy = dialect.md5("h.__name || '|' || h.__key")
            head["id_hash"] = f"case when l.status = 'pending' and l.event_id is null then {legacy} else h.__idhash end"
            head.update(ledger_status="l.status", first_attempt=dialect.unix_seconds("l.first_attempt_at"),
                        sent_event_id="l.event_id")
            joins = f"\nleft join {state.ledger} l on l.model = {lit} and l.event_key = h.__key"
            # A key rejected as shared by several rows is looked at again every run: once its
            # other rows are gone, the one left goes out whatever its hash.
            rejected_retry = "true" if retry_rejects else ("(l.row_hash <> h.__hash or l.reason like 'transient:%'"
                                                           " or l.reason = 'duplicate_event_key')")
            conditions = [f"(l.event_key is null or l.status = 'pending'"
                          f" or (l.status = 'rejected' and {rejected_retry}))"]
        # How many rows of the model share the event key: a model whose key no passing test
        # proves unique pays a sort (see _hashed_source), a tested one nothing.
        head["key_rows"] = "1" if key_checked else "h.__keyrows"
        if state is not None and people_models:
            # Whether Customer.io has acknowledged an identify of the event's person (any of the
            # project's people models): an event of a person it has never identified waits. A
            # model keyed by its identifier is probed by its primary key (work per diff row);
            # the identifiers of the others (a key_column, or not known here) are collected.
            known = []
            for i, (name, keyed) in enumerate(people_models):
                if keyed:
                    joins += (f"\nleft join {state.people} p{i} on p{i}.model = {literal(name)}"
                              f" and p{i}.person_key = h.__ident")
                    known.append(f"p{i}.person_key is not null")
            others = ", ".join(literal(name) for name, keyed in people_models if not keyed)
            if others:
                joins += (f"\nleft join (select distinct identifier from {state.people} where model in ({others})) po"
                          " on po.identifier = h.__ident")
                known.append("po.identifier is not null")
            head["person_known"] = "(" + " or ".join(known) + ")"
        else:
            head["person_known"] = "true"
        layout: tuple[str, ...] = EVENT_HEAD
    else:
        head = {"identifier": "h.__ident", "key": "h.__key", "row_hash": "h.__hash"}
        if state is None:
            head.update(previous_hash="cast(null as varchar(32))", previous_identifier="cast(null as varchar(1024))")
            joins, conditions = "", []
        else:
            head.update(previous_hash="s.row_hash", previous_identifier="s.identifier")
            joins = f"\nleft join {state.people} s on s.model = {lit} and s.person_key = h.__key"
            conditions = [] if full_refresh else ["(s.person_key is null or s.row_hash <> h.__hash)"]
            if not retry_rejects and not full_refresh:
                conditions.append(
                    f"not exists (select 1 from {state.rejects} r where r.model = {lit} and r.row_key = h.__key"
                    " and r.row_hash = h.__hash and r.resolved_at is null and not r.transient)")
        layout = PERSON_HEAD
    # The head in the order of its layout (rows), which every reader of the row indexes by.
    columns = [head[name] for name in layout]
    # Every output column named (c0, c1, ...): rows are read by position, and a rerun's diff may
    # be kept in a temporary table (see SnapshotReader.stream), which needs distinct names.
    outputs = ", ".join(f"{c} as c{i}" for i, c in enumerate(columns + ["h." + a for a in attrs]))
    sql = (f"select\n    {outputs}\nfrom (\n{source}\n) h{joins}"
           + (f"\nwhere {' and '.join(conditions)}" if conditions else ""))
    return ModelQuery(sql=sql, n_head=len(columns), source_sql=source)


def relation_columns(adapter, spec) -> list[Column]:
    """The built relation's columns, classified."""
    from .._project.model import column_kind

    relation = adapter.Relation.create(database=spec.database, schema=spec.schema, identifier=spec.alias)
    return [Column(c.name, column_kind(c.dtype), c.dtype) for c in adapter.get_columns_in_relation(relation)]
