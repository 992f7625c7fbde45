"""`cio-export run`: select → gate → resolve → sync each model (model_sync), people before
events, with a summary and a results artifact at the end."""

from __future__ import annotations

import gc
import time
import uuid

from .._encode import Reject
from .._errors import ConfigError
from .._output import Reporter
from .._project.artifacts import Artifacts, close_adapter, open_adapter, select_models
from .._project.gates import gate
from .._project.hints import nothing_selected, stale_manifest
from .._project.model import ModelSpec, SyncModel, check_identifier_kinds, not_people_models_of, people_specs_of
from .._read.query import relation_columns
from .._send.sinks import ClientSink, OutboxSink, Sink
from .._send.transport import TrackClient
from .._state import StateStore, lease_holder, utcnow
from .kinds import KIND_ORDER, SYNCS
from .memory import Allocator, collector_tuned
from .model_sync import RunContext
from .options import RunOptions
from .outcomes import OutcomeRecorder
from .pacing import pace
from .results import ModelResult, RunSummary, percentile


class Exporter:
    def __init__(self, options: RunOptions, reporter: Reporter) -> None:
        self.options = options
        self.reporter = reporter
        self.run_id = str(uuid.uuid4())
        self.lease_holder = lease_holder(self.run_id)  # who holds this run's leases: run, host, process
        self.waits_for: dict[str, list[str]] = {}  # event model -> the people models its events wait for
        self.people_specs: list[ModelSpec] = []  # the project's people models, selected or not
        self.not_people: frozenset[str] = frozenset()  # its object, relationship, device, suppression models
        self.allocator = Allocator()  # tuned before the artifacts are loaded (see Allocator)
        self.artifacts: Artifacts | None = None  # once loaded (alerts read them after the run)

    # -- planning: everything that can fail before a single row is read -------------------
    def plan(self, artifacts: Artifacts) -> tuple[list[ModelSpec], list[ModelResult]]:
        stale = stale_manifest(self.options.dbt.project_dir, artifacts)
        if stale:
            self.reporter.note(stale)
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
            if self.options.person is not None and spec.kind == "object":
                self.reporter.note(f"{spec.name}: an object model, whose rows are no person's: not previewed")
                continue
            specs.append(spec)
        if errors:
            raise ConfigError("\n".join(errors))
        if not specs:
            raise ConfigError(nothing_selected(self.options.select, artifacts, self.options.dbt.selector))
        check_identifier_kinds(specs, self.options.allow_mixed_identifiers)
        passing = []
        for spec in specs:
            result = ModelResult(spec.unique_id, spec.name, spec.kind, preview=[] if self.options.preview else None)
            verdict = gate(artifacts, spec.unique_id, ignore_test_failures=self.options.ignore_test_failures)
            result.failing_tests, result.warning_tests = verdict.failing_tests, verdict.warning_tests
            if not verdict.passed:
                result.status, result.message = "blocked", verdict.reason
            else:
                passing.append(spec)
            results.append(result)
        return passing, results

    def run(self) -> RunSummary:
        with collector_tuned():
            return self._run()

    def _run(self) -> RunSummary:
        opts = self.options
        started = time.time()
        artifacts = self.artifacts = Artifacts.load(opts.dbt.target_path)
        summary = RunSummary(invocation_id=self.run_id, dbt_invocation_id=artifacts.invocation_id,
                             dry_run=opts.dry_run, started_at=started, results=[], person=opts.person)
        specs, results = self.plan(artifacts)
        nodes = (artifacts.manifest_dict.get("nodes") or {}).values()
        self.people_specs = people_specs_of(nodes)
        self.not_people = not_people_models_of(nodes)
        summary.mark("artifacts_seconds", started)  # manifest, run results, selection, gates
        summary.results = sorted(results, key=lambda r: (r.kind != "people", r.model))
        self._announce(summary.results)
        sink = self._open_sink()
        summary.mark("preflight_seconds")
        self._sync_all(artifacts, specs, summary, sink)
        self._report(summary.results)
        summary.transport = dict(sink.stats)
        summary.mark("shutdown_seconds")  # closing connections and the sender
        summary.elapsed = time.time() - started
        summary.exit_code = summary.compute_exit_code()
        return summary

    def _announce(self, results: list[ModelResult]) -> None:
        """What the gates decided, before anything is read."""
        for result in results:
            if result.status == "blocked":
                self.reporter.blocked(result)
            elif result.warning_tests:
                self.reporter.note(f"{result.model}: tests warned: {', '.join(result.warning_tests)}")
            if result.failing_tests and result.status != "blocked":
                self.reporter.note(f"{result.model}: SENDING DESPITE FAILING TESTS (--ignore-test-failures): "
                                   + ", ".join(result.failing_tests))

    def _open_sink(self) -> Sink:
        if self.options.dry_run:
            return OutboxSink(self.options.outbox)
        if self.options.track is None:
            raise ConfigError("no Customer.io Track API settings: set CUSTOMERIO_SITE_ID and CUSTOMERIO_API_KEY")
        client = TrackClient(self.options.track)
        try:
            client.preflight(on_retry=self.reporter.note)
        except BaseException:
            client.close()
            raise
        return ClientSink(client)

    def _sync_all(self, artifacts: Artifacts, specs: list[ModelSpec], summary: RunSummary, sink: Sink) -> None:
        """Every passing model, people first (an event of a person whose identify was rejected
        is held back), on one warehouse connection and one state store; closes the sink."""
        opts = self.options
        by_id = {r.unique_id: r for r in summary.results}
        adapter, state, budget, completed = None, None, None, False
        try:
            adapter = open_adapter(opts.dbt, artifacts)
            with adapter.connection_named("cio-export"):
                state = StateStore(adapter, opts.state_schema, read_only=opts.dry_run).open()
                budget = pace(opts, adapter, state, sink, self.reporter)
                models = sorted((spec.resolve(relation_columns(adapter, spec)) for spec in specs),
                                key=lambda m: KIND_ORDER[m.kind])
                models = self.before_models(adapter, state, models)
                snapshot = int(time.time())
                summary.mark("connect_seconds")  # adapter, state connection and tables, model columns
                run = RunContext(
                    options=opts, reporter=self.reporter, state=state, sink=sink,
                    record=OutcomeRecorder(state, self.run_id, set(), {}), run_id=self.run_id,
                    lease_holder=self.lease_holder, trim=self.allocator.trim, waits_for=self.waits_for,
                    people_specs=self.people_specs, not_people=self.not_people)
                gc.freeze()  # the manifest and the adapter, loaded since: out of the collector's sight too
                people_done = False
                for model in models:
                    if model.is_event and not people_done:
                        self._people_done(run)
                        people_done = True
                    SYNCS[model.kind](run, adapter, artifacts, model, snapshot, by_id[model.spec.unique_id]).run_model()
                run.record(sink.drain())
                if not people_done:
                    self._merge_changed_identifiers(run)
                state.flush(force=True)
                for model in models:
                    self._log_run_end(state, model, by_id[model.spec.unique_id])
                self.after_models(adapter, state, models)
                summary.mark("models_seconds")
                completed = True
        finally:
            # A run stopped by a signal or an error does not wait for retries and queued
            # batches: what is in flight is resent by the next run under the same ids.
            sink.close(wait=completed)
            if budget is not None:
                budget.close()
            if state is not None:
                state.close()
            if adapter is not None:
                close_adapter(adapter)

    # -- what a run of another purpose adds (explain: _run.explain) ------------------------------
    def before_models(self, adapter, state: StateStore, models: list[SyncModel]) -> list[SyncModel]:
        """With the warehouse and the state open, before any model syncs: the models to sync."""
        return models

    def after_models(self, adapter, state: StateStore, models: list[SyncModel]) -> None:
        """Once every model has synced and its state is committed, before the connections close."""

    def _people_done(self, run: RunContext) -> None:
        """Between the people and the events: every identify answered, profiles merged, the
        people's state committed (the events' queries read it)."""
        run.record(run.sink.drain())
        self._merge_changed_identifiers(run)
        run.state.flush(force=True)

    def _merge_changed_identifiers(self, run: RunContext) -> None:
        """Merge each old profile into the new one, once the new identify was acknowledged."""
        merges, acknowledged = run.record.merges, run.record.acknowledged
        for key, (result, kind, old, new) in merges.items():
            if key not in acknowledged:
                continue
            problem = run.sink.merge({kind: new}, {kind: old})
            if problem is None:
                result.merged += 1
            else:
                result.reject(Reject(result.model, key, None, "merge_failed", f"merging {old} into {new}: {problem}"))
                run.state.rejects([(result.model, key, "merge_failed", problem, True, None, utcnow(), self.run_id)])
        merges.clear()

    def _report(self, results: list[ModelResult]) -> None:
        for result in results:
            result.finish()
            if result.status != "blocked" or result.message:
                self.reporter.model_done(result)
            if result.waiting:
                people = ", ".join(self.waits_for.get(result.model, ())) or "the project's people models"
                self.reporter.note(
                    f"{result.model}: {result.waiting} events wait for their person's first identify by {people}; "
                    "they go out with the first run after it. If Customer.io gets these people from another "
                    "source, set meta.cio.enabled: false on those people models.")

    def _log_run_end(self, state: StateStore, model: SyncModel, result: ModelResult) -> None:
        if result.status == "locked" or result.started_at is None:
            return
        status = result.status if result.status != "pending" else (
            "undelivered" if result.undelivered else "rejected" if result.rejected else "success")
        state.run_finished(
            self.run_id, model.name, scanned=result.rows_scanned, changed=result.changed,
            sent=result.items_accepted, rejected=result.rejected, skipped=result.skipped, deleted=result.deleted,
            status=status, message=result.message, lag_p50_seconds=percentile(result.lags, 0.5),
            lag_p95_seconds=percentile(result.lags, 0.95))

