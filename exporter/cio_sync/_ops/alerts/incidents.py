"""What is wrong, as incidents: each has a kind, a subject (a model, a segment, a run's
selection) and so a key, a one-line summary with the figures, and what to do. Built here from
what a command found, with no database and no network; the ledger decides which are new.

An evaluation also says what it looked at (its scope): an incident of the scope that is not
found again has recovered. A run of `--select cio_people` says nothing about another model."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from ..._output import human_duration, utc_text

RUN_FAILED = "run_failed"
MODEL_BLOCKED = "model_blocked"
REJECTS = "rejects_over_threshold"
MODEL_STALLED = "model_stalled"
RECONCILE_GAP = "reconcile_gap"

#: kind -> how a person reads it
TITLES = {
    RUN_FAILED: "failed",
    MODEL_BLOCKED: "blocked",
    REJECTS: "open rejects over the threshold",
    MODEL_STALLED: "stalled",
    RECONCILE_GAP: "beyond tolerance",
}
KEY_CHARS = 1024  # cio_incidents.incident_key


@dataclass(frozen=True)
class Incident:
    kind: str
    subject: str
    summary: str
    advice: str = ""

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.subject}"[:KEY_CHARS]

    @property
    def title(self) -> str:
        return f"{self.subject}: {TITLES[self.kind]}"


def key_of(kind: str, subject: str) -> str:
    return Incident(kind, subject, "").key


@dataclass(frozen=True)
class Evaluation:
    """What one evaluation found (`incidents`) among what it looked at (`scope`, keys)."""

    incidents: tuple[Incident, ...]
    scope: frozenset[str]

    def __add__(self, other: Evaluation) -> Evaluation:
        return Evaluation(self.incidents + other.incidents, self.scope | other.scope)


class ModelOutcome(Protocol):
    """What a run says of one selected model (the run's ModelResult)."""

    unique_id: str
    model: str
    status: str
    message: str | None
    undelivered: int
    failing_tests: tuple[str, ...]


@dataclass(frozen=True)
class RunOutcome:
    """How a `cio-export run` ended: its selection as typed (`--select tag:cio`, with the
    exclusions and the shard: a shard's run is a run of its own), exit code, the error that
    ended it early (then there are no model results), and each selected model's result."""

    selection: str
    exit_code: int
    error: str | None = None
    results: Sequence[ModelOutcome] = ()


def run_incidents(run: RunOutcome) -> Evaluation:
    """A failed run (an error, or rows left undelivered: exit 2, 3 or 4), and each model the
    run blocked. A model another run held (locked) was not looked at."""
    found = []
    if run.exit_code >= 2:
        undelivered = [r for r in run.results if r.undelivered]
        if run.error:
            why = run.error
        elif undelivered:
            why = "delivery incomplete: " + ", ".join(f"{r.undelivered} undelivered in {r.model}" for r in undelivered)
        else:
            why = "see target/cio_export_results.json"
        advice = {2: "fix the configuration (the error says what); nothing was sent",
                  3: "run again (resending is safe); if it persists, check Customer.io's status and the network",
                  }.get(run.exit_code, "report it with the command line and this message")
        found.append(Incident(RUN_FAILED, f"run {run.selection}",
                              f"cio-export run {run.selection} failed (exit {run.exit_code}): {why}", advice))
    looked = {key_of(RUN_FAILED, f"run {run.selection}")}
    for result in run.results:
        if result.status == "locked":
            continue
        looked.add(key_of(MODEL_BLOCKED, result.model))
        if result.status == "blocked":
            tests = f" (failing: {', '.join(result.failing_tests)})" if result.failing_tests else ""
            found.append(Incident(MODEL_BLOCKED, result.model,
                                  f"{result.model} is blocked, not synced: {result.message or 'see the run'}{tests}",
                                  "fix what the reason names, then the next run syncs it"))
    return Evaluation(tuple(found), frozenset(looked))


@dataclass(frozen=True)
class ModelHealth:
    """What the state says of one synced model: open rejects (by reason, not counting
    undelivered rows, which fail the run instead) and its last successful run against max_lag."""

    model: str
    open_rejects: Mapping[str, int]
    last_success_at: datetime | None
    max_lag: str | None
    max_lag_seconds: float | None


def health_incidents(models: Iterable[ModelHealth], max_open_rejects: int, now: datetime) -> Evaluation:
    """Open rejects over the threshold, and models whose last success is older than max_lag."""
    found, looked = [], set()
    for health in models:
        looked |= {key_of(REJECTS, health.model), key_of(MODEL_STALLED, health.model)}
        total = sum(health.open_rejects.values())
        if total > max_open_rejects:
            reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(health.open_rejects.items(),
                                                                       key=lambda item: (-item[1], item[0]))[:3])
            found.append(Incident(REJECTS, health.model,
                                  f"{health.model} has {total} open rejects (threshold {max_open_rejects}): {reasons}",
                                  f"cio-export status --select {health.model} shows them; each reason and what to do "
                                  "about it: docs/operations.md"))
        if health.max_lag_seconds is not None and health.last_success_at is not None:
            since = (now - health.last_success_at).total_seconds()
            if since > health.max_lag_seconds:
                found.append(Incident(MODEL_STALLED, health.model,
                                      f"{health.model} last synced successfully {human_duration(since)} ago "
                                      f"({utc_text(health.last_success_at)}), over its max_lag of {health.max_lag}",
                                      f"check that its runs are scheduled and succeed: cio-export history --select "
                                      f"{health.model}"))
    return Evaluation(tuple(found), frozenset(looked))


class SegmentOutcome(Protocol):
    """What reconcile found for one segment (its SegmentResult)."""

    segment_id: int
    name: str
    model: str
    ok: bool
    problem: str | None


def reconcile_incidents(results: Iterable[SegmentOutcome]) -> Evaluation:
    found, looked = [], set()
    for result in results:
        subject = f"segment {result.segment_id}"
        looked.add(key_of(RECONCILE_GAP, subject))
        if not result.ok:
            found.append(Incident(RECONCILE_GAP, subject,
                                  f"segment {result.segment_id} ({result.name}, model {result.model}): "
                                  f"{result.problem}",
                                  "cio-export reconcile --membership lists who is on one side only"))
    return Evaluation(tuple(found), frozenset(looked))
