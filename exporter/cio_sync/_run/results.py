"""What a run did, per model and as a whole: the summary the CLI prints and the results
artifact (target/cio_export_results.json, in the spirit of dbt's run_results.json)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import orjson

from .. import __version__
from .._encode import Reject

RESULTS_FILE = "cio_export_results.json"
REJECT_SAMPLE = 100


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
    preview: list[bytes] | None = None  # a preview's (RunOptions.preview) every item, as it would be sent
    lags: list[float] = field(default_factory=list)  # send time - event time, seconds
    # Epoch seconds: first_row_at, last_row_at, last_ack_at, committed_at (see timing_dict)
    timing: dict = field(default_factory=dict)

    def reject(self, reject: Reject) -> None:
        self.rejected += 1
        self.reject_reasons[reject.reason] += 1
        if len(self.reject_sample) < REJECT_SAMPLE:
            self.reject_sample.append(reject)

    def finish(self) -> None:
        if self.finished_at is None:  # set when the model's own work ended (see ModelSync.run_model)
            self.finished_at = time.time()
        if self.status != "pending":
            return
        if self.undelivered:
            self.status = "undelivered"
        elif self.rejected or self.held:
            self.status = "rejected"
        else:
            self.status = "success"

    def as_dict(self, dry_run: bool = False) -> dict:
        """The model's line of the results file. A dry run sent nothing and nothing was accepted:
        `would_send` takes the place of `items_sent` and `items_accepted`."""
        out = self._as_dict()
        if dry_run:
            out = {("would_send" if k == "items_sent" else k): v for k, v in out.items() if k != "items_accepted"}
        return out

    def _as_dict(self) -> dict:
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
            **({"items": [orjson.loads(item) for item in self.preview]} if self.preview is not None else {}),
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
    person: str | None = None  # a preview of one person's items (run --dry-run --person)
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
                **({"person": self.person} if self.person is not None else {}),
            },
            "elapsed_time": round(self.elapsed, 3),
            "timing": self.timing,
            "exit_code": self.exit_code,
            "error": self.error,
            "results": [r.as_dict(self.dry_run) for r in self.results],
            "transport": {"would_send": self.transport} if self.dry_run else self.transport,
        }


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def write_results(summary: RunSummary, target_path: Path) -> Path:
    """target/cio_export_results.json, in the spirit of dbt's run_results.json."""
    target_path.mkdir(parents=True, exist_ok=True)
    path = target_path / RESULTS_FILE
    path.write_bytes(orjson.dumps(summary.as_dict(), option=orjson.OPT_INDENT_2))
    return path
