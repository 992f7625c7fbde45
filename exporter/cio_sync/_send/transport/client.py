"""The Track API client: one pooled httpx.Client shared by a pool of sender threads, as many
in flight as the adaptive limit (limiter.py) and the bytes in flight allow."""

from __future__ import annotations

import base64
import logging
import queue
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx
import orjson

from ... import __version__
from ..._errors import ConfigError, CredentialsError, DeliveryIncomplete, RegionMismatchError
from .answers import _error_entries, _is_certificate_error, _parse_207, _ssl_context, _too_large
from .limiter import ConcurrencyLimit
from .retry import RETRY_STATUSES, Again, RateBudget, _retry_after, _Throttle, retry_loop
from .settings import (
    _MESSAGE_LIMIT,
    _REASON_LIMIT,
    BATCH_PATH,
    REGION_PATH,
    Batch,
    BatchOutcome,
    TrackSettings,
)

log = logging.getLogger("cio_sync.transport")


@dataclass
class _Attempt:
    """The result of one HTTP attempt (or of a series of retries of it)."""

    response: httpx.Response | None = None
    error: str | None = None
    attempts: int = 0
    fatal: ConfigError | None = None


def _batch_bytes(batch: Batch) -> int:
    """The size of `batch`'s request body."""
    return sum(len(item) for item in batch.items) + len(batch.items) + 11


