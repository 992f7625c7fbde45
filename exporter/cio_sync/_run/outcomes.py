"""Customer.io's answers, recorded: each batch outcome becomes counts on its model's result and
rows for the state store (people synced, events sent, ledger, rejects, resolved rejects,
in-flight keys done). The only writer of what a send achieved."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any, Protocol

from .._encode import Reject
from .._read.rows import LedgerRow, RejectRow
from .._send.transport import BatchOutcome
from .._state import StateStore, utcnow
from .results import ModelResult

MAX_LAGS = 100_000  # events whose lag a run's percentiles are taken from


@dataclass(frozen=True)
class Departure:
    """A delete or suppress item: a person who left a people model."""

    identifier: str
    row_key: str
    row_hash: str | None = None
    event_id: str | None = None
    event_time: int | None = None


class KindOutcomes(Protocol):
    """What a kind records of its items' answers (the batch's owner: its model's sync, see
    ModelSync); the recorder keeps what every kind shares (counts, departures, rejects,
    resolved rejects, in-flight rows done)."""

    result: ModelResult

    def accepted_whole(self, refs: Sequence) -> None:
        """A whole batch of the kind's items accepted (the common case: C loops)."""

    def accepted(self, items: Sequence) -> None:
        """Accepted items of a batch answered item by item (departures excluded)."""

    def refused(self, item: Any, reason: str, message: str, now: datetime) -> LedgerRow | None:
        """An item Customer.io refused: the ledger row the kind keeps of it, if any."""

    def undelivered(self, item: Any, error: str, now: datetime, flown_at: datetime | None) -> LedgerRow | None:
        """An item whose retries ran out: the ledger row the kind keeps of it, if any."""


class OutcomeRecorder:
    """Records batch outcomes for one run. `rejected_people` (identifiers whose identify was
    refused: their events are held back) and `merges` (keys whose new identify, once
    acknowledged, lets the old profile be merged) are the run's, shared with the model syncs."""

    def __init__(self, state: StateStore, run_id: str, rejected_people: set[str], merges: dict) -> None:
        self.state = state
        self.run_id = run_id
        self.rejected_people = rejected_people
        self.merges = merges
        self.acknowledged: set[str] = set()  # keys of merges whose new identify was acknowledged
        #: identifier kind -> people a dry run identifies for the first time (a run's state records
        #: them before the events are read, so their events do not wait; a dry run records nothing)
        self.identified: dict[str, set[str]] = {}

    def __call__(self, outcomes: list[BatchOutcome]) -> None:
        for outcome in outcomes:
            refs = outcome.batch.refs  # the batch's Items (or Departures)
            if not refs:
                continue
            if len(outcome.accepted) == len(refs) and not isinstance(refs[0], Departure) and not self.merges:
                self._accepted_whole(outcome, refs)
            else:
                self._item_by_item(outcome, refs)

    def _accepted_whole(self, outcome: BatchOutcome, refs: Sequence) -> None:
        """The common case, kept lean: a whole batch accepted."""
        state, kind = self.state, outcome.batch.owner
        kind.result.items_accepted += len(refs)
        kind.accepted_whole(refs)
        model = kind.result.model
        if state.has_open_rejects(model):
            state.resolved([(model, i.row_key) for i in refs])
        inflight = outcome.batch.tag[0] if outcome.batch.tag else None
        if inflight:
            state.inflight_done(inflight)

    def _item_by_item(self, outcome: BatchOutcome, refs: Sequence) -> None:
        state, kind, now = self.state, outcome.batch.owner, utcnow()
        result = kind.result
        # (in-flight rows, when they were recorded) of a batch of events: the rows are deleted in
        # the write that records the outcomes
        inflight, flown_at = outcome.batch.tag or (None, None)
        accepted: list = []
        forget: list[tuple] = []
        resolved: list[tuple] = []
        for index in outcome.accepted:
            item = refs[index]
            result.items_accepted += 1
            if isinstance(item, Departure):
                result.deleted += 1
                forget.append((result.model, item.row_key))
                continue
            resolved.append((result.model, item.row_key))
            accepted.append(item)
        ledger, rejects = self._refused(outcome, refs, kind, now)
        ledger_undelivered, rejects_undelivered = self._undelivered(outcome, refs, kind, now, flown_at)
        kind.accepted(accepted)
        state.people_forgotten(forget)
        state.ledger(ledger + ledger_undelivered)
        state.rejects(rejects + rejects_undelivered)
        state.resolved(resolved)
        if inflight:
            state.inflight_done(inflight)

    def _refused(self, outcome: BatchOutcome, refs: Sequence, kind: KindOutcomes,
                 now: datetime) -> tuple[list[LedgerRow], list[RejectRow]]:
        """Items Customer.io refused: rejects, and what their kind keeps of them."""
        ledger, rejects = [], []
        result = kind.result
        for index, reason, message in outcome.rejected:
            item = refs[index]
            result.reject(Reject(result.model, item.row_key, None, reason, message))
            rejects.append(RejectRow(result.model, item.row_key, reason, message, False, item.row_hash, now,
                                     self.run_id))
            if (row := kind.refused(item, reason, message, now)) is not None:
                ledger.append(row)
        return ledger, rejects

    def _undelivered(self, outcome: BatchOutcome, refs: Sequence, kind: KindOutcomes, now: datetime,
                     flown_at: datetime | None) -> tuple[list[LedgerRow], list[RejectRow]]:
        """Items whose retries ran out: rejects (retried by the next run), and what their kind
        keeps of them."""
        ledger, rejects = [], []
        result = kind.result
        error = outcome.error or "retries exhausted"
        for index in outcome.undelivered:
            item = refs[index]
            result.undelivered += 1
            if (row := kind.undelivered(item, error, now, flown_at)) is not None:
                ledger.append(row)
            rejects.append(RejectRow(result.model, item.row_key, "undelivered", error, True, item.row_hash, now,
                                     self.run_id))
        return ledger, rejects


def record_lags(result: ModelResult, refs: Sequence) -> None:
    """Send time - event time, for the run log's lag percentiles (the first MAX_LAGS events)."""
    room = MAX_LAGS - len(result.lags)
    if room <= 0:
        return
    now = time.time()
    result.lags.extend(islice((now - item.event_time for item in refs if item.event_time is not None), room))
