"""`cio-export run`: select → gate → resolve → read → encode → batch → send, one model after
another, people before events, with a summary and a results artifact at the end."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import time
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import filterfalse
from operator import attrgetter, itemgetter
from pathlib import Path

import orjson

from . import __version__
from ._batch import BatchPacker
from ._dbt import Artifacts, DbtContext, close_adapter, gate, open_adapter, select_models
from ._encode import MAX_KEY_CHARS, Encoder, Reject, state_key
from ._errors import ConfigError
from ._model import OUT_OF_RANGE_TIME, ModelSpec, SyncModel, check_identifier_kinds, parse_duration, people_specs_of
from ._output import Reporter
from ._state import DEFAULT_SCHEMA, StateStore, lease_holder, utcnow
from ._transport import Batch, BatchOutcome, TrackClient, TrackSettings
from ._warehouse import FETCH_ROWS, SnapshotReader, build_query, dialect_for, relation_columns

RESULTS_FILE = "cio_export_results.json"
# A batch's refs are its Items (its owner is the model's ModelResult); what the state store
# records of an Item.
_DATA = attrgetter("data")
_NEW = attrgetter("new")
_ROW_KEY = attrgetter("row_key")
_EVENT_ID = attrgetter("event_id")
_PERSON_STATE = attrgetter("row_key", "identifier", "row_hash")
_LEDGER_SENT = attrgetter("row_key", "event_id", "row_hash", "event_time")
# Columns of a fetched row (see build_query): events' time and ledger status, people's previous identifier.
_EVENT_TIME = itemgetter(2)
_LEDGER_STATUS = itemgetter(7)
_KEY_ROWS = itemgetter(10)  # rows to send that share the event key
_PREVIOUS_IDENTIFIER = itemgetter(4)
_PERSON_KNOWN = itemgetter(11)  # Customer.io has acknowledged an identify of the event's person
REJECT_SAMPLE = 100


@dataclass
class RunOptions:
    dbt: DbtContext
    select: tuple[str, ...] = ("tag:cio",)
    exclude: tuple[str, ...] = ()
    dry_run: bool = False
    outbox: Path | None = None
    track: TrackSettings | None = None
    batch_bytes: int = 500_000
    ignore_test_failures: bool = False
    allow_mixed_identifiers: bool = False
    fetch_rows: int = FETCH_ROWS
    state_schema: str = DEFAULT_SCHEMA
    build_log_schema: str = DEFAULT_SCHEMA  # var cio_state_schema: where dbt's post-hook writes build proofs
    full_refresh: bool = False
    retry_rejects: bool = False
    accept_schema_change: bool = False
    accept_identifier_changes: bool = False
    accept_relation_change: bool = False
    require_build_proof: bool = True
    lease_ttl: float = 120.0
    shard: tuple[int, int] | None = None  # (K, N): rows whose key hashes to K of N

    @property
    def shard_label(self) -> str:
        return "all" if self.shard is None else f"{self.shard[0]}/{self.shard[1]}"


@dataclass
class ModelResult:
    unique_id: str
    model: str
    kind: str
    status: str = "pending"  # success | rejected | blocked | undelivered | skipped
    message: str | None = None
    rows_scanned: int = 0
    items_sent: int = 0
    items_accepted: int = 0
    rejected: int = 0
    held: int = 0
    waiting: int = 0  # events of people Customer.io has not identified yet: sent by a later run
    undelivered: int = 0
    changed: int = 0
    skipped: int = 0
    resent: int = 0
    uncertain: int = 0
    deleted: int = 0
    merged: int = 0
    batches: int = 0
    unsupplied: tuple[str, ...] = ()  # people attributes null in every row: not sent
    failing_tests: tuple[str, ...] = ()
    warning_tests: tuple[str, ...] = ()
    reject_reasons: Counter = field(default_factory=Counter)
    reject_sample: list[Reject] = field(default_factory=list)
    started_at: float | None = None
    finished_at: float | None = None
    first_item: bytes | None = None  # shown by --dry-run
    lags: list[float] = field(default_factory=list)  # send time - event time, seconds
    # Epoch seconds: first_row_at, last_row_at, last_ack_at, committed_at (see timing_dict)
    timing: dict = field(default_factory=dict)

    def reject(self, reject: Reject) -> None:
        self.rejected += 1
        self.reject_reasons[reject.reason] += 1
        if len(self.reject_sample) < REJECT_SAMPLE:
            self.reject_sample.append(reject)

    def finish(self) -> None:
        if self.finished_at is None:  # set when the model's own work ended (see Exporter._run_model)
            self.finished_at = time.time()
        if self.status != "pending":
            return
        if self.undelivered:
            self.status = "undelivered"
        elif self.rejected or self.held:
            self.status = "rejected"
        else:
            self.status = "success"

    def as_dict(self) -> dict:
        return {
            "unique_id": self.unique_id,
            "model": self.model,
            "kind": self.kind,
            "status": self.status,
            "message": self.message,
            "rows_scanned": self.rows_scanned,
            "items_sent": self.items_sent,
            "items_accepted": self.items_accepted,
            "rejected": self.rejected,
            "held": self.held,
            "waiting_for_person": self.waiting,
            "unsupplied_attributes": list(self.unsupplied),
            "undelivered": self.undelivered,
            "batches": self.batches,
            "changed": self.changed,
            "skipped": self.skipped,
            "resent": self.resent,
            "uncertain": self.uncertain,
            "deleted": self.deleted,
            "merged": self.merged,
            "lag_p50_seconds": percentile(self.lags, 0.5),
            "lag_p95_seconds": percentile(self.lags, 0.95),
            "failing_tests": list(self.failing_tests),
            "warning_tests": list(self.warning_tests),
            "reject_reasons": dict(self.reject_reasons),
            "rejects": [r.as_dict() for r in self.reject_sample],
            "execution_time": round((self.finished_at or time.time()) - (self.started_at or time.time()), 3),
            "timing": self.timing_dict(),
        }

    def timing_dict(self) -> dict:
        """Where the model's time went. end_to_end_seconds = first row read to last state commit;
        before_first_row_seconds = build proof, baseline and the warehouse's work until the first
        rows arrive; streaming_seconds = first to last row read; tail_seconds = last row read to
        last answer and last state commit."""
        t = dict(self.timing, started_at=self.started_at) if self.started_at is not None else self.timing
        out = {k: round(v, 3) for k, v in t.items()}

        def span(a: str, b: str) -> float | None:
            return round(t[b] - t[a], 3) if a in t and b in t else None

        out.update(end_to_end_seconds=span("first_row_at", "committed_at"),
                   before_first_row_seconds=span("started_at", "first_row_at"),
                   streaming_seconds=span("first_row_at", "last_row_at"),
                   tail_seconds=span("last_row_at", "committed_at"))
        return out


@dataclass
class RunSummary:
    invocation_id: str
    dbt_invocation_id: str | None
    dry_run: bool
    started_at: float
    results: list[ModelResult]
    transport: dict = field(default_factory=dict)
    elapsed: float = 0.0
    error: str | None = None
    exit_code: int = 0
    timing: dict = field(default_factory=dict)
    _last_mark: float = 0.0

    def mark(self, name: str, since: float | None = None) -> None:
        """Record the seconds since the previous mark (or `since`) under `name`."""
        now = time.time()
        self.timing[name] = round(now - (since if since is not None else self._last_mark), 3)
        self._last_mark = now

    def compute_exit_code(self) -> int:
        statuses = {r.status for r in self.results}
        if "undelivered" in statuses:
            return 3
        if statuses & {"rejected", "blocked", "locked"}:
            return 1
        return 0

    def as_dict(self) -> dict:
        return {
            "metadata": {
                "cio_sync_version": __version__,
                "invocation_id": self.invocation_id,
                "dbt_invocation_id": self.dbt_invocation_id,
                "generated_at": datetime.now(timezone.utc).isoformat(),
                "dry_run": self.dry_run,
            },
            "elapsed_time": round(self.elapsed, 3),
            "timing": self.timing,
            "exit_code": self.exit_code,
            "error": self.error,
            "results": [r.as_dict() for r in self.results],
            "transport": self.transport,
        }


class OutboxSink:
    """--dry-run: the exact request bodies, one NDJSON line per request and one file per model;
    every item counts as accepted, nothing leaves the machine."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self._files: dict[str, object] = {}
        self._done: list[BatchOutcome] = []
        self.stats = {"requests": 0, "bytes_sent": 0, "items_sent": 0}
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)

    def submit(self, batch: Batch, model: str, tick=None) -> None:
        body = batch.body()
        if self.directory is not None:
            handle = self._files.get(model)
            if handle is None:
                handle = self._files[model] = open(self.directory / f"{model}.ndjson", "wb")  # noqa: SIM115
            handle.write(body + b"\n")
        self.stats["requests"] += 1
        self.stats["bytes_sent"] += len(body)
        self.stats["items_sent"] += len(batch.items)
        self._done.append(
            BatchOutcome(
                batch=batch,
                accepted=list(range(len(batch.items))),
                rejected=[],
                undelivered=[],
                status=None,
                attempts=0,
                error=None,
            )
        )

    def poll(self) -> list[BatchOutcome]:
        done, self._done = self._done, []
        return done

    def merge(self, primary: dict, secondary: dict) -> str | None:
        if self.directory is not None:
            handle = self._files.get("merge_customers")
            if handle is None:
                handle = self._files["merge_customers"] = open(self.directory / "merge_customers.ndjson", "wb")  # noqa: SIM115
            handle.write(orjson.dumps({"primary": primary, "secondary": secondary}) + b"\n")
        return None

    def drain(self, tick=None) -> list[BatchOutcome]:
        return self.poll()

    def close(self, wait: bool = True) -> None:
        for handle in self._files.values():
            handle.close()


