"""`cio-export check`: what production's next sync would do with a build it has not synced yet (a
pull request's, built into a CI schema), judged before it is merged. Reads the build's artifacts,
the relations it built and the production state schema, read-only: no lease, no write, nothing
sent. Each selected synced model is judged by the rules a run judges it by (_decide.checks):
payload shape and identifier kind against what production last sent, known people given a new
identifier, suppressions and removals against their caps, the relation its state was made
syncing; and the synced models the build adds or no longer syncs are named."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .._decide import checks
from .._errors import ConfigError
from .._project.artifacts import Artifacts
from .._project.gates import gate
from .._project.model import IDENTIFY_KINDS, ModelSpec, SyncModel, check_identifier_kinds, node_meta, parse_duration
from .._read.dialects import dialect_for
from .._read.query import build_query, relation_columns
from .._read.reader import SnapshotReader
from .._read.rows import split_pair_key
from .._state import SYNCED_RUN_STATUSES, StateStore
from .history import iso_utc

# What a model is to production, as the build would have it
NEW, SYNCED, REMOVED, NOT_BUILT = "new", "synced", "removed", "not_built"


@dataclass(frozen=True)
class Finding:
    """One thing production's next run would do with the build: `blocks` when it would block the
    model (the message is the one that run would give), else what it would remove, within caps;
    `details`: the counts it is about (leaving, synced, suppressed) and the removal's action."""

    check: str  # build, meta_cio, relation, build_proof, identifier_kind, payload_shape, identifier_changes,
    # suppressions, removals
    blocks: bool
    message: str
    details: dict[str, int | str] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"check": self.check, "blocks": self.blocks, "message": self.message, **self.details}


@dataclass
class ModelCheck:
    """One model: new to production, synced by it, no longer synced (removed), or not built by
    the build (so unchanged by it, and not checked)."""

    model: str
    kind: str | None
    change: str
    relation: str | None = None  # the build's
    production_relation: str | None = None  # the one production's state was made syncing
    rows: int | None = None
    changed: int | None = None  # rows new or changed against production's state: what its next run reads
    last_synced_at: datetime | None = None
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def blocks(self) -> bool:
        return any(f.blocks for f in self.findings)

    @property
    def verdict(self) -> str:
        """blocks, removed, new, not built, or ok."""
        if self.blocks:
            return "blocks"
        return {REMOVED: "removed", NEW: "new", NOT_BUILT: "not built"}.get(self.change, "ok")

    def as_dict(self) -> dict:
        return {"model": self.model, "kind": self.kind, "verdict": self.verdict, "change": self.change,
                "relation": self.relation, "production_relation": self.production_relation, "rows": self.rows,
                "changed": self.changed, "last_synced_at": iso_utc(self.last_synced_at),
                "findings": [f.as_dict() for f in self.findings], "notes": self.notes}


@dataclass
class CheckReport:
    state_schema: str
    dbt_invocation_id: str
    production_artifacts: str | None  # --state: production's manifest, or None (the state says what it syncs)
    models: list[ModelCheck] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # what would stop production's whole run

    @property
    def exit_code(self) -> int:
        """1 when production's next run would block a model (or stop) or leave a synced model out."""
        return 1 if self.problems or any(m.blocks or m.change == REMOVED for m in self.models) else 0

    def as_dict(self) -> dict:
        def names(verdict: str) -> list[str]:
            return [m.model for m in self.models if m.verdict == verdict]

        return {"ok": self.exit_code == 0, "state_schema": self.state_schema,
                "dbt_invocation_id": self.dbt_invocation_id, "production_artifacts": self.production_artifacts,
                "would_block": names("blocks"), "removed": names("removed"), "new": names("new"),
                "not_built": names("not built"), "problems": self.problems,
                "models": [m.as_dict() for m in self.models]}


