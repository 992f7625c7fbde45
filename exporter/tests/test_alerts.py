"""Alerts end to end: integration_tests built on DuckDB (PostgreSQL where two processes race),
`cio-export` run as a user runs it against the fake Customer.io server, and a webhook receiver
on loopback in the test that keeps every body posted to it. A cio-export process answered by
the receiver has been recorded before it exits: the tests read what arrived once it has."""

from __future__ import annotations

import json
import re
import socketserver
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from conftest import PgSchema

from cio_sync._errors import ConfigError
from cio_sync._ops.alerts import alert_settings_from_env
from cio_sync.fake_server import FakeCustomerIO

SITE, KEY, APP_KEY = "site-alerts", "key-alerts-0123456789", "app-key-alerts-0123456789"
SECRET = "Zq7SecretWebhookToken42"  # the part of a Slack webhook URL that is its credential


class _Server(ThreadingHTTPServer):
    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)  # no reverse DNS lookup of 127.0.0.1
        self.server_name, self.server_port = self.server_address[:2]


class Receiver:
    """A webhook endpoint on loopback. Its port is bound from the start, so its URL is known
    while it is down (bound, not listening: a connection is refused) and stays the same once
    `up()` listens. Answers `answers` first (statuses), then 200; every request is kept before
    it is answered."""

    def __init__(self, answers: tuple[int, ...] = ()) -> None:
        self.requests: list[dict] = []
        self._answers = list(answers)
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with receiver._lock:
                    status = receiver._answers.pop(0) if receiver._answers else 200
                    receiver.requests.append({"path": self.path, "status": status, "body": body,
                                              "content_type": self.headers.get("Content-Type")})
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.server = _Server(("127.0.0.1", 0), Handler, bind_and_activate=False)
        self.server.server_bind()
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/T0/B0/{SECRET}"
        self._thread: threading.Thread | None = None

    def up(self) -> Receiver:
        self.server.server_activate()
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self.server.shutdown()
        self.server.server_close()

    @property
    def alerts(self) -> list[dict]:
        """The bodies the receiver took (answered 200), in order."""
        with self._lock:
            return [r["body"] for r in self.requests if r["status"] == 200]


@pytest.fixture()
def receiver():
    receiver = Receiver().up()
    yield receiver
    receiver.close()


@pytest.fixture()
def server():
    with FakeCustomerIO(site_id=SITE, api_key=KEY, app_api_key=APP_KEY) as srv:
        yield srv


def alerting(server, receiver, fmt: str = "slack", **more: str) -> dict[str, str]:
    return {"CUSTOMERIO_SITE_ID": SITE, "CUSTOMERIO_API_KEY": KEY, "CUSTOMERIO_TRACK_URL": server.url,
            "CIO_ALERT_WEBHOOK_URL": receiver.url, "CIO_ALERT_FORMAT": fmt, **more}


def new_state() -> str:
    return f"cio_state_{uuid.uuid4().hex[:10]}"


def blocked_target(build, tmp_path: Path) -> Path:
    """A target path whose run_results.json says a test of cio_people failed: cio_people is
    blocked (as in test_export_e2e)."""
    target = tmp_path / f"blocked_{uuid.uuid4().hex[:6]}"
    target.mkdir()
    (target / "manifest.json").write_text((build.target_path / "manifest.json").read_text())
    run_results = json.loads((build.target_path / "run_results.json").read_text())
    failed = next(r for r in run_results["results"]
                  if r["unique_id"].startswith("test.cio_sync.cio_sync_one_row_per_person"))
    failed["status"] = "fail"
    (target / "run_results.json").write_text(json.dumps(run_results))
    return target


def no_secret(*procs) -> None:
    for proc in procs:
        assert SECRET not in proc.stdout + proc.stderr, "the webhook URL was printed"