class TrackClient:
    """Sends batches concurrently with pacing, retries and per-item outcomes.

    Use as a context manager. Call :meth:`preflight` first, then :meth:`submit` batches and
    :meth:`poll` outcomes from the same thread; finish with :meth:`drain`. A 401/403 or a TLS
    verification failure during a run stops all sending and is raised (as
    :class:`CredentialsError` / :class:`ConfigError`) from the next ``submit``, ``poll`` or
    ``drain``.
    """

    def __init__(self, settings: TrackSettings, *, transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings
        self._secrets = [
            s
            for s in (
                settings.api_key,
                base64.b64encode(f"{settings.site_id}:{settings.api_key}".encode()).decode(),
            )
            if s
        ]
        limits = httpx.Limits(
            max_connections=settings.concurrency + 2,
            max_keepalive_connections=settings.concurrency + 2,
        )
        self._http = httpx.Client(
            base_url=settings.base_url.rstrip("/"),
            auth=httpx.BasicAuth(settings.site_id, settings.api_key),
            headers={"User-Agent": f"cio-sync/{__version__}", "Content-Type": "application/json"},
            timeout=httpx.Timeout(settings.timeout),
            limits=limits,
            verify=_ssl_context(settings.ca_bundle),
            transport=transport,
            follow_redirects=False,
        )
        self._stop = threading.Event()
        self._throttle = _Throttle(settings.rate_limit, self._stop)
        self._rng = random.Random()
        # Threads are started as batches need them: no more than the limit has ever allowed.
        self._executor = ThreadPoolExecutor(max_workers=settings.concurrency, thread_name_prefix="cio-track")
        # The gate: batches in flight (from submit to their outcome) and their bytes, within the
        # adaptive limit and max_bytes_in_flight; one batch may always go, whatever its size.
        self._gate = threading.Condition()
        self._limit = ConcurrencyLimit(settings.concurrency, settings.rate_limit)
        self._in_flight = 0
        self._bytes_in_flight = 0
        self._in_flight_peak = 0
        self._bytes_peak = 0
        self._first_sent: float | None = None  # before the first answer: the oldest request in flight
        self._pending: set[Future[None]] = set()
        self._pending_lock = threading.Lock()
        self._done: queue.SimpleQueue[BatchOutcome] = queue.SimpleQueue()
        self._fatal: ConfigError | None = None
        self._fatal_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._responses: Counter[str] = Counter()
        self._retry_after_seconds = 0.0
        self._started = time.monotonic()
        self._closed = False

    # ----------------------------------------------------------- lifecycle

    def __enter__(self) -> TrackClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close(wait=exc_type is None)

    def close(self, *, wait: bool = True) -> None:
        """Stop the workers and close connections. ``wait=False`` abandons queued batches and
        interrupts backoff sleeps (their items end up undelivered)."""
        if self._closed:
            return
        self._closed = True
        if not wait:
            self._stop.set()
        self._executor.shutdown(wait=True, cancel_futures=not wait)
        self._stop.set()
        self._http.close()

    def __repr__(self) -> str:
        s = self.settings
        return f"TrackClient(base_url={s.base_url!r}, site_id={s.site_id!r}, concurrency={s.concurrency})"

    # --------------------------------------------------------------- pacing

    def share_rate(self, budget: RateBudget, chunk: int, fallback_rate: float) -> None:
        """Pace requests by permits claimed from `budget` (a rate shared with other processes), at
        most `chunk` a claim, instead of this process's own token bucket; should a claim fail,
        this process goes on alone at `fallback_rate`."""
        self._throttle.share(budget, chunk, fallback_rate)

    def set_rate(self, rate: float) -> None:
        """Pace this process at `rate` requests per second from now on (a shard's part)."""
        self._throttle.set_rate(rate)

    # ------------------------------------------------------------ preflight

    def preflight(self, on_retry: Callable[[str], None] | None = None) -> dict:
        """Check credentials and region with ``GET /api/v1/accounts/region``; returns its JSON.
        ``on_retry`` is told about each failed attempt before the wait for the next one.

        Raises :class:`CredentialsError` on 401/403, :class:`RegionMismatchError` when the
        workspace is in the other region (unless ``region_check`` is off), and
        :class:`ConfigError` when the API cannot be reached or answers something unexpected.
        """
        s = self.settings
        result = self._attempt("GET", REGION_PATH, None, items=0, on_retry=on_retry)
        if result.fatal is not None:
            raise result.fatal
        response = result.response
        if response is None:
            raise ConfigError(
                f"cannot reach the Customer.io Track API at {s.base_url} after {result.attempts} attempt(s): "
                f"{result.error}. Check the network, any proxy settings, the base URL (CUSTOMERIO_TRACK_URL) "
                "and the CA bundle (CUSTOMERIO_CA_BUNDLE)"
            )
        status = response.status_code
        if status in (401, 403):
            raise self._credentials_error(status)
        if status in RETRY_STATUSES:
            # Customer.io is unavailable or throttling even after retries: nothing was sent;
            # a later run may succeed, so this is an incomplete delivery, not a configuration error.
            message = "; ".join(m for _, m in _error_entries(status, response.content))
            raise DeliveryIncomplete(
                f"the region check GET {s.base_url}{REGION_PATH} still answered HTTP {status} after "
                f"{result.attempts} attempt(s): {self._clip(message)}. Nothing was sent; run again later"
            )
        if status != 200:
            message = "; ".join(m for _, m in _error_entries(status, response.content))
            raise ConfigError(
                f"the region check GET {s.base_url}{REGION_PATH} answered HTTP {status}: "
                f"{self._clip(message)}. Check that the base URL points at the Track API"
            )
        try:
            document = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            document = None
        if not isinstance(document, dict):
            raise ConfigError(
                f"the region check at {s.base_url}{REGION_PATH} did not answer a JSON object: "
                "check that the base URL points at the Track API"
            )
        actual = str(document.get("region") or "").lower()
        if s.region_check and actual and actual != s.region:
            raise RegionMismatchError(
                f"the Customer.io workspace of site id {s.site_id!r} is in the {actual.upper()} region, "
                f"but cio-sync is set up for {s.region.upper()} ({s.base_url}): "
                f"set CUSTOMERIO_REGION={actual} and run again"
            )
        return document

    # ---------------------------------------------------------- submitting

    def merge(self, primary: dict[str, str], secondary: dict[str, str]) -> str | None:
        """POST /api/v1/merge_customers: fold `secondary` into `primary` (each one identifier,
        e.g. {"email": ...}). Retried like any request; returns None on success, else why not."""
        body = orjson.dumps({"primary": primary, "secondary": secondary})
        result = self._attempt("POST", "/api/v1/merge_customers", body, items=0)
        if result.fatal is not None:
            raise result.fatal
        if result.response is None:
            return result.error or "not sent"
        if 200 <= result.response.status_code < 300:
            return None
        entries = "; ".join(m for _, m in _error_entries(result.response.status_code, result.response.content))
        return f"HTTP {result.response.status_code}: {self._clip(entries)}"

    def submit(self, batch: Batch, tick: Callable[[], None] | None = None, every: float = 1.0) -> None:
        """Queue ``batch`` for sending; blocks while the concurrency limit's batches, or
        ``max_bytes_in_flight``, are in flight, calling ``tick`` every ``every`` seconds
        meanwhile (see drain)."""
        if self._closed:
            raise RuntimeError("TrackClient is closed")
        self._raise_fatal()
        size = _batch_bytes(batch)
        next_tick = time.monotonic() + every
        while True:
            with self._gate:
                if self._admits(size):
                    self._in_flight += 1
                    self._bytes_in_flight += size
                    self._in_flight_peak = max(self._in_flight_peak, self._in_flight)
                    self._bytes_peak = max(self._bytes_peak, self._bytes_in_flight)
                    break
                # before the first answer the limit follows the oldest request's age: look again soon
                self._gate.wait(0.05 if self._limit.latency is None else every)
            if tick is not None and time.monotonic() >= next_tick:
                tick()
                next_tick = time.monotonic() + every
        try:
            self._raise_fatal()
            future = self._executor.submit(self._run, batch, size)
        except BaseException:
            self._release(size)
            raise
        with self._pending_lock:
            self._pending.add(future)
        future.add_done_callback(self._forget)

    def poll(self) -> list[BatchOutcome]:
        """Outcomes finished since the last call (in completion order)."""
        self._raise_fatal()
        return self._collect()

    def drain(self, tick: Callable[[], None] | None = None, every: float = 1.0) -> list[BatchOutcome]:
        """Wait for every submitted batch; return the outcomes not yet polled. `tick` is called
        every `every` seconds while waiting (the caller's lease heartbeat: answers with retries
        can take longer than a lease)."""
        while True:
            with self._pending_lock:
                pending = list(self._pending)
            if not pending:
                break
            wait_futures(pending, timeout=every if tick is not None else None)
            if tick is not None:
                tick()
        self._raise_fatal()
        return self._collect()

    @property
    def stats(self) -> dict[str, Any]:
        """Counters: ``requests`` (attempts sent), ``retries``, ``responses`` by status,
        ``rate_limited`` (429s), ``retry_after_waits`` / ``retry_after_seconds`` (Retry-After
        honoured), ``cooldown_waits`` (attempts held by another worker's 429), ``transport_errors``,
        ``timeouts``, ``splits``, ``bytes_sent`` and ``items_sent`` (over all attempts),
        ``items_accepted`` / ``items_rejected`` / ``items_undelivered``, ``batches`` and
        ``elapsed`` seconds; the concurrency limit: ``concurrency`` (at the end),
        ``concurrency_peak`` (the highest it was), ``concurrency_ceiling`` (--concurrency),
        ``concurrency_backoffs`` (halvings on push-back), ``latency_ms`` (its estimate),
        ``in_flight_peak`` (batches) and ``bytes_in_flight_peak``; with a shared rate budget,
        ``rate_claims`` / ``rate_permits`` (claimed) / ``rate_permits_missed`` (not used in time)."""
        keys = (
            "requests", "retries", "rate_limited", "retry_after_waits", "cooldown_waits",
            "transport_errors", "timeouts", "splits", "bytes_sent", "items_sent",
            "items_accepted", "items_rejected", "items_undelivered", "batches",
        )  # fmt: skip
        with self._stats_lock:
            result: dict[str, Any] = {key: self._counts[key] for key in keys}
            result["responses"] = dict(sorted(self._responses.items()))
            result["retry_after_seconds"] = round(self._retry_after_seconds, 3)
        with self._gate:
            limit = self._limit
            result.update(concurrency=limit.limit, concurrency_peak=limit.peak, concurrency_ceiling=limit.ceiling,
                          concurrency_backoffs=limit.backoffs,
                          latency_ms=None if limit.latency is None else round(limit.latency * 1000, 1),
                          in_flight_peak=self._in_flight_peak, bytes_in_flight_peak=self._bytes_peak)
        throttle = self._throttle
        if throttle.claims:
            result.update(rate_claims=throttle.claims, rate_permits=throttle.permits_claimed,
                          rate_permits_missed=throttle.permits_missed)
        result["elapsed"] = round(time.monotonic() - self._started, 3)
        return result

    # --------------------------------------------------------------- the gate

    def _admits(self, size: int) -> bool:
        """Whether a batch of `size` bytes may go now (called holding the gate)."""
        if self._limit.latency is None and self._first_sent is not None:
            self._limit.waiting(time.monotonic() - self._first_sent)
        if self._in_flight >= self._limit.limit:
            return False
        return self._in_flight == 0 or self._bytes_in_flight + size <= self.settings.max_bytes_in_flight

    def _release(self, size: int) -> None:
        with self._gate:
            self._in_flight -= 1
            self._bytes_in_flight -= size
            self._gate.notify_all()

    def _answered(self, seconds: float, pushed_back: bool, batch: bool) -> None:
        """Tell the limit how an attempt went: its time (`batch`: a batch's, not the region
        check's or a merge's), or that the server pushed back."""
        with self._gate:
            if pushed_back:
                self._limit.pushed_back(time.monotonic())
            else:
                self._limit.answered(seconds, self._in_flight, batch=batch)
            self._gate.notify_all()

    # ------------------------------------------------------------- workers

    def _forget(self, future: Future[None]) -> None:
        with self._pending_lock:
            self._pending.discard(future)

    def _collect(self) -> list[BatchOutcome]:
        outcomes = []
        while True:
            try:
                outcomes.append(self._done.get_nowait())
            except queue.Empty:
                return outcomes

    def _raise_fatal(self) -> None:
        with self._fatal_lock:
            fatal = self._fatal
        if fatal is not None:
            raise fatal

    def _set_fatal(self, error: ConfigError) -> None:
        with self._fatal_lock:
            if self._fatal is None:
                self._fatal = error
        self._stop.set()

    def _run(self, batch: Batch, size: int) -> None:
        """Worker entry point: send one submitted batch, report its outcome, free its place."""
        try:
            try:
                outcome = self._send(batch)
            except Exception as exc:  # a bug here must not lose the batch silently
                log.exception("unexpected error while sending a batch of %d items", len(batch))
                outcome = BatchOutcome(
                    batch, undelivered=list(range(len(batch))), error=self._scrub(f"{type(exc).__name__}: {exc}")
                )
            with self._stats_lock:
                self._counts["batches"] += 1
                self._counts["items_accepted"] += len(outcome.accepted)
                self._counts["items_rejected"] += len(outcome.rejected)
                self._counts["items_undelivered"] += len(outcome.undelivered)
            if outcome.undelivered:
                log.warning(
                    "%d of %d items undelivered after %d attempt(s): %s",
                    len(outcome.undelivered), len(batch), outcome.attempts, outcome.error,
                )  # fmt: skip
            self._done.put(outcome)
        finally:
            self._release(size)

    def _send(self, batch: Batch) -> BatchOutcome:
        """Send one batch (splitting it when it is too large) and classify every item.

        Retries resend the whole body. That is safe because event ids are deterministic ULIDs
        (Customer.io drops an id it has seen) and identify/delete/suppress are idempotent.
        """
        size = len(batch)
        everything = list(range(size))
        body = batch.body()
        if size > 1 and len(body) >= self.settings.max_request_bytes:
            return self._send_halves(batch)
        result = self._attempt("POST", BATCH_PATH, body, items=size)
        outcome = BatchOutcome(batch, attempts=result.attempts, error=result.error)
        if result.fatal is not None:
            self._set_fatal(result.fatal)
            outcome.undelivered = everything
            outcome.error = str(result.fatal)
            if result.response is not None:
                outcome.status = result.response.status_code
            return outcome
        response = result.response
        if response is None:
            outcome.undelivered = everything
            return outcome
        status = outcome.status = response.status_code
        if status == 207:
            failed = _parse_207(response.content, size)
            if failed is None:
                outcome.undelivered = everything
                outcome.error = "HTTP 207 with an unreadable body: " + self._clip(response.text)
                return outcome
            outcome.rejected = [(i, self._clip(reason, _REASON_LIMIT), self._clip(message))
                                for i, (reason, message) in sorted(failed.items())]
            outcome.accepted = [i for i in everything if i not in failed]
        elif 200 <= status < 300:
            outcome.accepted = everything
        elif 400 <= status < 500 and status not in RETRY_STATUSES:
            entries = _error_entries(status, response.content)
            if _too_large(status, entries) and size > 1:
                merged = self._send_halves(batch)
                merged.attempts += outcome.attempts
                return merged
            reason = self._clip(next((r for r, _ in entries if r), f"http_{status}"), _REASON_LIMIT)
            message = self._clip(f"HTTP {status}: " + "; ".join(m for _, m in entries))
            outcome.rejected = [(i, reason, message) for i in everything]
        else:
            outcome.undelivered = everything
            outcome.error = self._clip(
                f"HTTP {status}: " + "; ".join(m for _, m in _error_entries(status, response.content))
            )
        return outcome

    def _send_halves(self, batch: Batch) -> BatchOutcome:
        """Send both halves of ``batch`` and merge their outcomes back onto its indexes."""
        with self._stats_lock:
            self._counts["splits"] += 1
        first, second = batch.split()
        merged = BatchOutcome(batch)
        offset = 0
        for part in (first, second):
            outcome = self._send(part)
            merged.accepted += [offset + i for i in outcome.accepted]
            merged.rejected += [(offset + i, reason, message) for i, reason, message in outcome.rejected]
            merged.undelivered += [offset + i for i in outcome.undelivered]
            merged.attempts += outcome.attempts
            merged.status = outcome.status if outcome.status is not None else merged.status
            merged.error = outcome.error or merged.error
            offset += len(part)
        return merged

    def _attempt(self, method: str, path: str, body: bytes | None, *, items: int,
                 on_retry: Callable[[str], None] | None = None) -> _Attempt:  # fmt: skip
        """Send one request, retrying transient failures; return the final response or error."""
        s = self.settings
        result = _Attempt()

        def attempt(n: int) -> Again | None:
            cooled, stopped = self._throttle.acquire()
            if cooled:
                self._count("cooldown_waits")
            if stopped or self._stop.is_set():
                result.error = result.error or "not sent: sending stopped"
                return None
            result.attempts += 1
            with self._stats_lock:
                self._counts["requests"] += 1
                self._counts["retries"] += result.attempts > 1
                self._counts["bytes_sent"] += len(body or b"")
                self._counts["items_sent"] += items
            sent = time.monotonic()
            if self._first_sent is None:
                with self._gate:
                    self._first_sent = self._first_sent or sent
            try:
                response = self._http.request(method, path, content=body)
            except httpx.TransportError as exc:  # includes every httpx.TimeoutException
                self._answered(time.monotonic() - sent, pushed_back=True, batch=path == BATCH_PATH)
                return self._transport_error(exc, result)
            status = response.status_code
            self._answered(time.monotonic() - sent, pushed_back=status in RETRY_STATUSES, batch=path == BATCH_PATH)
            with self._stats_lock:
                self._responses[str(status)] += 1
            result.response, result.error = response, None
            if status in (401, 403):
                result.fatal = self._credentials_error(status)
                return None
            if status not in RETRY_STATUSES:
                return None
            result.error = self._clip(
                f"HTTP {status}: " + "; ".join(m for _, m in _error_entries(status, response.content)))
            return Again(_retry_after(response.headers.get("Retry-After")))

        def wait(delay: float, again: Again) -> bool:
            pause = delay
            if result.response is not None and result.response.status_code == 429:
                self._count("rate_limited")
                # Throttling concerns every worker: all of them hold off until the time is up,
                # then come back one after another. This one waits in the throttle as well
                # (its next attempt's acquire), not here.
                self._throttle.cool_down(delay)
                pause = 0.0
            if again.retry_after is not None:
                with self._stats_lock:
                    self._counts["retry_after_waits"] += 1
                    self._retry_after_seconds += again.retry_after
            log.debug(
                "%s %s: %s; retrying in %.2f s (attempt %d of %d)",
                method, path, result.error, delay, result.attempts, s.max_retries + 1,
            )  # fmt: skip
            if on_retry is not None:
                on_retry(f"{method} {s.base_url}{path}: {result.error}; retrying in {delay:.1f} s "
                         f"(attempt {result.attempts} of {s.max_retries + 1})")  # fmt: skip
            if self._stop.wait(pause):
                result.error = result.error or "stopped while waiting to retry"
                return True
            return False

        retry_loop(attempt, s, self._rng, wait)
        return result

    def _transport_error(self, exc: httpx.TransportError, result: _Attempt) -> Again | None:
        """A request that got no answer: retried, unless the certificate was refused."""
        detail = self._scrub(str(exc)) or "no details"
        result.error = f"{type(exc).__name__}: {detail}"
        if _is_certificate_error(exc):
            self._count("transport_errors")
            result.fatal = ConfigError(
                f"TLS certificate verification failed for {self.settings.base_url}: {detail}. If a proxy or "
                "local server uses its own CA, pass its PEM file as CUSTOMERIO_CA_BUNDLE "
                "(verification stays on)"
            )
            return None
        self._count("timeouts" if isinstance(exc, httpx.TimeoutException) else "transport_errors")
        result.response = None
        return Again()

    # -------------------------------------------------------------- helpers

    def _count(self, key: str) -> None:
        with self._stats_lock:
            self._counts[key] += 1

    def _credentials_error(self, status: int) -> CredentialsError:
        return CredentialsError(
            f"Customer.io refused the Track API credentials for site id {self.settings.site_id!r} "
            f"(HTTP {status} from {self.settings.base_url}): check CUSTOMERIO_SITE_ID and CUSTOMERIO_API_KEY "
            "(Customer.io: Settings > API Credentials > Track API keys) and the region. Nothing more was sent"
        )

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _clip(self, text: str, limit: int = _MESSAGE_LIMIT) -> str:
        """Text from an answer, secrets scrubbed, at most `limit` characters (a reason code gets
        _REASON_LIMIT, the width of the state's reason columns)."""
        text = self._scrub(text)
        return text if len(text) <= limit else text[: limit - 3] + "..."
