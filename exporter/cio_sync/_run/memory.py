"""Memory of a long streaming run kept flat: glibc's allocator tuned and trimmed, and the
objects that exist before streaming moved out of the cyclic collector's sight."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager


class Allocator:
    """glibc's allocator, tuned for a streaming process with threads (elsewhere, musl or macOS,
    both steps do nothing).

    - Every allocation over 128 KB (request bodies, COPY buffers, fetched chunks) gets its own
      mapping, returned to the system when freed. By default glibc raises that threshold after
      such a block is freed, after which the ~500 KB bodies made and dropped for every request
      come from the heaps and stay resident: about 50 MB more peak memory in a first sync.
    - Memory freed in the sender, reader and writer threads' heaps is only given back to the
      system by malloc_trim: called at most once a second while streaming (a few milliseconds).
    """

    def __init__(self) -> None:
        self._libc = None
        self._last_trim = 0.0
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
            libc.malloc_trim.argtypes = [ctypes.c_size_t]
            self._libc = libc
        except (OSError, AttributeError):
            pass

    def trim(self) -> None:
        if self._libc is not None and time.monotonic() - self._last_trim > 1.0:
            self._libc.malloc_trim(0)
            self._last_trim = time.monotonic()


@contextmanager
def collector_tuned() -> Iterator[None]:
    """Objects that exist before streaming (dbt, its adapters, the manifest: a large heap) are
    moved out of the cyclic collector's sight with gc.freeze. Its collections of the oldest
    generation walked all of them again and again: a third of the exporter's time in a first
    sync. The thresholds stay the default ones: young cycles (httpx makes a few per request,
    each holding its ~500 KB body) are freed soon, so memory stays flat. Undone afterwards."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


