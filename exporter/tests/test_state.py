"""Incremental sync with exactly-once effect, on PostgreSQL against the Customer.io-compatible
server: reruns, crashes (SIGKILL), faults, gates and guards. Assertions are on what the server
accepted and on what the state tables hold."""

from __future__ import annotations

import calendar
import hashlib
import json
import os
import signal
import subprocess
import time
import uuid

import pytest
from conftest import SEND_HISTORY, PgSchema, PostgresBuild
from ulid import ULID

from cio_sync._state import lease_lock_key
from cio_sync.fake_server import FakeCustomerIO
from cio_sync.fake_server._validation import MAX_ITEM_BYTES

SITE, KEY = "site-state", "key-state-0123456789"
ROWS = 3000


def credentials(srv) -> dict[str, str]:
    return {"CUSTOMERIO_SITE_ID": SITE, "CUSTOMERIO_API_KEY": KEY, "CUSTOMERIO_TRACK_URL": srv.url}


BUILD_SELECTION = ("--select", "tag:cio_big", "tag:cio_identity", "+tag:cio", "--exclude", "tag:cio_bad_meta")


@pytest.fixture(scope="module")
def build(tmp_path_factory, pg_schema_factory):
    """integration_tests with the exporter fixtures (big_people, big_events: ROWS each) on PostgreSQL."""
    schema = pg_schema_factory("cio_state_it")
    project = PostgresBuild(
        target="postgres",
        workdir=tmp_path_factory.mktemp("state"),
        env={"CIO_TEST_SCHEMA": schema.name},
        vars={
            **SEND_HISTORY,
            "cio_exporter_fixtures": True,
            "cio_big_rows": ROWS,
            "cio_state_schema": f"{schema.name}_builds",
        },
    )
    project.schema = schema
    project.state_schemas.append(f"{schema.name}_builds")
    project.run("build", *BUILD_SELECTION)
    yield project
    for name in project.state_schemas:
        PgSchema(name).drop()


@pytest.fixture()
def server():
    with FakeCustomerIO(site_id=SITE, api_key=KEY) as srv:
        yield srv


def state_name() -> str:
    return f"cio_state_{uuid.uuid4().hex[:10]}"


def state_with_people(build) -> str:
    """A new state schema in which big_people has been synced (to a server of its own), so
    that big_events' events do not wait for their people's first identify."""
    state = state_name()
    with FakeCustomerIO(site_id=SITE, api_key=KEY) as srv:
        proc, _ = export(build, srv, "--select", "big_people", state=state)
    assert proc.returncode == 0, proc.stderr
    return state


def export(build, server, *args, state: str, env=None):
    proc = build.cio_export(
        *args, "--json", "--no-progress", env={**credentials(server), **(env or {})}, state_schema=state
    )
    summary = json.loads(proc.stdout) if proc.stdout.strip() else None
    return proc, summary


def batch_items(server) -> int:
    return sum(r.get("items", 0) for r in server.requests() if r.get("path") == "/api/v2/batch")


def answered_batches(server) -> int:
    """Batches the server has answered (with HELD settings, the batch endpoint is the only
    path counted)."""
    return server.stats()["requests"]


def wait_for(condition, process, what: str, limit: float = 300.0) -> None:
    """Poll `condition` until it holds; fail if `process` ended first (or after `limit` seconds,
    a bound on a hang, never a timing assumption)."""
    deadline = time.monotonic() + limit
    while not condition():
        assert process.poll() is None, f"the run ended before {what}"
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.02)


def hold_run_when(server, process, reached, step: int = 4) -> None:
    """With a server started with answers_allowed=0 on /api/v2/: let it answer `step` batches at
    a time until `reached(stats)` holds, then leave the run waiting on a held answer. The run is
    stopped mid-send at that point on any machine, however fast or busy."""
    while True:
        wait_for(lambda: server.stats()["held"] >= 1, process, "an answer held")
        if reached(server.stats()):
            return
        answered = answered_batches(server)
        server.configure(answers_allowed=step)
        wait_for(lambda n=answered + step: answered_batches(server) >= n, process, f"{step} more answers")


def lease_held(build, state: str, model: str, shard: str = "all") -> bool:
    """Whether a session holds the (model, shard) lease of `state`: its advisory lock."""
    key = lease_lock_key(state, model, shard) & 0xFFFFFFFFFFFFFFFF
    return build.schema.query(
        "select count(*) from pg_locks where locktype = 'advisory' and granted and objsubid = 1 "
        f"and classid::bigint = {key >> 32} and objid::bigint = {key & 0xFFFFFFFF}")[0][0] > 0


def wait_until_released(build, state: str, *leases: tuple[str, str]) -> None:
    """Until PostgreSQL has ended a killed run's session, which frees its leases."""
    deadline = time.monotonic() + 120
    while any(lease_held(build, state, *lease) for lease in leases):
        assert time.monotonic() < deadline, f"a killed run's leases {leases} were never freed"
        time.sleep(0.05)


HELD = {"fault_paths": ("/api/v2/",), "answers_allowed": 0}
"""Server settings that hold every batch's answer until the test lets it go (see hold_run_when)."""


def expected_ulid(name: str, key: str, event_at_ms: int) -> str:
    digest = hashlib.md5(f"{len(name)}:{name}|{key}".encode()).digest()[:10]
    return str(ULID.from_bytes(event_at_ms.to_bytes(6, "big") + digest))


def test_rerun_sends_nothing_and_changes_send_exactly_the_changed_rows(build, server):
    state = state_name()
    proc, summary = export(build, server, "--select", "tag:cio_big", state=state)
    assert proc.returncode == 0, proc.stderr
    assert len(server.people()) == ROWS and len(server.events()) == ROWS

    server.reset()
    proc, summary = export(build, server, "--select", "tag:cio_big", state=state)
    assert proc.returncode == 0, proc.stderr
    assert [r["path"] for r in server.requests()] == ["/api/v1/accounts/region"]  # zero batch requests
    assert {r["model"]: r["changed"] for r in summary["results"]} == {"big_people": 0, "big_events": 0}

    server.reset()
    try:
        _changes_send_exactly_those(build, server, state)
    finally:
        build.schema.execute("update big_people set score = n * 1.5 where n <= 10")
        build.schema.execute("delete from big_events where event_id like 'ev-new-%'")


def _changes_send_exactly_those(build, server, state):
    build.schema.execute("update big_people set score = score + 1 where n <= 10")
    build.schema.execute(
        "insert into big_events select 'ev-new-' || n, 'person-' || n, "
        "timestamp '2026-05-02 00:00:00', n, 'new' from generate_series(1, 5) n"
    )
    proc, summary = export(build, server, "--select", "tag:cio_big", state=state)
    assert proc.returncode == 0, proc.stderr
    people = server.people()
    assert sorted(people) == sorted(f"id:person-{n}" for n in range(1, 11))
    assert all(
        p["attributes"]["score"] == n * 1.5 + 1 for n, p in ((int(k.split("-")[1]), v) for k, v in people.items())
    )
    assert sorted(e["attributes"]["n"] for e in server.events()) == [1, 2, 3, 4, 5]
    assert batch_items(server) == 15


def test_a_value_that_becomes_null_is_removed_but_first_identifies_leave_nulls_out(build, server):
    state = state_name()
    build.schema.execute("create table if not exists big_people_backup as select * from big_people")
    try:
        proc, _ = export(build, server, "--select", "big_people", state=state)
        assert proc.returncode == 0, proc.stderr
        assert "email" in server.people()["id:person-7"]["attributes"]
        build.schema.execute("update big_people set email = null where n = 7")
        server.reset()
        proc, _ = export(build, server, "--select", "big_people", state=state)
        assert proc.returncode == 0, proc.stderr
        [request] = [r for r in server.requests() if r.get("path") == "/api/v2/batch"]
        assert request["items"] == 1
        assert "email" not in server.people()["id:person-7"]["attributes"]
    finally:
        build.schema.execute("update big_people set email = 'p7@example.org' where n = 7")