def synced_in_project(artifacts: Artifacts) -> dict[str, str]:
    """Every model of the manifest that has a meta.cio (meta.cio_overrides applied) not switched
    off: name -> why it is not synced ('' when it is)."""
    why: dict[str, str] = {}
    for node in (artifacts.manifest_dict.get("nodes") or {}).values():
        if node.get("resource_type") != "model":
            continue
        meta = node_meta(node)
        cio = {**(meta.get("cio") or {}), **(meta.get("cio_overrides") or {})} if isinstance(meta.get("cio"), dict) \
            else None
        if cio is None:
            why[node["name"]] = "it has no meta.cio"
        elif cio.get("enabled") is False:
            why[node["name"]] = "its meta.cio.enabled is false"
        else:
            why[node["name"]] = ""
    for versions in (artifacts.manifest_dict.get("disabled") or {}).values():
        for node in versions:
            if node.get("resource_type") == "model" and node.get("name") not in why:
                why[node["name"]] = "dbt disables it (enabled: false)"
    return why


@dataclass(frozen=True)
class Production:
    """Production's dbt artifacts (dbt's --state): its manifest, and the synced models its run
    selects there (meta.cio.enabled not false)."""

    artifacts: Artifacts
    specs: list[ModelSpec]

    def spec(self, name: str) -> ModelSpec | None:
        return next((spec for spec in self.specs if spec.name == name), None)


