"""The one retry policy and its one loop: which answers are retried (408, 429, 5xx and transport
errors), how long to wait (exponential backoff with full jitter, or Retry-After, capped), the
loop every client retries in (`retry_loop`: the Track client's sends, the App API's and dbt
Cloud's GETs), and the request-rate throttle."""

from __future__ import annotations

import email.utils
import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import httpx
import orjson

from ..._errors import ConfigError

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
"""Statuses answered by retrying the same request (after a backoff or ``Retry-After``)."""

RETRY_AFTER_CAP = 300.0
"""A ``Retry-After`` longer than this many seconds is treated as this long."""



class RateBudget(Protocol):
    """A request rate shared with other processes (see _state.budget): permits are claimed in
    chunks, each a time at which one request may start."""

    def claim(self, permits: int) -> tuple[float, float]:
        """Claim `permits` requests: the time.monotonic() at which the first may start, and the
        seconds between one and the next."""

    def hold(self, seconds: float) -> None:
        """Nobody starts a request for `seconds` from now (a 429's Retry-After)."""


SLOT_GRACE = 0.05
"""Seconds a claimed permit of a shared budget stays usable after its time; later it is dropped,
so that a process that fell behind never sends its missed permits in a burst."""

log = logging.getLogger("cio_sync.transport")


