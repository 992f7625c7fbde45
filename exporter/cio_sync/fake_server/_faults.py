"""Deciding, per API request, which failure (if any) the client gets to see.

Faults model what a client of the real Track API has to survive: throttling, server errors,
connections that die without an answer, and responses slow enough to hit client timeouts.
All random draws come from one seeded generator so a test replaying the same request sequence
sees the same faults.
"""

from __future__ import annotations

import enum
import math
import random
from dataclasses import dataclass

from ._settings import Settings

ERROR_STATUSES = (500, 502, 503)
"""Statuses used for injected server errors, all of which clients are expected to retry."""


class Outcome(enum.Enum):
    FORWARD = "forward"
    """Handle the request normally (possibly after a delay)."""
    DROP = "drop"
    """Close the connection without any response; nothing is accepted."""
    RATE_LIMITED = "rate_limited"
    """Answer 429 with Retry-After; nothing is accepted."""
    ERROR = "error"
    """Answer a 5xx; nothing is accepted."""


@dataclass(frozen=True)
class Verdict:
    """What to do with one request."""

    outcome: Outcome
    delay: float = 0.0
    status: int = 0
    retry_after: int = 0
    slow: bool = False
    accept: bool = True
    """False for a slow response whose items must not be recorded (``slow_accepts=False``)."""


class TokenBucket:
    """Classic token bucket: ``rate`` tokens per second, holding at most ``capacity``."""

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.updated = now

    def take(self, now: float) -> float:
        """Take one token; return 0 on success, else seconds until one will be available."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class FaultInjector:
    """Applies the fault settings to a stream of requests."""

    def __init__(self, settings: Settings, now: float) -> None:
        self.settings = settings
        self._rng = random.Random(settings.seed)
        self._bucket = self._new_bucket(now)

    def configure(self, settings: Settings, now: float) -> None:
        """Switch to new settings; the generator restarts only when the seed changes."""
        old = self.settings
        self.settings = settings
        if settings.seed != old.seed:
            self._rng = random.Random(settings.seed)
        if (settings.rate_limit, settings.rate_limit_burst) != (
            old.rate_limit,
            old.rate_limit_burst,
        ):
            self._bucket = self._new_bucket(now)

    def reset(self, now: float) -> None:
        """Start over as if just configured, so a reset test run repeats the same faults."""
        self._rng = random.Random(self.settings.seed)
        self._bucket = self._new_bucket(now)

    def _new_bucket(self, now: float) -> TokenBucket | None:
        rate = self.settings.rate_limit
        if rate is None:
            return None
        capacity = self.settings.rate_limit_burst or max(1.0, rate)
        return TokenBucket(rate, capacity, now)

    def decide(self, now: float) -> Verdict:
        """Pick the fate of one request.

        Order: a dropped connection never reaches the server, the rate limiter sits in front of
        the application, and an injected error happens inside it; only requests that get
        through all three can be slow.
        """
        s = self.settings
        rng = self._rng
        if s.drop_rate and rng.random() < s.drop_rate:
            return Verdict(Outcome.DROP)
        if self._bucket is not None:
            wait = self._bucket.take(now)
            if wait:
                return Verdict(
                    Outcome.RATE_LIMITED,
                    delay=s.latency,
                    status=429,
                    retry_after=max(1, math.ceil(wait)),
                )
        if s.error_rate and rng.random() < s.error_rate:
            return Verdict(Outcome.ERROR, delay=s.latency, status=rng.choice(ERROR_STATUSES))
        if s.slow_rate and rng.random() < s.slow_rate:
            return Verdict(
                Outcome.FORWARD,
                delay=s.latency + s.slow_seconds,
                slow=True,
                accept=s.slow_accepts,
            )
        return Verdict(Outcome.FORWARD, delay=s.latency)