class ClientSink:
    """The real thing: a TrackClient."""

    def __init__(self, client: TrackClient) -> None:
        self.client = client

    def submit(self, batch: Batch, model: str, tick=None) -> None:
        self.client.submit(batch, tick)

    def poll(self) -> list[BatchOutcome]:
        return self.client.poll()

    def drain(self, tick=None) -> list[BatchOutcome]:
        return self.client.drain(tick)

    def merge(self, primary: dict, secondary: dict) -> str | None:
        return self.client.merge(primary, secondary)

    @property
    def stats(self) -> dict:
        return self.client.stats

    def close(self, wait: bool = True) -> None:
        """`wait=False` (a run that ends in an error or a signal): no retry and no queued batch
        is started any more; only the requests already on the wire are let finish."""
        self.client.close(wait=wait)


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


class Exporter:
    def __init__(self, options: RunOptions, reporter: Reporter) -> None:
        self.options = options
        self.reporter = reporter
        self.rejected_people: set[str] = set()
        self.people_specs: list[ModelSpec] = []  # the project's people models, selected or not
        self.waits_for: dict[str, list[str]] = {}  # event model -> the people models its events wait for
        self.run_id = str(uuid.uuid4())
        self.lease_holder = lease_holder(self.run_id)  # who holds this run's leases: run, host, process
        self.state: StateStore | None = None
        # key -> (result, identifier kind, old identifier, new identifier): merged once the new
        # identify is acknowledged (meta.cio.on_identifier_change: merge).
        self.merges: dict[str, tuple] = {}
        self.acknowledged: set[str] = set()
        self.allocator: _Allocator | None = None
        self._tick: Callable[[], None] | None = None  # the current model's lease heartbeat (see _run_model)

    # -- planning: everything that can fail before a single row is read -------------------
    def plan(self, artifacts: Artifacts) -> tuple[list[ModelSpec], list[ModelResult]]:
        ids = select_models(self.options.dbt, artifacts, self.options.select, self.options.exclude)
        specs, errors, results = [], [], []
        for unique_id in ids:
            node = artifacts.node(unique_id)
            try:
                spec = ModelSpec.from_node(node)
            except ConfigError as exc:
                errors.append(str(exc))
                continue
            if spec is None or spec.meta.get("enabled") is False:
                why = "no meta.cio" if spec is None else "meta.cio.enabled is false"
                self.reporter.note(f"{node['name']}: selected but not synced ({why})")
                continue
            specs.append(spec)
        if errors:
            raise ConfigError("\n".join(errors))
        if not specs:
            selection = " ".join(self.options.select)
            raise ConfigError(f"--select {selection} matched no model with meta.cio: nothing to sync")
        check_identifier_kinds(specs, self.options.allow_mixed_identifiers)
        passing = []
        for spec in specs:
            result = ModelResult(spec.unique_id, spec.name, spec.kind)
            verdict = gate(artifacts, spec.unique_id, ignore_test_failures=self.options.ignore_test_failures)
            result.failing_tests, result.warning_tests = verdict.failing_tests, verdict.warning_tests
            if not verdict.passed:
                result.status, result.message = "blocked", verdict.reason
            else:
                passing.append(spec)
            results.append(result)
        return passing, results

    def run(self) -> RunSummary:
        self.allocator = _Allocator()
        with _collector_tuned():
            return self._run()

    def _run(self) -> RunSummary:
        opts = self.options
        started = time.time()
        artifacts = Artifacts.load(opts.dbt.target_path)
        summary = RunSummary(invocation_id=self.run_id, dbt_invocation_id=artifacts.invocation_id,
                             dry_run=opts.dry_run, started_at=started, results=[])
        specs, results = self.plan(artifacts)
        self.people_specs = people_specs_of((artifacts.manifest_dict.get("nodes") or {}).values())
        mark = summary.mark
        mark("artifacts_seconds", started)  # manifest, run results, selection, gates
        summary.results = sorted(results, key=lambda r: (r.kind != "people", r.model))
        by_id = {r.unique_id: r for r in summary.results}
        for result in summary.results:
            if result.status == "blocked":
                self.reporter.blocked(result)
            elif result.warning_tests:
                self.reporter.note(f"{result.model}: tests warned: {', '.join(result.warning_tests)}")
            if result.failing_tests and result.status != "blocked":
                self.reporter.note(f"{result.model}: SENDING DESPITE FAILING TESTS (--ignore-test-failures): "
                                   + ", ".join(result.failing_tests))

        sink = OutboxSink(opts.outbox) if opts.dry_run else None
        if sink is None:
            client = TrackClient(opts.track)
            try:
                client.preflight(on_retry=self.reporter.note)
            except BaseException:
                client.close()
                raise
            sink = ClientSink(client)
        mark("preflight_seconds")
        adapter = None
        completed = False
        try:
            adapter = open_adapter(opts.dbt, artifacts)
            with adapter.connection_named("cio-export"):
                self.state = StateStore(adapter, opts.state_schema, read_only=opts.dry_run).open()
                models = [spec.resolve(relation_columns(adapter, spec)) for spec in specs]
                snapshot = int(time.time())
                mark("connect_seconds")  # adapter, state connection and tables, model columns
                # People first: an event for a person whose identify was rejected is held back.
                ordered = sorted(models, key=lambda m: m.is_event)
                people_done = False
                gc.freeze()  # the manifest and the adapter, loaded since: out of the collector's sight too
                for model in ordered:
                    if model.is_event and not people_done:
                        self._handle(sink.drain())
                        self._merge_changed_identifiers(sink)
                        self.state.flush(force=True)
                        people_done = True
                    result = by_id[model.spec.unique_id]
                    self._run_model(adapter, artifacts, model, snapshot, sink, result)
                self._handle(sink.drain())
                if not people_done:
                    self._merge_changed_identifiers(sink)
                self.state.flush(force=True)
                for model in ordered:
                    self._log_run_end(model, by_id[model.spec.unique_id])
                mark("models_seconds")
                completed = True
        finally:
            # A run stopped by a signal or an error does not wait for retries and queued
            # batches: what is in flight is resent by the next run under the same ids.
            sink.close(wait=completed)
            if self.state is not None:
                self.state.close()
            if adapter is not None:
                close_adapter(adapter)
        for result in summary.results:
            result.finish()
            if result.status != "blocked" or result.message:
                self.reporter.model_done(result)
            if result.waiting:
                people = ", ".join(self.waits_for.get(result.model, ())) or "the project's people models"
                self.reporter.note(
                    f"{result.model}: {result.waiting} events wait for their person's first identify by {people}; "
                    "they go out with the first run after it. If Customer.io gets these people from another "
                    "source, set meta.cio.enabled: false on those people models.")
        summary.transport = dict(sink.stats)
        mark("shutdown_seconds")  # closing connections and the sender
        summary.elapsed = time.time() - started
        summary.exit_code = summary.compute_exit_code()
        return summary

    # -- one model --------------------------------------------------------------------------------
    def _run_model(self, adapter, artifacts: Artifacts, model: SyncModel, snapshot: int, sink,
                   result: ModelResult) -> None:
        opts, state = self.options, self.state
        shard = opts.shard_label
        if not state.acquire_lease(model.name, shard, self.lease_holder, opts.lease_ttl):
            result.status = "locked"
            result.message = (f"another cio-export run holds the lease on {model.name} (shard {shard}); "
                              "skipped (a killed run's lease is freed at once on PostgreSQL, after --lease-ttl "
                              "elsewhere).")
            self.reporter.blocked(result)
            return
        try:
            # (a people model's payload shape is checked in its read's snapshot: see _people_checks)
            problem = self._scope_problem(model) or (self._payload_schema_problem(model) if model.is_event else None)
            if problem:
                result.status, result.message = "blocked", problem
                self.reporter.blocked(result)
                return
            state.run_started(self.run_id, model.name, shard, artifacts.invocation_id)
            if model.is_event and (recovered := state.recover_inflight(model.name, shard)):
                self.reporter.note(f"{model.name}: {recovered} events were in flight when an earlier run stopped: "
                                   "recorded as pending (resent with their ids within dedupe_window)")
            # While the sender makes it wait (every slot taken, the last answers awaited: slow
            # responses and retries can outlast a lease), the lease is kept alive.
            self._tick = lambda: state.heartbeat_if_due(model.name, shard, self.lease_holder, opts.lease_ttl)
            model = self._sync_model(adapter, artifacts, model, snapshot, sink, result)
            # The model's own tail: every batch answered, the state it produced committed.
            self._handle(sink.drain(tick=self._tick))
            result.timing["last_ack_at"] = time.time()
            state.flush(force=True)
            state.sync()
            result.finished_at = result.timing["committed_at"] = time.time()
            if result.status == "pending" and not opts.dry_run:
                state.save_payload_schema(model.name, model.spec.identifier_kind, model.payload_schema())
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the run log says so, the lease goes below
            state.abandon_open_work()
            state.run_finished(self.run_id, model.name, status="stopped", scanned=result.rows_scanned,
                               sent=result.items_accepted, message="stopped by a signal")
            raise
        finally:
            self._tick = None
            state.release_lease(model.name, shard, self.lease_holder)

    def _people_checks(self, reader, dialect, relation: str, model: SyncModel,
                       result: ModelResult) -> tuple[SyncModel, str | None]:
        """In the snapshot a people model's rows are read in (so that what is decided is what is
        sent): the model without its unsupplied attributes, and what blocks it, if anything."""
        model = self._without_unsupplied(reader, dialect, relation, model, result)
        return model, self._payload_schema_problem(model) or self._identifier_change_problem(
            reader, dialect, relation, model)

    def _without_unsupplied(self, reader, dialect, relation: str, model: SyncModel,
                            result: ModelResult) -> SyncModel:
        """A people model without its attributes that are null in every row (an input column the
        shop does not have, `null as email`): sending those nulls would erase what another
        integration set on every profile, and the user supplied no value. Events leave nulls out
        anyway. meta.cio.send_null_columns: true sends them."""
        if not model.attributes or model.spec.meta.get("send_null_columns"):
            return model
        # One probe per column that stops at its first non-null value: a scan only for a column
        # that is null throughout (or nearly).
        probes = ", ".join(f"(select 1 from {relation} where {dialect.quote(c.name)} is not null limit 1)"
                           for c in model.attributes)
        [(any_row, *filled)] = reader.query(f"select (select 1 from {relation} limit 1), {probes}")
        if not any_row:
            return model
        empty = tuple(c.name for c, n in zip(model.attributes, filled, strict=True) if not n)
        if not empty:
            return model
        result.unsupplied = empty
        self.reporter.note(f"{model.name}: {', '.join(empty)} null in every row: not sent, so values set in "
                           "Customer.io by another source are kept (meta.cio.send_null_columns sends them)")
        return model.without(empty)

    def _scope_problem(self, model: SyncModel) -> str | None:
        """A model's state describes one relation and one Customer.io workspace. A run reading
        another relation under the same model name (a dev target beside prod in one state schema)
        or sending to another workspace would take the other's deliveries for its own and skip
        what it never sent: refused, with what to do. The first run records both."""
        opts, state = self.options, self.state
        if not state.available:
            return None
        site_id = opts.track.site_id if opts.track is not None else None
        relation = model.spec.relation_name
        known = state.model_scope(model.name)
        if known is None:
            if state.has_rows(model.name, model.is_event):  # state from before scopes were recorded: adopted
                self.reporter.note(f"{model.name}: its state is now recorded as that of {relation}"
                                   + (f" sent to workspace {site_id}" if site_id else ""))
            state.record_model_scope(model.name, relation, site_id)
            return None
        known_relation, known_site = known
        if site_id and known_site and site_id != known_site:
            return (f"the state of {model.name} in {state.schema} belongs to Customer.io workspace {known_site}; this "
                    f"run sends to workspace {site_id}. It would count the other workspace's deliveries as its own. "
                    "Give each workspace its own state schema (--state-schema, or var cio_state_schema per target: "
                    "docs/exporter.md, 'Dev and prod targets').")
        if relation != known_relation:
            if not opts.accept_relation_change:
                return (f"the state of {model.name} in {state.schema} was made syncing {known_relation}; this run "
                        f"reads {relation}. Two targets sharing a state schema would each skip what the other sent. "
                        "Give each target its own state schema (var cio_state_schema, e.g. "
                        "\"cio_state_{{ target.name }}\": docs/exporter.md, 'Dev and prod targets'); if the relation "
                        "moved on purpose (same people, same workspace), rerun with --accept-relation-change.")
            state.record_model_scope(model.name, relation, site_id or known_site)
        elif site_id and not known_site:
            state.record_model_scope(model.name, relation, site_id)
        return None

    def _identifier_change_problem(self, reader, dialect, relation: str, model: SyncModel) -> str | None:
        """Too many known people about to get a new identifier (a customer_id rebuilt from another
        column or type, an email normalised differently) blocks the model before anything is
        sent: each would become a second profile in Customer.io. Counted as the people whose key
        keeps its row with another identifier, plus, as people cannot be matched otherwise, the
        smaller of how many synced people left and how many unknown ones appeared."""
        opts, state = self.options, self.state
        if opts.accept_identifier_changes or not state.available or not state.has_rows(model.name, False):
            return None
        q = dialect.quote
        key, ident = dialect.text(q(model.key_column.name)), dialect.text(q(model.identifier.name))
        rows_where, state_where = "", ""
        if opts.shard is not None:
            index, count = opts.shard
            rows_where = f" where {dialect.shard(key, count)} = {index}"
            state_where = f" and {dialect.shard('person_key', count)} = {index}"
        joined = (f"(select {key} as k, {ident} as i from {relation}{rows_where}) h full outer join "
                  f"(select person_key, identifier from {state.table('cio_people_state')} where model = "
                  f"{state._lit(model.name)}{state_where}) s on s.person_key = h.k")
        [(known, changed, appeared, left)] = reader.query(
            "select count(s.person_key), "
            "count(case when h.k is not null and s.person_key is not null and s.identifier <> h.i then 1 end), "
            "count(case when s.person_key is null and h.k is not null then 1 end), "
            f"count(case when h.k is null then 1 end) from {joined}")
        known, changed, appeared, left = int(known), int(changed), int(appeared), int(left)
        changes = changed + min(appeared, left)
        cap = model.spec.option("max_identifier_changes")
        limit = known * float(cap[:-1]) / 100 if isinstance(cap, str) else cap
        if not known or changes <= limit:
            return None
        examples = []
        if changed:  # the key pairs the old identifier with the new one
            pairs = reader.query(f"select s.identifier, h.i from {joined} where h.k is not null and "
                                 "s.person_key is not null and s.identifier <> h.i order by 1 limit 5")
            examples.append("same key: " + ", ".join(f"{old!r} -> {new!r}" for old, new in pairs))
        if min(appeared, left):  # nothing pairs them: each side on its own
            for label, column, condition in (("left", "s.identifier", "h.k is null"),
                                             ("appeared", "h.i", "s.person_key is null")):
                found = reader.query(f"select {column} from {joined} where {condition} order by 1 limit 5")
                examples.append(f"{label}: " + ", ".join(repr(value) for (value,) in found))
        examples = "; ".join(examples)
        return (f"{changes} of {known} known people would get a new identifier ({changed} keep their key with "
                f"another identifier; {left} synced people left while {appeared} unknown ones appeared), over "
                f"max_identifier_changes ({cap}): each would become a second profile in Customer.io. Nothing was "
                f"sent. Examples: {examples}. Check how {model.identifier.name} is built (another column, another "
                "type); if the change is intended, rerun with --accept-identifier-changes.")

    def _payload_schema_problem(self, model: SyncModel) -> str | None:
        """A changed payload shape blocks the model until --accept-schema-change."""
        stored = self.state.payload_schema(model.name)
        if stored is None:
            return None
        kind, previous = stored
        if kind != model.spec.identifier_kind:
            return (f"identifier kind changed from {kind} to {model.spec.identifier_kind}: people would be split "
                    f"into new profiles. Run `cio-export reset --select {model.name}` if that is intended.")
        current = model.payload_schema()
        removed = sorted(set(previous) - set(current))
        retyped = sorted(k for k in set(previous) & set(current) if previous[k] != current[k])
        if (removed or retyped) and not self.options.accept_schema_change:
            parts = []
            if removed:
                parts.append("removed or renamed: " + ", ".join(removed))
            if retyped:
                parts.append("retyped: " + ", ".join(f"{k} ({previous[k]} -> {current[k]})" for k in retyped))
            return ("payload shape changed (" + "; ".join(parts) + "): templates and segments that use these "
                    "attributes would break silently. Rerun with --accept-schema-change once they are updated.")
        return None

    def _sync_model(self, adapter, artifacts: Artifacts, model: SyncModel, snapshot: int, sink,
                    result: ModelResult) -> SyncModel:
        """Sync one model; returns it as synced (a people model without its unsupplied attributes)."""
        opts, state = self.options, self.state
        result.started_at = time.time()
        dialect = dialect_for(adapter)
        relation = adapter.Relation.create(database=model.spec.database, schema=model.spec.schema,
                                           identifier=model.spec.alias).render()
        where = None
        if opts.shard is not None:
            index, count = opts.shard
            key_column = model.event_id if model.is_event else model.key_column
            where = f"{dialect.shard(dialect.text(dialect.quote(key_column.name)), count)} = {index}"
        tables = state.tables() if state.available else None
        first = opts.full_refresh or not (state.available and state.has_rows(model.name, model.is_event))

        def prepare(model: SyncModel):
            key_checked = not model.is_event or artifacts.column_tested_unique(model.spec.unique_id,
                                                                               model.event_id.name)
            query = build_query(model, dialect, relation, where=where, state=tables, full_refresh=opts.full_refresh,
                                retry_rejects=opts.retry_rejects, first=first, row_hash=state.row_hash,
                                key_checked=key_checked, people_models=self._people_models_for(model))
            return query, Encoder(model, snapshot, query.n_head)

        # An event model's query is set now (a first sync's baseline uses it before the read); a
        # people model's in the read's snapshot, once its unsupplied attributes are known.
        query, encoder = prepare(model) if model.is_event else (None, None)
        backfill = model.spec.option("backfill") if model.is_event else None
        renamer = None
        if backfill == "rename":
            renamer = Encoder(model, snapshot, query.n_head)
            renamer.rename = {model.event_name: f"{model.event_name}_backfill"} if model.event_name else {}
        with SnapshotReader(adapter, opts.fetch_rows) as reader:  # before anything is recorded
            if not self._built_by_checked_run(reader, model, relation, artifacts, result):
                return model
        baseline_cutoff = None
        if model.is_event and not (state.available and state.has_history(model.name)):
            # First sync: existing events are history, recorded as baseline, never sent,
            # except those newer than initial_window. (A dry run only counts them.)
            cutoff = snapshot - parse_duration(model.spec.option("initial_window"))
            if state.writable:
                proof = None
                if opts.require_build_proof:
                    schema = model.spec.meta.get("build_log_schema") or opts.build_log_schema
                    proof = (state.build_proof_sql(model.spec.unique_id, relation, schema), artifacts.invocation_id)
                result.skipped += state.record_baseline(model.name, query.source_sql, cutoff, self.run_id, proof)
            else:
                baseline_cutoff = cutoff
        max_age = parse_duration(model.spec.option("max_event_age")) if model.is_event else None
        dedupe_window = parse_duration(model.spec.option("dedupe_window"))
        packer = BatchPacker(opts.batch_bytes)
        progress = self.reporter.model_started(model)
        kind_people = not model.is_event
        # The keys of a batch of events are recorded in flight (committed) before the request
        # that carries it: a closed batch waits in `gated` until that write has committed, while
        # the next rows are read and encoded (the write runs on the state store's writer thread).
        gated: list[tuple[int, Batch]] = []
        merge_ids = model.spec.meta.get("on_identifier_change") == "merge"
        rejected_people = self.rejected_people  # the same set, read once per row
        # Events older than this take the row-by-row path: the backfill rule (max_event_age), and
        # a dry run's first sync skips what the baseline would have recorded.
        oldest = None
        if max_age is not None:
            oldest = snapshot - max_age if baseline_cutoff is None else max(snapshot - max_age, baseline_cutoff)
        with SnapshotReader(adapter, opts.fetch_rows) as reader:
            if not self._built_by_checked_run(reader, model, relation, artifacts, result):
                return model
            if kind_people:
                model, problem = self._people_checks(reader, dialect, relation, model, result)
                if problem:
                    result.status, result.message = "blocked", problem
                    self.reporter.blocked(result)
                    return model
                query, encoder = prepare(model)
            for rows in reader.stream(query.sql, materialize=not first):
                if not result.rows_scanned:
                    result.timing["first_row_at"] = time.time()
                result.rows_scanned += len(rows)
                result.changed += len(rows)
                now = utcnow()
                ready = self._plain_chunk(rows, model, encoder, result, oldest, now)
                if ready is None:  # some row needs a decision of its own
                    ready = []
                    for row in rows:
                        enc_with = encoder
                        if not kind_people:
                            if row[1] is not None and row[10] > 1:
                                duplicate = Reject(
                                    model.name, state_key(str(row[1])), model.event_id.name, "duplicate_event_key",
                                    f"{row[10]} rows to send share this event key: none is sent (Customer.io "
                                    "would count each as an event); make the key unique and test it (`unique`)")
                                if row[7] == "pending":  # it may have arrived: stays pending (dedupe_window)
                                    result.reject(duplicate)
                                else:
                                    self._rejected(model, result, row, duplicate, now)
                                continue
                            status, first_attempt = row[7], row[8]
                            if status == "pending":
                                if first_attempt is not None and snapshot - first_attempt > dedupe_window:
                                    result.uncertain += 1
                                    result.reject(Reject(model.name, str(row[1]), None, "uncertain",
                                                         "sent before but never acknowledged, longer ago than "
                                                         "dedupe_window: not resent (it may have arrived)"))
                                    state.ledger([(model.name, str(row[1]), None, "uncertain", row[6], row[2], None,
                                                   now, None, self.run_id, "pending beyond dedupe_window")])
                                    continue
                                result.resent += 1
                            elif row[2] == OUT_OF_RANGE_TIME:
                                pass  # no time to judge it by: the encoder rejects it
                            elif baseline_cutoff is not None and row[2] is not None and row[2] < baseline_cutoff:
                                result.skipped += 1
                                continue
                            elif (status is None and row[2] is not None and snapshot - row[2] > max_age
                                  and row[1] is not None and len(str(row[1])) <= MAX_KEY_CHARS):
                                if backfill == "skip":
                                    result.skipped += 1
                                    state.ledger([(model.name, str(row[1]), None, "backfill", row[6], row[2], None,
                                                   None, None, self.run_id,
                                                   f"older than max_event_age at {now:%Y-%m-%d %H:%M}")])
                                    continue
                                if backfill == "rename":
                                    enc_with = renamer
                        encoded = enc_with.encode(row)
                        if type(encoded) is Reject:
                            self._rejected(model, result, row, encoded, now)
                            continue
                        if kind_people:
                            if row[4] is not None and row[4] != row[0]:
                                if merge_ids:
                                    self.merges[encoded.row_key] = (result, model.spec.identifier_kind, row[4],
                                                                    encoded.identifier)
                                else:
                                    result.reject(Reject(
                                        model.name, encoded.row_key, model.identifier.name, "identifier_changed",
                                        f"identifier changed from {row[4]} to {row[0]} for the same person: not sent "
                                        "(it would create a second profile); merge the profiles in Customer.io, then "
                                        "run with --full-refresh"))
                                    state.rejects([(model.name, encoded.row_key, "identifier_changed",
                                                    f"{row[4]} -> {row[0]}", False, row[2], now, self.run_id)])
                                    self.rejected_people.add(encoded.identifier)
                                    continue
                        elif encoded.identifier in rejected_people:
                            self._held(model, result, encoded)
                            continue
                        elif not row[11] and row[7] != "pending":  # (a resend went out once already)
                            result.waiting += 1  # a count, not a reject: a later run sends it
                            continue
                        ready.append(encoded)
                if ready and result.first_item is None:
                    result.first_item = ready[0].data
                closed = packer.extend(list(map(_DATA, ready)), ready)
                if closed:
                    self._gate(closed, model, gated)
                self._release(sink, gated, model, result)
                self._handle(sink.poll())
                state.flush()
                state.heartbeat_if_due(model.name, opts.shard_label, self.lease_holder, opts.lease_ttl)
                self.allocator.trim()
                progress(result)
            result.timing["last_row_at"] = time.time()
            result.timing.setdefault("first_row_at", result.timing["last_row_at"])  # no rows
            departed = None
            if kind_people and model.spec.option("on_delete") != "ignore" and state.available:
                # Who left the model: from the snapshot its rows were read in (the checked build).
                departed = reader.query(state.departed_people_sql(model.name, query.source_sql,
                                                                  self._shard_filter(adapter)))
        last = packer.flush()
        if last is not None:
            self._gate([last], model, gated)
        self._release(sink, gated, model, result, everything=True)
        self._handle(sink.poll())
        if departed:
            self._deletions(model, departed, sink, result)
        progress(result)
        return model

    def _plain_chunk(self, rows: list[tuple], model: SyncModel, encoder: Encoder, result: ModelResult,
                     oldest: int | None, now) -> list | None:
        """A fetched chunk whose rows need no decision of their own, encoded with C loops (map)
        rather than row by row: nearly every chunk of an initial sync and of most reruns. That is
        a chunk of people none of whom had another identifier, or of events none of which is in
        the ledger (pending or rejected) or older than `oldest` (max_event_age, or a dry run's
        baseline cut-off). Returns the items to send,
        the rejected rows recorded; None when some row needs the row-by-row path."""
        if model.is_event:
            if set(map(_LEDGER_STATUS, rows)) != {None} or max(map(_KEY_ROWS, rows)) > 1 \
                    or not all(map(_PERSON_KNOWN, rows)):
                return None
            try:
                if oldest is None or min(map(_EVENT_TIME, rows)) < oldest:
                    return None
            except TypeError:  # a null event time (min cannot compare it): rejected row by row
                return None
        elif set(map(_PREVIOUS_IDENTIFIER, rows)) != {None}:
            return None
        encoded = list(map(encoder.encode, rows))
        if Reject in set(map(type, encoded)):
            for row, item in zip(rows, encoded, strict=True):
                if type(item) is Reject:
                    self._rejected(model, result, row, item, now)
            encoded = [item for item in encoded if type(item) is not Reject]
        if model.is_event and self.rejected_people:
            for item in encoded:
                if item.identifier in self.rejected_people:
                    self._held(model, result, item)
            encoded = [item for item in encoded if item.identifier not in self.rejected_people]
        return encoded

    def _rejected(self, model: SyncModel, result: ModelResult, row: tuple, reject: Reject, now) -> None:
        """Record a row the encoder refused: in the result, the rejects table and, for an event,
        the ledger; a refused person's events are held back for the rest of the run."""
        result.reject(reject)
        row_hash = row[6] if model.is_event else row[2]
        self.state.rejects([(model.name, reject.row_key or "", reject.reason, reject.message, False, row_hash, now,
                             self.run_id)])
        if not reject.row_key:
            return
        if model.is_event:
            self.state.ledger([(model.name, reject.row_key, None, "rejected", row_hash, row[2], None, now, None,
                                self.run_id, reject.reason)])
        elif isinstance(row[0], str) and row[0]:
            # Events name their person by identifier, whatever the people model's key_column.
            self.rejected_people.add(row[0])

    def _people_models_for(self, model: SyncModel) -> tuple[tuple[str, bool], ...]:
        """For an event model: the people models whose acknowledged identifies its events wait
        for, those of its identifier kind in the project (selected in this run or not, synced
        yet or not) or with people in the state, each with whether its key is its identifier
        (known for the project's). Empty (nothing waits) when the project syncs no people that
        way and never has."""
        if not model.is_event or self.state is None or not self.state.available:
            return ()
        kind = model.spec.identifier_kind
        keyed = {spec.name: spec.meta.get("key_column") in (None, spec.identifier_column)
                 for spec in self.people_specs if spec.identifier_kind == kind}
        names = sorted(set(keyed) | set(self.state.people_models_of_kind(kind)))
        self.waits_for[model.name] = names
        return tuple((name, keyed.get(name, False)) for name in names)

    @staticmethod
    def _held(model: SyncModel, result: ModelResult, item) -> None:
        result.held += 1
        result.reject(Reject(model.name, item.row_key, model.identifier.name, "held",
                             "the person's identify was rejected in this run; event held back"))

    #: batches kept waiting for their state write before the producer waits for it
    MAX_GATED = 8

    def _gate(self, batches: list[Batch], model: SyncModel, gated: list[tuple[int, Batch]]) -> None:
        """Queue closed batches for sending. A batch of events goes once the keys it carries are
        committed as in flight: after a crash they are resent with the same ids, which
        Customer.io deduplicates (see StateStore.recover_inflight)."""
        seq = 0
        if model.is_event:
            now = utcnow()  # the first attempt of the batch's events, if it is not answered
            for batch in batches:
                batch.tag = (self.state.inflight(model.name, self.options.shard_label, self.run_id,
                                                 list(map(_ROW_KEY, batch.refs)), list(map(_EVENT_ID, batch.refs))),
                             now)
            seq = self.state.flush(force=True, only="inflight")
        gated.extend((seq, batch) for batch in batches)

    def _release(self, sink, gated: list[tuple[int, Batch]], model: SyncModel, result: ModelResult,
                 everything: bool = False) -> None:
        """Send the closed batches whose rows' state write has committed (all of them, waiting,
        when `everything` or when too many are waiting)."""
        state = self.state
        while gated:
            seq, batch = gated[0]
            if not state.committed(seq):
                if not everything and len(gated) <= self.MAX_GATED:
                    return
                state.wait(seq)
            gated.pop(0)
            self._submit(sink, batch, model, result)

    def _merge_changed_identifiers(self, sink) -> None:
        """Merge each old profile into the new one, once the new identify was acknowledged."""
        for key, (result, kind, old, new) in self.merges.items():
            if key not in self.acknowledged:
                continue
            problem = sink.merge({kind: new}, {kind: old})
            if problem is None:
                result.merged += 1
            else:
                result.reject(Reject(result.model, key, None, "merge_failed", f"merging {old} into {new}: {problem}"))
                self.state.rejects([(result.model, key, "merge_failed", problem, True, None, utcnow(), self.run_id)])
        self.merges.clear()

    def _built_by_checked_run(self, reader, model: SyncModel, relation: str, artifacts: Artifacts,
                              result: ModelResult) -> bool:
        """The relation must have been built by the dbt invocation whose results passed the gate:
        read in the same snapshot as the rows, so an overlapping `dbt build` whose tests have not
        run yet cannot slip its data through."""
        if not self.options.require_build_proof:
            return True
        schema = model.spec.meta.get("build_log_schema") or self.options.build_log_schema
        try:
            rows = reader.query(self.state.build_proof_sql(model.spec.unique_id, relation, schema))
        except Exception:  # noqa: BLE001 - no build log table at all
            reader.restart()
            rows = []
        built_by = rows[0][0] if rows else None
        if built_by == artifacts.invocation_id:
            return True
        result.status = "blocked"
        if built_by:
            result.message = (f"{relation} was rebuilt by dbt invocation {built_by} after the one whose results were "
                              f"checked ({artifacts.invocation_id}): a dbt run overlapped. Run cio-export again after "
                              "it finishes.")
        else:
            result.message = (f"no build proof for {relation} in {schema}.cio_builds: add the post-hook "
                              "\"{{ cio_sync.record_build() }}\" to this model (the package's marts have it), or "
                              "set meta.cio.build_log_schema / var cio_state_schema to where dbt writes it.")
        self.reporter.blocked(result)
        return False

    def _shard_filter(self, adapter) -> str | None:
        """This shard's people in the state (a condition on s.person_key), or None."""
        if self.options.shard is None:
            return None
        index, count = self.options.shard
        return f"{dialect_for(adapter).shard('s.person_key', count)} = {index}"

    def _deletions(self, model: SyncModel, departed: list[tuple], sink, result: ModelResult) -> None:
        """People this tool synced whose rows left the model (person_key, identifier, synced
        count, read in the model's snapshot): deleted or suppressed, within max_deletes."""
        action = model.spec.option("on_delete")
        gone = [(key, identifier) for key, identifier, _ in departed]
        synced = int(departed[0][2])
        cap = model.spec.meta.get("max_deletes")
        limit = (synced * float(cap[:-1]) / 100 if isinstance(cap, str) else cap) if cap is not None else None
        if limit is not None and len(gone) > limit:
            result.status = "blocked"
            result.message = (f"{len(gone)} of {synced} synced people left the model, over max_deletes ({cap}): "
                              f"nobody was {'deleted' if action == 'delete' else 'suppressed'}. Check the model; "
                              "raise max_deletes if this is intended.")
            self.reporter.blocked(result)
            return
        packer = BatchPacker(self.options.batch_bytes)
        for key, identifier in gone:
            data = orjson.dumps({"type": "person", "identifiers": {model.spec.identifier_kind: identifier},
                                 "action": action})
            item = _Departure(identifier=identifier, row_key=key)
            full = packer.add(data, item)
            if full is not None:
                self._submit(sink, full, model, result)
        last = packer.flush()
        if last is not None:
            self._submit(sink, last, model, result)

    def _submit(self, sink, batch: Batch, model: SyncModel, result: ModelResult) -> None:
        batch.owner = result  # every item of a batch is of one model
        result.batches += 1
        result.items_sent += len(batch.items)
        sink.submit(batch, model.name, self._tick)

    def _handle(self, outcomes: list[BatchOutcome]) -> None:
        state = self.state
        now = None
        for outcome in outcomes:
            refs = outcome.batch.refs  # the batch's Items (or _Departures)
            if not refs:
                continue
            result = outcome.batch.owner
            # (in-flight rows, when they were recorded) of a batch of events: the rows are deleted in
            # the write that records the outcomes
            inflight, flown_at = outcome.batch.tag or (None, None)
            if len(outcome.accepted) == len(refs) and not isinstance(refs[0], _Departure) and not self.merges:
                # The common case, kept lean: a whole batch accepted.
                result.items_accepted += len(refs)
                model = result.model
                # (map and filter: C loops over a batch's thousands of items)
                if result.kind == "people":
                    state.people_synced(model, self.run_id, list(map(_PERSON_STATE, filter(_NEW, refs))), new=True)
                    state.people_synced(model, self.run_id, list(map(_PERSON_STATE, filterfalse(_NEW, refs))))
                else:
                    state.events_sent(model, self.run_id, list(map(_LEDGER_SENT, filter(_NEW, refs))), new=True)
                    state.events_sent(model, self.run_id, list(map(_LEDGER_SENT, filterfalse(_NEW, refs))))
                    self._lags(result, refs)
                if state.has_open_rejects(model):
                    state.resolved([(model, i.row_key) for i in refs])
                if inflight:
                    state.inflight_done(inflight)
                continue
            now = now or utcnow()
            people, sent, sent_new, forget, ledger, resolved = [], [], [], [], [], []
            for index in outcome.accepted:
                item = refs[index]
                result.items_accepted += 1
                if isinstance(item, _Departure):
                    result.deleted += 1
                    forget.append((result.model, item.row_key))
                elif result.kind == "people":
                    people.append((item.row_key, item.identifier, item.row_hash))
                    if item.row_key in self.merges:
                        self.acknowledged.add(item.row_key)
                    resolved.append((result.model, item.row_key))
                else:
                    (sent_new if item.new else sent).append((item.row_key, item.event_id, item.row_hash,
                                                             item.event_time))
                    resolved.append((result.model, item.row_key))
                    self._lags(result, [item])
            rejects = []
            for index, reason, message in outcome.rejected:
                item = refs[index]
                result.reject(Reject(result.model, item.row_key, None, reason, message))
                rejects.append((result.model, item.row_key, reason, message, False, item.row_hash, now, self.run_id))
                if result.kind == "people":
                    self.rejected_people.add(item.identifier)
                elif not isinstance(item, _Departure):
                    ledger.append((result.model, item.row_key, item.event_id, "rejected", item.row_hash,
                                   item.event_time, None, now, None, self.run_id, f"{reason}: {message}"[:4000]))
            for index in outcome.undelivered:
                item = refs[index]
                result.undelivered += 1
                error = outcome.error or "retries exhausted"
                # Events are recorded pending (resent next run with the same id); people are simply
                # not in state yet, so the next run sends them again.
                # Its first attempt is when its batch went in flight, before the retries: the
                # dedupe_window of its resend counts from then.
                if result.kind != "people" and not isinstance(item, _Departure):
                    ledger.append((result.model, item.row_key, item.event_id, "pending", item.row_hash,
                                   item.event_time, flown_at or now, now, None, self.run_id,
                                   f"undelivered: {error}"[:4000]))
                rejects.append((result.model, item.row_key, "undelivered", error, True, item.row_hash, now,
                                self.run_id))
            state.people_synced(result.model, self.run_id, people)
            state.events_sent(result.model, self.run_id, sent_new, new=True)
            state.events_sent(result.model, self.run_id, sent)
            state.people_forgotten(forget)
            state.ledger(ledger)
            state.rejects(rejects)
            state.resolved(resolved)
            if inflight:
                state.inflight_done(inflight)

    @staticmethod
    def _lags(result: ModelResult, refs) -> None:
        """Send time - event time, for the run log's lag percentiles (the first 100,000 events)."""
        if len(result.lags) >= 100_000:
            return
        now = time.time()
        result.lags.extend(now - item.event_time for item in refs if item.event_time is not None)

    def _log_run_end(self, model: SyncModel, result: ModelResult) -> None:
        if result.status == "locked" or result.started_at is None:
            return
        status = result.status if result.status != "pending" else (
            "undelivered" if result.undelivered else "rejected" if result.rejected else "success")
        self.state.run_finished(
            self.run_id, model.name, scanned=result.rows_scanned, changed=result.changed,
            sent=result.items_accepted, rejected=result.rejected, skipped=result.skipped, deleted=result.deleted,
            status=status, message=result.message, lag_p50_seconds=percentile(result.lags, 0.5),
            lag_p95_seconds=percentile(result.lags, 0.95))


