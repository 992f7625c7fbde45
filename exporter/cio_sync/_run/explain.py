"""`cio-export explain MODEL KEY`: everything about one row of a synced model, found by the run's
own code. The explanation is a dry run (an Exporter) in which the model reads only that key's rows,
through a filter pushed into its query, and, for an event, the selection's people models first
read only its person's rows, as a run syncs them before the events: what it would send, reject,
hold back, leave waiting or skip is what the next run does to that row (_run.verdict says it in a
sentence). Beside it: the row as the model has it, and what the state holds of its key (with the
row's hash now). Read only: no state is written and nothing is sent."""

from __future__ import annotations

import dataclasses
import io
import time
from dataclasses import dataclass
from datetime import date, datetime
from datetime import time as time_of_day
from decimal import Decimal
from typing import Any

import orjson

from .._encode import Encoder, Reject
from .._errors import ConfigError
from .._output import Reporter
from .._project.artifacts import Artifacts
from .._project.hints import no_such_model
from .._project.model import ModelSpec, SyncModel
from .._read.dialects import dialect_for
from .._read.query import build_query, identifier_sql, key_sql, only_rows, relation_columns
from .._read.reader import SnapshotReader
from .._state import StateStore
from .._state.row_state import RowState, row_state
from .options import RunOptions
from .results import ModelResult
from .runner import Exporter
from .verdict import Findings, Verdict, verdict

#: rows of the model shown for one key (more share it only when the key is not unique)
MAX_ROWS = 10


@dataclass(frozen=True)
class Explanation:
    """One row of a model: the row, what the next run sends of it, its state, and why."""

    model: str
    kind: str
    key: str
    key_column: str
    relation: str
    columns: tuple[str, ...]
    rows: tuple[tuple, ...]  # the model's rows with the key (at most MAX_ROWS)
    items: tuple[dict, ...]  # what the next run sends for the key
    state: RowState
    row_hash: str | None  # the row's hash now, as the run computes it
    person: str | None  # an event's person, whose rows of `people` were synced first
    people: tuple[str, ...]
    verdict: Verdict

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "kind": self.kind, "key": self.key, "key_column": self.key_column,
            "relation": self.relation,
            "rows": [{column: plain(value) for column, value in zip(self.columns, row, strict=True)}
                     for row in self.rows],
            "items": list(self.items), "state": {**self.state.as_dict(), "row_hash_now": self.row_hash},
            "person": self.person, "people_models": list(self.people),
            "will_send": self.verdict.will_send, "reason": self.verdict.reason, "verdict": self.verdict.sentence,
        }


