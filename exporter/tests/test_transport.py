"""TrackClient over real HTTP against the Customer.io-compatible server (cio_sync.fake_server).

Nothing here contacts Customer.io. httpx.MockTransport appears only for response shapes the
fake server never produces (403, 413, the v1-style 400 bodies on the v2 endpoint, plain text),
each marked where it is used.
"""

from __future__ import annotations

import base64
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import httpx
import orjson
import pytest
from ulid import ULID

from cio_sync import __version__
from cio_sync._errors import (
    CioSyncError,
    ConfigError,
    CredentialsError,
    DeliveryIncomplete,
    RegionMismatchError,
)
from cio_sync._send.transport import Batch, BatchOutcome, TrackClient, TrackSettings, _retry_after, _Throttle
from cio_sync.fake_server import FakeCustomerIO

SITE = "site-7f3a"
KEY = "trk-key-Zq8mW2vX9pL4"
WRONG_KEY = "wrong-key-Hh5tR1yU7e"
SECRETS = (KEY, WRONG_KEY, base64.b64encode(f"{SITE}:{KEY}".encode()).decode())

FAULTS_OFF: dict[str, Any] = {
    "region": "us",
    "rate_limit": None,
    "error_rate": 0.0,
    "drop_rate": 0.0,
    "latency": 0.0,
    "slow_rate": 0.0,
    "slow_accepts": True,
    "seed": None,
    "max_request_bytes": 500_000,
    "echo_credentials": False,
}


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def shared_server() -> Iterator[FakeCustomerIO]:
    with FakeCustomerIO(site_id=SITE, api_key=KEY) as server:
        yield server


@pytest.fixture
def srv(shared_server: FakeCustomerIO) -> FakeCustomerIO:
    shared_server.configure(**FAULTS_OFF)
    shared_server.reset()
    return shared_server


def settings_for(url: str, **overrides: Any) -> TrackSettings:
    fields: dict[str, Any] = {
        "site_id": SITE,
        "api_key": KEY,
        "base_url": url,
        "rate_limit": None,
        "timeout": 5.0,
        "backoff_base": 0.01,
        "backoff_max": 0.1,
    }
    fields.update(overrides)
    return TrackSettings(**fields)


def event(person: str = "42", name: str = "order_placed", event_id: str | None = None, **extra: Any) -> dict:
    item: dict[str, Any] = {
        "type": "person",
        "identifiers": {"id": person},
        "action": "event",
        "name": name,
        "id": event_id if event_id is not None else str(ULID()),
        "timestamp": 1_700_000_000,
        "attributes": {"total": 12.5},
    }
    item.update(extra)
    return item


def identify(person: str = "42", **attributes: Any) -> dict:
    return {
        "type": "person",
        "identifiers": {"id": person},
        "action": "identify",
        "timestamp": 1_700_000_000,
        "attributes": attributes or {"plan": "pro"},
    }


def batch_of(items: list[dict]) -> Batch:
    return Batch(items=[orjson.dumps(item) for item in items], refs=[f"ref-{i}" for i in range(len(items))])


def event_batches(count: int, size: int) -> tuple[list[Batch], list[str]]:
    """``count`` batches of ``size`` events with distinct ULIDs; also the ids, upper-case."""
    batches, ids = [], []
    for b in range(count):
        items = [event(person=f"p{b}-{i}") for i in range(size)]
        ids += [item["id"] for item in items]
        batches.append(batch_of(items))
    return batches, ids


def send_all(client: TrackClient, batches: list[Batch]) -> list[BatchOutcome]:
    outcomes: list[BatchOutcome] = []
    for batch in batches:
        client.submit(batch)
        outcomes += client.poll()
    outcomes += client.drain()
    assert len(outcomes) == len(batches)
    return outcomes


def assert_all_accepted(outcomes: list[BatchOutcome]) -> None:
    for outcome in outcomes:
        assert outcome.accepted == list(range(len(outcome.batch.items))), outcome
        assert outcome.rejected == [] and outcome.undelivered == []


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------------ preflight, auth


