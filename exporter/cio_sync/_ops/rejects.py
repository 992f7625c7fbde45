"""Rejects by model and reason, open and resolved, with a few of each (newest first), from the
state's `cio_rejects`: what `report` shows of the rows Customer.io or cio-export refused."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .._state import StateStore
from .history import iso_utc


@dataclass(frozen=True)
class RejectSample:
    row_key: str
    message: str | None
    last_seen_at: datetime | None
    resolved_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {"row_key": self.row_key, "message": self.message, "last_seen_at": iso_utc(self.last_seen_at),
                "resolved_at": iso_utc(self.resolved_at)}


@dataclass
class RejectGroup:
    """The rejects of one model for one reason."""

    model: str
    reason: str
    open: int
    resolved: int
    last_seen_at: datetime | None
    open_samples: list[RejectSample] = field(default_factory=list)
    resolved_samples: list[RejectSample] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "reason": self.reason, "open": self.open, "resolved": self.resolved,
                "last_seen_at": iso_utc(self.last_seen_at),
                "open_samples": [s.as_dict() for s in self.open_samples],
                "resolved_samples": [s.as_dict() for s in self.resolved_samples]}


def reject_groups(state: StateStore, models: Sequence[str], samples: int = 3) -> list[RejectGroup]:
    """One group per (model, reason), those with the most open rejects first, each with up to
    `samples` open and `samples` resolved rows, the last seen first."""
    if not models:
        return []
    table = state.table("cio_rejects")
    among = f"model in ({', '.join(['%s'] * len(models))})"
    is_open = "case when resolved_at is null then 1 else 0 end"
    counts = state.execute(
        f"select model, reason, sum({is_open}), sum(1 - {is_open}), max(last_seen_at) from {table} where {among} "
        "group by model, reason", list(models))
    groups = {(m, r): RejectGroup(m, r, int(o or 0), int(d or 0), seen) for m, r, o, d, seen in counts}
    rows = state.execute(
        f"select model, reason, is_open, row_key, message, last_seen_at, resolved_at from (select model, reason, "
        f"{is_open} as is_open, row_key, message, last_seen_at, resolved_at, row_number() over (partition by model, "
        f"reason, {is_open} order by last_seen_at desc, row_key) as n from {table} where {among}) s "
        "where n <= %s order by model, reason, is_open, n", [*models, int(samples)])
    for model, reason, opened, row_key, message, seen, resolved in rows:
        group = groups.get((model, reason))
        if group is not None:
            sample = RejectSample(row_key, message, seen, resolved)
            (group.open_samples if opened else group.resolved_samples).append(sample)
    return sorted(groups.values(), key=lambda g: (-g.open, -g.resolved, g.model, g.reason))
