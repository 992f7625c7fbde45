"""How many requests the Track client keeps in flight: a limit that follows the latency it
measures, bounded by ``--concurrency``, backing off when the server pushes back or slows down.

Two rules, the lower one wins:

- **Little's law** (with a request rate to keep, ``--rate-limit``): the throttle sets the pace,
  and the limit only has to keep it busy. A steady ``rate`` of requests that each take
  ``latency`` seconds has ``rate x latency`` of them in flight; the limit is that times a
  headroom (requests waiting their turn in the throttle, latency that varies).
- **A gradient** (as in Netflix's concurrency-limits, Gradient2): the limit grows by about the
  square root of itself per answer while the answers take no longer than ``TOLERANCE`` times the
  quickest batch answer seen, and shrinks in proportion when they take longer. Latency that does
  not grow with the concurrency (a far network, a server that takes its time) lets it grow;
  latency that the concurrency itself causes (a queue at a busy server, or on this machine) holds
  it down. Without it Little's law would feed on its own queue: more in flight, longer answers,
  a higher limit.

Neither goes under ``FLOOR`` (the old fixed default) unless the server pushes back: a 429, a 5xx,
a 408 or a request without an answer halves the limit (once per round trip, however many answers
say so), and each answer after that gives one request back.

The latency is an exponentially weighted mean of the answers' times; before the first answer, the
age of the oldest request in flight stands in for it. The first answer (the region check) sets
both rules' starting point, so a far network opens up at once; the quickest batch answer, not the
region check (a small GET), is what the gradient compares with.
"""

from __future__ import annotations

import math

HEADROOM = 1.5
"""Little's limit is this many times rate x latency: the requests at the server plus those
waiting their turn in the throttle, and room for latency that varies."""

FLOOR = 8
"""In flight at least (or --concurrency, if lower) unless the server pushes back: what cio-export
kept in flight before the limit adapted."""

SMOOTHING = 0.2
"""Weight of each new answer in the latency estimate and in the gradient's limit."""

TOLERANCE = 2.0
"""Answers up to this many times the quickest batch answer count as not queued."""


def little_limit(rate: float, latency: float, ceiling: int, *, floor: int = FLOOR,
                 headroom: float = HEADROOM) -> int:
    """Requests to keep in flight for `rate` per second at `latency` seconds each (Little's law,
    times `headroom`), at least `floor`, within [1, `ceiling`]."""
    wanted = math.ceil(rate * max(latency, 0.0) * headroom)
    return max(1, min(ceiling, max(floor, wanted)))


def gradient(latency: float, quickest: float, *, tolerance: float = TOLERANCE) -> float:
    """How much of the limit to keep: 1 while `latency` is within `tolerance` times `quickest`,
    less in proportion beyond, never under a half."""
    if latency <= 0:
        return 1.0
    return max(0.5, min(1.0, tolerance * quickest / latency))


class ConcurrencyLimit:
    """The adaptive limit. Not thread-safe: the client calls it under its own lock. Times are
    passed in (`now`, seconds of one monotonic clock), so the arithmetic can be followed in tests.

    ``limit`` is the requests allowed in flight now; ``peak`` the highest it has been;
    ``latency`` the current estimate (None before the first answer)."""

    def __init__(self, ceiling: int, rate: float | None) -> None:
        if ceiling < 1:
            raise ValueError("ceiling must be at least 1")
        self.ceiling = ceiling
        self.rate = rate or None
        self.floor = min(FLOOR, ceiling)
        self.latency: float | None = None
        self.quickest: float | None = None  # the quickest batch answer: what "not queued" is
        self._grown = float(self.floor)  # the gradient's limit
        self._share = 1.0  # what is left after backing off (halved on push-back)
        self._decreased_at = -math.inf
        self.backoffs = 0
        self.limit = self.floor
        self.peak = self.limit

    def _little(self, latency: float) -> float:
        assert self.rate is not None
        return float(little_limit(self.rate, latency, self.ceiling, floor=self.floor))

    def _update(self) -> int:
        base = self._grown
        if self.rate is not None and self.latency is not None:
            base = min(base, self._little(self.latency))
        self.limit = max(1, min(self.ceiling, math.ceil(base * self._share - 1e-9)))
        self.peak = max(self.peak, self.limit)
        return self.limit

    def waiting(self, oldest_age: float) -> int:
        """Before the first answer: the oldest request in flight has waited `oldest_age` seconds,
        so the latency is at least that. Returns the limit."""
        if self.latency is None and self.rate is not None:
            self._grown = max(self._grown, self._little(oldest_age))
        return self._update()

    def answered(self, seconds: float, in_flight: int, *, batch: bool = True) -> int:
        """An answer that is not a push-back took `seconds`, with `in_flight` requests in flight
        (this one included); `batch` False for the region check. Returns the limit."""
        seconds = max(seconds, 0.0)
        if self.latency is None:  # the first answer: both rules start from it
            self.latency = seconds
            if self.rate is not None:
                self._grown = max(self._grown, self._little(seconds))
        else:
            self.latency += SMOOTHING * (seconds - self.latency)
        if not batch:
            return self._update()
        self.quickest = seconds if self.quickest is None else min(self.quickest, seconds)
        kept, full = gradient(self.latency, self.quickest), in_flight >= self.limit
        if full or kept < 1.0:  # it grows only while every place is in use
            target = self._grown * kept + (math.sqrt(self._grown) if full else 0.0)
            cap = self.ceiling if self.rate is None else min(self.ceiling, 2 * self._little(self.latency))
            self._grown = max(float(self.floor), min(float(cap), self._grown + SMOOTHING * (target - self._grown)))
        if self._share < 1.0:
            self._share = min(1.0, self._share + 1.0 / max(self._grown, 1.0))  # one request back per answer
        return self._update()

    def pushed_back(self, now: float) -> int:
        """The server pushed back (429, 5xx, 408) or did not answer: halve the limit, at most once
        per round trip. Returns the limit."""
        if now - self._decreased_at < (self.latency or 0.0):
            return self.limit
        self._decreased_at = now
        self.backoffs += 1
        self._share = max(1.0 / max(self._grown, 1.0), self._share / 2)
        return self._update()
