"""Pacing: the adaptive concurrency limit (its arithmetic, then the Track client over real HTTP
against the project's Customer.io-compatible server with injected latency, throttling and a cap
on bytes in flight) and the rate budget shared by processes through the state schema on the
local PostgreSQL (two real processes claiming from it).

No assertion here is on elapsed time: the server counts the requests it holds at once, the
client counts what its limit allowed, and the budget's permits are read from the database's own
schedule."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from typing import Any

import orjson
import pytest
from conftest import _connect_pg, pg_settings

from cio_sync._send.transport import Batch, BatchOutcome, TrackClient, TrackSettings, _Throttle
from cio_sync._send.transport.limiter import FLOOR, HEADROOM, ConcurrencyLimit, gradient, little_limit
from cio_sync._state.budget import TABLE, SharedRateBudget, chunk_for
from cio_sync.fake_server import FakeCustomerIO

SITE, KEY = "site-pacing", "key-pacing-0123456789"


# ------------------------------------------------------------------- the limit's arithmetic


def test_little_limit_is_rate_times_latency_with_headroom_within_its_bounds() -> None:
    assert little_limit(100, 1.0, 256) == 150  # 100 requests/s at 1 s each: 100 at the server, 50 waiting
    assert little_limit(100, 0.25, 256) == round(100 * 0.25 * HEADROOM)
    assert little_limit(100, 0.001, 256) == FLOOR  # loopback: the floor
    assert little_limit(1000, 1.0, 256) == 256  # --concurrency bounds it
    assert little_limit(100, 1.0, 3) == 3
    assert little_limit(100, 0.0, 256, floor=1) == 1  # never below one request
    # The default bound allows the default rate at 1 s per request.
    assert little_limit(100, 1.0, TrackSettings.__dataclass_fields__["concurrency"].default) >= 100


def test_gradient_keeps_the_limit_while_answers_are_quick_and_cuts_it_as_they_queue() -> None:
    assert gradient(0.2, 0.1) == 1.0  # twice the quickest: not queued
    assert gradient(0.4, 0.1) == 0.5
    assert gradient(0.3, 0.1) == pytest.approx(2 / 3)
    assert gradient(10.0, 0.1) == 0.5  # never under a half at once


def test_with_a_rate_a_far_network_opens_the_limit_at_the_first_answer() -> None:
    limit = ConcurrencyLimit(256, 100.0)
    assert limit.limit == FLOOR and limit.latency is None
    limit.answered(1.0, 0, batch=False)  # the region check: 1 s away
    assert limit.limit == little_limit(100, 1.0, 256) == 150
    for _ in range(50):
        limit.answered(1.02, 150)  # batches take as long: it stays
    assert limit.limit >= 150


def test_with_a_rate_a_slow_server_opens_the_limit_within_a_few_round_trips() -> None:
    """The region check is quick, the batches take 300 ms (the server's work, not a queue): the
    limit grows from the floor to Little's 45 while it is full, within a few round trips."""
    limit = ConcurrencyLimit(256, 100.0)
    limit.answered(0.02, 0, batch=False)
    assert limit.limit == FLOOR
    answers = 0
    while limit.limit < little_limit(100, 0.3, 256):
        limit.answered(0.3, limit.limit)  # saturated: every place in use
        answers += 1
    assert answers <= 60  # about two round trips' answers at the limits on the way
    for _ in range(200):
        limit.answered(0.3, limit.limit)
    assert limit.limit == little_limit(100, 0.3, 256) == 45  # Little's law caps it


def test_latency_the_limit_causes_itself_holds_it_down() -> None:
    """A server (or a machine) that is the bottleneck: each request more in flight makes every
    answer longer. Little's law alone would follow the latency up to the bound; the gradient stops
    the limit where answers start to queue."""
    limit = ConcurrencyLimit(256, 100.0)
    limit.answered(0.005, 0, batch=False)
    throughput = 50.0  # requests/s the server manages, whatever is in flight
    for _ in range(2000):
        limit.answered(max(limit.limit / throughput, 0.04), limit.limit)
    # It settles where answers take a little over twice the quickest (0.16 s, 8 in flight): about
    # 21 in flight, 0.42 s; Little's law at that latency alone would allow 63, and feed on it.
    assert limit.limit <= 3 * FLOOR and limit.peak < 32
    assert limit.latency is not None and little_limit(100, limit.latency, 256) > 2 * limit.limit


def test_before_the_first_answer_the_oldest_requests_age_raises_the_limit() -> None:
    limit = ConcurrencyLimit(256, 100.0)
    assert limit.waiting(0.01) == FLOOR
    assert limit.waiting(0.5) == little_limit(100, 0.5, 256)
    assert limit.waiting(0.2) == little_limit(100, 0.5, 256)  # never lowered by it
    assert ConcurrencyLimit(256, None).waiting(5.0) == FLOOR  # without a rate, answers alone count


def test_push_back_halves_the_limit_once_per_round_trip_and_answers_bring_it_back() -> None:
    limit = ConcurrencyLimit(256, 100.0)
    limit.answered(1.0, 0, batch=False)
    assert limit.limit == 150
    assert limit.pushed_back(now=10.0) == 75
    assert limit.pushed_back(now=10.5) == 75  # the same round trip (1 s): one halving
    assert limit.pushed_back(now=11.1) == 38
    assert limit.backoffs == 2
    for _ in range(200):
        limit.answered(1.0, 38)
    assert limit.limit == 150
    limit.pushed_back(now=20.0)
    for _ in range(20):
        limit.pushed_back(now=21.0 + _ * 1.1)
    assert limit.limit == 1  # down to one request, never none


def test_without_a_rate_the_limit_grows_while_latency_holds_and_eases_off_when_it_queues() -> None:
    limit = ConcurrencyLimit(64, None)
    assert limit.limit == FLOOR
    for _ in range(400):
        limit.answered(0.01, limit.limit)  # saturated, latency flat: it grows
    grown = limit.limit
    assert grown == 64  # up to --concurrency
    for _ in range(100):
        limit.answered(0.1, limit.limit)  # ten times slower: queueing somewhere
    assert limit.limit == FLOOR
    for _ in range(1000):
        limit.answered(0.01, 1)  # not saturated: no growth
    assert limit.limit == FLOOR


# ----------------------------------------------------------------- the client over real HTTP


@pytest.fixture
def srv():
    with FakeCustomerIO(site_id=SITE, api_key=KEY) as server:
        yield server


def settings_for(url: str, **overrides: Any) -> TrackSettings:
    fields: dict[str, Any] = {"site_id": SITE, "api_key": KEY, "base_url": url, "region_check": False,
                              "timeout": 30.0, "backoff_base": 0.01, "backoff_max": 0.1}
    fields.update(overrides)
    return TrackSettings(**fields)


def people_batches(count: int, size: int = 1, pad: int = 0) -> list[Batch]:
    batches = []
    for b in range(count):
        items = [orjson.dumps({"type": "person", "identifiers": {"id": f"p{b}-{i}"}, "action": "identify",
                               "attributes": {"plan": "pro", "note": "x" * pad}}) for i in range(size)]
        batches.append(Batch(items=items, refs=list(range(size))))
    return batches


def send_all(client: TrackClient, batches: list[Batch]) -> list[BatchOutcome]:
    client.preflight()
    outcomes: list[BatchOutcome] = []
    for batch in batches:
        client.submit(batch)
        outcomes += client.poll()
    return outcomes + client.drain()


def test_the_limit_keeps_more_than_8_requests_in_flight_when_rate_times_latency_needs_it(srv) -> None:
    """1 s a request at 100 requests/s needs 100 in flight: the old fixed 8 allowed 8 requests/s."""
    srv.configure(latency=1.0)
    with TrackClient(settings_for(srv.url, rate_limit=100)) as client:
        outcomes = send_all(client, people_batches(150))
        stats = client.stats
    assert all(o.complete and len(o.accepted) == 1 for o in outcomes)
    assert sum(srv.stats()["items_accepted"].values()) == 150
    assert srv.stats()["max_in_flight"] > FLOOR
    assert stats["concurrency_peak"] > FLOOR and stats["in_flight_peak"] > FLOOR
    assert stats["latency_ms"] >= 1000

    # --concurrency bounds it.
    srv.reset()
    with TrackClient(settings_for(srv.url, rate_limit=100, concurrency=4)) as client:
        outcomes = send_all(client, people_batches(20))
        assert client.stats["concurrency_peak"] == 4
    assert all(o.complete for o in outcomes)
    assert srv.stats()["max_in_flight"] <= 4


def test_429s_are_retried_the_limit_backs_off_and_nothing_is_undelivered(srv) -> None:
    """A server allowing fewer requests than the client's rate: it answers 429 with Retry-After;
    every batch arrives all the same."""
    srv.configure(rate_limit=20, rate_limit_burst=2, latency=0.05, fault_paths=("/api/v2/",))
    with TrackClient(settings_for(srv.url, rate_limit=100, max_retries=20)) as client:
        outcomes = send_all(client, people_batches(40, size=3))
        stats = client.stats
    assert srv.stats()["rate_limited"] > 0
    assert stats["rate_limited"] == srv.stats()["rate_limited"]
    assert stats["concurrency_backoffs"] >= 1
    assert stats["items_undelivered"] == 0 and all(o.complete for o in outcomes)
    assert sum(srv.stats()["items_accepted"].values()) == 120


def test_bytes_in_flight_are_capped_whatever_the_limit(srv) -> None:
    srv.configure(latency=0.3)
    batches = people_batches(12, size=4, pad=2_000)
    size = len(batches[0].body())
    cap = 3 * size + size // 2  # room for three batches, not four
    with TrackClient(settings_for(srv.url, rate_limit=None, max_bytes_in_flight=cap)) as client:
        assert client.stats["concurrency"] == FLOOR > 3  # the limit alone would let 8 go
        outcomes = send_all(client, batches)
        stats = client.stats
    assert all(o.complete for o in outcomes)
    assert srv.stats()["max_in_flight"] == 3
    assert stats["in_flight_peak"] == 3 and stats["bytes_in_flight_peak"] <= cap

    # One batch larger than the cap still goes, alone.
    srv.reset()
    with TrackClient(settings_for(srv.url, rate_limit=None, max_bytes_in_flight=size // 2)) as client:
        outcomes = send_all(client, batches[:3])
        assert client.stats["in_flight_peak"] == 1
    assert all(o.complete for o in outcomes)


# ------------------------------------------------------------- one budget for many processes


@pytest.fixture
def budget_schema(pg_schema_factory):
    schema = pg_schema_factory("cio_budget")
    conn = _connect_pg()
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute(f"create schema {schema.name}")
    conn.close()
    return schema


CLAIMER = textwrap.dedent("""
    import json, sys
    import psycopg2
    from cio_sync._state.budget import SharedRateBudget
    settings, schema, rate, claims, chunk = json.loads(sys.argv[1])
    budget = SharedRateBudget(psycopg2.connect(**settings), schema, "site-shared", rate)
    print("ready", flush=True)
    sys.stdin.readline()  # go
    out = [(budget.claim_at(1 + n % chunk)[0], 1 + n % chunk) for n in range(claims)]
    print(json.dumps(out), flush=True)
""")


def test_two_processes_never_hold_more_permits_than_the_budget_allows(budget_schema) -> None:
    """Two processes claim permits of one budget as fast as they can, at once. Every permit the
    database handed out, whoever got it, is at least 1 / rate after the one before: over any
    window of t seconds at most rate x t + 1 of them. And the schedule has no hole: what one
    process does not claim, the other gets (a finished shard's share goes to the others)."""
    rate, claims, chunk = 20.0, 150, 7  # 30 s of permits, claimed in well under that
    args = json.dumps([pg_settings(), budget_schema.name, rate, claims, chunk])
    procs = [subprocess.Popen([sys.executable, "-c", CLAIMER, args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True) for _ in range(2)]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        for proc in procs:  # both go at once
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = [json.loads(proc.communicate(timeout=120)[0]) for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
    assert all(proc.returncode == 0 for proc in procs)
    spacing = 1.0 / rate
    permits = sorted((first + i * spacing, owner) for owner, result in enumerate(results)
                     for first, count in result for i in range(count))
    assert len(permits) == 2 * sum(1 + n % chunk for n in range(claims))
    gaps = [b[0] - a[0] for a, b in zip(permits, permits[1:], strict=False)]
    assert min(gaps) >= spacing - 1e-5  # never two permits closer than the rate allows (Unix seconds: 1e-5 s)
    # The claims raced ahead of the clock, so the budget's schedule is back to back: no permit lost.
    assert max(gaps) <= spacing + 1e-5
    # (the premise: the two really claimed at the same time, their permits interleaved)
    owners = [owner for _, owner in permits]
    assert sum(a != b for a, b in zip(owners, owners[1:], strict=False)) > 4
    # The database's row says the same: the next permit is due right after the last one handed out.
    [(tat,)] = budget_schema.query(f"select tat from {TABLE} where site_id = 'site-shared'")
    assert tat == pytest.approx(permits[-1][0] + spacing, abs=1e-5)


def test_a_429_holds_back_every_process_of_the_budget(budget_schema) -> None:
    settings = pg_settings()
    import psycopg2

    one = SharedRateBudget(psycopg2.connect(**settings), budget_schema.name, SITE, 100.0)
    other = SharedRateBudget(psycopg2.connect(**settings), budget_schema.name, SITE, 100.0)
    try:
        first, now = other.claim_at(1)
        assert first <= now + 1e-3
        one.hold(30.0)  # Retry-After: 30 in one process
        first, now = other.claim_at(1)
        assert first >= now + 29.0  # the other waits for it too
        assert chunk_for(100.0) == 20 and chunk_for(1.0) == 1
    finally:
        one.close()
        other.close()


def test_a_budget_that_fails_leaves_the_process_paced_on_its_own() -> None:
    class Broken:
        def claim(self, permits: int) -> tuple[float, float]:
            raise RuntimeError("connection lost")

        def hold(self, seconds: float) -> None:
            raise RuntimeError("connection lost")

    throttle = _Throttle(100.0, threading.Event())
    throttle.share(Broken(), chunk=20, fallback_rate=25.0)
    assert throttle.acquire() == (False, False)
    assert throttle.rate == 25.0 and throttle.claims == 0
    throttle.cool_down(0.0)  # holding the others back fails quietly too
    assert throttle.acquire()[1] is False


def test_the_server_holds_hundreds_of_slow_requests_at_once(srv) -> None:
    """Latency on the fake server is an asyncio sleep, not a thread: 200 requests held at once
    (their answers held until released), every one answered in the end."""
    import asyncio

    import httpx

    srv.configure(answers_allowed=0, fault_paths=("/api/v2/",))
    body = b'{"batch":[' + b",".join(people_batches(1)[0].items) + b"]}"

    async def send_all_at_once() -> list[int]:
        limits = httpx.Limits(max_connections=250)
        async with httpx.AsyncClient(base_url=srv.url, auth=(SITE, KEY), limits=limits, timeout=120) as client:
            tasks = [asyncio.create_task(client.post("/api/v2/batch", content=body)) for _ in range(200)]
            while srv.stats()["held"] < 200:  # every request is at the server, its answer held
                assert not any(task.done() for task in tasks)
                await asyncio.sleep(0.02)
            assert srv.stats()["max_in_flight"] == 200
            srv.configure(answers_allowed=None)
            return [response.status_code for response in await asyncio.gather(*tasks)]

    assert asyncio.run(send_all_at_once()) == [200] * 200
    assert srv.stats()["in_flight"] == 0


def test_a_busy_process_claims_whole_chunks_ahead_not_a_permit_at_a_time() -> None:
    """A claim is a round trip to the database: a process sending at the budget's pace claims
    about as many as it used over the last chunk's worth of time, before the ones in hand run out."""
    import time

    class Local:
        """The same schedule as the database's, in this process."""

        def __init__(self, rate: float) -> None:
            self.spacing, self.tat, self.claims = 1.0 / rate, 0.0, []

        def claim(self, permits: int) -> tuple[float, float]:
            first = max(self.tat, time.monotonic())
            self.tat = first + permits * self.spacing
            self.claims.append(permits)
            return first, self.spacing

        def hold(self, seconds: float) -> None:
            self.tat = max(self.tat, time.monotonic() + seconds)

    budget = Local(200.0)
    throttle = _Throttle(200.0, threading.Event())
    throttle.share(budget, chunk=chunk_for(200.0), fallback_rate=200.0)
    for _ in range(300):
        assert throttle.acquire() == (False, False)
    assert sum(budget.claims) >= 300 and max(budget.claims) == chunk_for(200.0) == 40
    assert len(budget.claims) <= 300 / 5  # at least five permits a claim on average
