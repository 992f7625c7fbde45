"""What the status page shows, gathered in one pass and read only: each model's status and state,
its runs (summed per `cio-export run` for the charts), rejects, events in flight or uncertain,
the quarantine, the recorded reconciles and the tests of the last build."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ... import __version__
from ..._project.artifacts import Artifacts, DbtContext, close_adapter, open_adapter
from ..._project.model import ModelSpec
from ..._state import StateStore, utcnow
from ..build_tests import BuildTests, last_build_tests
from ..history import RunRecord, iso_utc, model_history
from ..quarantine import Quarantine, quarantine_summary
from ..reconcile.record import ReconcileRecord, recent_reconciliations
from ..rejects import RejectGroup, reject_groups
from ..status import ModelStatus, Thresholds, model_statuses

#: A run's outcome is the worst of its models' (cio_runs.status), in this order.
OUTCOME_ORDER = ("undelivered", "failed", "stopped", "blocked", "rejected", "locked", "running", "success")


@dataclass
class RunPoint:
    """One `cio-export run` (one run id, one shard), summed over its models."""

    run_id: str
    started_at: datetime | None
    finished_at: datetime | None
    outcome: str
    models: dict[str, str]  # model -> its outcome
    sent: int = 0
    rejected: int = 0
    lag_p95_seconds: float | None = None  # the largest of its event models'

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "started_at": iso_utc(self.started_at), "finished_at": iso_utc(self.finished_at),
                "outcome": self.outcome, "models": self.models, "sent": self.sent, "rejected": self.rejected,
                "lag_p95_seconds": self.lag_p95_seconds}


@dataclass
class Report:
    generated_at: datetime
    project: str | None
    target: str | None
    state_schema: str
    state_available: bool
    models: list[ModelStatus]
    runs: list[RunPoint]  # newest first
    rejects: list[RejectGroup]
    quarantine: Quarantine
    reconciliations: list[ReconcileRecord]  # newest first
    tests: BuildTests
    version: str = __version__
    notes: list[str] = field(default_factory=list)

    def states(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for model in self.models:
            counts[model.state] = counts.get(model.state, 0) + 1
        return counts

    def as_dict(self) -> dict[str, Any]:
        return {"generated_at": iso_utc(self.generated_at), "project": self.project, "target": self.target,
                "state_schema": self.state_schema, "version": self.version, "states": self.states(),
                "models": [m.as_dict() for m in self.models], "runs": [r.as_dict() for r in self.runs],
                "rejects": [g.as_dict() for g in self.rejects], "quarantine": self.quarantine.as_dict(),
                "reconciliations": [r.as_dict() for r in self.reconciliations], "tests": self.tests.as_dict(),
                "notes": self.notes}


def run_points(history: Sequence[RunRecord], limit: int) -> list[RunPoint]:
    """The models' runs summed per run id, the newest `limit` first."""
    points: dict[str, RunPoint] = {}
    rank = {outcome: i for i, outcome in enumerate(OUTCOME_ORDER)}
    for record in history:
        outcome = record.status or "running"
        point = points.get(record.run_id)
        if point is None:
            point = points[record.run_id] = RunPoint(record.run_id, record.started_at, record.finished_at, outcome, {})
        point.models[record.model] = outcome
        point.sent += record.sent or 0
        point.rejected += record.rejected or 0
        if record.started_at is not None and (point.started_at is None or record.started_at < point.started_at):
            point.started_at = record.started_at
        if record.finished_at is not None and (point.finished_at is None or record.finished_at > point.finished_at):
            point.finished_at = record.finished_at
        if record.lag_p95_seconds is not None:
            point.lag_p95_seconds = max(point.lag_p95_seconds or 0.0, record.lag_p95_seconds)
        if rank.get(outcome, 0) < rank.get(point.outcome, 0):
            point.outcome = outcome
    oldest = datetime.min
    ordered = sorted(points.values(), key=lambda p: (p.started_at or oldest, p.run_id), reverse=True)
    return ordered[:limit]


def collect_report(ctx: DbtContext, artifacts: Artifacts, specs: Sequence[ModelSpec], state_schema: str, *,
                   runs: int = 50, thresholds: Thresholds | None = None) -> Report:
    """Everything the page shows, read through the dbt profile's connection: the state
    (read only), cio_quarantine, and the artifacts' test results."""
    names = [spec.name for spec in specs]
    adapter = open_adapter(ctx, artifacts)
    try:
        with adapter.connection_named("cio-export"):
            state = StateStore(adapter, state_schema, read_only=True).open()
            try:
                models = model_statuses(state, list(specs), adapter, thresholds or Thresholds(), artifacts)
                history, rejects, reconciliations = [], [], []
                if state.available:
                    history = [r for name in names for r in model_history(state, name, runs)]
                    rejects = reject_groups(state, names)
                    reconciliations = recent_reconciliations(state)
            finally:
                state.close()
            quarantine = quarantine_summary(adapter, artifacts)
            target = getattr(adapter.config, "target_name", None)
    finally:
        close_adapter(adapter)
    report = Report(
        generated_at=utcnow().replace(tzinfo=timezone.utc), project=(artifacts.manifest_dict.get("metadata") or {}).get(
            "project_name"), target=target, state_schema=state_schema, state_available=state.available, models=models,
        runs=run_points(history, runs), rejects=rejects, quarantine=quarantine, reconciliations=reconciliations,
        tests=last_build_tests(artifacts))
    if not state.available:
        report.notes.append(f"no state in {state_schema} yet: no model has been synced with this state schema")
    return report
