"""Devices (`meta.cio.kind: device`): one row per person and device token (push tokens from
the shop's app), sent as the person's `add_device` with the device's platform, last use and
attributes. Synced as relationships are (kinds.relationships): keyed by the pair, diffed
against what was acknowledged; with `on_delete: delete`, a device this tool added that leaves
the model is removed (`delete_device`) within `max_deletes`."""

from __future__ import annotations

from ..._read.rows import split_pair_key
from .objects import ObjectSync


class DeviceSync(ObjectSync):
    def departure(self, key: str, identifier: str) -> dict:
        return {"type": "person", "identifiers": {self.model.spec.identifier_kind: identifier},
                "action": "delete_device", "device": {"token": split_pair_key(key)[1]}}
