"""Events (`meta.cio.kind: event`): one event per new row, sent once. What an event model adds to
a model's sync: its payload shape checked before the read, what a stopped run left in flight
recovered, a first sync's baseline, the per-row rules (_decide.rules.EventRules), events of a person
Customer.io does not know yet left waiting, and the keys of every batch committed as in flight
before the batch is sent."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from itertools import filterfalse
from operator import attrgetter
from typing import Any

from ..._decide import checks, rules
from ..._decide.rules import EventRules
from ..._encode import Encoder, Item, Reject, state_key
from ..._project.model import Column, SyncModel, parse_duration, people_models_waited_for
from ..._read.rows import E_HASH, E_KEY, E_KEY_ROWS, E_TIME, LedgerRow, RejectRow
from ..._send.transport import Batch
from ..._state import utcnow
from ..model_sync import ModelSync
from ..outcomes import record_lags

_ROW_KEY = attrgetter("row_key")
_EVENT_ID = attrgetter("event_id")
# What the state store records of an accepted event
_NEW = attrgetter("new")
_LEDGER_SENT = attrgetter("row_key", "event_id", "row_hash", "event_time")


class EventSync(ModelSync):
    rules: EventRules
    renamer: Encoder | None = None  # backfill: rename

    def problem_before_read(self) -> str | None:
        return checks.payload_schema_problem(self.state, self.model, self.options.accept_schema_change)

    def recover(self) -> None:
        if recovered := self.state.recover_inflight(self.model.name, self.options.shard_label):
            self.run.reporter.note(f"{self.model.name}: {recovered} events were in flight when an earlier run "
                                   "stopped: recorded as pending (resent with their ids within dedupe_window)")

    def key_column(self) -> Column:
        return self.model.event_key_column

    def query_options(self) -> dict[str, Any]:
        model = self.model
        return {"key_checked": self.artifacts.column_tested_unique(model.spec.unique_id, model.event_key_column.name),
                "people_models": self._people_models_for(model)}

    def before_read(self, first: bool) -> None:
        """The event model's query (a first sync's baseline uses it before the read) and its rules;
        a first sync records the existing events as history (baseline), never sent, except those
        newer than initial_window (a dry run only counts them)."""
        opts, state, model = self.options, self.state, self.model
        query = self._query(first)
        backfill = model.spec.option("backfill")
        if backfill == "rename":
            self.renamer = Encoder(model, self.snapshot, query.n_head)
            self.renamer.rename = {model.event_name: f"{model.event_name}_backfill"} if model.event_name else {}
        baseline_cutoff = None
        if not (state.available and state.has_history(model.name)):
            cutoff = self.snapshot - parse_duration(model.spec.option("initial_window"))
            if state.writable:
                proof = None
                if opts.require_build_proof:
                    schema = model.spec.meta.get("build_log_schema") or opts.build_log_schema
                    proof = (state.build_proof_sql(model.spec.unique_id, self.relation, schema),
                             self.artifacts.invocation_id)
                assert self.whole is not None  # (the model's history, whatever a preview reads)
                self.result.skipped += state.record_baseline(model.name, self.whole.source_sql, cutoff,
                                                             self.run.run_id, proof)
            else:
                baseline_cutoff = cutoff
        self.rules = EventRules(snapshot=self.snapshot,
                                dedupe_window=parse_duration(model.spec.option("dedupe_window")),
                                max_age=parse_duration(model.spec.option("max_event_age")), backfill=backfill,
                                baseline_cutoff=baseline_cutoff)

    def plain(self, rows: list[tuple]) -> bool:
        return self.rules.plain(rows)

    def sendable(self, items: list[Item]) -> list[Item]:
        """Events of a person whose identify was rejected in this run are held back."""
        rejected_people = self.run.rejected_people
        if not rejected_people:
            return items
        for item in items:
            if item.identifier in rejected_people:
                self._held(item)
        return [item for item in items if item.identifier not in rejected_people]

    def row(self, row: tuple, now: datetime) -> Item | None:
        """One event row that needs a decision of its own: the item to send, or None."""
        model, result, state = self.model, self.result, self.state
        decision = self.rules.before_encoding(row)
        if decision in (rules.DUPLICATE, rules.DUPLICATE_PENDING):
            duplicate = Reject(model.name, state_key(str(row[E_KEY])), model.event_key_column.name,
                               "duplicate_event_key",
                               f"{row[E_KEY_ROWS]} rows to send share this event key: none is sent (Customer.io "
                               "would count each as an event); make the key unique and test it (`unique`)")
            if decision == rules.DUPLICATE_PENDING:  # it may have arrived: stays pending (dedupe_window)
                result.reject(duplicate)
            else:
                self._rejected(row, duplicate, now)
            return None
        if decision == rules.UNCERTAIN:
            result.uncertain += 1
            result.reject(Reject(model.name, str(row[E_KEY]), None, "uncertain",
                                 "sent before but never acknowledged, longer ago than dedupe_window: not resent "
                                 "(it may have arrived)"))
            state.ledger([LedgerRow(model.name, str(row[E_KEY]), None, "uncertain", row[E_HASH], row[E_TIME], None,
                                    now, None, self.run.run_id, "pending beyond dedupe_window")])
            return None
        if decision == rules.SKIP:
            result.skipped += 1
            return None
        if decision == rules.BACKFILL:
            result.skipped += 1
            state.ledger([LedgerRow(model.name, str(row[E_KEY]), None, "backfill", row[E_HASH], row[E_TIME], None,
                                    None, None, self.run.run_id, f"older than max_event_age at {now:%Y-%m-%d %H:%M}")])
            return None
        if decision == rules.RESEND:
            result.resent += 1
        encoder = self.renamer if decision == rules.RENAME and self.renamer else self.encoder
        assert encoder is not None
        encoded = encoder.encode(row)
        if isinstance(encoded, Reject):
            self._rejected(row, encoded, now)
            return None
        after = rules.event_after_encoding(row, encoded.identifier, self.run.rejected_people,
                                           self.run.record.identified.get(model.spec.identifier_kind, ()))
        if after == rules.HOLD:
            self._held(encoded)
            return None
        if after == rules.WAIT:
            result.waiting += 1  # a count, not a reject: a later run sends it
            return None
        return encoded

    def _held(self, item: Item) -> None:
        self.result.held += 1
        self.result.reject(Reject(self.model.name, item.row_key, self.model.identifier.name, "held",
                                  "the person's identify was rejected in this run; event held back"))

    def rejected_row(self, row: tuple, reject: Reject, now: datetime) -> None:
        """A refused event: in the rejects table and the ledger."""
        model = self.model
        self.state.rejects([RejectRow(model.name, reject.row_key or "", reject.reason, reject.message, False,
                                      row[E_HASH], now, self.run.run_id)])
        if reject.row_key:
            self.state.ledger([LedgerRow(model.name, reject.row_key, None, "rejected", row[E_HASH], row[E_TIME],
                                         None, now, None, self.run.run_id, reject.reason)])

    # -- answers ------------------------------------------------------------------------------
    def accepted(self, items: Sequence[Item]) -> None:
        state, model, run_id = self.state, self.model.name, self.run.run_id
        state.events_sent(model, run_id, list(map(_LEDGER_SENT, filter(_NEW, items))), new=True)
        state.events_sent(model, run_id, list(map(_LEDGER_SENT, filterfalse(_NEW, items))))
        record_lags(self.result, items)

    def refused(self, item: Item, reason: str, message: str, now: datetime) -> LedgerRow | None:
        """A refused event is recorded in the ledger (never resent unless --retry-rejects)."""
        return LedgerRow(self.model.name, item.row_key, item.event_id, "rejected", item.row_hash, item.event_time,
                         None, now, None, self.run.run_id, f"{reason}: {message}"[:4000])

    def undelivered(self, item: Item, error: str, now: datetime, flown_at: datetime | None) -> LedgerRow | None:
        """An undelivered event is pending: resent by the next run with the same id. Its first
        attempt is when its batch went in flight, before the retries: the dedupe_window of its
        resend counts from then."""
        return LedgerRow(self.model.name, item.row_key, item.event_id, "pending", item.row_hash, item.event_time,
                         flown_at or now, now, None, self.run.run_id, f"undelivered: {error}"[:4000])

    def tag(self, batches: list[Batch]) -> int:
        """A batch of events goes once the keys it carries are committed as in flight: after a
        crash they are resent with the same ids, which Customer.io deduplicates (see
        StateStore.recover_inflight)."""
        now = utcnow()  # the first attempt of the batch's events, if it is not answered
        for batch in batches:
            batch.tag = (self.state.inflight(self.model.name, self.options.shard_label, self.run.run_id,
                                             list(map(_ROW_KEY, batch.refs)), list(map(_EVENT_ID, batch.refs))), now)
        return self.state.flush(force=True, only="inflight")

    def _people_models_for(self, model: SyncModel) -> tuple[tuple[str, bool], ...]:
        """For an event model: the people models whose acknowledged identifies its events wait
        for, those of its identifier kind in the project (selected in this run or not, synced
        yet or not) or with people in the state, each with whether its key is its identifier
        (known for the project's). Empty (nothing waits) when the project syncs no people that
        way and never has. An update-only people model (meta.cio.create: false) is none of them:
        its acknowledged identify does not mean that Customer.io has the person."""
        if not model.is_event or not self.state.available:
            return ()
        kind = model.spec.identifier_kind
        in_state = [name for name in self.state.people_models_of_kind(kind) if name not in self.run.not_people]
        waited = people_models_waited_for(self.run.people_specs, kind, in_state)
        if waited:
            self.run.waits_for[model.name] = [name for name, _ in waited]
        return waited