def plain(value: Any) -> Any:
    """A warehouse value as JSON shows it: times and dates in ISO 8601, exact numbers as text."""
    if isinstance(value, (datetime, date, time_of_day)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if value is None or isinstance(value, (str, int, float, bool, list, dict)):
        return value
    return str(value)


class Explainer(Exporter):
    """A dry run of one key of one model (RunOptions.key), and of its person's rows of the
    selection's people models before it when it is an event (RunOptions.person)."""

    def __init__(self, options: RunOptions, model: str, key: str) -> None:
        options = dataclasses.replace(options, select=(*options.select, model), dry_run=True, outbox=None, track=None,
                                      key=(model, key), person=None)
        # The run's own log lines are not the explanation: they go nowhere.
        super().__init__(options, Reporter(progress=False, quiet=True, stream=io.StringIO()))
        self.model_name, self.key = model, key
        self.spec: ModelSpec | None = None
        self.result: ModelResult | None = None  # the model's, filled in by its sync
        self.model: SyncModel | None = None
        self.relation = ""
        self.columns: tuple[str, ...] = ()
        self.rows: tuple[tuple, ...] = ()
        self.state: RowState | None = None
        self.people: tuple[str, ...] = ()
        self.row_hash: str | None = None
        self.checked: Reject | None = None
        self.rechecked = False

    def explain(self) -> Explanation:
        summary = self.run()
        assert self.result is not None and self.model is not None and self.state is not None
        items = tuple(orjson.loads(item) for item in self.result.preview or ())
        people = [r for r in summary.results if r.model in self.people]
        findings = Findings(model=self.model, key=self.key, in_model=bool(self.rows), result=self.result,
                            state=self.state, items=items, person=self.options.person, people=people,
                            waits_for=self.waits_for.get(self.model.name, ()), row_hash=self.row_hash,
                            checked=self.checked, rechecked=self.rechecked)
        key_column = self.model.event_key_column if self.model.is_event else self.model.key_column
        return Explanation(self.model.name, self.model.kind, self.key, key_column.name, self.relation, self.columns,
                           self.rows, items, self.state, self.row_hash, self.options.person, self.people,
                           verdict(findings))

    # -- the run's plan: the model, and an event's people models --------------------------------
    def plan(self, artifacts: Artifacts) -> tuple[list[ModelSpec], list[ModelResult]]:
        self.spec = _synced_model(artifacts, self.model_name)
        specs, results = super().plan(artifacts)
        self.result = next((r for r in results if r.unique_id == self.spec.unique_id), None)
        if self.result is None:
            raise ConfigError(f"{self.model_name} is not among the models the selection (--select, --exclude, "
                              "--selector) syncs: explain answers for a run that syncs it")
        wanted = {self.spec.unique_id} | ({r.unique_id for r in results if r.kind == "people"}
                                          if self.spec.kind == "event" else set())
        return [s for s in specs if s.unique_id in wanted], [r for r in results if r.unique_id in wanted]

    # -- around the models' syncs --------------------------------------------------------------
    def before_models(self, adapter, state: StateStore, models: list[SyncModel]) -> list[SyncModel]:
        """The key's rows as the model has them and what the state holds of it (neither: the key
        is unknown); an event's person, whose rows its people models read."""
        spec = self.spec
        assert spec is not None
        columns = relation_columns(adapter, spec)
        model = next((m for m in models if m.name == spec.name), None) or spec.resolve(columns)
        dialect, q = dialect_for(adapter), dialect_for(adapter).quote
        self.model, self.columns = model, tuple(c.name for c in columns)
        self.relation = adapter.Relation.create(database=spec.database, schema=spec.schema,
                                                identifier=spec.alias).render()
        with SnapshotReader(adapter) as reader:
            found = reader.query(f"select {identifier_sql(model, dialect)}, {', '.join(q(c) for c in self.columns)} "
                                 f"from {self.relation} where {only_rows(model, dialect, key=self.key)} "
                                 f"limit {MAX_ROWS}")
            self.rows = tuple(tuple(row[1:]) for row in found)
            self.state = row_state(state, model.name, self.key, model.is_event)
            if not found and self.state.empty:
                examples = [key for (key,) in reader.query(f"select {key_sql(model, dialect)} from {self.relation} "
                                                           f"where {key_sql(model, dialect)} is not null limit 3")]
                raise ConfigError(_unknown_key(model, self.key, self.relation, state.schema, examples))
        if not any(m.name == model.name for m in models):
            return []  # blocked before its sync (a gate): nothing to sync for it
        if model.is_event:
            self.options.person = next((str(row[0]) for row in found if row[0] is not None), None)
        if self.options.person is not None:
            self.people = tuple(m.name for m in models if m.kind == "people")
        return [m for m in models if m.name == model.name or m.name in self.people]

    def after_models(self, adapter, state: StateStore, models: list[SyncModel]) -> None:
        """The row's hash now, of the model as the run synced it (a people model without its
        attributes null in every row); and, when an open reject keeps an unchanged row out, what
        cio-export's own checks say of it now (the encoder's answer: if it passes, it was
        Customer.io that refused it)."""
        assert self.model is not None and self.result is not None and self.state is not None
        if not self.rows or not any(m.name == self.model.name for m in models):
            return
        model = self.model.without(self.result.unsupplied) if self.result.unsupplied else self.model
        dialect = dialect_for(adapter)
        where = only_rows(model, dialect, key=self.key)
        with SnapshotReader(adapter) as reader:
            source = build_query(model, dialect, self.relation, where=where, row_hash=state.row_hash).source_sql
            hashes = reader.query(f"select __hash from ({source}) h")
            self.row_hash = hashes[0][0] if hashes else None
            if model.is_event or self.result.preview or not any(not r.transient for r in self.state.open_rejects):
                return
            query = build_query(model, dialect, self.relation, where=where, row_hash=state.row_hash,
                                state=state.tables() if state.available else None, full_refresh=True,
                                retry_rejects=True)
            rows = reader.query(query.sql)
        if rows:
            encoded = Encoder(model, int(time.time()), query.n_head).encode(rows[0])
            self.checked, self.rechecked = (encoded if isinstance(encoded, Reject) else None), True


def _synced_model(artifacts: Artifacts, name: str) -> ModelSpec:
    """The model of that name with meta.cio; else an error naming the closest."""
    for node in (artifacts.manifest_dict.get("nodes") or {}).values():
        if node.get("resource_type") == "model" and node.get("name") == name:
            spec = ModelSpec.from_node(node)
            if spec is None:
                break
            if spec.meta.get("enabled") is False:
                raise ConfigError(f"{name}: meta.cio.enabled is false: it is not synced, so no run sends its rows")
            return spec
    raise ConfigError(no_such_model(name, artifacts))


def _unknown_key(model: SyncModel, key: str, relation: str, schema: str, examples: list[str]) -> str:
    if model.is_event:
        what = f"column {model.event_key_column.name}, the event id"
    elif model.pair_column is not None:
        what = (f"the pair of {model.identifier.name} and {model.pair_column.name}, written "
                "<length of the identifier>:<identifier>|<" + model.pair_column.name + ">")
    else:
        what = f"column {model.key_column.name}"
    shown = f" (keys look like {', '.join(repr(e) for e in examples)})" if examples else ""
    return (f"{model.name} has no row with key {key!r} ({what}) in {relation}, and its state in {schema} holds "
            f"nothing of it: check the key{shown}")
