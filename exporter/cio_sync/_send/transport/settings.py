"""What the Track API client is told (TrackSettings) and what it hands back: the Batch it
sends and the BatchOutcome of each."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ..._errors import ConfigError, CredentialsError

BATCH_PATH = "/api/v2/batch"
REGION_PATH = "/api/v1/accounts/region"

_REGIONS = ("us", "eu")
_MESSAGE_LIMIT = 500
"""Longest piece of response text kept in an outcome or an error message."""
_REASON_LIMIT = 64
"""Longest reason code kept from an answer (the state's reason columns are this wide)."""

_TOO_LARGE_REASONS = frozenset({"request_too_large", "payload_too_large", "request_entity_too_large"})



@dataclass(frozen=True)
class TrackSettings:
    """How to reach the Track API and how hard to push it.

    ``concurrency`` is the upper bound of the adaptive concurrency limit (limiter.py): enough for
    ``rate_limit`` at 1 s per request with the default rate; ``max_bytes_in_flight`` caps the
    request bodies in flight whatever the limit (one batch may always go).

    ``region_check`` is turned off when the user overrode ``base_url`` (a proxy or a local
    server): the preflight's region is then not compared with ``region``.
    """

    site_id: str
    api_key: str = field(repr=False)
    base_url: str
    region: str = "us"
    region_check: bool = True
    ca_bundle: str | None = None
    concurrency: int = 256
    rate_limit: float | None = 100.0
    max_retries: int = 8
    timeout: float = 30.0
    backoff_base: float = 0.5
    backoff_max: float = 60.0
    max_request_bytes: int = 500_000
    max_bytes_in_flight: int = 64_000_000

    def __post_init__(self) -> None:
        if not str(self.site_id).strip() or not str(self.api_key).strip():
            raise CredentialsError(
                "the Track API site id and API key are both required: set CUSTOMERIO_SITE_ID and "
                "CUSTOMERIO_API_KEY (Customer.io: Settings > API Credentials)"
            )
        if self.region not in _REGIONS:
            raise ConfigError(f"region must be 'us' or 'eu', not {self.region!r}: set CUSTOMERIO_REGION")
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"base URL {self.base_url!r} must start with https:// (or http:// for a local server)")
        if self.ca_bundle is not None and not os.path.isfile(self.ca_bundle):
            raise ConfigError(f"CA bundle {self.ca_bundle!r} is not a file: point CUSTOMERIO_CA_BUNDLE at a PEM file")
        checks = (
            (self.concurrency >= 1, "concurrency must be at least 1"),
            (self.rate_limit is None or self.rate_limit > 0, "rate_limit must be positive (or None for no limit)"),
            (self.max_retries >= 0, "max_retries must not be negative"),
            (self.timeout > 0, "timeout must be positive"),
            (self.backoff_base >= 0 and self.backoff_max >= 0, "backoff times must not be negative"),
            (self.max_request_bytes > 0, "max_request_bytes must be positive"),
            (self.max_bytes_in_flight > 0, "max_bytes_in_flight must be positive"),
        )
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)


@dataclass
class Batch:
    """Items already encoded as compact JSON, with one opaque reference per item, and opaque
    `owner` and `tag` for the caller (its outcome carries the batch back)."""

    items: list[bytes]
    refs: list[Any]
    tag: Any = None
    owner: Any = None

    def __post_init__(self) -> None:
        if len(self.items) != len(self.refs):
            raise ValueError(f"a batch needs one ref per item: {len(self.items)} items, {len(self.refs)} refs")

    def __len__(self) -> int:
        return len(self.items)

    def body(self) -> bytes:
        """The request body ``{"batch":[item,...]}``."""
        return b'{"batch":[' + b",".join(self.items) + b"]}"

    def split(self) -> tuple[Batch, Batch]:
        """Two halves (by item count), for a request the server found too large."""
        mid = len(self.items) // 2
        return (
            Batch(self.items[:mid], self.refs[:mid], self.tag, self.owner),
            Batch(self.items[mid:], self.refs[mid:], self.tag, self.owner),
        )


@dataclass
class BatchOutcome:
    """What became of each item of one submitted batch (indexes into ``batch.items``).

    ``accepted``: Customer.io took the item. ``rejected``: Customer.io said no — a 207 entry,
    or a 4xx for the whole request — as ``(index, reason, message)``; resending will not help.
    ``undelivered``: retries ran out or sending stopped; the item may or may not have arrived,
    and a later run may resend it safely.
    """

    batch: Batch
    accepted: list[int] = field(default_factory=list)
    rejected: list[tuple[int, str, str]] = field(default_factory=list)
    undelivered: list[int] = field(default_factory=list)
    status: int | None = None
    attempts: int = 0
    error: str | None = None

    @property
    def complete(self) -> bool:
        """True when Customer.io answered for every item (nothing undelivered)."""
        return not self.undelivered