def test_preflight_returns_the_region_answer(srv: FakeCustomerIO) -> None:
    with TrackClient(settings_for(srv.url)) as client:
        answer = client.preflight()
    assert answer["region"] == "us"
    assert answer["url"] == srv.url
    assert srv.requests()[-1]["path"] == "/api/v1/accounts/region"


def test_bad_key_is_a_credentials_error_without_the_key(srv: FakeCustomerIO, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    settings = settings_for(srv.url, api_key=WRONG_KEY)
    with TrackClient(settings) as client, pytest.raises(CredentialsError) as caught:
        client.preflight()
    error = caught.value
    assert isinstance(error, ConfigError) and error.exit_code == 2
    assert "401" in str(error) and "CUSTOMERIO_API_KEY" in str(error)
    assert WRONG_KEY not in str(error) and WRONG_KEY not in repr(error)
    assert base64.b64encode(f"{SITE}:{WRONG_KEY}".encode()).decode() not in str(error)
    assert WRONG_KEY not in repr(settings) and WRONG_KEY not in repr(client)
    assert WRONG_KEY not in str(client.stats)
    assert WRONG_KEY not in caplog.text


def test_missing_credentials_fail_before_anything_is_sent() -> None:
    with pytest.raises(CredentialsError, match="CUSTOMERIO_SITE_ID"):
        TrackSettings(site_id="", api_key=KEY, base_url="http://127.0.0.1:9")
    with pytest.raises(CredentialsError) as caught:
        TrackSettings(site_id=SITE, api_key=" ", base_url="http://127.0.0.1:9")
    assert caught.value.exit_code == 2


def test_unauthorized_during_a_run_stops_sending(srv: FakeCustomerIO) -> None:
    batches, _ = event_batches(4, 3)
    settings = settings_for(srv.url, api_key=WRONG_KEY, concurrency=1)
    with TrackClient(settings) as client:
        with pytest.raises(CredentialsError) as caught:
            for batch in batches:
                client.submit(batch)
                client.poll()
            client.drain()
        assert_no_secret(str(caught.value))
        with pytest.raises(CredentialsError):
            client.drain()
    # The first 401 ended the run: nothing after it went out.
    assert [r["status"] for r in srv.requests()] == [401]


def test_region_mismatch_names_both_regions_and_the_setting(srv: FakeCustomerIO) -> None:
    srv.configure(region="eu")
    with TrackClient(settings_for(srv.url)) as client, pytest.raises(RegionMismatchError) as caught:
        client.preflight()
    message = str(caught.value)
    assert "EU" in message and "US" in message and "CUSTOMERIO_REGION=eu" in message
    assert caught.value.exit_code == 2
    # Right region, or a base URL the user chose (no check): fine.
    with TrackClient(settings_for(srv.url, region="eu")) as client:
        assert client.preflight()["region"] == "eu"
    with TrackClient(settings_for(srv.url, region_check=False)) as client:
        assert client.preflight()["region"] == "eu"


def test_unreachable_server_is_a_config_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with TrackClient(settings_for(url, max_retries=1)) as client, pytest.raises(ConfigError) as caught:
        client.preflight()
    assert not isinstance(caught.value, CredentialsError)
    assert "cannot reach" in str(caught.value) and url in str(caught.value)
    assert client.stats["requests"] == 2
    assert_no_secret(str(caught.value))


def test_error_classes() -> None:
    assert issubclass(DeliveryIncomplete, CioSyncError) and DeliveryIncomplete.exit_code == 3
    assert CioSyncError.exit_code == 1
    assert issubclass(RegionMismatchError, ConfigError) and issubclass(CredentialsError, ConfigError)


# ------------------------------------------------------------------------ responses


def test_batch_of_valid_items_is_accepted_and_recorded(srv: FakeCustomerIO) -> None:
    items = [identify(f"u{i}", plan="pro", seats=i) for i in range(20)]
    items += [event(f"u{i}") for i in range(30)]
    batch = batch_of(items)
    with TrackClient(settings_for(srv.url)) as client:
        client.submit(batch)
        (outcome,) = client.drain()
        stats = client.stats
    assert outcome.batch is batch
    assert_all_accepted([outcome])
    assert (outcome.status, outcome.attempts, outcome.error) == (200, 1, None)
    assert stats["requests"] == 1 and stats["responses"] == {"200": 1}
    assert stats["items_sent"] == 50 and stats["bytes_sent"] == len(batch.body())
    assert srv.person("id", "u7")["attributes"] == {"plan": "pro", "seats": 7}
    assert sorted(e["id"] for e in srv.events()) == sorted(item["id"] for item in items[20:])
    (request,) = srv.requests()
    assert (request["path"], request["status"], request["items"]) == ("/api/v2/batch", 200, 50)


def test_207_rejects_exactly_the_bad_items(srv: FakeCustomerIO) -> None:
    good = [event("a"), identify("b"), event("c"), event("d")]
    items = [
        good[0],
        event("x", event_id="not-a-ulid"),
        good[1],
        event("y" * 151),
        good[2],
        good[3],
    ]
    with TrackClient(settings_for(srv.url)) as client:
        client.submit(batch_of(items))
        (outcome,) = client.drain()
    assert outcome.status == 207
    assert outcome.accepted == [0, 2, 4, 5]
    assert [(i, reason) for i, reason, _ in outcome.rejected] == [(1, "invalid_event_id"), (3, "identifier_too_long")]
    assert "(field: id)" in outcome.rejected[0][2]
    assert "(field: identifiers.id)" in outcome.rejected[1][2]
    assert outcome.undelivered == []
    assert sorted(e["id"] for e in srv.events()) == sorted([good[0]["id"], good[2]["id"], good[3]["id"]])
    assert srv.person("id", "b") is not None


# -------------------------------------------------------------------- faults, retries


def test_429_storm_is_waited_out_and_everything_arrives_once(srv: FakeCustomerIO) -> None:
    srv.configure(rate_limit=5)
    batches, ids = event_batches(12, 5)
    settings = settings_for(srv.url, concurrency=8, rate_limit=None, max_retries=8, backoff_max=5.0)
    with TrackClient(settings) as client:
        outcomes = send_all(client, batches)
        stats = client.stats
    assert_all_accepted(outcomes)
    server = srv.stats()
    assert server["rate_limited"] > 0
    assert server["duplicates"] == 0
    assert sorted(e["id"] for e in srv.events()) == sorted(ids)
    assert stats["rate_limited"] > 0
    assert stats["retry_after_waits"] > 0 and stats["retry_after_seconds"] >= 1
    # A 429 holds back every worker, not only the one that received it.
    assert stats["cooldown_waits"] > 0
    assert stats["responses"]["429"] == server["rate_limited"]


def test_errors_and_dropped_connections_are_retried_without_duplicates(srv: FakeCustomerIO) -> None:
    srv.configure(error_rate=0.2, drop_rate=0.1, seed=20240611)
    batches, ids = event_batches(20, 10)
    with TrackClient(settings_for(srv.url, concurrency=4, max_retries=12)) as client:
        outcomes = send_all(client, batches)
        stats = client.stats
    assert_all_accepted(outcomes)
    server = srv.stats()
    assert server["errors_injected"] > 0 and server["dropped"] > 0
    assert stats["retries"] == server["errors_injected"] + server["dropped"]
    assert stats["transport_errors"] == server["dropped"]
    stored = [e["id"] for e in srv.events()]
    assert len(stored) == len(set(stored)) == len(ids)
    assert sorted(stored) == sorted(ids)


def test_slow_responses_time_out_are_resent_and_deduplicated() -> None:
    # A server of its own: stopping it cuts the held-back responses short.
    with FakeCustomerIO(site_id=SITE, api_key=KEY, slow_rate=0.3, slow_seconds=1.0, seed=7) as srv:
        batches, ids = event_batches(10, 5)
        with TrackClient(settings_for(srv.url, concurrency=5, timeout=0.4, max_retries=10)) as client:
            outcomes = send_all(client, batches)
            stats = client.stats
        assert_all_accepted(outcomes)
        server = srv.stats()
        assert server["slow"] > 0 and stats["timeouts"] > 0
        # The slow requests were recorded although their answers never arrived; the resends
        # carried the same event ids, so the server ignored them as duplicates.
        assert server["duplicates"] > 0
        stored = [e["id"] for e in srv.events()]
        assert len(stored) == len(set(stored)) == len(ids)


def test_exhausted_retries_leave_items_undelivered(srv: FakeCustomerIO) -> None:
    srv.configure(error_rate=1.0)
    batch = batch_of([event("a"), event("b")])
    with TrackClient(settings_for(srv.url, max_retries=2)) as client:
        client.submit(batch)
        (outcome,) = client.drain()
        stats = client.stats
    assert outcome.undelivered == [0, 1] and outcome.accepted == [] and outcome.rejected == []
    assert outcome.attempts == 3 and outcome.status in (500, 502, 503)
    assert outcome.error is not None and outcome.error.startswith(f"HTTP {outcome.status}")
    assert stats["requests"] == 3 and stats["retries"] == 2 and stats["items_undelivered"] == 2
    assert srv.stats()["requests"] == 3 and srv.events() == []

    srv.configure(error_rate=0.0, drop_rate=1.0)
    with TrackClient(settings_for(srv.url, max_retries=1)) as client:
        client.submit(batch)
        (outcome,) = client.drain()
    assert outcome.undelivered == [0, 1] and outcome.status is None and outcome.attempts == 2
    assert "RemoteProtocolError" in outcome.error


def test_client_rate_limit_bounds_the_request_rate(srv: FakeCustomerIO) -> None:
    batches, _ = event_batches(20, 1)
    started = time.monotonic()
    with TrackClient(settings_for(srv.url, concurrency=8, rate_limit=40)) as client:
        assert client._throttle.burst == 4  # a tenth of a second's worth
        assert_all_accepted(send_all(client, batches))
    # 20 requests at 40/s after a burst of 4: the last one cannot start before 16/40 s.
    assert time.monotonic() - started >= 0.39
    assert len(srv.requests()) == 20


def test_client_rate_limit_makes_up_for_an_idle_moment_within_its_burst() -> None:
    """A producer that pauses does not lose its request slots: after a pause the senders catch
    up by the burst (a tenth of a second's worth), then go on at the rate."""
    throttle = _Throttle(100.0, threading.Event())
    time.sleep(0.2)  # nobody sending: the bucket fills to the burst, not beyond
    started = time.monotonic()
    for _ in range(10):
        assert throttle.acquire() == (False, False)
    assert time.monotonic() - started < 0.05  # the 10 of the burst at once
    for _ in range(10):
        throttle.acquire()
    assert time.monotonic() - started >= 0.09  # then 100/s


class CountingTransport(httpx.BaseTransport):
    """The real HTTP transport, instrumented: requests in flight (peak) and completed."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0
        self.completed = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            response = self.inner.handle_request(request)
            response.read()
            return response
        finally:
            with self.lock:
                self.in_flight -= 1
                self.completed += 1

    def close(self) -> None:
        self.inner.close()


def test_submit_blocks_while_concurrency_batches_are_in_flight(srv: FakeCustomerIO) -> None:
    latency = 0.2
    srv.configure(latency=latency)
    transport = CountingTransport()
    batches, _ = event_batches(9, 2)
    returned: list[float] = []
    completed: list[int] = []
    started = time.monotonic()
    with TrackClient(settings_for(srv.url, concurrency=3), transport=transport) as client:
        outcomes: list[BatchOutcome] = []
        for batch in batches:
            client.submit(batch)
            returned.append(time.monotonic() - started)
            completed.append(transport.completed)
            outcomes += client.poll()
        outcomes += client.drain()
    assert_all_accepted(outcomes)
    assert transport.peak == 3
    # When submit returned for batch i, at most 3 of the i + 1 submitted were unfinished.
    assert all(done >= i + 1 - 3 for i, done in enumerate(completed)), completed
    # So the fourth submit waited for the first answer (which took at least the latency).
    assert returned[3] >= latency * 0.9
    assert time.monotonic() - started >= 3 * latency * 0.9


# ------------------------------------------------------------------------------ TLS


def test_tls_with_an_extra_ca_bundle() -> None:
    with FakeCustomerIO(site_id=SITE, api_key=KEY, tls=True) as srv:
        assert srv.url.startswith("https://") and srv.ca_bundle
        with TrackClient(settings_for(srv.url, ca_bundle=srv.ca_bundle)) as client:
            assert client.preflight()["region"] == "us"
            client.submit(batch_of([event("t1")]))
            assert_all_accepted(client.drain())
        assert len(srv.events()) == 1

        # Without the CA the certificate cannot be verified; this is not retried.
        with TrackClient(settings_for(srv.url)) as client, pytest.raises(ConfigError) as caught:
            client.preflight()
        assert "certificate verification failed" in str(caught.value)
        assert "CUSTOMERIO_CA_BUNDLE" in str(caught.value)
        assert client.stats["requests"] == 1

        # The same failure in a run stops it.
        with TrackClient(settings_for(srv.url)) as client:
            client.submit(batch_of([event("t2")]))
            with pytest.raises(ConfigError, match="certificate"):
                client.drain()


def test_missing_ca_bundle_file_is_a_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="CUSTOMERIO_CA_BUNDLE"):
        settings_for("https://127.0.0.1:9", ca_bundle=str(tmp_path / "nope.pem"))


# --------------------------------------------------------------------- splitting


def test_request_too_large_is_split_and_merged_back(srv: FakeCustomerIO) -> None:
    srv.configure(max_request_bytes=1500)
    items = [event(f"person-{i:03d}", note="x" * 40) for i in range(16)]
    big = event("big", note="y" * 2000)
    batch = batch_of(items)
    with TrackClient(settings_for(srv.url)) as client:
        client.submit(batch)
        client.submit(batch_of([big]))
        outcomes = client.drain()
        stats = client.stats
    split, single = sorted(outcomes, key=lambda o: -len(o.batch.items))
    assert split.batch is batch
    assert split.accepted == list(range(16)) and split.rejected == [] and split.undelivered == []
    assert split.attempts >= 3 and stats["splits"] >= 1
    # A single item too large for a request cannot be split: it is rejected.
    assert single.accepted == [] and single.rejected[0][:2] == (0, "request_too_large")
    assert sorted(e["id"] for e in srv.events()) == sorted(item["id"] for item in items)
    statuses = [r["status"] for r in srv.requests()]
    assert statuses.count(400) >= 2 and statuses.count(200) >= 2
    assert all(r["bytes"] < 1500 for r in srv.requests() if r["status"] == 200)


def test_batches_over_max_request_bytes_are_split_before_sending(srv: FakeCustomerIO) -> None:
    items = [event(f"person-{i:03d}") for i in range(12)]
    with TrackClient(settings_for(srv.url, max_request_bytes=1000)) as client:
        client.submit(batch_of(items))
        (outcome,) = client.drain()
    assert outcome.accepted == list(range(12))
    requests = srv.requests()
    assert len(requests) > 1 and all(r["status"] == 200 and r["bytes"] < 1000 for r in requests)


# ------------------------------------------------- response shapes the server never sends


def mock_client(handler: Callable[[httpx.Request], httpx.Response], **overrides: Any) -> TrackClient:
    return TrackClient(settings_for("https://track.invalid", **overrides), transport=httpx.MockTransport(handler))


def test_413_plain_text_is_split() -> None:
    # The fake server answers oversized bodies with 400 JSON; a 413 (as a proxy or load
    # balancer in front of Customer.io might send) has to come from a mock.
    seen: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        items = orjson.loads(request.content)["batch"]
        seen.append(len(items))
        if len(items) > 2:
            return httpx.Response(413, text="Request Entity Too Large")
        return httpx.Response(200, json={})

    with mock_client(handler) as client:
        client.submit(batch_of([event(str(i)) for i in range(8)]))
        (outcome,) = client.drain()
    assert outcome.accepted == list(range(8))
    assert seen == [8, 4, 2, 2, 4, 2, 2]


@pytest.mark.parametrize(
    ("status", "body", "reason", "text"),
    [
        (400, {"meta": {"error": "invalid batch payload"}}, "http_400", "invalid batch payload"),
        (400, {"meta": {"errors": ["bad thing", "worse thing"]}}, "http_400", "bad thing; worse thing"),
        (400, b"plain text complaint", "http_400", "plain text complaint"),
        (400, {"errors": [{"reason": "invalid_json", "message": "nope"}]}, "invalid_json", "nope"),
        (404, {"meta": {"error": "not found"}}, "http_404", "HTTP 404: not found"),
    ],
)
def test_whole_request_rejections_in_every_body_shape(status: int, body: Any, reason: str, text: str) -> None:
    # Customer.io documents these older 400 shapes; the fake server uses them on v1 only.
    def handler(request: httpx.Request) -> httpx.Response:
        if isinstance(body, bytes):
            return httpx.Response(status, content=body, headers={"Content-Type": "text/plain"})
        return httpx.Response(status, json=body)

    with mock_client(handler) as client:
        client.submit(batch_of([event("a"), event("b")]))
        (outcome,) = client.drain()
    assert outcome.accepted == [] and outcome.undelivered == []
    assert [(i, r) for i, r, _ in outcome.rejected] == [(0, reason), (1, reason)]
    assert all(text in message for _, _, message in outcome.rejected)
    assert outcome.status == status and outcome.attempts == 1


def test_forbidden_is_a_credentials_error_and_headers_are_sent() -> None:
    # The fake server answers bad credentials with 401 only; 403 needs a mock.
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(403, json={"meta": {"error": "Forbidden"}})

    with mock_client(handler) as client:
        client.submit(batch_of([event("a")]))
        with pytest.raises(CredentialsError) as caught:
            client.drain()
    assert "403" in str(caught.value)
    assert_no_secret(str(caught.value))
    (request,) = requests
    assert request.headers["User-Agent"] == f"cio-sync/{__version__}"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(f"{SITE}:{KEY}".encode()).decode()
    assert request.url.path == "/api/v2/batch"


def test_retry_after_as_http_date_is_honoured() -> None:
    # The fake server sends Retry-After in seconds; an HTTP date needs a mock.
    calls: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(time.monotonic())
        if len(calls) == 1:
            when = datetime.now(timezone.utc) + timedelta(seconds=2)
            return httpx.Response(503, headers={"Retry-After": format_datetime(when, usegmt=True)})
        return httpx.Response(200, json={})

    with mock_client(handler, backoff_max=0.01) as client:
        client.submit(batch_of([event("a")]))
        assert_all_accepted(client.drain())
        assert client.stats["retry_after_waits"] == 1
    # HTTP dates have whole-second precision, so the wait is between 1 and 2 seconds.
    assert calls[1] - calls[0] >= 0.9
    assert _retry_after("3") == 3.0 and _retry_after("garbage") is None and _retry_after(None) is None


def test_logs_and_errors_never_show_the_key(srv: FakeCustomerIO, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    srv.configure(error_rate=0.5, drop_rate=0.2, seed=3)
    batches, _ = event_batches(5, 2)
    with TrackClient(settings_for(srv.url, max_retries=1)) as client:
        outcomes = send_all(client, batches)
        stats = client.stats
    assert_no_secret(caplog.text)
    assert_no_secret(repr(outcomes))
    assert_no_secret(repr(stats))


def test_answers_that_echo_the_credentials_never_leak_them(srv: FakeCustomerIO, caplog) -> None:
    """A server that quotes the Authorization header (and the key decoded from it) in every
    answer's texts: 207 reasons and messages, 400s, 429s and 5xx bodies. None of it reaches an
    outcome, an error or the log with the key in it; a reason stays within the state's 64
    characters."""
    caplog.set_level(logging.DEBUG)
    srv.configure(echo_credentials=True)
    invalid = event("b", event_id="not-a-ulid")
    with TrackClient(settings_for(srv.url, max_retries=0)) as client:
        [answered] = send_all(client, [batch_of([event("a"), invalid])])
        assert answered.status == 207 and answered.accepted == [0]
        [(index, reason, message)] = answered.rejected
        assert index == 1 and "you sent Authorization: Basic ***" in message and len(reason) <= 64
        assert reason.startswith("invalid_event_id")

        srv.configure(max_request_bytes=100)  # a whole request refused: a 400
        [too_large] = send_all(client, [batch_of([event("c")])])
        assert too_large.status == 400 and too_large.rejected and "you sent" in too_large.rejected[0][2]

        srv.configure(max_request_bytes=500_000, error_rate=1.0)  # 5xx, retries exhausted
        [failed] = send_all(client, [batch_of([event("d")])])
        assert failed.undelivered == [0] and "you sent" in (failed.error or "")

        srv.configure(error_rate=0.0, rate_limit=1.0, rate_limit_burst=1.0)  # a 429
        limited = send_all(client, [batch_of([event("e")]), batch_of([event("f")])])
        assert any(o.status == 429 and "you sent" in (o.error or "") for o in limited), limited
        stats = client.stats
    outcomes = [answered, too_large, failed, *limited]
    assert_no_secret(repr(outcomes))
    assert_no_secret(repr(stats))
    assert_no_secret(caplog.text)


def test_a_401_that_echoes_the_credentials_never_leaks_them(srv: FakeCustomerIO, caplog) -> None:
    """A server that quotes the Authorization header in its 401: the credentials error is built
    from the settings alone, so neither the key nor the Basic credentials reach it or the log."""
    caplog.set_level(logging.DEBUG)
    srv.configure(echo_credentials=True)
    settings = settings_for(srv.url, api_key=WRONG_KEY)
    with TrackClient(settings) as client, pytest.raises(CredentialsError) as caught:
        client.preflight()
    basic = base64.b64encode(f"{SITE}:{WRONG_KEY}".encode()).decode()
    for text in (str(caught.value), repr(caught.value), caplog.text, str(client.stats)):
        assert WRONG_KEY not in text and basic not in text
    assert [r["status"] for r in srv.requests()] == [401]


@pytest.mark.parametrize("status", [200, 207, 400, 500])
def test_a_garbage_answer_that_quotes_the_credentials_never_leaks_them(status: int, caplog) -> None:
    """A server (a proxy, a broken gateway) answering the batch with a body that is not JSON and
    quotes the Authorization header and the key decoded from it: whatever the status, nothing
    that leaves the client (outcome, error, log, stats) holds either."""
    import http.server
    import threading

    class Garbage(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            auth = self.headers.get("Authorization", "")
            decoded = base64.b64decode(auth.split()[-1]).decode() if auth else ""
            body = f"<html>oops {auth} / {decoded} \x00\xff not json".encode("latin-1")
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    caplog.set_level(logging.DEBUG)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Garbage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with TrackClient(settings_for(f"http://127.0.0.1:{server.server_address[1]}", max_retries=0)) as client:
            outcomes = send_all(client, [batch_of([event("a")])])
            stats = client.stats
    finally:
        server.shutdown()
    assert_no_secret(repr(outcomes))
    assert_no_secret(repr(stats))
    assert_no_secret(caplog.text)
    [outcome] = outcomes
    if status in (400, 500):  # the body's text is kept (clipped), its secrets replaced
        assert "oops" in repr(outcome) and "***" in repr(outcome), outcome


def test_after_a_429_cooldown_the_workers_come_back_one_after_another() -> None:
    """Every worker, the one that got the 429 included, waits out its cooldown in the throttle,
    then a random part of it more (at most 1 s): coming back all at once, they met the server's
    rate limit together again, and a batch could spend all its retries on 429s. (Lower bounds
    only: a wait never ends early.)"""
    import random
    import threading

    class Whole(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return b

    throttle = _Throttle(None, threading.Event())
    throttle.rng = Whole()
    throttle.cool_down(0.2)
    started = time.monotonic()
    assert throttle.acquire() == (True, False)
    assert time.monotonic() - started >= 0.4  # the cooldown, then the spread: 0.2 s more
