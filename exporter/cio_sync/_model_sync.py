"""One model's sync within a run: its lease and checks, then read → decide → encode → batch →
send, with the state it produces. Rows flow one way: the snapshot reader yields chunks, each row
is decided (_decide), encoded (_encode) and packed (_batch); a closed batch of events waits until
its keys are committed as in flight, then goes to the sink; answers are recorded by the run's
OutcomeRecorder."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

import orjson

from . import _checks, _decide
from ._batch import BatchPacker
from ._dbt import Artifacts
from ._decide import EventRules
from ._encode import Encoder, Item, Reject, state_key
from ._model import ModelSpec, SyncModel, parse_duration
from ._outcomes import Departure, OutcomeRecorder
from ._output import Reporter
from ._results import ModelResult
from ._rows import (
    E_HASH,
    E_KEY,
    E_KEY_ROWS,
    E_TIME,
    P_HASH,
    P_IDENTIFIER,
    P_PREVIOUS_IDENTIFIER,
    LedgerRow,
    RejectRow,
)
from ._run_options import RunOptions
from ._sinks import Sink
from ._state import StateStore, utcnow
from ._transport import Batch
from ._warehouse import Dialect, ModelQuery, SnapshotReader, build_query, dialect_for

_DATA = attrgetter("data")
_ROW_KEY = attrgetter("row_key")
_EVENT_ID = attrgetter("event_id")


@dataclass
class RunContext:
    """What the model syncs of one run share."""

    options: RunOptions
    reporter: Reporter
    state: StateStore
    sink: Sink
    record: OutcomeRecorder  # records the sink's outcomes
    run_id: str
    lease_holder: str  # who holds this run's leases: run, host, process
    people_specs: list[ModelSpec]  # the project's people models, selected or not
    trim: Callable[[], None]  # gives freed memory back (at most once a second)
    waits_for: dict[str, list[str]]  # event model -> the people models its events wait for

    @property
    def rejected_people(self) -> set[str]:
        return self.record.rejected_people

    @property
    def merges(self) -> dict:
        return self.record.merges


class ModelSync:
    #: batches kept waiting for their state write before the producer waits for it
    MAX_GATED = 8

    def __init__(self, run: RunContext, adapter: Any, artifacts: Artifacts, model: SyncModel, snapshot: int,
                 result: ModelResult) -> None:
        self.run, self.state, self.options = run, run.state, run.options
        self.adapter, self.artifacts, self.model, self.snapshot, self.result = (
            adapter, artifacts, model, snapshot, result)
        self.dialect: Dialect = dialect_for(adapter)
        self.relation: str = adapter.Relation.create(database=model.spec.database, schema=model.spec.schema,
                                                     identifier=model.spec.alias).render()
        self.tick: Callable[[], None] | None = None  # the lease heartbeat while the sink makes us wait
        # The keys of a batch of events are recorded in flight (committed) before the request
        # that carries it: a closed batch waits in `gated` until that write has committed, while
        # the next rows are read and encoded (the write runs on the state store's writer thread).
        self.gated: list[tuple[int, Batch]] = []
        self.packer = BatchPacker(self.options.batch_bytes)
        self.encoder: Encoder | None = None  # set with the model's query
        self.renamer: Encoder | None = None  # backfill: rename

    # -- the model's lifetime in the run ----------------------------------------------------
    def run_model(self) -> SyncModel:
        """Under the model's lease: checks, the sync, every answer recorded and committed.
        Returns the model as synced (a people model without its unsupplied attributes)."""
        opts, state, result, model = self.options, self.state, self.result, self.model
        shard = opts.shard_label
        if not state.acquire_lease(model.name, shard, self.run.lease_holder, opts.lease_ttl):
            return self._blocked(f"another cio-export run holds the lease on {model.name} (shard {shard}); "
                                 "skipped (a killed run's lease is freed at once on PostgreSQL, after --lease-ttl "
                                 "elsewhere).", status="locked")
        try:
            site_id = opts.track.site_id if opts.track is not None else None
            # (a people model's payload shape is checked in its read's snapshot: see _people_checks)
            problem = _checks.scope_problem(state, model, site_id, opts.accept_relation_change,
                                            self.run.reporter.note) or (
                _checks.payload_schema_problem(state, model, opts.accept_schema_change) if model.is_event else None)
            if problem:
                return self._blocked(problem)
            state.run_started(self.run.run_id, model.name, shard, self.artifacts.invocation_id)
            if model.is_event and (recovered := state.recover_inflight(model.name, shard)):
                self.run.reporter.note(f"{model.name}: {recovered} events were in flight when an earlier run "
                                       "stopped: recorded as pending (resent with their ids within dedupe_window)")
            # While the sender makes it wait (every slot taken, the last answers awaited: slow
            # responses and retries can outlast a lease), the lease is kept alive.
            self.tick = lambda: state.heartbeat_if_due(model.name, shard, self.run.lease_holder, opts.lease_ttl)
            synced = self._sync()
            # The model's own tail: every batch answered, the state it produced committed.
            self.run.record(self.run.sink.drain(tick=self.tick))
            result.timing["last_ack_at"] = time.time()
            state.flush(force=True)
            state.sync()
            result.finished_at = result.timing["committed_at"] = time.time()
            if result.status == "pending" and not opts.dry_run:
                state.save_payload_schema(synced.name, synced.spec.identifier_kind, synced.payload_schema())
            return synced
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the run log says so, the lease goes below
            state.abandon_open_work()
            state.run_finished(self.run.run_id, model.name, status="stopped", scanned=result.rows_scanned,
                               sent=result.items_accepted, message="stopped by a signal")
            raise
        finally:
            self.tick = None
            state.release_lease(model.name, shard, self.run.lease_holder)

    def _blocked(self, message: str, status: str = "blocked") -> SyncModel:
        self.result.status, self.result.message = status, message
        self.run.reporter.blocked(self.result)
        return self.model

    # -- the sync -----------------------------------------------------------------------------
    def _sync(self) -> SyncModel:
        opts, state, model, result = self.options, self.state, self.model, self.result
        result.started_at = time.time()
        first = opts.full_refresh or not (state.available and state.has_rows(model.name, model.is_event))
        # An event model's query is set now (a first sync's baseline uses it before the read); a
        # people model's in the read's snapshot, once its unsupplied attributes are known.
        query = self._query(model, first) if model.is_event else None
        with SnapshotReader(self.adapter, opts.fetch_rows) as reader:  # before anything is recorded
            if (problem := self._build_proof_problem(reader)) is not None:
                return self._blocked(problem)
        rules = self._event_rules(query) if query is not None else None
        progress = self.run.reporter.model_started(model)
        departed = None
        with SnapshotReader(self.adapter, opts.fetch_rows) as reader:
            if (problem := self._build_proof_problem(reader)) is not None:
                return self._blocked(problem)
            if query is None:
                model, problem = self._people_checks(reader)
                if problem:
                    return self._blocked(problem)
                self.model = model
                query = self._query(model, first)
            self._stream(reader, query, rules, first, progress)
            result.timing["last_row_at"] = time.time()
            result.timing.setdefault("first_row_at", result.timing["last_row_at"])  # no rows
            if not model.is_event and model.spec.option("on_delete") != "ignore" and state.available:
                # Who left the model: from the snapshot its rows were read in (the checked build).
                departed = reader.query(state.departed_people_sql(model.name, query.source_sql, self._shard_filter()))
        last = self.packer.flush()
        if last is not None:
            self._gate([last])
        self._release(everything=True)
        self.run.record(self.run.sink.poll())
        if departed:
            self._deletions(departed)
        progress(result)
        return model

    def _query(self, model: SyncModel, first: bool) -> ModelQuery:
        opts, state, dialect = self.options, self.state, self.dialect
        where = None
        if opts.shard is not None:
            index, count = opts.shard
            key_column = model.event_key_column if model.is_event else model.key_column
            where = f"{dialect.shard(dialect.text(dialect.quote(key_column.name)), count)} = {index}"
        key_checked = not model.is_event or self.artifacts.column_tested_unique(model.spec.unique_id,
                                                                                model.event_key_column.name)
        query = build_query(model, dialect, self.relation, where=where,
                            state=state.tables() if state.available else None, full_refresh=opts.full_refresh,
                            retry_rejects=opts.retry_rejects, first=first, row_hash=state.row_hash,
                            key_checked=key_checked, people_models=self._people_models_for(model))
        self.encoder = Encoder(model, self.snapshot, query.n_head)
        return query

    def _event_rules(self, query: ModelQuery) -> EventRules:
        """The event model's rules; a first sync records the existing events as history
        (baseline), never sent, except those newer than initial_window (a dry run only counts
        them)."""
        opts, state, model = self.options, self.state, self.model
        backfill = model.spec.option("backfill")
        if backfill == "rename":
            self.renamer = Encoder(model, self.snapshot, query.n_head)
            self.renamer.rename = {model.event_name: f"{model.event_name}_backfill"} if model.event_name else {}
        baseline_cutoff = None
        if not (state.available and state.has_history(model.name)):
            cutoff = self.snapshot - parse_duration(model.spec.option("initial_window"))
            if state.writable:
                proof = None
                if opts.require_build_proof:
                    schema = model.spec.meta.get("build_log_schema") or opts.build_log_schema
                    proof = (state.build_proof_sql(model.spec.unique_id, self.relation, schema),
                             self.artifacts.invocation_id)
                self.result.skipped += state.record_baseline(model.name, query.source_sql, cutoff, self.run.run_id,
                                                             proof)
            else:
                baseline_cutoff = cutoff
        return EventRules(snapshot=self.snapshot, dedupe_window=parse_duration(model.spec.option("dedupe_window")),
                          max_age=parse_duration(model.spec.option("max_event_age")), backfill=backfill,
                          baseline_cutoff=baseline_cutoff)

    def _build_proof_problem(self, reader: SnapshotReader) -> str | None:
        if not self.options.require_build_proof:
            return None
        return _checks.build_proof_problem(self.state, reader, self.model, self.relation,
                                           self.artifacts.invocation_id, self.options.build_log_schema)

    def _people_checks(self, reader: SnapshotReader) -> tuple[SyncModel, str | None]:
        """In the snapshot a people model's rows are read in (so that what is decided is what is
        sent): the model without its unsupplied attributes, and what blocks it, if anything."""
        opts, state = self.options, self.state
        model = _checks.without_unsupplied(reader, self.dialect, self.relation, self.model, self.result,
                                           self.run.reporter.note)
        problem = _checks.payload_schema_problem(state, model, opts.accept_schema_change)
        if problem is None and not opts.accept_identifier_changes:
            problem = _checks.identifier_change_problem(state, reader, self.dialect, self.relation, model, opts.shard)
        return model, problem

    # -- rows ---------------------------------------------------------------------------------
    def _stream(self, reader: SnapshotReader, query: ModelQuery, rules: EventRules | None, first: bool,
                progress: Callable[[ModelResult], None]) -> None:
        opts, state, result, run = self.options, self.state, self.result, self.run
        for rows in reader.stream(query.sql, materialize=not first):
            if not result.rows_scanned:
                result.timing["first_row_at"] = time.time()
            result.rows_scanned += len(rows)
            result.changed += len(rows)
            now = utcnow()
            plain = rules.plain(rows) if rules is not None else _decide.people_plain(rows)
            if plain:
                ready = self._encode_chunk(rows, now)
            elif rules is not None:
                ready = [item for row in rows if (item := self._event_row(row, rules, now)) is not None]
            else:
                ready = [item for row in rows if (item := self._person_row(row, now)) is not None]
            if ready and result.first_item is None:
                result.first_item = ready[0].data
            closed = self.packer.extend(list(map(_DATA, ready)), ready)
            if closed:
                self._gate(closed)
            self._release()
            run.record(run.sink.poll())
            state.flush()
            state.heartbeat_if_due(self.model.name, opts.shard_label, run.lease_holder, opts.lease_ttl)
            run.trim()
            progress(result)

    def _encode_chunk(self, rows: list[tuple], now) -> list[Item]:
        """A chunk whose rows need no decision of their own, encoded with C loops (map) rather
        than row by row: nearly every chunk of an initial sync and of most reruns. Returns the
        items to send, the rejected rows recorded."""
        assert self.encoder is not None
        encoded: list = list(map(self.encoder.encode, rows))
        if Reject in set(map(type, encoded)):
            for row, item in zip(rows, encoded, strict=True):
                if type(item) is Reject:
                    self._rejected(row, item, now)
            encoded = [item for item in encoded if type(item) is not Reject]
        rejected_people = self.run.rejected_people
        if self.model.is_event and rejected_people:
            for item in encoded:
                if item.identifier in rejected_people:
                    self._held(item)
            encoded = [item for item in encoded if item.identifier not in rejected_people]
        return encoded

    def _event_row(self, row: tuple, rules: EventRules, now) -> Item | None:
        """One event row that needs a decision of its own: the item to send, or None."""
        model, result, state = self.model, self.result, self.state
        decision = rules.before_encoding(row)
        if decision in (_decide.DUPLICATE, _decide.DUPLICATE_PENDING):
            duplicate = Reject(model.name, state_key(str(row[E_KEY])), model.event_key_column.name,
                               "duplicate_event_key",
                               f"{row[E_KEY_ROWS]} rows to send share this event key: none is sent (Customer.io "
                               "would count each as an event); make the key unique and test it (`unique`)")
            if decision == _decide.DUPLICATE_PENDING:  # it may have arrived: stays pending (dedupe_window)
                result.reject(duplicate)
            else:
                self._rejected(row, duplicate, now)
            return None
        if decision == _decide.UNCERTAIN:
            result.uncertain += 1
            result.reject(Reject(model.name, str(row[E_KEY]), None, "uncertain",
                                 "sent before but never acknowledged, longer ago than dedupe_window: not resent "
                                 "(it may have arrived)"))
            state.ledger([LedgerRow(model.name, str(row[E_KEY]), None, "uncertain", row[E_HASH], row[E_TIME], None,
                                    now, None, self.run.run_id, "pending beyond dedupe_window")])
            return None
        if decision == _decide.SKIP:
            result.skipped += 1
            return None
        if decision == _decide.BACKFILL:
            result.skipped += 1
            state.ledger([LedgerRow(model.name, str(row[E_KEY]), None, "backfill", row[E_HASH], row[E_TIME], None,
                                    None, None, self.run.run_id, f"older than max_event_age at {now:%Y-%m-%d %H:%M}")])
            return None
        if decision == _decide.RESEND:
            result.resent += 1
        encoder = self.renamer if decision == _decide.RENAME and self.renamer else self.encoder
        assert encoder is not None
        encoded = encoder.encode(row)
        if isinstance(encoded, Reject):
            self._rejected(row, encoded, now)
            return None
        after = _decide.event_after_encoding(row, encoded.identifier, self.run.rejected_people)
        if after == _decide.HOLD:
            self._held(encoded)
            return None
        if after == _decide.WAIT:
            result.waiting += 1  # a count, not a reject: a later run sends it
            return None
        return encoded

    def _person_row(self, row: tuple, now) -> Item | None:
        """One people row that needs a decision of its own (another identifier was synced for
        its key): the item to send, or None."""
        model, result = self.model, self.result
        assert self.encoder is not None
        encoded = self.encoder.encode(row)
        if isinstance(encoded, Reject):
            self._rejected(row, encoded, now)
            return None
        merge = model.spec.meta.get("on_identifier_change") == "merge"
        decision = _decide.person_after_encoding(row, merge)
        previous, identifier = row[P_PREVIOUS_IDENTIFIER], row[P_IDENTIFIER]
        if decision == _decide.MERGE:
            self.run.merges[encoded.row_key] = (result, model.spec.identifier_kind, previous, encoded.identifier)
        elif decision == _decide.IDENTIFIER_CHANGED:
            result.reject(Reject(
                model.name, encoded.row_key, model.identifier.name, "identifier_changed",
                f"identifier changed from {previous} to {identifier} for the same person: not sent (it would "
                "create a second profile); merge the profiles in Customer.io, then run with --full-refresh"))
            self.state.rejects([RejectRow(model.name, encoded.row_key, "identifier_changed",
                                          f"{previous} -> {identifier}", False, row[P_HASH], now, self.run.run_id)])
            self.run.rejected_people.add(encoded.identifier)
            return None
        return encoded

    def _rejected(self, row: tuple, reject: Reject, now) -> None:
        """Record a row the encoder refused: in the result, the rejects table and, for an event,
        the ledger; a refused person's events are held back for the rest of the run."""
        model = self.model
        self.result.reject(reject)
        row_hash = row[E_HASH] if model.is_event else row[P_HASH]
        self.state.rejects([RejectRow(model.name, reject.row_key or "", reject.reason, reject.message, False,
                                      row_hash, now, self.run.run_id)])
        if not reject.row_key:
            return
        if model.is_event:
            self.state.ledger([LedgerRow(model.name, reject.row_key, None, "rejected", row_hash, row[E_TIME], None,
                                         now, None, self.run.run_id, reject.reason)])
        elif isinstance(row[P_IDENTIFIER], str) and row[P_IDENTIFIER]:
            # Events name their person by identifier, whatever the people model's key_column.
            self.run.rejected_people.add(row[P_IDENTIFIER])

    def _held(self, item: Item) -> None:
        self.result.held += 1
        self.result.reject(Reject(self.model.name, item.row_key, self.model.identifier.name, "held",
                                  "the person's identify was rejected in this run; event held back"))

    def _people_models_for(self, model: SyncModel) -> tuple[tuple[str, bool], ...]:
        """For an event model: the people models whose acknowledged identifies its events wait
        for, those of its identifier kind in the project (selected in this run or not, synced
        yet or not) or with people in the state, each with whether its key is its identifier
        (known for the project's). Empty (nothing waits) when the project syncs no people that
        way and never has."""
        if not model.is_event or not self.state.available:
            return ()
        kind = model.spec.identifier_kind
        keyed = {spec.name: spec.meta.get("key_column") in (None, spec.identifier_column)
                 for spec in self.run.people_specs if spec.identifier_kind == kind}
        names = sorted(set(keyed) | set(self.state.people_models_of_kind(kind)))
        if names:
            self.run.waits_for[model.name] = names
        return tuple((name, keyed.get(name, False)) for name in names)

    # -- batches ------------------------------------------------------------------------------
    def _gate(self, batches: list[Batch]) -> None:
        """Queue closed batches for sending. A batch of events goes once the keys it carries are
        committed as in flight: after a crash they are resent with the same ids, which
        Customer.io deduplicates (see StateStore.recover_inflight)."""
        seq = 0
        if self.model.is_event:
            now = utcnow()  # the first attempt of the batch's events, if it is not answered
            for batch in batches:
                batch.tag = (self.state.inflight(self.model.name, self.options.shard_label, self.run.run_id,
                                                 list(map(_ROW_KEY, batch.refs)), list(map(_EVENT_ID, batch.refs))),
                             now)
            seq = self.state.flush(force=True, only="inflight")
        self.gated.extend((seq, batch) for batch in batches)

    def _release(self, everything: bool = False) -> None:
        """Send the closed batches whose rows' state write has committed (all of them, waiting,
        when `everything` or when too many are waiting)."""
        state, gated = self.state, self.gated
        while gated:
            seq, batch = gated[0]
            if not state.committed(seq):
                if not everything and len(gated) <= self.MAX_GATED:
                    return
                state.wait(seq)
            gated.pop(0)
            self._submit(batch)

    def _submit(self, batch: Batch) -> None:
        batch.owner = self.result  # every item of a batch is of one model
        self.result.batches += 1
        self.result.items_sent += len(batch.items)
        self.run.sink.submit(batch, self.model.name, self.tick)

    # -- people who left ------------------------------------------------------------------------
    def _shard_filter(self) -> str | None:
        """This shard's people in the state (a condition on s.person_key), or None."""
        if self.options.shard is None:
            return None
        index, count = self.options.shard
        return f"{self.dialect.shard('s.person_key', count)} = {index}"

    def _deletions(self, departed: list[tuple]) -> None:
        """People this tool synced whose rows left the model (person_key, identifier, synced
        count, read in the model's snapshot): deleted or suppressed, within max_deletes."""
        model = self.model
        action = model.spec.option("on_delete")
        gone = [(key, identifier) for key, identifier, _ in departed]
        synced = int(departed[0][2])
        cap = model.spec.meta.get("max_deletes")
        limit = (synced * float(cap[:-1]) / 100 if isinstance(cap, str) else cap) if cap is not None else None
        if limit is not None and len(gone) > limit:
            self._blocked(f"{len(gone)} of {synced} synced people left the model, over max_deletes ({cap}): "
                          f"nobody was {'deleted' if action == 'delete' else 'suppressed'}. Check the model; "
                          "raise max_deletes if this is intended.")
            return
        packer = BatchPacker(self.options.batch_bytes)
        for key, identifier in gone:
            data = orjson.dumps({"type": "person", "identifiers": {model.spec.identifier_kind: identifier},
                                 "action": action})
            full = packer.add(data, Departure(identifier=identifier, row_key=key))
            if full is not None:
                self._submit(full)
        last = packer.flush()
        if last is not None:
            self._submit(last)