class _Throttle:
    """Request pacing shared by all workers: a token bucket plus a 429 cooldown.

    Tokens accrue at ``rate`` per second up to ``burst`` (a tenth of a second's worth, at least
    one), so over any window of t seconds at most ``rate * t + burst`` requests start, and a
    moment when nobody was ready to send (the producer reading or writing state) is made up
    for instead of lost. The bucket is kept as the time its next token is due (GCRA): each
    worker reserves its own start time and sleeps until then, so that a hundred waiting workers
    do not all wake for every token. A 429 sets a cooldown that every worker waits out before its
    next attempt, not only the one that got it (a reservation made before it is void); then each
    worker waits a random part of a second more (up to the cooldown, at most 1 s), so that they
    come back one after another: all at once, they met the rate limit together again, and a
    batch could spend every retry on 429s.

    With a shared budget (:meth:`share`) the start times come from it instead, claimed ahead: when
    the permits in hand run out within two claims' time, the worker that took the last but few
    claims as many as this process used over the last ``chunk``'s worth of time (at least the
    workers waiting, at most ``chunk``), so that a busy process claims whole chunks without waiting
    for the database, and a slow one only what it uses. A 429 holds back every process sharing
    the budget.
    """

    def __init__(self, rate: float | None, stop: threading.Event) -> None:
        self._stop = stop
        self._lock = threading.Lock()
        self._claimed = threading.Condition(self._lock)
        self._set_rate(rate or 0.0)
        self._tat = 0.0  # when the next token is due (the bucket is full until then)
        self._cooldown_until = 0.0
        self._spread = 0.0  # seconds over which workers come back after a cooldown
        self._epoch = 0  # cooldowns so far: a reservation made before the last one is void
        self.rng = random.Random()
        self._budget: RateBudget | None = None
        self._fallback = 0.0  # the rate of this process alone should the shared budget fail
        self.chunk = 1
        self._slots: deque[float] = deque()  # claimed permits' times, in order
        self._claiming = False
        self._claim_seconds = 0.0  # how long a claim takes (a moving estimate)
        self._taken: deque[float] = deque()  # when this process took its permits, over the last window
        self._unreserved = 0  # workers in acquire without a start time
        self.claims = 0
        self.permits_claimed = 0
        self.permits_missed = 0

    @property
    def rate(self) -> float:
        return self._rate

    def _set_rate(self, rate: float) -> None:
        self._rate = rate
        self.burst = max(1.0, rate / 10) if rate else 0.0
        self._tau = (self.burst - 1.0) / rate if rate else 0.0  # how early a token may be taken

    def set_rate(self, rate: float) -> None:
        """Pace this process alone at `rate` from now on."""
        with self._lock:
            self._set_rate(rate)

    def share(self, budget: RateBudget, chunk: int, fallback_rate: float) -> None:
        """Take start times from `budget`, at most `chunk` a claim; should a claim fail, pace
        this process alone at `fallback_rate`."""
        with self._lock:
            self._budget, self.chunk, self._fallback = budget, max(1, chunk), fallback_rate

    def cool_down(self, seconds: float) -> None:
        with self._lock:
            self._cooldown_until = max(self._cooldown_until, time.monotonic() + seconds)
            self._spread = min(1.0, max(seconds, 0.0))
            self._tat = max(self._tat, self._cooldown_until)  # no burst right after Customer.io said slow down
            self._epoch += 1
            self._slots.clear()
            budget = self._budget
        if budget is not None:
            try:
                budget.hold(seconds)
            except Exception as exc:  # noqa: BLE001 - this process still cools down
                log.warning("could not hold back the other processes sharing the rate budget: %s", exc)

    def acquire(self) -> tuple[bool, bool]:
        """Wait for a token; returns (waited out a cooldown, stopped while waiting)."""
        cooled = spread_out = False
        unreserved = True
        with self._lock:
            self._unreserved += 1
        try:
            while True:
                at, ahead = None, 0
                with self._lock:
                    now = time.monotonic()
                    if self._cooldown_until > now:
                        cooled, wait = True, self._cooldown_until - now
                    elif cooled and not spread_out:
                        spread_out, wait = True, self.rng.uniform(0.0, self._spread)
                    else:
                        at = self._reserve()
                        if at is None:
                            return cooled, True
                        unreserved, epoch = False, self._epoch
                        self._unreserved -= 1
                        ahead = self._claim_ahead()
                        wait = at - time.monotonic()
                if ahead and at is not None:
                    self._claim(ahead)
                    wait = at - time.monotonic()
                if self._stop.wait(max(0.0, wait)):
                    return cooled, True
                if at is None:
                    continue
                with self._lock:
                    if epoch == self._epoch:
                        return cooled, False
                    unreserved = True  # a cooldown came while this worker slept: go again
                    self._unreserved += 1
        finally:
            if unreserved:
                with self._lock:
                    self._unreserved -= 1

    def _reserve(self) -> float | None:
        """(Holding the lock.) A start time for one request: the next token of this process's
        bucket, or a permit of the shared budget (claimed when none is left). None: stopped."""
        while True:
            now = time.monotonic()
            if self._budget is None:
                if not self._rate:
                    return now
                at = max(self._tat, now - self._tau)
                self._tat = at + 1.0 / self._rate
                return at
            while self._slots and self._slots[0] < now - SLOT_GRACE:
                self._slots.popleft()
                self.permits_missed += 1
            if self._slots:
                self._taken.append(now)
                return self._slots.popleft()
            if self._stop.is_set():
                return None
            if self._claiming:  # another worker claims for everyone waiting
                self._claimed.wait(0.05)
                continue
            permits = self._demand(now)
            self._claiming = True
            self._lock.release()
            try:
                self._claim(permits)
            finally:
                self._lock.acquire()

    def _demand(self, now: float) -> int:
        """(Holding the lock.) Permits to claim: as many as this process took over the last
        chunk's worth of time, at least one per worker waiting, at most a chunk."""
        window = self.chunk / self._rate if self._rate else 0.2
        while self._taken and self._taken[0] < now - window:
            self._taken.popleft()
        return max(1, min(self.chunk, max(len(self._taken), self._unreserved)))

    def _claim_ahead(self) -> int:
        """(Holding the lock, a permit just taken.) Permits to claim now, before the ones in hand
        run out (within two claims' time, at least 50 ms), or 0; marks the claim begun."""
        if self._budget is None or self._claiming:
            return 0
        now = time.monotonic()
        if self._slots and self._slots[-1] > now + max(0.05, 2 * self._claim_seconds):
            return 0
        self._claiming = True
        return self._demand(now)

    def _claim(self, permits: int) -> None:
        """Claim `permits` from the shared budget (not holding the lock, `_claiming` set); on
        failure, go on alone."""
        budget = self._budget
        started = time.monotonic()
        try:
            assert budget is not None
            first, spacing = budget.claim(permits)
        except Exception as exc:  # noqa: BLE001 - sending goes on, at this process's own rate
            log.warning("the shared rate budget failed (%s): this process goes on alone at %.3g requests/s",
                        exc, self._fallback)
            with self._lock:
                self._budget = None
                self._set_rate(self._fallback)
                self._tat = max(self._tat, time.monotonic())
                self._claiming = False
                self._claimed.notify_all()
            return
        with self._lock:
            self._claim_seconds += 0.2 * (time.monotonic() - started - self._claim_seconds)
            self._slots.extend(first + i * spacing for i in range(permits))
            self.claims += 1
            self.permits_claimed += permits
            self._claiming = False
            self._claimed.notify_all()


class Again(NamedTuple):
    """An attempt's answer that is to be retried, with the seconds its Retry-After asked for."""

    retry_after: float | None = None


class RetrySettings(Protocol):
    @property
    def max_retries(self) -> int:
        """Retries after the first attempt."""

    @property
    def backoff_base(self) -> float:
        """Seconds: the first retry waits up to this, each next one up to twice as long."""

    @property
    def backoff_max(self) -> float:
        """Seconds: no backoff is longer."""


