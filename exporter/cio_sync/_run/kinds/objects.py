"""Objects (`meta.cio.kind: object`): one identify per changed object of one type (a
subscription, a household, a store), addressed by `object_type_id` and `object_id`. An object
is synced as a person is (kinds.people: attributes diffed against what was acknowledged, nulls
in every row left out, the payload's shape checked, `on_delete: delete` within `max_deletes`),
with three differences: its key is its object id, so it cannot change identifier; a refused
object holds back no person's events; and an object that leaves the model is deleted as an
object, never suppressed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..._decide import checks
from ..._encode import Item, Reject
from ..._project.model import SyncModel
from ..._read.reader import SnapshotReader
from ..._read.rows import P_HASH, LedgerRow, RejectRow
from .people import PeopleSync


class ObjectSync(PeopleSync):
    merge_identifiers = False

    def _checks_in_snapshot(self, reader: SnapshotReader) -> tuple[SyncModel, str | None]:
        """The model without its unsupplied attributes, and a changed payload shape (an object's
        key is its identifier: there is no identifier change to look for)."""
        model, unsupplied = checks.without_unsupplied(reader, self.dialect, self.relation, self.model,
                                                       self.run.reporter.note, checks.device_fields(self.model))
        if unsupplied:
            self.result.unsupplied = unsupplied
        return model, checks.payload_schema_problem(self.state, model, self.options.accept_schema_change)

    def plain(self, rows: list[tuple]) -> bool:
        return True  # keyed by its identifier: no row needs a decision of its own

    def row(self, row: tuple, now: datetime) -> Item | None:
        assert self.encoder is not None
        encoded = self.encoder.encode(row)
        if isinstance(encoded, Reject):
            self._rejected(row, encoded, now)
            return None
        return encoded

    def rejected_row(self, row: tuple, reject: Reject, now: datetime) -> None:
        self.state.rejects([RejectRow(self.model.name, reject.row_key or "", reject.reason, reject.message, False,
                                      row[P_HASH], now, self.run.run_id)])

    def refused(self, item: Any, reason: str, message: str, now: datetime) -> LedgerRow | None:
        return None

    def departure(self, key: str, identifier: str) -> dict:
        assert self.encoder is not None
        return {"type": "object", "identifiers": self.encoder.identifiers_of(identifier), "action": "delete"}