def test_a_blocked_model_alerts_once_per_incident_and_again_after_it_recovers(duckdb_build, server, receiver,
                                                                               tmp_path):
    """Two runs find cio_people blocked: one alert (Slack's body). A run that syncs it resolves
    the incident (a resolved message); blocked again later is a new incident: a new alert."""
    state, blocked, env = new_state(), blocked_target(duckdb_build, tmp_path), alerting(server, receiver)
    first = duckdb_build.cio_export("--select", "cio_people", env=env, state_schema=state, target_path=blocked)
    second = duckdb_build.cio_export("--select", "cio_people", env=env, state_schema=state, target_path=blocked)
    assert (first.returncode, second.returncode) == (1, 1), first.stderr + second.stderr
    [alert] = receiver.alerts
    assert "alert sent: cio_people: blocked" in first.stderr and "alert sent" not in second.stderr
    assert set(alert) == {"text", "blocks"}
    assert alert["text"].startswith("cio-export: cio_people: blocked. cio_people is blocked, not synced: ")
    assert "cio_sync_one_row_per_person" in alert["text"]  # the failing test, named
    section, context = alert["blocks"]
    assert section["type"] == "section" and section["text"]["type"] == "mrkdwn"
    assert "*cio_people: blocked*" in section["text"]["text"] and "_What to do:_" in section["text"]["text"]
    assert context["type"] == "context" and re.search(r"since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC",
                                                      context["elements"][0]["text"])
    assert f"state schema {state}" in context["elements"][0]["text"]
    assert receiver.requests[0]["content_type"] == "application/json"
    assert receiver.requests[0]["path"] == f"/services/T0/B0/{SECRET}"

    synced = duckdb_build.cio_export("--select", "cio_people", env=env, state_schema=state)
    assert synced.returncode == 0, synced.stderr
    [_, resolved] = receiver.alerts
    assert resolved["text"] == "cio-export: resolved: cio_people: blocked"
    assert re.search(r"open [^,]+, .* UTC to .* UTC", resolved["blocks"][1]["elements"][0]["text"])

    again = duckdb_build.cio_export("--select", "cio_people", env=env, state_schema=state, target_path=blocked)
    assert again.returncode == 1
    [_, _, recurred] = receiver.alerts
    assert recurred["text"] == alert["text"]
    no_secret(first, second, synced, again)


def test_a_failed_run_alerts_once_in_the_generic_json_body(duckdb_build, server, tmp_path):
    """Every batch fails: the run ends with rows undelivered (exit 3), twice; the receiver,
    busy once (503, retried at once), gets one alert in the generic JSON body. The undelivered
    rows are not also alerted as rejects."""
    receiver = Receiver(answers=(503,)).up()
    try:
        state, env = new_state(), alerting(server, receiver, "json")
        server.configure(error_rate=1.0, fault_paths=["/api/v2/"])  # the preflight passes, every batch fails
        runs = [duckdb_build.cio_export("--select", "cio_people", "--max-retries", "0", env=env, state_schema=state)
                for _ in range(2)]
        assert [p.returncode for p in runs] == [3, 3], runs[0].stderr
        [alert] = receiver.alerts
        assert [r["status"] for r in receiver.requests] == [503, 200]
        assert receiver.requests[0]["body"] == alert  # the same alert, posted again
        assert set(alert) == {"source", "status", "kind", "key", "subject", "title", "summary", "advice", "opened_at",
                              "resolved_at", "state_schema", "deduplicated", "version"}
        assert (alert["source"], alert["status"], alert["kind"], alert["subject"], alert["state_schema"]) == (
            "cio-export", "open", "run_failed", "run --select cio_people", state)
        assert alert["key"] == "run_failed:run --select cio_people"
        assert alert["title"] == "run --select cio_people: failed"
        assert alert["summary"] == ("cio-export run --select cio_people failed (exit 3): delivery incomplete: "
                                    "8 undelivered in cio_people")
        assert alert["advice"].startswith("run again") and alert["resolved_at"] is None and alert["deduplicated"]
        assert datetime.fromisoformat(alert["opened_at"]).utcoffset().total_seconds() == 0

        server.configure(error_rate=0.0)
        recovered = duckdb_build.cio_export("--select", "cio_people", env=env, state_schema=state)
        assert recovered.returncode == 0, recovered.stderr
        [_, resolved] = receiver.alerts
        assert (resolved["status"], resolved["kind"], resolved["opened_at"]) == ("resolved", "run_failed",
                                                                                 alert["opened_at"])
        assert resolved["resolved_at"] > resolved["opened_at"]
        no_secret(*runs, recovered)
    finally:
        receiver.close()