def retry_loop(attempt: Callable[[int], Again | None], settings: RetrySettings, rng: random.Random,
               wait: Callable[[float, Again], bool]) -> Again | None:
    """The one retry loop. `attempt(n)` makes attempt n (1, 2, ...) and returns None when its
    answer is final (success, or a failure not worth retrying: it keeps what it needs), else
    Again. Between attempts `wait(seconds, again)` waits `Retry-After` if the answer had one,
    else the backoff, and returns True to stop. Returns None after a final answer, else the
    last Again (the retries spent, or stopped while waiting)."""
    n = 0
    while True:
        n += 1
        again = attempt(n)
        if again is None or n > settings.max_retries:
            return again
        delay = (again.retry_after if again.retry_after is not None
                 else _backoff(n, settings.backoff_base, settings.backoff_max, rng))
        if wait(delay, again):
            return again


def _backoff(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**(attempt-1))]."""
    return rng.uniform(0.0, min(cap, base * (2.0 ** min(attempt - 1, 62))))


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - time.time()
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_CAP)


class _RetryingGets:
    """GETs retried on 408/429/5xx and transport errors, with exponential backoff and full jitter
    (``Retry-After`` honoured): the read-only clients (App API, dbt Cloud) share this loop.

    A subclass sets ``service`` (its name in messages), ``unavailable`` (its exit-3 error),
    ``ca_bundle_hint`` (where a CA is configured), ``settings`` (with ``base_url``,
    ``max_retries``, ``backoff_base``, ``backoff_max``), ``_http`` and ``_rng``, and answers the
    hooks below with its own errors and wording."""

    service: str
    unavailable: type[Exception]  # raised once the retries are spent (exit 3)
    unavailable_advice = "Run again later"
    ca_bundle_hint: str
    settings: Any
    _http: httpx.Client
    _rng: random.Random

    def _get_with_retries(self, url: str, *, params: dict | None, what: str, raw: bool = False,
                          missing_ok: bool = False) -> Any:
        """The 200 answer's JSON (bytes when ``raw``); None for a 404 when ``missing_ok``."""
        s = self.settings
        answer: list[Any] = [None]  # the final answer's value
        errors: list[str] = []  # each attempt's error

        def attempt(n: int) -> Again | None:
            self._before_attempt()
            try:
                response = self._http.get(url, params=params)
            except httpx.TransportError as exc:
                errors.append(f"{type(exc).__name__}: {self._scrub(str(exc)) or 'no details'}")
                if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                    raise ConfigError(f"TLS certificate verification failed for {s.base_url}: {errors[-1]}. "
                                      f"{self.ca_bundle_hint}") from None
                return Again()
            answer[0] = self._answer(response, what, raw, missing_ok)
            if response.status_code not in RETRY_STATUSES:
                return None
            errors.append(f"HTTP {response.status_code}: {self._error_text(response)}")
            return Again(_retry_after(response.headers.get("Retry-After")))

        def wait(delay: float, again: Again) -> bool:
            if self._wait(delay, again.retry_after):
                raise self.unavailable(f"{what}: stopped while waiting to retry")
            return False

        if retry_loop(attempt, s, self._rng, wait) is None:
            return answer[0]
        raise self.unavailable(f"{what}: {self.service} at {s.base_url} still failed after {len(errors)} "
                               f"attempt(s): {errors[-1]}. {self.unavailable_advice}")

    def _answer(self, response: httpx.Response, what: str, raw: bool, missing_ok: bool) -> Any:
        """A final answer's value (200: its JSON, or bytes when `raw`; 404: None when
        `missing_ok`), or the error it is; None for an answer to retry."""
        status = response.status_code
        if status == 200:
            if raw:
                return response.content
            try:
                return orjson.loads(response.content)
            except orjson.JSONDecodeError:
                raise ConfigError(f"{what}: {self.service} at {self.settings.base_url} answered something that is "
                                  f"not JSON: {self._error_text(response)}") from None
        if status in (401, 403):
            raise self._refused(status)
        if status == 404:
            if missing_ok:
                return None
            raise self._not_found(what)
        if status not in RETRY_STATUSES:
            raise ConfigError(f"{what}: {self.service} answered HTTP {status}: {self._error_text(response)}")
        return None

    # -- hooks -----------------------------------------------------------------------------------
    def _before_attempt(self) -> None:
        """Called before every request (pacing, counting)."""

    def _wait(self, delay: float, retry_after: float | None) -> bool:
        """Sleep `delay` seconds before the next attempt; True when asked to stop meanwhile."""
        time.sleep(delay)
        return False

    def _scrub(self, text: str) -> str:
        return text

    def _error_text(self, response: httpx.Response) -> str:
        """A failed answer's text for a message, secrets scrubbed and clipped."""
        raise NotImplementedError

    def _refused(self, status: int) -> Exception:
        """The error for a 401/403: which credentials to check."""
        raise NotImplementedError

    def _not_found(self, what: str) -> Exception:
        raise NotImplementedError
