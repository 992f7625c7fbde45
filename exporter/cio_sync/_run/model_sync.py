"""One model's sync within a run, whatever its kind: its lease and checks, then read → decide →
encode → batch → send, with the state it produces. Rows flow one way: the snapshot reader yields
chunks, each row is decided (_decide.rules), encoded (_encode) and packed (_send.batch); a closed batch goes
to the sink once its state write has committed; answers are recorded by the run's
OutcomeRecorder. What differs between kinds of Customer.io data is a subclass of ModelSync, one
module per kind (kinds.people, kinds.events), found by kind in SYNCS (kinds)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter
from typing import Any

from .._decide import checks
from .._encode import Encoder, Item, Reject
from .._output import Reporter
from .._project.artifacts import Artifacts
from .._project.model import Column, ModelSpec, SyncModel
from .._read.dialects import Dialect, dialect_for
from .._read.query import ModelQuery, build_query, only_rows
from .._read.reader import SnapshotReader
from .._read.rows import LedgerRow
from .._send.batch import BatchPacker
from .._send.sinks import Sink
from .._send.transport import Batch
from .._state import StateStore, utcnow
from .options import RunOptions
from .outcomes import OutcomeRecorder
from .results import ModelResult

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
    #: models of the project whose rows the people state holds that are not people (objects,
    #: relationships, devices, suppressions): events never wait for them
    not_people: frozenset[str] = frozenset()

    @property
    def rejected_people(self) -> set[str]:
        return self.record.rejected_people

    @property
    def merges(self) -> dict:
        return self.record.merges


class ModelSync:
    """The part of a model's sync every kind shares; a kind fills in the hooks below."""

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
        self.query: ModelQuery | None = None  # the rows read (of a preview: its key's or person's); set by _query
        #: the model's query whatever a preview reads, for what is decided of the model as a whole
        #: (a first sync's baseline, who left, how many are suppressed); set by _query
        self.whole: ModelQuery | None = None
        self.encoder: Encoder | None = None  # set with the query

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
            problem = checks.scope_problem(state, model, site_id, opts.accept_relation_change,
                                            self.run.reporter.note) or self.problem_before_read()
            if problem:
                return self._blocked(problem)
            state.run_started(self.run.run_id, model.name, shard, self.artifacts.invocation_id)
            self.recover()
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

    # -- what a kind adds (see kinds.people, kinds.events) ----------------------------------------
    def problem_before_read(self) -> str | None:
        """What blocks the model before its read, from the state alone."""
        return None

    def recover(self) -> None:
        """What an earlier run that stopped left to put right, before anything is read."""

    def before_read(self, first: bool) -> None:
        """Work before the read's snapshot, once the relation's build proof is checked."""

    def in_snapshot(self, reader: SnapshotReader, first: bool) -> str | None:
        """Work in the read's snapshot before the rows, and what blocks the model if anything;
        the model's query (self.query) is set by then."""
        return None

    def plain(self, rows: list[tuple]) -> bool:
        """Whether no row of a fetched chunk needs a decision of its own."""
        raise NotImplementedError

    def row(self, row: tuple, now: datetime) -> Item | None:
        """One row that needs a decision of its own: the item to send, or None."""
        raise NotImplementedError

    def after_rows(self, reader: SnapshotReader) -> None:
        """Work in the read's snapshot after the rows."""

    def after_send(self) -> None:
        """Work once the rows' batches are out."""

    def key_column(self) -> Column:
        """The column a shard is chosen by."""
        return self.model.key_column

    def query_options(self) -> dict[str, Any]:
        """build_query's options of this kind."""
        return {}

    def tag(self, batches: list[Batch]) -> int:
        """Record what must be committed before the batches are sent; the write's sequence number
        (0: nothing to wait for)."""
        return 0

    def rejected_row(self, row: tuple, reject: Reject, now: datetime) -> None:
        """Record a row the encoder refused (the result has counted it)."""
        raise NotImplementedError

    # What the kind records of Customer.io's answers (called by the run's OutcomeRecorder, which
    # records what every kind shares: counts, departures, rejects, resolved rejects).
    def accepted_whole(self, refs: Sequence[Item]) -> None:
        """A whole batch accepted (the common case: C loops over its items); recorded like the
        accepted items of any batch unless a kind does better."""
        self.accepted(refs)

    def accepted(self, items: Sequence[Item]) -> None:
        """The accepted items of a batch answered item by item."""
        raise NotImplementedError

    def refused(self, item: Any, reason: str, message: str, now: datetime) -> LedgerRow | None:
        """An item (or departure) Customer.io refused: the ledger row kept of it, if any."""
        return None

    def undelivered(self, item: Any, error: str, now: datetime, flown_at: datetime | None) -> LedgerRow | None:
        """An item (or departure) whose retries ran out: the ledger row kept of it, if any."""
        return None

    # -- the sync -----------------------------------------------------------------------------
    def _sync(self) -> SyncModel:
        opts, state, result = self.options, self.state, self.result
        result.started_at = time.time()
        first = opts.full_refresh or not (state.available and state.has_rows(self.model.name, self.model.is_event))
        with SnapshotReader(self.adapter, opts.fetch_rows) as reader:  # before anything is recorded
            if (problem := self._build_proof_problem(reader)) is not None:
                return self._blocked(problem)
        self.before_read(first)
        progress = self.run.reporter.model_started(self.model)
        with SnapshotReader(self.adapter, opts.fetch_rows) as reader:
            if (problem := self._build_proof_problem(reader)) is not None:
                return self._blocked(problem)
            if (problem := self.in_snapshot(reader, first)) is not None:
                return self._blocked(problem)
            assert self.query is not None
            self._stream(reader, self.query, first, progress)
            result.timing["last_row_at"] = time.time()
            result.timing.setdefault("first_row_at", result.timing["last_row_at"])  # no rows
            self.after_rows(reader)
        last = self.packer.flush()
        if last is not None:
            self._gate([last])
        self._release(everything=True)
        self.run.record(self.run.sink.poll())
        self.after_send()
        progress(result)
        return self.model

    def _query(self, first: bool) -> ModelQuery:
        """The model's query (and its encoder), as the model stands; a preview's reads only the
        rows of its key or person (self.whole is the model's)."""
        opts, state, dialect, model = self.options, self.state, self.dialect, self.model
        where = None
        if opts.shard is not None:
            index, count = opts.shard
            where = f"{dialect.shard(dialect.text(dialect.quote(self.key_column().name)), count)} = {index}"
        switches: dict[str, Any] = dict(state=state.tables() if state.available else None,
                                        full_refresh=opts.full_refresh, retry_rejects=opts.retry_rejects, first=first,
                                        row_hash=state.row_hash, **self.query_options())
        self.whole = build_query(model, dialect, self.relation, where=where, **switches)
        only = self._previewed_rows()
        self.query = self.whole if only is None else build_query(
            model, dialect, self.relation, where=" and ".join(c for c in (where, only) if c), **switches)
        self.encoder = Encoder(model, self.snapshot, self.query.n_head)
        return self.query

    def _previewed_rows(self) -> str | None:
        """A preview's condition on the model's rows (RunOptions.key, else .person), or None."""
        opts = self.options
        if opts.key is not None and opts.key[0] == self.model.name:
            return only_rows(self.model, self.dialect, key=opts.key[1])
        if opts.person is not None:
            return only_rows(self.model, self.dialect, person=opts.person)
        return None

    def previewed(self, key: str, identifier: str | None) -> bool:
        """Whether a row of the model (its key, its identifier) is one a preview reads: every
        row when the run is no preview."""
        opts = self.options
        if opts.key is not None and opts.key[0] == self.model.name:
            return key == opts.key[1]
        return opts.person is None or identifier == opts.person

    def _build_proof_problem(self, reader: SnapshotReader) -> str | None:
        if not self.options.require_build_proof:
            return None
        return checks.build_proof_problem(self.state, reader, self.model, self.relation,
                                           self.artifacts.invocation_id, self.options.build_log_schema)

    # -- rows ---------------------------------------------------------------------------------
    def _stream(self, reader: SnapshotReader, query: ModelQuery, first: bool,
                progress: Callable[[ModelResult], None]) -> None:
        opts, state, result, run = self.options, self.state, self.result, self.run
        for rows in reader.stream(query.sql, materialize=not first):
            if not result.rows_scanned:
                result.timing["first_row_at"] = time.time()
            result.rows_scanned += len(rows)
            result.changed += len(rows)
            now = utcnow()
            if self.plain(rows):
                ready = self._encode_chunk(rows, now)
            else:
                ready = [item for row in rows if (item := self.row(row, now)) is not None]
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
        return self.sendable(encoded)

    def sendable(self, items: list[Item]) -> list[Item]:
        """Of a plain chunk's items, those to send now."""
        return items

    def _rejected(self, row: tuple, reject: Reject, now: datetime) -> None:
        """Record a row the encoder refused: in the result, and as the kind records it."""
        self.result.reject(reject)
        self.rejected_row(row, reject, now)

    # -- batches ------------------------------------------------------------------------------
    def _gate(self, batches: list[Batch]) -> None:
        """Queue closed batches for sending, each once what `tag` recorded for it has committed."""
        seq = self.tag(batches)
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
        batch.owner = self  # every item of a batch is of one model: its answers go to accepted, refused, ...
        self.result.batches += 1
        self.result.items_sent += len(batch.items)
        if self.result.preview is not None:  # a preview shows every item it would send
            self.result.preview.extend(batch.items)
        self.run.sink.submit(batch, self.model.name, self.tick)