def test_open_rejects_over_the_threshold_alert_and_up_to_it_do_not(duckdb_build, server, receiver):
    """Five identifies too large for the server are refused (exit 1). With a threshold of 5 open
    rejects nothing is alerted; at 4 the next run alerts: the rows are still refused (open),
    though that run refused nothing new."""
    state = new_state()
    server.configure(max_item_bytes=420)  # five of the eight identifies do not fit
    up_to = duckdb_build.cio_export("--select", "cio_people", env=alerting(
        server, receiver, "json", CIO_ALERT_MAX_OPEN_REJECTS="5"), state_schema=state)
    assert up_to.returncode == 1 and receiver.alerts == [], up_to.stderr
    over = duckdb_build.cio_export("--select", "cio_people", "--json", env=alerting(
        server, receiver, "json", CIO_ALERT_MAX_OPEN_REJECTS="4"), state_schema=state)
    assert over.returncode == 0, over.stderr  # nothing changed: nothing sent, nothing refused
    [alert] = receiver.alerts
    assert (alert["kind"], alert["subject"]) == ("rejects_over_threshold", "cio_people")
    assert alert["summary"] == "cio_people has 5 open rejects (threshold 4): item_too_large 5"
    assert "cio-export status --select cio_people" in alert["advice"]


def log_lines(proc) -> list[str]:
    """A run's log messages (--log-format json), what depends on the machine's speed left out:
    durations (0.4s, 42s, 3m 05s, 2h 04m, 1,022 ms) and the concurrency the run's limit chose
    for the latency it measured."""
    def steady(message: str) -> str:
        message = re.sub(r"concurrency up to \d+ of \d+", "concurrency up to N", message)
        return re.sub(r"\d[\d,]*(?:\.\d+)? ?(?:ms|s|m|h|d)\b", "N", message)
    return [steady(json.loads(line)["msg"]) for line in proc.stderr.splitlines() if line]


def outcome(proc) -> tuple:
    document = json.loads(proc.stdout)
    return document["exit_code"], [(r["model"], r["status"], r["message"], r["failing_tests"])
                                   for r in document["results"]]


def test_the_receiver_down_changes_nothing_and_the_next_run_alerts(duckdb_build, server, tmp_path):
    """The webhook refuses connections: the run exits as it would without alerts, prints the
    same, plus one warning (the URL left out), and the next run, once the receiver is up, alerts."""
    receiver = Receiver()  # bound, not listening
    try:
        blocked, state = blocked_target(duckdb_build, tmp_path), new_state()
        plain = {k: v for k, v in alerting(server, receiver).items() if not k.startswith("CIO_ALERT")}
        args = ("--select", "cio_people", "--json", "--log-format", "json")
        without = duckdb_build.cio_export(*args, env=plain, target_path=blocked)
        down = duckdb_build.cio_export(*args, env=alerting(server, receiver), state_schema=state, target_path=blocked)
        assert without.returncode == down.returncode == 1
        assert outcome(down) == outcome(without)
        [warning] = [line for line in log_lines(down) if line not in log_lines(without)]
        assert warning.startswith(f"warning: the alert webhook (http://127.0.0.1:{receiver.server.server_port}/…) "
                                  "did not take the alert 'cio_people: blocked': ConnectError")
        assert "1 alert(s) not sent" in warning and "(3 attempts)" in warning
        assert [json.loads(line)["level"] for line in down.stderr.splitlines() if "alert webhook" in line] == ["warn"]

        receiver.up()
        up = duckdb_build.cio_export(*args, env=alerting(server, receiver), state_schema=state, target_path=blocked)
        assert up.returncode == 1 and outcome(up) == outcome(without)
        [alert] = receiver.alerts
        assert alert["text"].startswith("cio-export: cio_people: blocked.")
        again = duckdb_build.cio_export(*args, env=alerting(server, receiver), state_schema=state,
                                        target_path=blocked)
        assert again.returncode == 1 and len(receiver.alerts) == 1
        no_secret(without, down, up, again)
    finally:
        receiver.close()


