"""Relationships (`meta.cio.kind: relationship`): one row per person and object of one type
(a customer and their subscription), sent as the person's `add_relationships` with the
relationship's attributes. Synced as people are (kinds.people): keyed by the pair, diffed
against what was acknowledged, so a changed relationship attribute is sent again; with
`on_delete: delete`, a pair this tool added that leaves the model is removed
(`delete_relationships`) within `max_deletes`. A refused relationship holds back no event."""

from __future__ import annotations

from ..._read.rows import split_pair_key
from .objects import ObjectSync


class RelationshipSync(ObjectSync):
    def departure(self, key: str, identifier: str) -> dict:
        assert self.encoder is not None
        return {"type": "person", "identifiers": {self.model.spec.identifier_kind: identifier},
                "action": "delete_relationships",
                "cio_relationships": [self.encoder.relationship(split_pair_key(key)[1])]}
