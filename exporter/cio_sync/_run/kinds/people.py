"""People (`meta.cio.kind: people`): one identify per changed person. What a people model adds to
a model's sync: its checks in the read's snapshot (attributes null in every row left out, payload
shape, identifier changes), a person whose identifier changed (merged or rejected), a refused
person's events held back, and who left the model (deleted or suppressed within max_deletes)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cached_property
from itertools import filterfalse
from operator import attrgetter
from typing import Any

import orjson

from ..._decide import checks, rules
from ..._encode import Item, Reject
from ..._project.model import SyncModel
from ..._read.reader import SnapshotReader
from ..._read.rows import P_HASH, P_IDENTIFIER, P_PREVIOUS_IDENTIFIER, LedgerRow, RejectRow
from ..._send.batch import BatchPacker
from ..model_sync import ModelSync
from ..outcomes import Departure

# What the state store records of an accepted person
_NEW = attrgetter("new")
_PERSON_STATE = attrgetter("row_key", "identifier", "row_hash")


class PeopleSync(ModelSync):
    departed: list[tuple] | None = None  # people who left the model: key, identifier, synced count

    @cached_property
    def merge_identifiers(self) -> bool:
        """meta.cio.on_identifier_change: merge (else a changed identifier is rejected)."""
        return self.model.spec.meta.get("on_identifier_change") == "merge"

    def in_snapshot(self, reader: SnapshotReader, first: bool) -> str | None:
        """A people model's query is made in the read's snapshot, once its unsupplied attributes
        are known."""
        model, problem = self._checks_in_snapshot(reader)
        if problem:
            return problem
        self.model = model
        self._query(first)
        return None

    def _checks_in_snapshot(self, reader: SnapshotReader) -> tuple[SyncModel, str | None]:
        """In the snapshot a people model's rows are read in (so that what is decided is what is
        sent): the model without its unsupplied attributes, and what blocks it, if anything."""
        opts, state = self.options, self.state
        model, unsupplied = checks.without_unsupplied(reader, self.dialect, self.relation, self.model,
                                                       self.run.reporter.note)
        if unsupplied:
            self.result.unsupplied = unsupplied
        problem = checks.payload_schema_problem(state, model, opts.accept_schema_change)
        if problem is None and not opts.accept_identifier_changes:
            problem = checks.identifier_change_problem(state, reader, self.dialect, self.relation, model, opts.shard)
        return model, problem

    def plain(self, rows: list[tuple]) -> bool:
        return rules.people_plain(rows)

    def row(self, row: tuple, now: datetime) -> Item | None:
        """One people row that needs a decision of its own (another identifier was synced for
        its key): the item to send, or None."""
        model, result = self.model, self.result
        assert self.encoder is not None
        encoded = self.encoder.encode(row)
        if isinstance(encoded, Reject):
            self._rejected(row, encoded, now)
            return None
        decision = rules.person_after_encoding(row, self.merge_identifiers)
        previous, identifier = row[P_PREVIOUS_IDENTIFIER], row[P_IDENTIFIER]
        if decision == rules.MERGE:
            self.run.merges[encoded.row_key] = (result, model.spec.identifier_kind, previous, encoded.identifier)
        elif decision == rules.IDENTIFIER_CHANGED:
            result.reject(Reject(
                model.name, encoded.row_key, model.identifier.name, "identifier_changed",
                f"identifier changed from {previous} to {identifier} for the same person: not sent (it would "
                "create a second profile); merge the profiles in Customer.io, then run with --full-refresh"))
            self.state.rejects([RejectRow(model.name, encoded.row_key, "identifier_changed",
                                          f"{previous} -> {identifier}", False, row[P_HASH], now, self.run.run_id)])
            self.run.rejected_people.add(encoded.identifier)
            return None
        return encoded

    def rejected_row(self, row: tuple, reject: Reject, now: datetime) -> None:
        """A refused person: in the rejects table; their events are held back for the rest of the
        run (events name their person by identifier, whatever the people model's key_column)."""
        self.state.rejects([RejectRow(self.model.name, reject.row_key or "", reject.reason, reject.message, False,
                                      row[P_HASH], now, self.run.run_id)])
        if reject.row_key and isinstance(row[P_IDENTIFIER], str) and row[P_IDENTIFIER]:
            self.run.rejected_people.add(row[P_IDENTIFIER])

    # -- answers ------------------------------------------------------------------------------
    def accepted_whole(self, refs: Sequence[Item]) -> None:
        state, model, run_id = self.state, self.model.name, self.run.run_id
        state.people_synced(model, run_id, list(map(_PERSON_STATE, filter(_NEW, refs))), new=True)
        state.people_synced(model, run_id, list(map(_PERSON_STATE, filterfalse(_NEW, refs))))
        self._identified(refs)

    def accepted(self, items: Sequence[Item]) -> None:
        """Accepted people; a merge waits for its new identify's acknowledgement."""
        merges, acknowledged = self.run.merges, self.run.record.acknowledged
        acknowledged.update(item.row_key for item in items if item.row_key in merges)
        self.state.people_synced(self.model.name, self.run.run_id, list(map(_PERSON_STATE, items)))
        self._identified(items)

    def _identified(self, items: Sequence[Item]) -> None:
        """A dry run keeps who its people models identify first (a run's state records them), so
        their events do not wait (see rules.event_after_encoding). An update-only model's
        identify does not mean Customer.io has the person; objects and the like are no people."""
        model = self.model
        if self.state.writable or model.kind != "people" or model.update_only:
            return
        self.run.record.identified.setdefault(model.spec.identifier_kind, set()).update(
            item.identifier for item in items if item.new)

    def refused(self, item: Any, reason: str, message: str, now: datetime) -> LedgerRow | None:
        """A refused person's events are held back for the rest of the run."""
        self.run.rejected_people.add(item.identifier)
        return None

    def after_rows(self, reader: SnapshotReader) -> None:
        """Who left the model: from the snapshot its rows were read in (the checked build)."""
        if self.model.spec.option("on_delete") != "ignore" and self.state.available:
            assert self.whole is not None  # (a preview's rows are not the model's: who left is of the model)
            self.departed = reader.query(self.state.departed_people_sql(self.model.name, self.whole.source_sql,
                                                                        self._shard_filter()))

    def after_send(self) -> None:
        if self.departed:
            self._deletions(self.departed)

    # -- people who left ------------------------------------------------------------------------
    def _shard_filter(self) -> str | None:
        """This shard's people in the state (a condition on s.person_key), or None."""
        if self.options.shard is None:
            return None
        index, count = self.options.shard
        return f"{self.dialect.shard('s.person_key', count)} = {index}"

    def departure(self, key: str, identifier: str) -> dict:
        """The item that removes a departed row from Customer.io (on_delete: delete or suppress)."""
        return {"type": "person", "identifiers": {self.model.spec.identifier_kind: identifier},
                "action": self.model.spec.option("on_delete")}

    def _deletions(self, departed: list[tuple]) -> None:
        """People this tool synced whose rows left the model (person_key, identifier, synced
        count, read in the model's snapshot): deleted or suppressed, within max_deletes."""
        gone = [(key, identifier) for key, identifier, _ in departed]
        problem = checks.departures_problem(self.model, len(gone), int(departed[0][2]))
        if problem is not None:
            self._blocked(problem)
            return
        if self.options.preview:  # counted against max_deletes with the model's, sent alone
            gone = [(key, identifier) for key, identifier in gone if self.previewed(key, identifier)]
        packer = BatchPacker(self.options.batch_bytes)
        for key, identifier in gone:
            data = orjson.dumps(self.departure(key, identifier))
            full = packer.add(data, Departure(identifier=identifier, row_key=key))
            if full is not None:
                self._submit_departures(full)
        last = packer.flush()
        if last is not None:
            self._submit_departures(last)

    def _submit_departures(self, batch) -> None:
        """Send a batch of removals, and commit the removals answered so far: a run stopped in
        the middle leaves only the batches in flight to be sent again (each is idempotent)."""
        self._submit(batch)
        self.run.record(self.run.sink.poll())
        self.state.flush(only="forget")