def test_a_stalled_model_alerts_from_status_when_no_run_happens(duckdb_build, server, receiver):
    """cio_people's last success is three days old, over the package's max_lag (26h) and no run
    came since: `status --alert` alerts once; the next run that syncs it resolves it."""
    import duckdb

    state, env = new_state(), alerting(server, receiver)
    synced = duckdb_build.cio_export("--select", "cio_people", env=env, state_schema=state)
    assert synced.returncode == 0 and receiver.alerts == [], synced.stderr
    with duckdb.connect(duckdb_build.env["CIO_DUCKDB_PATH"]) as conn:
        conn.execute(f"update {state}.cio_runs set started_at = started_at - interval 3 day, "
                     "finished_at = finished_at - interval 3 day")
    status = ("status", "--select", "cio_people", "--state-schema", state)
    looked = duckdb_build.cio_export(*status, env=env, state_schema="")
    assert looked.returncode == 0 and receiver.alerts == [], looked.stderr  # without --alert: nothing
    checks = [duckdb_build.cio_export(*status, "--alert", env=env, state_schema="") for _ in range(2)]
    assert [p.returncode for p in checks] == [0, 0], checks[0].stderr  # the outcome is status's own
    [alert] = receiver.alerts
    assert alert["text"].startswith("cio-export: cio_people: stalled. cio_people last synced successfully 3d 0h ago")
    assert "over its max_lag of 26h" in alert["text"]
    assert "alert sent: cio_people: stalled" in checks[0].stderr and "alert sent" not in checks[1].stderr
    strict = duckdb_build.cio_export(*status, "--alert", "--strict", env=env, state_schema="")
    assert strict.returncode == 1 and len(receiver.alerts) == 1

    rerun = duckdb_build.cio_export("--select", "cio_people", env=env, state_schema=state)
    assert rerun.returncode == 0, rerun.stderr
    [_, resolved] = receiver.alerts
    assert resolved["text"] == "cio-export: resolved: cio_people: stalled"
    no_secret(synced, looked, *checks, strict, rerun)


def test_status_alert_needs_the_webhook(duckdb_build):
    proc = duckdb_build.cio_export("status", "--select", "cio_people", "--alert", state_schema="")
    assert proc.returncode == 2 and "status --alert needs CIO_ALERT_WEBHOOK_URL" in proc.stderr


def test_a_reconciliation_beyond_tolerance_alerts_once_until_the_gap_closes(duckdb_build, server, receiver,
                                                                            tmp_path):
    state, env = new_state(), alerting(server, receiver, "json")
    synced = duckdb_build.cio_export("--select", "cio_people", env=env, state_schema=state)
    assert synced.returncode == 0, synced.stderr
    server.define_segment(7, "is_vip", equals=True, name="VIPs")
    config = tmp_path / "reconcile.yml"
    config.write_text("segments:\n  - {segment_id: 7, name: VIPs, model: cio_people, where: is_vip}\n")
    app = {**env, "CUSTOMERIO_APP_API_KEY": APP_KEY, "CUSTOMERIO_APP_URL": server.url,
           "CUSTOMERIO_APP_RATE_LIMIT": "100"}

    def vip(value: bool, later: int) -> None:  # another source writes c002's is_vip, after the sync
        item = {"type": "person", "identifiers": {"id": "c002"}, "action": "identify",
                "timestamp": int(time.time()) + later, "attributes": {"is_vip": value}}
        assert httpx.post(f"{server.url}/api/v2/batch", json={"batch": [item]}, auth=(SITE, KEY)).status_code == 200

    def reconcile():
        return duckdb_build.cio_export("reconcile", "--config", str(config), "--state-schema", state, env=app,
                                       state_schema="")

    vip(True, 3600)
    gaps = [reconcile(), reconcile()]
    assert [p.returncode for p in gaps] == [1, 1], gaps[0].stderr
    [alert] = receiver.alerts
    assert (alert["kind"], alert["subject"], alert["title"]) == ("reconcile_gap", "segment 7",
                                                                "segment 7: beyond tolerance")
    assert alert["summary"] == ("segment 7 (VIPs, model cio_people): Customer.io has 2, the warehouse 1 "
                                "(gap +1, allowed 0)")
    vip(False, 7200)
    closed = reconcile()
    assert closed.returncode == 0, closed.stderr
    [_, resolved] = receiver.alerts
    assert (resolved["status"], resolved["kind"], resolved["subject"]) == ("resolved", "reconcile_gap", "segment 7")
    no_secret(synced, *gaps, closed)


