"""Customer.io's answers, recorded: each batch outcome becomes counts on its model's result and
rows for the state store (people synced, events sent, ledger, rejects, resolved rejects,
in-flight keys done). The only writer of what a send achieved."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import filterfalse
from operator import attrgetter

from ._encode import Reject
from ._results import ModelResult
from ._rows import LedgerRow, RejectRow
from ._state import StateStore, utcnow
from ._transport import BatchOutcome

# What the state store records of an Item (a batch's refs; its owner is the model's ModelResult).
_NEW = attrgetter("new")
_PERSON_STATE = attrgetter("row_key", "identifier", "row_hash")
_LEDGER_SENT = attrgetter("row_key", "event_id", "row_hash", "event_time")
MAX_LAGS = 100_000  # events whose lag a run's percentiles are taken from


@dataclass(frozen=True)
class Departure:
    """A delete or suppress item: a person who left a people model."""

    identifier: str
    row_key: str
    row_hash: str | None = None
    event_id: str | None = None
    event_time: int | None = None


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
        """The common case, kept lean: a whole batch accepted (map and filter: C loops over a
        batch's thousands of items)."""
        state, result = self.state, outcome.batch.owner
        result.items_accepted += len(refs)
        model = result.model
        if result.kind == "people":
            state.people_synced(model, self.run_id, list(map(_PERSON_STATE, filter(_NEW, refs))), new=True)
            state.people_synced(model, self.run_id, list(map(_PERSON_STATE, filterfalse(_NEW, refs))))
        else:
            state.events_sent(model, self.run_id, list(map(_LEDGER_SENT, filter(_NEW, refs))), new=True)
            state.events_sent(model, self.run_id, list(map(_LEDGER_SENT, filterfalse(_NEW, refs))))
            record_lags(result, refs)
        if state.has_open_rejects(model):
            state.resolved([(model, i.row_key) for i in refs])
        inflight = outcome.batch.tag[0] if outcome.batch.tag else None
        if inflight:
            state.inflight_done(inflight)

    def _item_by_item(self, outcome: BatchOutcome, refs: Sequence) -> None:
        state, result, now = self.state, outcome.batch.owner, utcnow()
        # (in-flight rows, when they were recorded) of a batch of events: the rows are deleted in
        # the write that records the outcomes
        inflight, flown_at = outcome.batch.tag or (None, None)
        people: list[tuple] = []
        sent: list[tuple] = []
        sent_new: list[tuple] = []
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
            if result.kind == "people":
                people.append((item.row_key, item.identifier, item.row_hash))
                if item.row_key in self.merges:
                    self.acknowledged.add(item.row_key)
            else:
                (sent_new if item.new else sent).append((item.row_key, item.event_id, item.row_hash, item.event_time))
                record_lags(result, [item])
        ledger, rejects = self._refused(outcome, refs, result, now)
        ledger_undelivered, rejects_undelivered = self._undelivered(outcome, refs, result, now, flown_at)
        state.people_synced(result.model, self.run_id, people)
        state.events_sent(result.model, self.run_id, sent_new, new=True)
        state.events_sent(result.model, self.run_id, sent)
        state.people_forgotten(forget)
        state.ledger(ledger + ledger_undelivered)
        state.rejects(rejects + rejects_undelivered)
        state.resolved(resolved)
        if inflight:
            state.inflight_done(inflight)

    def _refused(self, outcome: BatchOutcome, refs: Sequence, result: ModelResult,
                 now) -> tuple[list[LedgerRow], list[RejectRow]]:
        """Items Customer.io refused: rejects; a refused person's events are held back for the
        rest of the run, a refused event is recorded in the ledger."""
        ledger, rejects = [], []
        for index, reason, message in outcome.rejected:
            item = refs[index]
            result.reject(Reject(result.model, item.row_key, None, reason, message))
            rejects.append(RejectRow(result.model, item.row_key, reason, message, False, item.row_hash, now,
                                     self.run_id))
            if result.kind == "people":
                self.rejected_people.add(item.identifier)
            elif not isinstance(item, Departure):
                ledger.append(LedgerRow(result.model, item.row_key, item.event_id, "rejected", item.row_hash,
                                        item.event_time, None, now, None, self.run_id, f"{reason}: {message}"[:4000]))
        return ledger, rejects

    def _undelivered(self, outcome: BatchOutcome, refs: Sequence, result: ModelResult, now,
                     flown_at) -> tuple[list[LedgerRow], list[RejectRow]]:
        """Items whose retries ran out. Events are recorded pending (resent next run with the same
        id); people are simply not in state yet, so the next run sends them again. An event's
        first attempt is when its batch went in flight, before the retries: the dedupe_window of
        its resend counts from then."""
        ledger, rejects = [], []
        error = outcome.error or "retries exhausted"
        for index in outcome.undelivered:
            item = refs[index]
            result.undelivered += 1
            if result.kind != "people" and not isinstance(item, Departure):
                ledger.append(LedgerRow(result.model, item.row_key, item.event_id, "pending", item.row_hash,
                                        item.event_time, flown_at or now, now, None, self.run_id,
                                        f"undelivered: {error}"[:4000]))
            rejects.append(RejectRow(result.model, item.row_key, "undelivered", error, True, item.row_hash, now,
                                     self.run_id))
        return ledger, rejects


def record_lags(result: ModelResult, refs: Sequence) -> None:
    """Send time - event time, for the run log's lag percentiles (the first MAX_LAGS events)."""
    if len(result.lags) >= MAX_LAGS:
        return
    now = time.time()
    result.lags.extend(now - item.event_time for item in refs if item.event_time is not None)
