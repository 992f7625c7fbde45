"""`cio-export run`: select → gate → resolve → read → encode → batch → send, one model after
another, people before events, with a summary and a results artifact at the end."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import orjson

from . import __version__
from ._batch import BatchPacker
from ._dbt import Artifacts, DbtContext, close_adapter, gate, open_adapter, select_models
from ._encode import Encoder, Reject
from ._errors import ConfigError
from ._model import ModelSpec, SyncModel, check_identifier_kinds
from ._output import Reporter
from ._transport import Batch, BatchOutcome, TrackClient, TrackSettings
from ._warehouse import build_query, dialect_for, relation_columns, stream_rows

RESULTS_FILE = "cio_export_results.json"
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
    fetch_rows: int = 10_000


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
    undelivered: int = 0
    batches: int = 0
    failing_tests: tuple[str, ...] = ()
    warning_tests: tuple[str, ...] = ()
    reject_reasons: Counter = field(default_factory=Counter)
    reject_sample: list[Reject] = field(default_factory=list)
    started_at: float | None = None
    finished_at: float | None = None
    first_item: bytes | None = None  # shown by --dry-run

    def reject(self, reject: Reject) -> None:
        self.rejected += 1
        self.reject_reasons[reject.reason] += 1
        if len(self.reject_sample) < REJECT_SAMPLE:
            self.reject_sample.append(reject)

    def finish(self) -> None:
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
            "undelivered": self.undelivered,
            "batches": self.batches,
            "failing_tests": list(self.failing_tests),
            "warning_tests": list(self.warning_tests),
            "reject_reasons": dict(self.reject_reasons),
            "rejects": [r.as_dict() for r in self.reject_sample],
            "execution_time": round((self.finished_at or time.time()) - (self.started_at or time.time()), 3),
        }


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

    def compute_exit_code(self) -> int:
        statuses = {r.status for r in self.results}
        if "undelivered" in statuses:
            return 3
        if statuses & {"rejected", "blocked"}:
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

    def submit(self, batch: Batch, model: str) -> None:
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

    def drain(self) -> list[BatchOutcome]:
        return self.poll()

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()


class ClientSink:
    """The real thing: a TrackClient."""

    def __init__(self, client: TrackClient) -> None:
        self.client = client

    def submit(self, batch: Batch, model: str) -> None:
        self.client.submit(batch)

    def poll(self) -> list[BatchOutcome]:
        return self.client.poll()

    def drain(self) -> list[BatchOutcome]:
        return self.client.drain()

    @property
    def stats(self) -> dict:
        return self.client.stats

    def close(self) -> None:
        self.client.close()


class Exporter:
    def __init__(self, options: RunOptions, reporter: Reporter) -> None:
        self.options = options
        self.reporter = reporter
        self.rejected_people: set[str] = set()

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
            raise ConfigError(
                f"--select {' '.join(self.options.select)} matched no model with meta.cio: nothing to sync"
            )
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
        opts = self.options
        started = time.time()
        artifacts = Artifacts.load(opts.dbt.target_path)
        summary = RunSummary(
            invocation_id=str(uuid.uuid4()),
            dbt_invocation_id=artifacts.invocation_id,
            dry_run=opts.dry_run,
            started_at=started,
            results=[],
        )
        specs, results = self.plan(artifacts)
        summary.results = sorted(results, key=lambda r: (r.kind != "people", r.model))
        by_id = {r.unique_id: r for r in summary.results}
        for result in summary.results:
            if result.status == "blocked":
                self.reporter.blocked(result)
            elif result.warning_tests:
                self.reporter.note(f"{result.model}: tests warned: {', '.join(result.warning_tests)}")
            if result.failing_tests and result.status != "blocked":
                self.reporter.note(
                    f"{result.model}: SENDING DESPITE FAILING TESTS (--ignore-test-failures): "
                    + ", ".join(result.failing_tests)
                )

        sink = OutboxSink(opts.outbox) if opts.dry_run else None
        if sink is None:
            client = TrackClient(opts.track)
            try:
                client.preflight()
            except BaseException:
                client.close()
                raise
            sink = ClientSink(client)
        adapter = None
        try:
            adapter = open_adapter(opts.dbt, artifacts)
            with adapter.connection_named("cio-export"):
                models = [spec.resolve(relation_columns(adapter, spec)) for spec in specs]
                snapshot = int(time.time())
                # People first: an event for a person whose identify was rejected is held back.
                ordered = sorted(models, key=lambda m: m.is_event)
                people_done = False
                for model in ordered:
                    if model.is_event and not people_done:
                        self._handle(sink.drain())
                        people_done = True
                    self._sync_model(adapter, model, snapshot, sink, by_id[model.spec.unique_id])
                self._handle(sink.drain())
        finally:
            sink.close()
            if adapter is not None:
                close_adapter(adapter)
        for result in summary.results:
            result.finish()
            if result.status not in ("blocked",):
                self.reporter.model_done(result)
        summary.transport = dict(sink.stats)
        summary.elapsed = time.time() - started
        summary.exit_code = summary.compute_exit_code()
        return summary

    def _sync_model(self, adapter, model: SyncModel, snapshot: int, sink, result: ModelResult) -> None:
        result.started_at = time.time()
        relation = adapter.Relation.create(
            database=model.spec.database, schema=model.spec.schema, identifier=model.spec.alias
        )
        query = build_query(model, dialect_for(adapter), relation.render())
        encoder = Encoder(model, snapshot, query.n_head)
        packer = BatchPacker(self.options.batch_bytes)
        hold = self.rejected_people if model.is_event else None
        progress = self.reporter.model_started(model)
        for rows in stream_rows(adapter, query.sql, self.options.fetch_rows):
            result.rows_scanned += len(rows)
            for row in rows:
                encoded = encoder.encode(row)
                if isinstance(encoded, Reject):
                    result.reject(encoded)
                    if not model.is_event and encoded.row_key:
                        self.rejected_people.add(encoded.row_key)
                    continue
                if hold and encoded.identifier in hold:
                    result.held += 1
                    result.reject(
                        Reject(
                            model.name,
                            encoded.row_key,
                            model.identifier.name,
                            "held",
                            "the person's identify was rejected in this run; event held back",
                        )
                    )
                    continue
                if result.first_item is None:
                    result.first_item = encoded.data
                full = packer.add(encoded.data, (result, encoded))
                if full is not None:
                    self._submit(sink, full, model, result)
            self._handle(sink.poll())
            progress(result)
        last = packer.flush()
        if last is not None:
            self._submit(sink, last, model, result)
        self._handle(sink.poll())
        progress(result)

    @staticmethod
    def _submit(sink, batch: Batch, model: SyncModel, result: ModelResult) -> None:
        result.batches += 1
        result.items_sent += len(batch.items)
        sink.submit(batch, model.name)

    def _handle(self, outcomes: list[BatchOutcome]) -> None:
        for outcome in outcomes:
            refs = outcome.batch.refs
            for index in outcome.accepted:
                refs[index][0].items_accepted += 1
            for index, reason, message in outcome.rejected:
                result, item = refs[index]
                result.reject(Reject(result.model, item.row_key, None, reason, message))
                if result.kind == "people":
                    self.rejected_people.add(item.identifier)
            for index in outcome.undelivered:
                refs[index][0].undelivered += 1


def write_results(summary: RunSummary, target_path: Path) -> Path:
    """target/cio_export_results.json, in the spirit of dbt's run_results.json."""
    target_path.mkdir(parents=True, exist_ok=True)
    path = target_path / RESULTS_FILE
    path.write_bytes(orjson.dumps(summary.as_dict(), option=orjson.OPT_INDENT_2))
    return path