def test_a_run_that_cannot_reach_its_state_alerts_each_time_and_says_so(receiver, tmp_path):
    """No dbt project: the run fails (exit 2) before it knows its state schema. The failure is
    alerted all the same, saying it could not be de-duplicated."""
    exe = str(Path(sys.executable).with_name("cio-export"))
    env = {"PATH": str(Path(sys.executable).parent), "CIO_ALERT_WEBHOOK_URL": receiver.url, "CIO_ALERT_FORMAT": "json"}
    runs = [subprocess.run([exe, "run", "--project-dir", str(tmp_path), "--dry-run"], env=env, capture_output=True,
                           text=True),
            subprocess.run([exe, "run", "--project-dir", str(tmp_path)], env=env, capture_output=True, text=True)]
    assert [p.returncode for p in runs] == [2, 2]
    [alert] = receiver.alerts  # the dry run alerts nothing
    assert (alert["kind"], alert["deduplicated"], alert["state_schema"]) == ("run_failed", False, None)
    assert alert["summary"].startswith("cio-export run --select tag:cio failed (exit 2): No dbt project here")
    no_secret(*runs)


@pytest.mark.parametrize(("variables", "named"), [
    ({"CIO_ALERT_WEBHOOK_URL": ""}, "CIO_ALERT_WEBHOOK_URL is set but empty"),
    ({"CIO_ALERT_WEBHOOK_URL": f"hooks.slack.com/services/T0/B0/{SECRET}"}, "CIO_ALERT_WEBHOOK_URL ("),
    ({"CIO_ALERT_WEBHOOK_URL": f"ftp://example.com/{SECRET}"}, "is not an http(s) URL"),
    ({"CIO_ALERT_WEBHOOK_URL": f"https://example.com:port/{SECRET}"}, "is not an http(s) URL"),
    ({"CIO_ALERT_WEBHOOK_URL": f"https://example.com/{SECRET}", "CIO_ALERT_FORMAT": "xml"}, "CIO_ALERT_FORMAT must"),
    ({"CIO_ALERT_WEBHOOK_URL": f"https://example.com/{SECRET}", "CIO_ALERT_MAX_OPEN_REJECTS": "-1"},
     "CIO_ALERT_MAX_OPEN_REJECTS must be a whole number"),
    ({"CIO_ALERT_FORMAT": "json"}, "CIO_ALERT_FORMAT is set but CIO_ALERT_WEBHOOK_URL is not"),
])
def test_alert_settings_are_checked_at_the_edge_naming_the_variable_never_the_url(variables, named):
    with pytest.raises(ConfigError) as raised:
        alert_settings_from_env(variables)
    assert named in str(raised.value) and SECRET not in str(raised.value)


def test_alert_settings_read_from_the_environment():
    assert alert_settings_from_env({}) is None
    settings = alert_settings_from_env({"CIO_ALERT_WEBHOOK_URL": f" https://hooks.slack.com/services/{SECRET} ",
                                        "CIO_ALERT_FORMAT": "JSON", "CIO_ALERT_MAX_OPEN_REJECTS": "10"})
    assert (settings.format, settings.max_open_rejects, settings.where) == ("json", 10, "https://hooks.slack.com/…")
    assert SECRET not in repr(settings) and SECRET not in settings.scrub(f"error at {settings.url}: refused")


def test_a_bad_alert_setting_stops_the_run_before_anything_is_sent(duckdb_build, server, receiver):
    env = alerting(server, receiver, "xml")
    proc = duckdb_build.cio_export("--select", "cio_people", env=env)
    assert proc.returncode == 2 and "CIO_ALERT_FORMAT must be 'slack'" in proc.stderr
    assert server.stats()["requests"] == 0 and receiver.requests == []


