"""Sending batches to Customer.io's Track API v2 (``POST /api/v2/batch``).

One pooled, keep-alive :class:`httpx.Client` is shared by a small thread pool. The caller
hands over :class:`Batch` objects with :meth:`TrackClient.submit` (which blocks while
``concurrency`` batches are in flight, so memory stays bounded) and collects a
:class:`BatchOutcome` per batch with :meth:`TrackClient.poll` / :meth:`TrackClient.drain`.

Resending is safe. A request whose answer was lost (timeout, dropped connection, 5xx after the
server did the work) is sent again in full. That duplicates nothing on Customer.io's side only
because every event carries a deterministic ULID ``id`` derived from its event key (Customer.io
ignores an event id it has already accepted) and because identify, delete, suppress and
unsuppress are idempotent: applying the same identify twice leaves the same profile.

Secrets: the API key travels only in the ``Authorization`` header built by httpx. It is kept out
of reprs (``field(repr=False)``), logs, stats and exception messages; text that comes from
outside (exception strings, response bodies) is scrubbed of it before it is kept or shown.

The package: settings (TrackSettings, Batch, BatchOutcome), retry (the retry policy, the
throttle, the retrying GETs of the read-only clients), answers (reading responses, TLS), client
(TrackClient).
"""

from .answers import _ssl_context
from .client import TrackClient
from .retry import _retry_after, _RetryingGets, _Throttle
from .settings import Batch, BatchOutcome, TrackSettings

__all__ = ["Batch", "BatchOutcome", "TrackClient", "TrackSettings", "_RetryingGets", "_Throttle", "_retry_after",
           "_ssl_context"]