class _Allocator:
    """glibc's allocator, tuned for a streaming process with threads (elsewhere, musl or macOS,
    both steps do nothing).

    - Every allocation over 128 KB (request bodies, COPY buffers, fetched chunks) gets its own
      mapping, returned to the system when freed. By default glibc raises that threshold after
      such a block is freed, after which the ~500 KB bodies made and dropped for every request
      come from the heaps and stay resident: about 50 MB more peak memory in a first sync.
    - Memory freed in the sender, reader and writer threads' heaps is only given back to the
      system by malloc_trim: called at most once a second while streaming (a few milliseconds).
    """

    def __init__(self) -> None:
        self._libc = None
        self._last_trim = 0.0
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
            libc.malloc_trim.argtypes = [ctypes.c_size_t]
            self._libc = libc
        except (OSError, AttributeError):
            pass

    def trim(self) -> None:
        if self._libc is not None and time.monotonic() - self._last_trim > 1.0:
            self._libc.malloc_trim(0)
            self._last_trim = time.monotonic()


@contextmanager
def _collector_tuned():
    """Objects that exist before streaming (dbt, its adapters, the manifest: a large heap) are
    moved out of the cyclic collector's sight with gc.freeze. Its collections of the oldest
    generation walked all of them again and again: a third of the exporter's time in a first
    sync. The thresholds stay the default ones: young cycles (httpx makes a few per request,
    each holding its ~500 KB body) are freed soon, so memory stays flat. Undone afterwards."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@dataclass(frozen=True)
class _Departure:
    """A delete or suppress item: a person who left a people model."""

    identifier: str
    row_key: str
    row_hash: str | None = None
    event_id: str | None = None
    event_time: int | None = None


def write_results(summary: RunSummary, target_path: Path) -> Path:
    """target/cio_export_results.json, in the spirit of dbt's run_results.json."""
    target_path.mkdir(parents=True, exist_ok=True)
    path = target_path / RESULTS_FILE
    path.write_bytes(orjson.dumps(summary.as_dict(), option=orjson.OPT_INDENT_2))
    return path
