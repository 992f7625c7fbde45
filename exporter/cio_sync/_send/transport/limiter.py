"""How many requests the Track client keeps in flight: a limit that follows the latency it
measures, bounded by ``--concurrency``, backing off when the server pushes back.

With a request rate to keep (``--rate-limit``), the throttle sets the pace and the limit only has
to keep the throttle busy. Little's law says a steady ``rate`` of requests that each take
``latency`` seconds has ``rate x latency`` of them in flight; the limit is that times a headroom
(requests waiting for their turn in the throttle, latency that varies), never under the old fixed
default of 8 unless the server pushes back. Without a rate, an AIMD limiter: one more request in
flight per round trip while the latency stays near the lowest seen, a little less when it grows.
Either way a 429, a 5xx, a 408 or a request without an answer halves the limit (once per round
trip, however many answers say so); it grows back by one request per answer with a rate (the
throttle still holds the pace), by one per round trip without.

The latency is an exponentially weighted mean of the answers' times; before the first answer, the
age of the oldest request in flight stands in for it, so a slow network opens up within about one
round trip instead of waiting at the floor for it.
"""

from __future__ import annotations

import math

HEADROOM = 1.5
"""The limit is this many times rate x latency: the requests at the server plus those waiting
their turn in the throttle, and room for latency that varies."""

FLOOR = 8
"""In flight at least (or --concurrency, if lower) unless the server pushes back: what cio-export
kept in flight before the limit adapted, enough on any network up to ~50 ms at 100 requests/s."""

SMOOTHING = 0.2
"""Weight of each new answer's time in the latency estimate."""

LATENCY_SLACK = 0.005
"""Without a rate: seconds of latency over twice the lowest seen that still count as not queued."""


def little_limit(rate: float, latency: float, ceiling: int, *, floor: int = FLOOR,
                 headroom: float = HEADROOM) -> int:
    """Requests to keep in flight for `rate` per second at `latency` seconds each (Little's law,
    times `headroom`), at least `floor`, within [1, `ceiling`]."""
    wanted = math.ceil(rate * max(latency, 0.0) * headroom)
    return max(1, min(ceiling, max(floor, wanted)))


class ConcurrencyLimit:
    """The adaptive limit. Not thread-safe: the client calls it under its own lock. Times are
    seconds of one monotonic clock, passed in (`now`), so the arithmetic can be followed in tests.

    ``limit`` is the requests allowed in flight now; ``peak`` the highest it has been;
    ``latency`` the current estimate (None before the first answer)."""

    def __init__(self, ceiling: int, rate: float | None) -> None:
        if ceiling < 1:
            raise ValueError("ceiling must be at least 1")
        self.ceiling = ceiling
        self.rate = rate or None
        self.floor = min(FLOOR, ceiling)
        self.latency: float | None = None
        self._lowest: float | None = None  # the lowest answer time seen (no rate: what "not queued" is)
        self._share = 1.0  # with a rate: the share of Little's limit left after backing off
        self._aimd = float(self.floor)  # without a rate: the limit itself
        self._decreased_at = -math.inf
        self.backoffs = 0
        self.limit = self.floor
        self.peak = self.limit

    def _target(self, latency: float | None) -> int:
        """With a rate: Little's limit at `latency` (the floor before any is known)."""
        assert self.rate is not None
        return self.floor if latency is None else little_limit(self.rate, latency, self.ceiling, floor=self.floor)

    def _set(self, value: float) -> int:
        self.limit = max(1, min(self.ceiling, math.ceil(value - 1e-9)))
        self.peak = max(self.peak, self.limit)
        return self.limit

    def waiting(self, oldest_age: float) -> int:
        """Before the first answer: the oldest request in flight has waited `oldest_age` seconds,
        so the latency is at least that. Returns the limit."""
        if self.latency is not None or self.rate is None:
            return self.limit
        return self._set(max(self.limit, self._target(oldest_age) * self._share))

    def answered(self, seconds: float, in_flight: int) -> int:
        """An answer that is not a push-back took `seconds`, with `in_flight` requests in flight
        (this one included). Returns the limit."""
        seconds = max(seconds, 0.0)
        self.latency = seconds if self.latency is None else self.latency + SMOOTHING * (seconds - self.latency)
        self._lowest = seconds if self._lowest is None else min(self._lowest, seconds)
        if self.rate is not None:
            target = self._target(self.latency)
            self._share = min(1.0, self._share + 1.0 / target)  # one request more per answer
            return self._set(target * self._share)
        if self.latency > 2 * self._lowest + LATENCY_SLACK:
            self._aimd = max(1.0, self._aimd * 0.99)  # queueing somewhere: ease off
        elif in_flight >= self.limit:
            self._aimd = min(float(self.ceiling), self._aimd + 1.0 / self._aimd)  # one more per round trip
        return self._set(self._aimd)

    def pushed_back(self, now: float) -> int:
        """The server pushed back (429, 5xx, 408) or did not answer: halve the limit, at most once
        per round trip. Returns the limit."""
        if now - self._decreased_at < (self.latency or 0.0):
            return self.limit
        self._decreased_at = now
        self.backoffs += 1
        if self.rate is not None:
            target = self._target(self.latency)
            self._share = max(1.0 / target, self._share / 2)
            return self._set(target * self._share)
        self._aimd = max(1.0, self._aimd / 2)
        return self._set(self._aimd)
