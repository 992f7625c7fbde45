"""`cio-export history`: the last runs of each synced model, as cio_runs recorded them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .._output import iso_utc
from .._state import StateStore

__all__ = ["RunRecord", "iso_utc", "model_history"]


@dataclass(frozen=True)
class RunRecord:
    model: str
    run_id: str
    shard: str | None
    started_at: datetime | None
    finished_at: datetime | None
    status: str | None
    scanned: int | None
    changed: int | None
    sent: int | None
    rejected: int | None
    skipped: int | None
    deleted: int | None
    lag_p50_seconds: float | None
    lag_p95_seconds: float | None
    dbt_invocation_id: str | None
    message: str | None

    @property
    def seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return round((self.finished_at - self.started_at).total_seconds(), 3)

    def as_dict(self) -> dict:
        return {
            "model": self.model, "run_id": self.run_id, "shard": self.shard,
            "started_at": iso_utc(self.started_at), "finished_at": iso_utc(self.finished_at),
            "duration_seconds": self.seconds, "status": self.status or "running", "scanned": self.scanned,
            "changed": self.changed, "sent": self.sent, "rejected": self.rejected, "skipped": self.skipped,
            "deleted": self.deleted, "lag_p50_seconds": self.lag_p50_seconds, "lag_p95_seconds": self.lag_p95_seconds,
            "dbt_invocation_id": self.dbt_invocation_id, "message": self.message,
        }


COLUMNS = ("run_id", "shard", "started_at", "finished_at", "status", "scanned", "changed", "sent", "rejected",
           "skipped", "deleted", "lag_p50_seconds", "lag_p95_seconds", "dbt_invocation_id", "message")


def model_history(state: StateStore, model: str, limit: int) -> list[RunRecord]:
    """The model's last `limit` runs, newest first (a run still going has no finished_at)."""
    rows = state.execute(
        f"select {', '.join(COLUMNS)} from {state.table('cio_runs')} where model = {state._lit(model)} "
        f"order by started_at desc, run_id desc limit {int(limit)}")
    return [RunRecord(model, *row) for row in rows]