class BuildCheck:
    """Judges the selected synced models of a build (`specs`, selected as production's run selects)
    against the production state, on the build's warehouse connection (`adapter`), which reads
    both: the build's relations in its CI schema, the state in production's schema."""

    def __init__(self, state: StateStore, adapter: Any, artifacts: Artifacts, production: Production | None = None,
                 build_log_schema: str | None = None) -> None:
        self.state, self.adapter, self.artifacts, self.production = state, adapter, artifacts, production
        self.dialect = dialect_for(adapter)
        #: where the build wrote its build proofs (var cio_state_schema for its target); None: not required
        self.build_log_schema = build_log_schema

    def run(self, specs: list[ModelSpec], invalid: dict[str, str] | None = None,
            allow_mixed_identifiers: bool = False) -> CheckReport:
        """The report on `specs`, and on the selected models whose meta.cio is `invalid` (name ->
        the error), which would stop production's run before anything is sent."""
        production = self.production
        where = str(production.artifacts.target_path) if production and production.artifacts.target_path else None
        report = CheckReport(self.state.schema, self.artifacts.invocation_id, where)
        try:
            check_identifier_kinds(specs, allow_mixed_identifiers)
        except ConfigError as exc:
            report.problems.append(str(exc))
        report.models = [self.model(spec) for spec in specs]
        for name, error in (invalid or {}).items():
            item = ModelCheck(name, None, SYNCED if self._known(name, None) else NEW)
            item.findings.append(Finding("meta_cio", True, error))
            report.models.append(item)
        report.models += self.removed(self._production_models(), {spec.name for spec in specs} | set(invalid or ()))
        report.models.sort(key=lambda m: m.model)
        return report

    def _known(self, name: str, kind: str | None) -> bool:
        """Whether production's state has anything of the model (else its first run starts afresh)."""
        state = self.state
        if state.model_scope(name) is not None or state.payload_schema(name) is not None:
            return True
        return any(state.has_rows(name, events) for events in ((True, False) if kind is None else (kind == "event",)))

    # -- which models production syncs -------------------------------------------------------
    def _production_models(self) -> dict[str, str | None]:
        """Name -> kind (None: not known) of the models production syncs: those its manifest
        selects (--state), else those with state in its schema."""
        if self.production is not None:
            return {spec.name: spec.kind for spec in self.production.specs}
        names: set[str] = set()
        for table in ("cio_payload_schemas", "cio_model_scopes"):
            try:
                found = self.state.execute(f"select distinct model from {self.state.table(table)}")
                names.update(name for (name,) in found)
            except Exception:  # noqa: BLE001 - a schema from before cio_model_scopes (read-only: not migrated)
                self.state._rollback()
        return {name: ("event" if self.state.has_rows(name, True) else None) for name in sorted(names)}

    def removed(self, synced: dict[str, str | None], selected: set[str]) -> list[ModelCheck]:
        """Models production syncs that the build does not: its next run leaves them out."""
        why = synced_in_project(self.artifacts)
        gone = []
        for name, kind in synced.items():
            if name in selected:
                continue
            reason = why.get(name, "it is not in this build's project")
            if reason == "" and self.production is None:
                continue  # synced by the build's project, outside this selection: another job's
            item = ModelCheck(name, kind, REMOVED, last_synced_at=self._last_synced(name))
            scope = self.state.model_scope(name)
            item.production_relation = scope[0] if scope else None
            item.notes.append(
                f"production syncs it, this build does not: {reason or 'the selection does not select it'}. "
                "Production's next run leaves it out: what it sent stays in Customer.io, no longer updated (nothing "
                f"is deleted), and its state stays in {self.state.schema}.")
            gone.append(item)
        return gone

    def _last_synced(self, name: str) -> datetime | None:
        rows = self.state.execute(f"select max(finished_at) from {self.state.table('cio_runs')} where model = %s "
                                  f"and status in {SYNCED_RUN_STATUSES}", (name,))
        return rows[0][0] if rows else None

    # -- one model of the build --------------------------------------------------------------
    def model(self, spec: ModelSpec) -> ModelCheck:
        """A selected synced model of the build: new to production when its state has nothing of
        it (its first run starts afresh), else judged against that state."""
        scope = self.state.model_scope(spec.name)
        item = ModelCheck(spec.name, spec.kind, SYNCED if self._known(spec.name, spec.kind) else NEW)
        item.production_relation = scope[0] if scope else None
        if self.artifacts.result(spec.unique_id) is None:
            item.change = NOT_BUILT
            item.notes.append("not built by this build (unchanged by it, as with dbt's state:modified): not checked")
            return item
        verdict = gate(self.artifacts, spec.unique_id)
        if not verdict.passed:
            item.findings.append(Finding("build", True, f"the build's gate: {verdict.reason}"))
            return item
        try:
            model = spec.resolve(relation_columns(self.adapter, spec))
        except ConfigError as exc:
            item.findings.append(Finding("meta_cio", True, str(exc)))
            return item
        item.relation = self.adapter.Relation.create(database=spec.database, schema=spec.schema,
                                                     identifier=spec.alias).render()
        if item.production_relation is not None:
            self._relation(item, spec)
        with SnapshotReader(self.adapter) as reader:
            self._judge(item, model, reader)
        return item

    def _relation(self, item: ModelCheck, spec: ModelSpec) -> None:
        """The relation production's run would read: the one its state was made syncing unless the
        build renames the model's relation (its alias; with --state, also its configured schema or
        database). A run reading another relation blocks (_decide.checks.scope_problem)."""
        assert item.production_relation is not None
        recorded = _identifier_of(item.production_relation)
        moved = []
        if recorded.lower() != spec.alias.lower():
            moved.append(f"its relation is named {spec.alias}, not {recorded}")
        before = self.production.spec(spec.name) if self.production is not None else None
        if self.production is not None and before is not None:
            now = self.artifacts.node(spec.unique_id).get("config") or {}
            then = self.production.artifacts.node(before.unique_id).get("config") or {}
            moved += [f"its configured {key} changes from {then.get(key)} to {now.get(key)}"
                      for key in ("database", "schema") if now.get(key) != then.get(key)]
        if moved:
            item.findings.append(Finding("relation", True, (
                f"{'; '.join(moved)}: production's next run would read another relation than "
                f"{item.production_relation}, which its state in {self.state.schema} was made syncing, and block the "
                "model until --accept-relation-change (if it moved on purpose: same people, same workspace).")))

    def _judge(self, item: ModelCheck, model: SyncModel, reader: SnapshotReader) -> None:
        """The checks a run makes of the model (kinds of _run.kinds), each with the same rule."""
        state, dialect, relation = self.state, self.dialect, item.relation
        assert relation is not None
        if self.build_log_schema is not None:  # what is read must be what the build made (and proved)
            problem = checks.build_proof_problem(state, reader, model, relation, self.artifacts.invocation_id,
                                                 self.build_log_schema)
            if problem is not None:
                item.findings.append(Finding("build_proof", True, problem))
                return
        if model.kind in IDENTIFY_KINDS:  # attributes null in every row are left out, as a run does (and says)
            name = model.name
            model, _ = checks.without_unsupplied(reader, dialect, relation, model,
                                                 lambda note: item.notes.append(note.removeprefix(f"{name}: ")),
                                                 checks.device_fields(model))
        stored = state.payload_schema(model.name)
        problem = checks.payload_schema_problem(state, model, accept_schema_change=False)
        if problem is not None:
            kind_changed = stored is not None and stored[0] != model.spec.identifier_kind
            item.findings.append(Finding("identifier_kind" if kind_changed else "payload_shape", True, problem))
            if kind_changed:  # the state's keys are of another kind (and a reset forgets them): nothing to compare
                [(rows,)] = reader.query(f"select count(*) from {relation}")
                item.rows = int(rows)
                return
        if model.kind == "people":
            problem = checks.identifier_change_problem(state, reader, dialect, relation, model, None)
            if problem is not None:
                item.findings.append(Finding("identifier_changes", True, problem))
        first = not state.has_rows(model.name, model.is_event)
        query = build_query(model, dialect, relation, state=state.tables(), first=first, row_hash=state.row_hash)
        [(rows,)] = reader.query(f"select count(*) from {relation}")
        [(changed,)] = reader.query(f"select count(*) from ({query.sql}) q")
        item.rows, item.changed = int(rows), int(changed)
        if model.kind == "suppression":
            count, problem = checks.suppressions_problem(reader, query.sql, relation, model)
            if problem is not None:
                item.findings.append(Finding("suppressions", True, problem, {"suppressed": count}))
        if model.kind in IDENTIFY_KINDS and model.spec.option("on_delete") != "ignore" and not first:
            self._departures(item, model, reader, query.source_sql)
        if item.change == NEW:
            item.notes.append(self._first_sync(model, reader, query.source_sql, item))

    def _departures(self, item: ModelCheck, model: SyncModel, reader: SnapshotReader, source_sql: str) -> None:
        """What production synced that leaves the model with the build: removed by its next run
        within max_deletes, none of it beyond."""
        departed = self.state.departed_people_sql(model.name, source_sql)
        [(leaving,)] = reader.query(f"select count(*) from ({departed}) d")
        if not leaving:
            return
        synced = self.state.count_people(model.name)
        found = reader.query(f"select d.person_key, d.identifier from ({departed}) d order by 1 limit 5")
        shown = ", ".join(repr(f"{ident} / {split_pair_key(key)[1]}" if model.pair_column is not None else ident)
                          for key, ident in found)
        action = model.spec.option("on_delete")
        details: dict[str, int | str] = {"leaving": int(leaving), "synced": int(synced), "action": action}
        problem = checks.departures_problem(model, int(leaving), int(synced))
        if problem is not None:
            item.findings.append(Finding("removals", True, f"{problem} Examples: {shown}.", details))
            return
        cap = model.spec.meta.get("max_deletes")
        item.findings.append(Finding("removals", False, (
            f"{leaving} of {synced} synced {checks.DEPARTED_NOUNS[model.kind]} leave the model: production's next run "
            f"would {action} them{f' (within max_deletes, {cap})' if cap is not None else ''}. Examples: {shown}."),
            details))

    def _first_sync(self, model: SyncModel, reader: SnapshotReader, source_sql: str, item: ModelCheck) -> str:
        """What a new model's first production run would do."""
        if not model.is_event:
            verb, noun = _FIRST_SYNC[model.kind]
            return f"new to production: its first run would {verb} all {item.changed} {noun} of it"
        window = model.spec.option("initial_window")
        cutoff = int(time.time()) - parse_duration(window)
        [(older,)] = reader.query(f"select count(*) from ({source_sql}) s where s.__ts < {cutoff}")
        return (f"new to production: its first run would record {older} events older than initial_window ({window}) "
                f"as history, never sent, and send the other {int(item.changed or 0) - int(older)}")


#: What a new model's first run does with each of its rows, by kind
_FIRST_SYNC = {"people": ("identify", "people"), "object": ("identify", "objects"),
               "relationship": ("add", "relationships"), "device": ("add", "devices"),
               "suppression": ("suppress", "people")}

_PART = re.compile(r'"((?:[^"]|"")*)"|([^."]+)')


def _identifier_of(relation: str) -> str:
    """The last part of a rendered relation name (`"db"."schema"."name"` -> name)."""
    parts = [quoted.replace('""', '"') if quoted else bare for quoted, bare in _PART.findall(relation)]
    return parts[-1] if parts else relation
