"""The kinds of Customer.io data a model can sync (`meta.cio.kind`), each a ModelSync subclass in
a module of its own: a new kind is a new module, its query head (_read.rows, _read.query.build_query),
its encoder and its tests, registered here."""

from __future__ import annotations

from ..model_sync import ModelSync
from .devices import DeviceSync
from .events import EventSync
from .objects import ObjectSync
from .people import PeopleSync
from .relationships import RelationshipSync
from .suppressions import SuppressionSync

SYNCS: dict[str, type[ModelSync]] = {"people": PeopleSync, "event": EventSync, "object": ObjectSync,
                                     "relationship": RelationshipSync, "device": DeviceSync,
                                     "suppression": SuppressionSync}

#: The order models sync in: people, then the objects they relate to, the relationships, the
#: people's devices, the suppressions, and the events last (an event waits for its person's identify).
KIND_ORDER = {"people": 0, "object": 1, "relationship": 2, "device": 3, "suppression": 4, "event": 5}
