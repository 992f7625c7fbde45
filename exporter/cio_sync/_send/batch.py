"""Packing encoded items into request bodies as close under the size limit as possible."""

from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate
from typing import Any

from .transport import Batch

#: len(b'{"batch":[') + len(b']}')
ENVELOPE_BYTES = 12


class BatchPacker:
    """Accumulates items; hands back a full Batch when the next item would not fit.

    A body is `{"batch":[item,item,...]}`; its size is known exactly from the item sizes, so
    batches close at the largest size strictly under `max_bytes`."""

    def __init__(self, max_bytes: int = 500_000, max_items: int | None = None) -> None:
        if max_bytes <= ENVELOPE_BYTES + 2:
            raise ValueError("max_bytes is too small for any item")
        self.max_bytes = max_bytes
        self.max_items = max_items
        self._items: list[bytes] = []
        self._refs: list[Any] = []
        self._size = ENVELOPE_BYTES

    def add(self, data: bytes, ref: Any) -> Batch | None:
        """Add one item. Returns the batch it closed, if any (the item then starts the next)."""
        added = len(data) + (1 if self._items else 0)
        full = None
        if self._items and (
            self._size + added >= self.max_bytes or (self.max_items is not None and len(self._items) >= self.max_items)
        ):
            full = self.flush()
            added = len(data)
        self._items.append(data)
        self._refs.append(ref)
        self._size += added
        return full

    def extend(self, items: list[bytes], refs: list[Any]) -> list[Batch]:
        """Add many items, as `add` one by one would, and return the batches they closed. The cut
        points come from the items' accumulated sizes (bisect), not a call per item."""
        closed = []
        # ends[k]: bytes of items[0..k], each with the comma before it
        ends = list(accumulate(map((1).__add__, map(len, items))))
        start = base = 0
        while start < len(items):
            empty = not self._items
            # items[start:stop] fit if ends[stop - 1] - base <= room (the body stays under
            # max_bytes); an empty batch's first item has no comma and is taken whatever its size.
            room = self.max_bytes - 1 - self._size + empty
            stop = bisect_right(ends, base + room, lo=start)
            if self.max_items is not None:
                stop = min(stop, start + self.max_items - len(self._items))
            if stop == start:
                if not empty:  # the next item does not fit: the batch is full
                    full = self.flush()
                    assert full is not None  # (not empty)
                    closed.append(full)
                    continue
                stop = start + 1
            self._items.extend(items[start:stop])
            self._refs.extend(refs[start:stop])
            self._size += ends[stop - 1] - base - empty
            base, start = ends[stop - 1], stop
        return closed

    def flush(self) -> Batch | None:
        """The batch being filled, if it has items."""
        if not self._items:
            return None
        batch = Batch(items=self._items, refs=self._refs)
        self._items, self._refs, self._size = [], [], ENVELOPE_BYTES
        return batch

    @property
    def pending_bytes(self) -> int:
        return self._size