def wait_for(condition, processes, what: str, limit: float = 300.0) -> None:
    """Poll `condition` until it holds; fail if a process ended first (or after `limit`
    seconds, a bound on a hang, never a timing assumption)."""
    deadline = time.monotonic() + limit
    while not condition():
        assert all(p.poll() is None for p in processes), f"a run ended before {what}"
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.02)


@pytest.mark.postgres
def test_two_shards_finding_one_blocked_model_at_once_alert_once(postgres_build, server, receiver, tmp_path):
    """Two shards' runs find cio_people blocked at the same moment: both wait on cio_incidents'
    lock (held here until both do), then one claims the incident and alerts; the other does not."""
    import psycopg2
    from conftest import pg_settings

    state, blocked = new_state(), blocked_target(postgres_build, tmp_path)
    plain = {k: v for k, v in alerting(server, receiver).items() if not k.startswith("CIO_ALERT")}
    made = postgres_build.cio_export("--select", "cio_people", env=plain, state_schema=state, target_path=blocked)
    assert made.returncode == 1, made.stderr  # the state schema, cio_incidents with it; no alert configured
    holder = psycopg2.connect(**pg_settings())
    try:
        with holder.cursor() as cur:
            cur.execute(f"lock table {state}.cio_incidents in share row exclusive mode")
        shards = [postgres_build.cio_export_process("--select", "cio_people", "--shard", f"{k}/2",
                                                    env=alerting(server, receiver), state_schema=state,
                                                    target_path=blocked, stdout=subprocess.PIPE,
                                                    stderr=subprocess.PIPE, text=True) for k in range(2)]

        def waiting() -> int:
            [(n,)] = PgSchema(state).query(
                "select count(*) from pg_locks l join pg_class c on c.oid = l.relation join pg_namespace s "
                "on s.oid = c.relnamespace where s.nspname = %s and c.relname = 'cio_incidents' and not l.granted",
                (state,))
            return n

        wait_for(lambda: waiting() == 2, shards, "both shards waiting on cio_incidents")
        holder.rollback()  # the lock goes: the shards take turns
        outputs = [p.communicate(timeout=300) for p in shards]
    finally:
        holder.close()
    assert [p.returncode for p in shards] == [1, 1], outputs
    [alert] = receiver.alerts
    assert alert["text"].startswith("cio-export: cio_people: blocked.")
    assert sorted("alert sent: cio_people: blocked" in err for _, err in outputs) == [False, True]
    assert all(SECRET not in out + err for out, err in outputs)
    [(alerted,)] = postgres_build.schema.query(f"select count(*) from {state}.cio_incidents where alerted_at is not "
                                               "null and resolved_at is null and claimed_by is null")
    assert alerted == 1


def test_the_incident_ledgers_sql_is_redshift_sql():
    from test_redshift_compile import redshift_problems
    from test_redshift_state_sql import RecordingHandle, RedshiftAdapterStandIn

    from cio_sync._ops.alerts.incidents import Evaluation, Incident
    from cio_sync._ops.alerts.ledger import IncidentLedger
    from cio_sync._state import StateStore

    store = StateStore(RedshiftAdapterStandIn(), "cio_sync_state", read_only=True)
    handle = RecordingHandle()
    store._conn = type("Connection", (), {"handle": handle})()
    ledger = IncidentLedger(store)
    ledger.ensure()
    incident = Incident("model_blocked", "cio_people", "cio_people is blocked")
    now = datetime(2026, 5, 1, 12, 0, 0)
    [opened], [] = ledger.observe(Evaluation((incident,), frozenset({incident.key, "model_stalled:cio_people"})),
                                  now, "me")
    ledger.alerted(opened.incident.key, "me", now)
    ledger.release(opened.incident.key, "me")
    statements = handle.log
    assert any(s.startswith('lock "cio_sync_state"."cio_incidents"') for s in statements), statements
    assert not any("on conflict" in s or "returning" in s for s in statements)
    failures = {s[:80]: redshift_problems(s) for s in statements if redshift_problems(s)}
    assert not failures, failures
