"""Suppressions (`meta.cio.kind: suppression`): one row per person who must be suppressed
(legal requests, fraud): Customer.io deletes a suppressed person's profile and refuses their
identifier until it is unsuppressed. So it is never implicit: a suppression model must say how
many people one run may suppress (`max_suppressions`, a count or a share of its rows); more
blocks the model before anything is sent, and a dry run lists exactly who would be suppressed.
Each person is suppressed once (the state records it); with `on_delete: unsuppress`, a person
this tool suppressed whose row leaves the model is unsuppressed, within `max_deletes`, and
never one suppressed by anyone else."""

from __future__ import annotations

from ..._decide import checks
from ..._read.reader import SnapshotReader
from .objects import ObjectSync


class SuppressionSync(ObjectSync):
    def in_snapshot(self, reader: SnapshotReader, first: bool) -> str | None:
        """The model's query, and, before anything is sent, how many people it would suppress
        against max_suppressions."""
        problem = super().in_snapshot(reader, first)
        if problem is not None:
            return problem
        assert self.whole is not None  # the model's, also in a preview of one person
        return checks.suppressions_problem(reader, self.whole.sql, self.relation, self.model)[1]

    def departure(self, key: str, identifier: str) -> dict:
        return {"type": "person", "identifiers": {self.model.spec.identifier_kind: identifier},
                "action": "unsuppress"}