@pytest.mark.parametrize("kill_at", [0.1, 0.5, 0.9])
def test_sigkill_then_rerun_loses_nothing_and_never_doubles(build, kill_at, tmp_path):
    """Kill the exporter at several points of a large run (slow server), rerun: every person and
    event arrives, each event exactly once under its one deterministic id, state consistent."""
    state = state_name()
    build.state_schemas.append(state)
    with FakeCustomerIO(site_id=SITE, api_key=KEY, **HELD) as srv:
        env = credentials(srv)
        proc = build.cio_export_process(
            "--select", "tag:cio_big", "--no-progress", "--batch-bytes", "6000", "--concurrency", "2",
            "--lease-ttl", "3600", env=env, state_schema=state, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        target = int(2 * ROWS * kill_at)
        try:
            hold_run_when(srv, proc, lambda stats: sum(stats["items_accepted"].values()) >= target)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        in_flight = build.schema.query(f"select count(*) from {state}.cio_inflight")[0][0]
        if kill_at == 0.9:  # killed while sending events: the batches in flight were recorded first
            assert in_flight > 0
        # Its session ends with it, and so do its leases (no waiting for --lease-ttl, an hour)
        wait_until_released(build, state, ("big_people", "all"), ("big_events", "all"))
        if kill_at == 0.9:  # status shows what the killed run left in flight, for the next run to recover
            keys = {key for (text,) in build.schema.query(f"select event_keys from {state}.cio_inflight")
                    for key in json.loads(text)}
            status = build.cio_export("status", "--select", "tag:cio_big", "--json", "--state-schema", state, env=env)
            assert status.returncode == 0, status.stderr
            events_status = {m["model"]: m for m in json.loads(status.stdout)["models"]}["big_events"]
            assert events_status["in_flight"] == events_status["in_flight_stopped"] == len(keys) > 0
            text = build.cio_export("status", "--select", "big_events", "--state-schema", state, env=env)
            assert f"{len(keys)} events in flight since" in text.stdout + text.stderr
        srv.configure(answers_allowed=None)
        rerun = build.cio_export("--select", "tag:cio_big", "--no-progress", env=env, state_schema=state)
        assert rerun.returncode == 0, rerun.stderr
        if kill_at == 0.9:
            status = build.cio_export("status", "--select", "big_events", "--json", "--state-schema", state, env=env)
            assert json.loads(status.stdout)["models"][0]["in_flight"] == 0
        events = srv.events()
        assert len(server_people := srv.people()) == ROWS
        assert server_people["id:person-42"]["attributes"]["score"] == 63.0
    assert len(events) == ROWS
    by_key = {}
    for event in events:
        by_key.setdefault(event["attributes"]["n"], set()).add(event["id"])
    assert len(by_key) == ROWS and all(len(ids) == 1 for ids in by_key.values())
    ms = calendar.timegm((2026, 5, 1, 0, 0, 0)) * 1000
    assert by_key[17] == {expected_ulid("big_thing", "ev-17", ms)}
    ledger = dict(build.schema.query(f"select status, count(*) from {state}.cio_event_ledger group by status"))
    assert ledger == {"sent": ROWS}
    assert build.schema.query(f"select count(*) from {state}.cio_people_state") == [(ROWS,)]
    assert build.schema.query(f"select count(*) from {state}.cio_leases") == [(0,)]
    assert build.schema.query(f"select count(*) from {state}.cio_inflight") == [(0,)]


def test_sigkill_in_the_middle_of_removals_then_rerun_removes_each_once_and_keeps_the_rest(build, tmp_path):
    """Relationships (fixture big_relationships, ROWS pairs): half leave the model; the run that
    removes them is killed mid-way; the rerun removes the rest. Every pair that left is removed,
    every other kept, the state holds exactly the pairs left, and only the batches in flight at
    the kill are sent again (a removal is idempotent). Built with a target path of its own, so
    the module's build stays the last one the other tests see."""
    state = state_name()
    build.state_schemas.append(state)
    target = tmp_path / "target"
    build.run("build", "--select", "big_relationships", target_path=target)
    with FakeCustomerIO(site_id=SITE, api_key=KEY, **HELD) as srv:
        env = credentials(srv)
        srv.configure(answers_allowed=None)
        first = build.cio_export("--select", "big_relationships", "--no-progress", env=env, state_schema=state,
                                 target_path=target)
        assert first.returncode == 0, first.stderr
        assert len(srv.relationships()) == ROWS
        build.run("build", "--select", "big_relationships", vars={"cio_big_removals_half": True}, target_path=target)
        srv.configure(answers_allowed=0)
        proc = build.cio_export_process(
            "--select", "big_relationships", "--no-progress", "--batch-bytes", "6000", "--concurrency", "2",
            "--lease-ttl", "3600", env=env, state_schema=state, target_path=target, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        try:
            hold_run_when(srv, proc, lambda stats: stats["items_accepted"].get("delete_relationships", 0) >= ROWS // 4)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        wait_until_released(build, state, ("big_relationships", "all"))
        left = len(srv.relationships())
        assert ROWS // 2 < left < ROWS  # killed in the middle of the removals
        srv.configure(answers_allowed=None)
        rerun = build.cio_export("--select", "big_relationships", "--no-progress", "--json", env=env,
                                 state_schema=state, target_path=target)
        assert rerun.returncode == 0, rerun.stderr
        [result] = json.loads(rerun.stdout)["results"]
        # What was left, and at most the batches in flight when it was killed (items of 100+ bytes).
        assert left - ROWS // 2 <= result["deleted"] <= left - ROWS // 2 + 4 * 6000 // 100
        pairs = {(r["person"]["id"], r["object"]["object_id"]) for r in srv.relationships()}
        assert pairs == {(f"person-{n}", f"sub-{n}") for n in range(2, ROWS + 1, 2)}
        assert build.schema.query(f"select count(*) from {state}.cio_people_state "
                                  "where model = 'big_relationships'") == [(ROWS // 2,)]
        again = build.cio_export("--select", "big_relationships", "--no-progress", "--json", env=env,
                                 state_schema=state, target_path=target)
        assert json.loads(again.stdout)["results"][0]["items_accepted"] == 0


def test_faults_lose_nothing_and_rejects_are_recorded_and_retried_as_specified(build):
    """429 storms with Retry-After, 20% 5xx, dropped connections, slow responses and 207
    partial rejections: every acceptable item arrives once; rejects are recorded with
    Customer.io's reason and retried only when asked (or when the row changes)."""
    state = state_name()
    build.state_schemas.append(state)
    # The server refuses (207) identifies one byte longer than person 999's: every person with a
    # four-digit number has a longer id, email and n, so exactly those are rejected.
    snapshot = int(time.time())
    item_999 = json.dumps(
        {
            "type": "person",
            "identifiers": {"id": "person-999"},
            "action": "identify",
            "timestamp": snapshot,
            "attributes": {
                "email": "p999@example.org",
                "n": 999,
                "score": 1498.5,
                "even": False,
                "created_at": 1767225600,
            },
        },
        separators=(",", ":"),
    )
    with FakeCustomerIO(
        site_id=SITE,
        api_key=KEY,
        rate_limit=20,
        rate_limit_burst=1,
        error_rate=0.2,
        drop_rate=0.1,
        slow_rate=0.05,
        slow_seconds=3,
        seed=7,
        max_item_bytes=len(item_999) + 1,
        fault_paths=["/api/v2/"],
    ) as srv:
        proc, summary = export(
            build,
            srv,
            "--select",
            "big_people",
            "--batch-bytes",
            "25000",
            "--timeout",
            "1",
            "--max-retries",
            "30",
            "--max-backoff",  # many retries in a row stay short: the test waits on answers, not on luck
            "2",
            "--rate-limit",
            "1000",
            state=state,
        )
        stats = srv.stats()
        assert proc.returncode == 1, proc.stderr
        results = summary["results"][0]
        rejected = results["rejected"]
        assert rejected == ROWS - 999 and results["undelivered"] == 0
        assert results["items_accepted"] == 999
        assert {r["reason"] for r in results["rejects"]} == {"item_too_large"}
        assert len(srv.people()) == results["items_accepted"]
        assert stats["rate_limited"] > 0 and stats["errors_injected"] > 0 and stats["dropped"] > 0
        assert summary["transport"]["retry_after_waits"] > 0
        rejects = build.schema.query(
            f"select count(*), min(reason) from {state}.cio_rejects where resolved_at is null and not transient"
        )
        assert rejects[0][0] == rejected
        # Unchanged rejected rows are not retried; --retry-rejects retries them (still too large).
        srv.configure(error_rate=0.0, drop_rate=0.0, slow_rate=0.0, rate_limit=None)
        srv.reset()
        proc, summary = export(build, srv, "--select", "big_people", state=state)
        assert summary["results"][0]["changed"] == 0
        proc, summary = export(build, srv, "--select", "big_people", "--retry-rejects", state=state)
        assert summary["results"][0]["changed"] == rejected and summary["results"][0]["rejected"] == rejected
        # Accepted once the limit allows them: marked resolved.
        srv.configure(max_item_bytes=32768)
        proc, summary = export(build, srv, "--select", "big_people", "--retry-rejects", state=state)
        assert proc.returncode == 0 and summary["results"][0]["items_accepted"] == rejected
    assert build.schema.query(f"select count(*) from {state}.cio_rejects where resolved_at is null") == [(0,)]


def test_an_overlapping_dbt_build_cannot_get_an_untested_relation_sent(build, server, tmp_path):
    """Artifacts of invocation A were checked; meanwhile invocation B rebuilt cio_people (its
    tests not run yet): cio_people is blocked, the rest goes on."""
    target_a = tmp_path / "target_a"
    target_a.mkdir()
    for name in ("manifest.json", "run_results.json"):
        (target_a / name).write_text((build.target_path / name).read_text())
    build.run("run", "--select", "cio_people", "--target-path", str(tmp_path / "target_b"))  # invocation B
    try:
        proc = build.cio_export(
            "--select",
            "cio_people",
            "cio_event_order_placed",
            "--json",
            "--no-progress",
            env=credentials(server),
            target_path=target_a,
        )
        summary = json.loads(proc.stdout)
        results = {r["model"]: r for r in summary["results"]}
        assert proc.returncode == 1
        assert results["cio_people"]["status"] == "blocked"
        assert "rebuilt by dbt invocation" in results["cio_people"]["message"]
        assert results["cio_event_order_placed"]["status"] == "success"
        assert not any(k.startswith("id:c0") for k in server.people())
    finally:  # back to one complete build for the other tests
        build.run("build", *BUILD_SELECTION)


def test_a_first_sync_never_records_history_from_a_relation_another_build_swapped_in(build, server, tmp_path):
    """The first sync of an event model records its old events as baseline (never sent). If a
    dbt invocation B rebuilt the relation after the checked invocation A, the baseline must not
    be taken from B's rows: nothing is recorded and the model is blocked. (The proof is checked
    before the baseline and again in the baseline's own statement, which closes the window
    between the two; this test shows the outcome, not the race.)"""
    target_a = tmp_path / "target_a"
    target_a.mkdir()
    for name in ("manifest.json", "run_results.json"):
        (target_a / name).write_text((build.target_path / name).read_text())
    build.run("run", "--select", "big_events", "--target-path", str(tmp_path / "target_b"))  # invocation B
    # B's relation holds an event older than initial_window (36500d here): baseline material.
    build.schema.execute("insert into big_events values ('ev-1900', 'person-1', timestamp '1900-05-01', 1, 'x')")
    state = state_name()
    try:
        proc = build.cio_export("--select", "big_events", "--json", "--no-progress", env=credentials(server),
                                target_path=target_a, state_schema=state)
        [result] = json.loads(proc.stdout)["results"]
        assert proc.returncode == 1 and result["status"] == "blocked", proc.stderr
        assert build.schema.query(f"select count(*) from {state}.cio_event_ledger") == [(0,)]
        assert server.events() == []
    finally:  # back to one complete build for the other tests
        build.run("build", *BUILD_SELECTION)


def test_mass_disappearance_over_max_deletes_deletes_nobody(build, server):
    state = state_name()
    proc, _ = export(build, server, "--select", "big_people", state=state)
    assert proc.returncode == 0, proc.stderr
    build.schema.execute("create table big_people_saved as select * from big_people")
    try:
        build.schema.execute(f"delete from big_people where n > {ROWS // 2}")  # half the people vanish
        proc, summary = export(build, server, "--select", "big_people", state=state)
        result = summary["results"][0]
        assert proc.returncode == 1 and result["status"] == "blocked"
        assert "over max_deletes (10%)" in result["message"]
        assert server.deletions() == []
        build.schema.execute("delete from big_people")
        build.schema.execute("insert into big_people select * from big_people_saved where n > 15")  # 0.5% leave
        proc, summary = export(build, server, "--select", "big_people", state=state)
        assert proc.returncode == 0, proc.stderr
        assert sorted(d["identifiers"]["id"] for d in server.deletions()) == sorted(f"person-{n}" for n in range(1, 16))
        assert summary["results"][0]["deleted"] == 15
    finally:
        build.schema.execute("delete from big_people")
        build.schema.execute("insert into big_people select * from big_people_saved")
        build.schema.execute("drop table big_people_saved")


def test_a_renamed_event_property_blocks_its_model_until_accepted(build, server):
    state = state_with_people(build)
    proc, _ = export(build, server, "--select", "big_events", state=state)
    assert proc.returncode == 0, proc.stderr
    build.schema.execute("alter table big_events rename column label to title")
    try:
        build.schema.execute("insert into big_events values ('ev-x', 'person-1', timestamp '2026-05-03', 1, 'x')")
        proc, summary = export(build, server, "--select", "big_events", state=state)
        result = summary["results"][0]
        assert proc.returncode == 1 and result["status"] == "blocked"
        assert "removed or renamed: label" in result["message"]
        proc, summary = export(build, server, "--select", "big_events", "--accept-schema-change", state=state)
        assert proc.returncode == 0 and summary["results"][0]["items_accepted"] == 1
    finally:
        build.schema.execute("delete from big_events where event_id = 'ev-x'")
        build.schema.execute("alter table big_events rename column title to label")


def test_an_event_key_longer_than_the_state_holds_is_rejected_and_reruns_go_on(build, server):
    """A 1,500-character event key: rejected with a reason and recorded, never sent (it could
    never be recorded as sent), and the next run neither crashes nor sends it."""
    state = state_name()
    proc, _ = export(build, server, "--select", "big_events", state=state)
    assert proc.returncode == 0, proc.stderr
    long_key = "ev-" + "k" * 1500
    build.schema.execute(f"insert into big_events values ('{long_key}', 'person-1', timestamp '2026-05-03', 1, 'x')")
    try:
        for _ in range(2):
            server.reset()
            proc, summary = export(build, server, "--select", "big_events", state=state)
            assert proc.returncode == 1 and summary is not None, proc.stderr
            [result] = summary["results"]
            assert [(r["reason"], r["column"]) for r in result["rejects"]] == [("key_too_long", "event_id")]
            assert server.events() == []
        [(row_key, reason)] = build.schema.query(
            f"select row_key, reason from {state}.cio_rejects where model = 'big_events'")
        assert reason == "key_too_long" and len(row_key) == 1024 and row_key.startswith(long_key[:900])
    finally:
        build.schema.execute(f"delete from big_events where event_id = '{long_key}'")


def test_values_no_double_or_time_can_hold_reject_their_row_not_the_model(build, server):
    """'-infinity', 'infinity' and a numeric beyond a double: each rejects its own row with a
    reason naming the column; the rest of the model is sent, and the next run does the same."""
    state = state_name()
    proc, _ = export(build, server, "--select", "big_people", "big_events", state=state)
    assert proc.returncode == 0, proc.stderr
    build.schema.execute("alter table big_people alter column score type numeric")
    build.schema.execute("update big_people set created_at = '-infinity' where n = 1")
    build.schema.execute("update big_people set score = 1e400 where n = 2")
    build.schema.execute("update big_people set score = 1e-330 where n = 5")
    build.schema.execute("update big_people set email = 'moved4@example.org' where n = 4")
    build.schema.execute("insert into big_events values ('ev-inf', 'person-3', timestamp 'infinity', 3, 'x'), "
                         "('ev-ok', 'person-3', timestamp '2026-05-03', 3, 'y')")
    try:
        server.reset()
        proc, summary = export(build, server, "--select", "big_people", "big_events", state=state)
        assert proc.returncode == 1 and summary is not None, proc.stderr
        results = {r["model"]: r for r in summary["results"]}
        rejects = {m: sorted((r["row_key"], r["column"], r["reason"]) for r in results[m]["rejects"])
                   for m in results}
        assert rejects == {
            "big_people": [("person-1", "created_at", "timestamp_out_of_range"),
                           ("person-2", "score", "not_a_number"), ("person-5", "score", "not_a_number")],
            "big_events": [("ev-inf", "event_at", "timestamp_out_of_range")],
        }
        # The rest of each model went out.
        assert server.people()["id:person-4"]["attributes"]["email"] == "moved4@example.org"
        assert [e["id"] for e in server.events()] == [expected_ulid("big_thing", "ev-ok", 1_777_766_400_000)]
        # The next run goes on: the rejected rows wait, recorded, for a change.
        proc, summary = export(build, server, "--select", "big_people", "big_events", state=state)
        assert proc.returncode == 0 and [r["changed"] for r in summary["results"]] == [0, 0], proc.stderr
        open_rejects = build.schema.query(f"select count(*) from {state}.cio_rejects where resolved_at is null")
        assert open_rejects == [(4,)]
    finally:
        build.schema.execute("delete from big_events where event_id in ('ev-inf', 'ev-ok')")
        build.schema.execute("update big_people set created_at = '2026-01-01', score = n * 1.5, "
                             "email = 'p' || n || '@example.org' where n in (1, 2, 4, 5)")
        build.schema.execute("alter table big_people alter column score type double precision")


def test_a_resent_event_keeps_the_id_it_first_went_out_with_when_its_time_changed(build):
    """Customer.io stored the events but the answers were lost (a slow server, the client timed
    out): they are pending. Then a source correction moves every event by an hour, which would
    give each a new id. The rerun resends them under the ids they went out with: Customer.io
    deduplicates every one, nothing arrives twice."""
    state = state_with_people(build)
    with FakeCustomerIO(site_id=SITE, api_key=KEY, slow_rate=1.0, slow_seconds=3, slow_accepts=True,
                        fault_paths=["/api/v2/"]) as srv:
        proc, summary = export(build, srv, "--select", "big_events", "--timeout", "1", "--max-retries", "0",
                               state=state)
        assert summary["results"][0]["undelivered"] == ROWS, proc.stderr
        srv.configure(slow_rate=0.0)
        stored = {e["id"] for e in srv.events()}
        assert len(stored) == ROWS  # Customer.io has them all; cio-export does not know it
        build.schema.execute("update big_events set event_at = event_at + interval '1 hour'")
        try:
            proc, summary = export(build, srv, "--select", "big_events", state=state)
            assert proc.returncode == 0 and summary["results"][0]["resent"] == ROWS, proc.stderr
            assert {e["id"] for e in srv.events()} == stored and srv.stats()["duplicates"] == ROWS
        finally:
            build.schema.execute("update big_events set event_at = event_at - interval '1 hour'")


def test_an_event_left_pending_by_an_older_version_is_resent_under_that_versions_id(build, server):
    """Before state version 4 an event recovered from a crash was recorded pending without its
    id, and ids were the md5 of `name|key`. Resent now, it keeps that id (Customer.io ignores it),
    while new events get the unambiguous hash."""
    state = state_with_people(build)
    proc, _ = export(build, server, "--select", "big_events", state=state)
    assert proc.returncode == 0, proc.stderr
    build.schema.execute(f"update {state}.cio_event_ledger set status = 'pending', event_id = null, "
                         "first_attempt_at = now() at time zone 'utc' where event_key = 'ev-7'")
    server.reset()
    proc, summary = export(build, server, "--select", "big_events", state=state)
    assert proc.returncode == 0 and summary["results"][0]["resent"] == 1, proc.stderr
    legacy = hashlib.md5(b"big_thing|ev-7").digest()[:10]
    at_ms = 1_777_593_600_000  # 2026-05-01
    assert [e["id"] for e in server.events()] == [str(ULID.from_bytes(at_ms.to_bytes(6, "big") + legacy))]
    assert expected_ulid("big_thing", "ev-7", at_ms) != server.events()[0]["id"]


def test_who_left_is_computed_from_the_checked_build_even_if_another_is_swapped_in(build):
    """A sync reads big_people (build A, checked) while a dbt build B that dropped 50 people
    waits to swap its relation in. B's swap cannot land before the sync has decided who left:
    the departures come from A's snapshot, nobody is deleted."""
    import threading

    import psycopg2
    from conftest import pg_settings

    state = state_name()
    name = build.schema.name
    with FakeCustomerIO(site_id=SITE, api_key=KEY) as srv:
        proc, _ = export(build, srv, "--select", "big_people", state=state)
        assert proc.returncode == 0, proc.stderr
        build.schema.execute("create table big_people_b as select * from big_people where n > 50")
        build.schema.execute("update big_people set score = score + 1")  # something to send
        srv.configure(**HELD)  # the sync cannot finish its read until the test lets its answers go
        sync = build.cio_export_process("--select", "big_people", "--batch-bytes", "20000", "--json",
                                        "--no-progress", env=credentials(srv), state_schema=state,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        swapped: dict = {}
        watcher = psycopg2.connect(**pg_settings())
        watcher.autocommit = True
        try:
            with watcher.cursor() as cursor:
                # Synchronise on the sync's read: another backend holds a lock on big_people.
                for _ in range(100_000):
                    cursor.execute("select count(*) from pg_locks l join pg_class c on c.oid = l.relation "
                                   "join pg_namespace n on n.oid = c.relnamespace where c.relname = 'big_people' "
                                   f"and n.nspname = '{name}' and l.pid <> pg_backend_pid()")
                    if cursor.fetchone()[0] or sync.poll() is not None:
                        break
            assert sync.poll() is None, "the sync ended before its read could be seen"

            def swap() -> None:  # what dbt does with a rebuilt table: rename it in
                with psycopg2.connect(**pg_settings()) as conn, conn.cursor() as cursor:
                    cursor.execute(f"alter table {name}.big_people rename to big_people_a")
                    cursor.execute(f"alter table {name}.big_people_b rename to big_people")
                swapped["done"] = True

            thread = threading.Thread(target=swap)
            thread.start()
            # (the swap now waits for the sync's lock, or has happened if the sync holds none:
            # either way the sync must not see it)
            srv.configure(answers_allowed=None)
            out, err = sync.communicate(timeout=600)
            thread.join()
            assert swapped == {"done": True}
            summary = json.loads(out)
            [result] = summary["results"]
            assert result["deleted"] == 0 and result["status"] == "success", err
            assert srv.deletions() == [] and len(srv.people()) == ROWS
        finally:
            watcher.close()
            build.schema.execute("drop table if exists big_people_b")
            if build.schema.query(f"select count(*) from pg_tables where schemaname = '{name}' "
                                  "and tablename = 'big_people_a'") == [(1,)]:
                build.schema.execute("drop table big_people")
                build.schema.execute("alter table big_people_a rename to big_people")
            build.schema.execute("update big_people set score = score - 1")


def test_two_rows_sharing_an_event_key_are_rejected_never_sent_twice(build, server):
    """big_events has no uniqueness test: two rows with one event key (and different times,
    hence different ids) are both rejected (duplicate_event_key, naming the key column), on
    this run and the next; the rest goes out."""
    state = state_with_people(build)
    proc, _ = export(build, server, "--select", "big_events", state=state)
    assert proc.returncode == 0, proc.stderr
    build.schema.execute("insert into big_events values ('ev-dup', 'person-1', timestamp '2026-05-03', 1, 'x'), "
                         "('ev-dup', 'person-1', timestamp '2026-05-04', 1, 'y'), "
                         "('ev-new', 'person-2', timestamp '2026-05-04', 2, 'z')")
    try:
        # Every run rejects both rows (a key rejected as shared is read again each run): neither
        # is ever sent.
        for expected in (2, 2):
            server.reset()
            proc, summary = export(build, server, "--select", "big_events", state=state)
            [result] = summary["results"]
            assert [(r["row_key"], r["column"], r["reason"]) for r in result["rejects"]] == \
                [("ev-dup", "event_id", "duplicate_event_key")] * expected, result
            assert [e for e in server.events() if e["attributes"].get("label") in ("x", "y")] == []
        assert build.schema.query(f"select status, reason from {state}.cio_event_ledger where event_key = 'ev-dup'") \
            == [("rejected", "duplicate_event_key")]
        assert build.schema.query(f"select status from {state}.cio_event_ledger where event_key = 'ev-new'") \
            == [("sent",)]
        # One of them removed (the ledger holds the hash of either): the one left goes out.
        build.schema.execute("delete from big_events where event_id = 'ev-dup' and label = 'x'")
        proc, summary = export(build, server, "--select", "big_events", state=state)
        assert proc.returncode == 0, proc.stderr
        assert [e["attributes"]["label"] for e in server.events() if e["attributes"].get("label") in ("x", "y")] \
            == ["y"]
    finally:
        build.schema.execute("delete from big_events where event_id in ('ev-dup', 'ev-new')")


def test_a_lost_warehouse_connection_ends_in_one_line_a_results_file_and_exit_3(build):
    """The connection reading the model is killed mid-sync: no traceback, exit 3 (run again),
    and a results file that says so, never the previous run's."""
    import psycopg2
    from conftest import pg_settings

    state = state_name()
    results_file = build.target_path / "cio_export_results.json"
    results_file.write_text('{"previous": "run"}')
    with FakeCustomerIO(site_id=SITE, api_key=KEY, **HELD) as srv:
        sync = build.cio_export_process("--select", "big_people", "--batch-bytes", "20000", "--no-progress",
                                        env=credentials(srv), state_schema=state,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        watcher = psycopg2.connect(**pg_settings())
        watcher.autocommit = True
        try:
            with watcher.cursor() as cursor:
                killed = 0
                for _ in range(100_000):  # until the sync's reader holds big_people, then kill it
                    cursor.execute("select pg_terminate_backend(l.pid) from pg_locks l join pg_class c "
                                   "on c.oid = l.relation join pg_namespace n on n.oid = c.relnamespace "
                                   f"where c.relname = 'big_people' and n.nspname = '{build.schema.name}' "
                                   "and l.pid <> pg_backend_pid()")
                    killed = len(cursor.fetchall())
                    if killed or sync.poll() is not None:
                        break
            srv.configure(answers_allowed=None)
            out, err = sync.communicate(timeout=600)
        finally:
            watcher.close()
    assert killed, "the sync ended before its read could be seen"
    assert sync.returncode == 3, err
    assert "Traceback" not in err and "the warehouse connection was lost: run again" in err
    written = json.loads(results_file.read_text())
    assert written["exit_code"] == 3 and "unexpected" in written["error"] and written["results"] == []


def test_sigterm_stops_a_run_in_order_and_the_next_run_completes_it(build):
    """SIGTERM (what schedulers send) while events are in flight: one line, exit 3, a results
    file saying so, the lease released at once (the next run need not wait for its expiry),
    and the next run delivers every event once."""
    state = state_with_people(build)
    with FakeCustomerIO(site_id=SITE, api_key=KEY, **HELD) as srv:
        sync = build.cio_export_process("--select", "big_events", "--batch-bytes", "20000", "--no-progress",
                                        "--lease-ttl", "3600", env=credentials(srv), state_schema=state,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # some answered, the next ones held: stopped while events are in flight
        hold_run_when(srv, sync, lambda stats: stats["requests"] >= 3, step=3)
        sync.send_signal(signal.SIGTERM)
        # Stopped, it retries nothing and starts no queued batch: once the answers on the wire
        # come, it ends (it never waits for all of them as a completed run does).
        srv.configure(answers_allowed=None)
        out, err = sync.communicate(timeout=600)
        assert sync.returncode == 3, err
        assert "Traceback" not in err and "stopped by a signal" in err
        written = json.loads((build.target_path / "cio_export_results.json").read_text())
        assert written["exit_code"] == 3 and written["results"] == []
        assert build.schema.query(f"select count(*) from {state}.cio_leases") == [(0,)]
        assert build.schema.query(f"select status from {state}.cio_runs where model = 'big_events'") == [("stopped",)]
        srv.configure(answers_allowed=None)
        proc, summary = export(build, srv, "--select", "big_events", state=state)
        assert proc.returncode == 0, proc.stderr
        assert len({e["id"] for e in srv.events()}) == ROWS


def test_a_live_lease_skips_the_model_and_a_dead_holders_is_taken_over_at_once(build, server):
    """On PostgreSQL a lease is an advisory lock of the holder's session: while another session
    holds it the model is skipped (`locked`); once that session ends, the lease row it left
    (valid for another hour) is taken over by the very next run."""
    import psycopg2
    from conftest import pg_settings

    state = state_name()
    proc, _ = export(build, server, "--select", "big_events", state=state)
    assert proc.returncode == 0
    holder = psycopg2.connect(**pg_settings())
    holder.autocommit = True
    try:
        with holder.cursor() as cursor:
            cursor.execute(f"select pg_advisory_lock({lease_lock_key(state, 'big_events', 'all')})")
        build.schema.execute(
            f"insert into {state}.cio_leases values ('big_events', 'all', 'other-run', now(), "
            "now() at time zone 'utc' + interval '1 hour')"
        )
        proc, summary = export(build, server, "--select", "big_events", state=state)
        assert proc.returncode == 1 and summary["results"][0]["status"] == "locked"
        assert "another cio-export run holds the lease on big_events" in proc.stdout + proc.stderr
    finally:
        holder.close()  # the holder's session ends (as when its process is killed)
    wait_until_released(build, state, ("big_events", "all"))
    proc, summary = export(build, server, "--select", "big_events", state=state)
    assert proc.returncode == 0 and summary["results"][0]["status"] == "success"
    assert build.schema.query(f"select count(*) from {state}.cio_leases") == [(0,)]


def test_reset_forgets_people_and_full_refresh_resends_them_but_never_events(build, server):
    state = state_name()
    export(build, server, "--select", "tag:cio_big", state=state)
    server.reset()
    proc, summary = export(build, server, "--select", "tag:cio_big", "--full-refresh", state=state)
    assert {r["model"]: r["items_accepted"] for r in summary["results"]} == {"big_people": ROWS, "big_events": 0}
    proc = build.cio_export("reset", "--select", "big_people", "--yes", state_schema=state)
    assert proc.returncode == 0, proc.stderr
    assert build.schema.query(f"select count(*) from {state}.cio_people_state") == [(0,)]


def in_flight(build, state: str) -> int:
    if build.schema.query(f"select to_regclass('{state}.cio_inflight')")[0][0] is None:
        return 0
    return build.schema.query(f"select count(*) from {state}.cio_inflight")[0][0]


def test_the_lease_is_kept_alive_while_the_sender_makes_the_run_wait(build):
    """Answers may take minutes (slow responses, retries): while every send slot is taken, and
    while the last answers are awaited, the run keeps its lease alive, so a second run started
    then is locked out, not let in to recover the first one's in-flight events as its own. The
    server holds each answer until the test lets it go: the first run waits exactly as long as
    the test needs, on any machine."""
    state = state_with_people(build)
    build.state_schemas.append(state)
    leases = f"{state}.cio_leases"
    with FakeCustomerIO(site_id=SITE, api_key=KEY, **HELD) as srv:
        # one slot and two batches: the second waits for the slot while the first's answer is
        # held, then its own answer is held
        first = build.cio_export_process(
            "--select", "big_events", "--no-progress", "--json", "--lease-ttl", "5", "--concurrency", "1",
            "--batch-bytes", "400000", "--timeout", "3600", env=credentials(srv), state_schema=state,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            for answered in (0, 1):
                wait_for(lambda n=answered: srv.stats()["held"] == 1 and answered_batches(srv) == n, first,
                         f"batch {answered + 1} held")
                # the lease as it stands, then past the moment it would have expired had it not been renewed
                expires_at = build.schema.query(f"select max(expires_at) from {leases}")[0][0]
                wait_for(lambda e=expires_at: build.schema.query(
                    f"select now() at time zone 'utc' > timestamp '{e}' + interval '1 second'")[0][0], first,
                    "the lease's first expiry passed")
                with FakeCustomerIO(site_id=SITE, api_key=KEY) as other:
                    second, summary = export(build, other, "--select", "big_events", "--lease-ttl", "5", state=state)
                    assert other.events() == []
                assert first.poll() is None
                assert second.returncode == 1 and summary["results"][0]["status"] == "locked", (answered, second.stderr)
                srv.configure(answers_allowed=1)  # this answer goes out; the next one is held
            srv.configure(answers_allowed=None)
            out, err = first.communicate(timeout=300)
        finally:
            first.kill()
        assert first.returncode == 0, err
        assert json.loads(out)["results"][0]["items_accepted"] == ROWS
        assert len(srv.events()) == ROWS and batch_items(srv) == ROWS
        assert sum(r.get("path") == "/api/v2/batch" for r in srv.requests()) == 2


def test_shards_never_overlap_cover_every_row_and_run_independently(build, server):
    """--shard K/N splits a model by a hash of the key computed in the warehouse. Events are
    split by their own key, so an event whose person another shard identifies later waits for
    its shard's next run (people before events): a second round of the shards sends those."""
    state = state_name()
    accepted = []
    for _ in range(2):
        for index in range(3):
            proc, summary = export(build, server, "--select", "tag:cio_big", "--shard", f"{index}/3", state=state)
            assert proc.returncode == 0, proc.stderr
            accepted.append({r["model"]: r["items_accepted"] for r in summary["results"]})
    first_round, second_round = accepted[:3], accepted[3:]
    assert sum(a["big_people"] for a in first_round) == ROWS and sum(a["big_people"] for a in second_round) == 0
    assert sum(a["big_events"] for a in accepted) == ROWS and sum(a["big_events"] for a in first_round) < ROWS
    assert all(a["big_people"] > ROWS / 6 for a in first_round)  # a real split
    assert len(server.people()) == ROWS and len(server.events()) == ROWS
    # One shard's live lease (a running process: a session holding its lock) does not stop another shard.
    import psycopg2
    from conftest import pg_settings

    holder = psycopg2.connect(**pg_settings())
    holder.autocommit = True
    with holder.cursor() as cursor:
        cursor.execute(f"select pg_advisory_lock({lease_lock_key(state, 'big_people', '0/3')})")
    build.schema.execute("update big_people set score = -1 where n <= 30")
    try:
        proc, summary = export(build, server, "--select", "big_people", "--shard", "0/3", state=state)
        assert summary["results"][0]["status"] == "locked"
        proc, summary = export(build, server, "--select", "big_people", "--shard", "1/3", state=state)
        assert summary["results"][0]["status"] == "success"
        changed_in_1 = summary["results"][0]["items_accepted"]
        proc, summary = export(build, server, "--select", "big_people", "--shard", "2/3", state=state)
        changed_in_2 = summary["results"][0]["items_accepted"]
        assert 0 < changed_in_1 + changed_in_2 < 30  # shard 0's share of the 30 waits for its lease
    finally:
        holder.close()
        build.schema.execute("update big_people set score = n * 1.5 where n <= 30")


def test_a_killed_shard_disturbs_no_other_and_its_own_rerun_completes_it(build):
    """One shard's process is held mid-send (events in flight) while the other shard runs: that
    one syncs its whole share and leaves the live shard's in-flight events alone. Then the held
    process is SIGKILLed: its lease is free at once, and its rerun resends what it left in flight
    under the same ids. In the end every person and event has arrived, each event under one id,
    nothing in flight."""
    state = state_name()
    build.state_schemas.append(state)
    inflight_sql = f"select shard, run_id, part, event_keys from {state}.cio_inflight order by 1, 2, 3"
    with FakeCustomerIO(site_id=SITE, api_key=KEY, **HELD) as srv:
        env = credentials(srv)
        shard_0 = ("--select", "tag:cio_big", "--no-progress", "--batch-bytes", "6000", "--concurrency", "2",
                   "--lease-ttl", "3600", "--shard", "0/2")
        killed = build.cio_export_process(*shard_0, env=env, state_schema=state, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL)
        try:
            hold_run_when(srv, killed, lambda stats: stats["items_accepted"].get("event", 0) >= 100)
            assert in_flight(build, state) > 0
            # (its last state write lands within moments of its answers being held: read until two reads agree)
            left, previous = build.schema.query(inflight_sql), None
            while left != previous:
                time.sleep(0.3)
                previous, left = left, build.schema.query(inflight_sql)
            assert left and {shard for shard, *_ in left} == {"0/2"}
            left_keys = {key for *_, keys in left for key in json.loads(keys)}

            # Shard 1 while shard 0 runs (its answers held): its whole share; shard 0's flight untouched.
            with FakeCustomerIO(site_id=SITE, api_key=KEY) as other_server:
                other, summary = export(build, other_server, "--select", "tag:cio_big", "--shard", "1/2", state=state)
                other_events, other_people = other_server.events(), len(other_server.people())
            assert other.returncode == 0, other.stderr
            assert {r["model"]: r["status"] for r in summary["results"]} == {"big_people": "success",
                                                                              "big_events": "success"}
            shard_1 = {r["model"]: r["items_accepted"] for r in summary["results"]}
            assert lease_held(build, state, "big_events", "0/2")  # (the premise: shard 0 still ran)
            assert build.schema.query(inflight_sql) == left
            keys_sql = ", ".join(f"'{key}'" for key in left_keys)
            assert build.schema.query(f"select count(*) from {state}.cio_event_ledger "
                                      f"where event_key in ({keys_sql})") == [(0,)]
        finally:
            killed.kill()
        killed.wait(timeout=10)

        # Its lease is free at once (no waiting for --lease-ttl, an hour): the rerun recovers its flight.
        wait_until_released(build, state, ("big_people", "0/2"), ("big_events", "0/2"))
        srv.configure(answers_allowed=None)
        rerun = build.cio_export(*shard_0, env=env, state_schema=state)
        assert rerun.returncode == 0, rerun.stderr
        assert "were in flight when an earlier run stopped" in rerun.stderr

        events = srv.events() + other_events
        assert len(srv.people()) + other_people == ROWS and len(events) == ROWS
    assert 0 < shard_1["big_people"] < ROWS and 0 < shard_1["big_events"] < ROWS
    by_key: dict[int, set[str]] = {}
    for event in events:
        by_key.setdefault(event["attributes"]["n"], set()).add(event["id"])
    assert len(by_key) == ROWS and all(len(ids) == 1 for ids in by_key.values())
    ms = calendar.timegm((2026, 5, 1, 0, 0, 0)) * 1000
    for key in left_keys:  # the events in flight at the kill: one id each, the deterministic one
        assert by_key[int(key.removeprefix("ev-"))] == {expected_ulid("big_thing", key, ms)}
    assert dict(build.schema.query(f"select status, count(*) from {state}.cio_event_ledger group by status")) == {
        "sent": ROWS}
    assert build.schema.query(f"select count(*) from {state}.cio_people_state") == [(ROWS,)]
    assert build.schema.query(f"select count(*) from {state}.cio_inflight") == [(0,)]
    assert build.schema.query(f"select count(*) from {state}.cio_leases") == [(0,)]


def test_status_reports_runs_rejects_lag_and_strict_fails_on_problems(build, server):
    state = state_name()
    server.configure(max_item_bytes=150)  # every identify of big_people is refused (207)
    proc, _ = export(build, server, "--select", "tag:cio_big", "cio_people", state=state)
    assert proc.returncode == 1
    status = build.cio_export("status", "--select", "tag:cio_big", "cio_people", "--json", "--state-schema", state)
    assert status.returncode == 0, status.stderr
    models = {m["model"]: m for m in json.loads(status.stdout)["models"]}
    people = models["big_people"]
    assert people["last_status"] == "rejected" and people["open_rejects"] == ROWS
    assert people["top_reasons"] == [{"reason": "item_too_large", "count": ROWS}]
    events = models["big_events"]
    assert events["last_status"] == "rejected"  # every event held: its person was refused
    assert models["cio_people"]["guardrails"][0]["ok"] is True
    strict = build.cio_export("status", "--select", "tag:cio_big", "cio_people", "--strict", "--state-schema", state)
    assert strict.returncode == 1 and f"big_people: {ROWS} open rejects" in strict.stderr
    # A drift guardrail that goes off, and a model that is late for its max_lag (1d).
    [(last_order_at,)] = build.schema.query("select last_order_at from cio_people where customer_id = 'c001'")
    build.schema.execute("update cio_people set last_order_at = null where customer_id = 'c001'")
    build.schema.execute(f"update {state}.cio_runs set finished_at = finished_at - interval '2 days'")
    try:
        strict = build.cio_export("status", "--select", "big_events", "cio_people", "--strict", "--state-schema", state)
        assert strict.returncode == 1
        assert "cio_people: guardrail orders_without_last_order_at: 1 of 8 rows" in strict.stderr
        assert "big_events: never synced successfully" in strict.stderr or "big_events: late" in strict.stderr
    finally:
        # cio_people is incremental: a build recomputes only people whose inputs changed.
        build.schema.execute(f"update cio_people set last_order_at = '{last_order_at}' where customer_id = 'c001'")
        build.run("build", *BUILD_SELECTION)


def test_history_lists_each_models_last_runs_newest_first_with_utc_times_and_durations(build, server):
    """`history` answers "what happened on the last runs?" from cio_runs: newest first, times in
    UTC with the zone written (JSON: ISO 8601 with its offset), durations for people; `status`
    writes its times the same way."""
    state = state_name()
    server.configure(max_item_bytes=150)  # the first run: every identify of big_people refused
    assert export(build, server, "--select", "big_people", state=state)[0].returncode == 1
    server.configure(max_item_bytes=MAX_ITEM_BYTES)
    assert export(build, server, "--select", "big_people", state=state)[0].returncode == 0
    proc = build.cio_export("history", "--select", "big_people", "--json", "--state-schema", state)
    assert proc.returncode == 0, proc.stderr
    runs = json.loads(proc.stdout)["runs"]
    assert [(r["model"], r["status"], r["rejected"]) for r in runs] == [
        ("big_people", "success", 0), ("big_people", "rejected", ROWS)]
    # a refused row is retried when it changes, not on every run: the second run sent nothing
    assert runs[0]["sent"] == 0 and runs[0]["started_at"] > runs[1]["started_at"]
    for run in runs:
        assert run["started_at"].endswith("+00:00") and run["finished_at"].endswith("+00:00")
        assert run["duration_seconds"] >= 0
    one = json.loads(build.cio_export("history", "--select", "big_people", "-n", "1", "--json",
                                      "--state-schema", state).stdout)["runs"]
    assert [r["status"] for r in one] == ["success"]
    text = build.cio_export("history", "--select", "big_people", "--state-schema", state).stderr
    assert "big_people" in text and "rejected" in text and " UTC" in text, text
    status = build.cio_export("status", "--select", "big_people", "--json", "--state-schema", state)
    assert json.loads(status.stdout)["models"][0]["last_run_at"].endswith("+00:00")
    text = build.cio_export("status", "--select", "big_people", "--state-schema", state).stderr
    assert " UTC" in text, text


def test_strict_status_lets_a_quiet_night_pass_and_flags_a_drop_and_a_stale_people_sync(build, server):
    """Event volume is judged only from volume_min_events (100) up: runs sending 0, 3, 0 events
    are a quiet night; 0 after ~500 a run is not. cio_people carries the package's default
    max_lag (var cio_max_lag_people, 26h): three days without a successful sync is late."""
    state = state_name()
    proc, _ = export(build, server, "--select", "big_events", "cio_people", state=state)
    assert proc.returncode == 0, proc.stderr
    runs = f"{state}.cio_runs"

    def history(*sent: int) -> None:
        build.schema.execute(f"delete from {runs} where model = 'big_events'")
        for i, n in enumerate(sent):  # oldest first, the last one an hour ago at the latest
            build.schema.execute(
                f"insert into {runs} (run_id, model, shard, started_at, finished_at, sent, status) values "
                f"('r{i}', 'big_events', 'all', now() at time zone 'utc' - interval '{len(sent) - i} hours', "
                f"now() at time zone 'utc' - interval '{len(sent) - i} hours', {n}, 'success')")

    def strict():
        proc = build.cio_export("status", "--select", "big_events", "cio_people", "--strict", "--state-schema", state)
        return proc.returncode, proc.stdout + proc.stderr

    history(0, 3, 0, 2, 0)
    code, output = strict()
    assert code == 0 and "event volume" not in output, output
    history(510, 480, 530, 0)
    code, output = strict()
    assert code == 1 and "big_events: event volume 0 far from the recent average 507" in output, output
    history(510, 480, 530, 505)
    build.schema.execute(f"update {runs} set finished_at = finished_at - interval '3 days' where model = 'cio_people'")
    code, output = strict()
    assert code == 1 and "cio_people: late: last success" in output and "max_lag is 26h" in output, output
    assert "event volume" not in output


@pytest.mark.parametrize("expression", ["n * interval '1 day'", "time '00:00' + n * interval '1 second'",
                                        "date '2020-01-01' + n"])
def test_an_identifier_column_of_another_type_than_text_or_integer_is_a_configuration_error(build, server,
                                                                                            expression):
    """big_people rebuilt by hand with person_id as an interval, a time or a date: validate and
    run both refuse it (exit 2) before anything is sent."""
    state = state_name()
    build.schema.execute("alter table big_people rename to big_people_kept")
    try:
        build.schema.execute(f"create table big_people as select {expression} as person_id, email, n, score, even, "
                             "created_at from big_people_kept")
        validate = build.cio_export("validate", "--select", "big_people", state_schema=state)
        run, _ = export(build, server, "--select", "big_people", state=state)
        for proc in (validate, run):
            output = proc.stdout + proc.stderr
            assert proc.returncode == 2, output
            assert "meta.cio.identifier.column: 'person_id' is" in output and "a new profile per customer" in output
        assert server.people() == {}
    finally:
        build.schema.execute("drop table if exists big_people")
        build.schema.execute("alter table big_people_kept rename to big_people")


def test_a_run_giving_many_known_people_a_new_identifier_is_blocked_until_accepted(build, server):
    """big_people rebuilt with another person_id for 20% of its people (a changed expression):
    over max_identifier_changes (5%), the model is blocked before anything is sent or deleted,
    with how many and examples; --accept-identifier-changes lets it through."""
    state = state_name()
    proc, _ = export(build, server, "--select", "big_people", state=state)
    assert proc.returncode == 0, proc.stderr
    server.reset()
    build.schema.execute("update big_people set person_id = 'p-' || cast(n as varchar) where n <= 600")
    try:
        proc, summary = export(build, server, "--select", "big_people", state=state)
        output = proc.stdout + proc.stderr
        assert proc.returncode == 1 and summary["results"][0]["status"] == "blocked", output
        message = summary["results"][0]["message"]
        assert message.startswith(f"600 of {ROWS} known people would get a new identifier"), message
        assert "left: 'person-1', 'person-10'," in message and "appeared: 'p-1', 'p-10'," in message
        assert "same key:" not in message and "--accept-identifier-changes" in message
        assert server.requests() == [] or all(r.get("path") != "/api/v2/batch" for r in server.requests())
        assert server.deletions() == []
        proc, summary = export(build, server, "--select", "big_people", "--accept-identifier-changes", state=state)
        assert summary["results"][0]["items_accepted"] == 600, proc.stderr
    finally:
        build.schema.execute("update big_people set person_id = 'person-' || cast(n as varchar) where n <= 600")
    # With a stable key_column the key pairs each old identifier with its new one.
    proc, _ = export(build, server, "--select", "email_people_report", state=state)
    assert proc.returncode == 0, proc.stderr
    build.schema.execute("update big_people set email = 'new' || email where n in (3, 4, 5)")
    try:
        proc, summary = export(build, server, "--select", "email_people_report", state=state)
        message = summary["results"][0]["message"]
        assert summary["results"][0]["status"] == "blocked" and message.startswith("3 of 20 known people"), message
        assert "same key: 'p3@example.org' -> 'newp3@example.org', 'p4@example.org' -> 'newp4@example.org'" in message
        assert "left:" not in message
    finally:
        build.schema.execute("update big_people set email = substr(email, 4) where n in (3, 4, 5)")


def test_events_of_people_never_identified_wait_and_go_out_after_their_people(build, server):
    """big_people is locked by another run (a session holding its lease) when big_events runs
    with it, as after a crash on a warehouse whose leases expire: no event goes out for a person
    Customer.io has never identified; they wait (counted, said) and the run after the people
    are synced sends every one of them. An event-only selection waits too in a state schema
    where the project's people models never synced, saying which models it waits for."""
    import psycopg2
    from conftest import pg_settings

    state = state_name()
    holder = psycopg2.connect(**pg_settings())
    holder.autocommit = True
    try:
        with holder.cursor() as cursor:
            cursor.execute(f"select pg_advisory_lock({lease_lock_key(state, 'big_people', 'all')})")
        proc, summary = export(build, server, "--select", "big_people", "big_events", state=state)
        results = {r["model"]: r for r in summary["results"]}
        assert proc.returncode == 1 and results["big_people"]["status"] == "locked"
        events = results["big_events"]
        assert events["status"] == "success" and events["items_accepted"] == 0 and events["waiting_for_person"] == ROWS
        assert f"{ROWS} waiting for their person's first identify" in proc.stderr
        assert server.events() == []
    finally:
        holder.close()
    wait_until_released(build, state, ("big_people", "all"))
    proc, summary = export(build, server, "--select", "big_people", "big_events", state=state)
    assert proc.returncode == 0, proc.stderr
    assert {r["model"]: (r["items_accepted"], r["waiting_for_person"]) for r in summary["results"]} == {
        "big_people": (ROWS, 0), "big_events": (ROWS, 0)}
    assert len(server.events()) == ROWS
    server.reset()
    fresh = state_name()
    proc, summary = export(build, server, "--select", "big_events", state=fresh)
    assert proc.returncode == 0 and summary["results"][0]["waiting_for_person"] == ROWS, proc.stderr
    assert f"big_events: {ROWS} events wait for their person's first identify by " in proc.stderr
    assert "big_people" in proc.stderr and "meta.cio.enabled: false" in proc.stderr
    assert server.events() == []
    proc, _ = export(build, server, "--select", "big_people", state=fresh)
    proc, summary = export(build, server, "--select", "big_events", state=fresh)
    assert summary["results"][0]["items_accepted"] == ROWS and len(server.events()) == ROWS, proc.stderr


def test_an_email_change_is_reported_or_merged_never_delete_and_create(build, server):
    state = state_name()
    proc, _ = export(build, server, "--select", "tag:cio_identity", state=state)
    assert proc.returncode == 0, proc.stderr
    assert "email:p3@example.org" in server.people()
    build.schema.execute("update big_people set email = 'new3@example.org' where n = 3")
    try:
        proc, summary = export(build, server, "--select", "tag:cio_identity", state=state)
        results = {r["model"]: r for r in summary["results"]}
        report = results["email_people_report"]
        assert report["status"] == "rejected"
        assert [(r["row_key"], r["reason"]) for r in report["rejects"]] == [("person-3", "identifier_changed")]
        merge = results["email_people_merge"]
        assert merge["status"] == "success" and merge["merged"] == 1
        assert server.merges() == [{"primary": {"email": "new3@example.org"},
                                    "secondary": {"email": "p3@example.org"}, "at": server.merges()[0]["at"]}]
        # The old profile was folded into the new one; nobody was deleted and re-created.
        assert "email:new3@example.org" in server.people() and "email:p3@example.org" not in server.people()
        assert server.deletions() == []
    finally:
        build.schema.execute("update big_people set email = 'p3@example.org' where n = 3")


def test_pending_events_are_resent_within_the_dedupe_window_and_reported_uncertain_beyond(build, server):
    state = state_with_people(build)
    proc, _ = export(build, server, "--select", "big_events", state=state)
    assert proc.returncode == 0
    ledger = f"{state}.cio_event_ledger"
    # As if a run had died after recording these as pending: 5 an hour ago, 5 ten days ago.
    build.schema.execute(f"update {ledger} set status = 'pending', sent_at = null, first_attempt_at = "
                         "now() at time zone 'utc' - interval '1 hour' where event_key in "
                         "('ev-1', 'ev-2', 'ev-3', 'ev-4', 'ev-5')")
    build.schema.execute(f"update {ledger} set status = 'pending', sent_at = null, first_attempt_at = "
                         "now() at time zone 'utc' - interval '10 days' where event_key in "
                         "('ev-6', 'ev-7', 'ev-8', 'ev-9', 'ev-10')")
    server.reset()
    proc, summary = export(build, server, "--select", "big_events", state=state)
    result = summary["results"][0]
    assert result["resent"] == 5 and result["uncertain"] == 5 and result["items_accepted"] == 5
    assert sorted(e["attributes"]["n"] for e in server.events()) == [1, 2, 3, 4, 5]
    statuses = dict(build.schema.query(f"select status, count(*) from {ledger} group by status"))
    assert statuses == {"sent": ROWS - 5, "uncertain": 5}
    assert proc.returncode == 1  # uncertain events are reported, not hidden


def test_a_changed_identifier_kind_refuses_to_run_until_reset(build, server):
    state = state_name()
    proc, _ = export(build, server, "--select", "big_people", state=state)
    assert proc.returncode == 0
    build.schema.execute(f"update {state}.cio_payload_schemas set identifier_kind = 'email'")
    proc, summary = export(build, server, "--select", "big_people", state=state)
    assert summary["results"][0]["status"] == "blocked"
    assert "identifier kind changed from email to id" in summary["results"][0]["message"]
    assert build.cio_export("reset", "--select", "big_people", "--yes", state_schema=state).returncode == 0
    server.reset()
    proc, summary = export(build, server, "--select", "big_people", state=state)
    assert proc.returncode == 0 and summary["results"][0]["items_accepted"] == ROWS


def test_reset_events_rebaselines_without_replaying(build, server):
    state = state_with_people(build)
    export(build, server, "--select", "big_events", state=state)
    proc = build.cio_export("reset", "--select", "big_events", "--events", "--yes", state_schema=state)
    assert proc.returncode == 0 and f"big_events: forgot {ROWS} ledger entries" in proc.stderr
    server.reset()
    # big_events' initial_window is wide in the fixture: its events are new again by that measure,
    # but each id is the same, so Customer.io would ignore them; the ledger is rebuilt.
    proc, summary = export(build, server, "--select", "big_events", state=state)
    assert proc.returncode == 0
    ids = {e["id"] for e in server.events()}
    assert len(ids) == ROWS


def test_shards_started_together_share_one_rate_budget_and_stay_under_it(build):
    """Two shards started at once, each given the workspace's whole --rate-limit, against a server
    that allows just that rate: they claim their requests from one budget in the state schema (one
    row for the workspace in cio_rate_budget), so the server never has to answer 429, and every
    person arrives."""
    rate = 20
    state = state_name()
    with FakeCustomerIO(site_id=SITE, api_key=KEY) as other:  # the state's tables made before the shards race
        _, first = export(build, other, "--select", "big_people", "--shard", "0/1000", state=state)
    synced_before = first["results"][0]["items_accepted"]
    with FakeCustomerIO(site_id=SITE, api_key=KEY, rate_limit=rate, rate_limit_burst=rate,
                        fault_paths=("/api/v2/",)) as srv:
        procs = [build.cio_export_process(
            "--select", "big_people", "--shard", f"{k}/2", "--rate-limit", str(rate), "--batch-bytes", "6000",
            "--json", "--no-progress", env=credentials(srv), state_schema=state, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True) for k in range(2)]
        outputs = [proc.communicate(timeout=600) for proc in procs]
        stats = srv.stats()
        people = len(srv.people())
    for proc, (_, stderr) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, stderr
    summaries = [json.loads(stdout) for stdout, _ in outputs]
    assert stats["rate_limited"] == 0
    accepted = [s["results"][0]["items_accepted"] for s in summaries]
    assert all(a > ROWS / 4 for a in accepted)
    assert sum(accepted) == people == ROWS - synced_before
    for summary in summaries:
        transport = summary["transport"]
        assert transport["rate_claims"] > 0
        assert transport["rate_permits"] >= transport["requests"] - 1  # every batch request (not the region check)
        assert "concurrency_peak" in transport and transport["latency_ms"] is not None
    assert build.schema.query(f"select site_id from {state}.cio_rate_budget") == [(SITE,)]
