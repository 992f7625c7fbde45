"""Reconciliation and spot checks: integration_tests built on DuckDB, synced with a real
`cio-export run` to the fake Customer.io server, then compared through the fake's App API
(segments defined at runtime over the profiles it accepted). The commands run in-process through
click's test runner, registered on the real `cio-export` group."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest
from click.testing import CliRunner
from dbt_project_runner import INTEGRATION_TESTS

from cio_sync._cli.ops import register
from cio_sync._ops.app_api import AppApiClient, AppApiSettings
from cio_sync._ops.reconcile import Tolerance, same_value
from cio_sync.cli import main
from cio_sync.fake_server import FakeCustomerIO

SITE, KEY, APP_KEY = "site-rec", "key-rec-0123456789abcdef", "app-key-rec-0123456789"
register(main)


@pytest.fixture(scope="module")
def synced(duckdb_build):
    """The example shop synced once; segment 7 = VIPs, segment 8 = everyone."""
    with FakeCustomerIO(site_id=SITE, api_key=KEY, app_api_key=APP_KEY) as server:
        state = f"cio_state_{uuid.uuid4().hex[:10]}"
        proc = duckdb_build.cio_export(
            "run", "--select", "tag:cio", state_schema=state,
            env={"CUSTOMERIO_SITE_ID": SITE, "CUSTOMERIO_API_KEY": KEY, "CUSTOMERIO_TRACK_URL": server.url},
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        server.define_segment(7, "is_vip", equals=True, name="VIPs")
        server.define_segment(8, name="Everyone")
        yield server, state


def invoke(duckdb_build, server, *args: str) -> tuple[int, dict | None, str]:
    env = {
        **duckdb_build.env,
        "CUSTOMERIO_APP_API_KEY": APP_KEY,
        "CUSTOMERIO_APP_URL": server.url,
        "CUSTOMERIO_APP_RATE_LIMIT": "100",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    common = ["--project-dir", str(INTEGRATION_TESTS), "--profiles-dir", str(INTEGRATION_TESTS),
              "--target", "duckdb", "--target-path", str(duckdb_build.target_path),
              "--vars", json.dumps(duckdb_build.vars or {})]  # fmt: skip
    result = CliRunner().invoke(main, [*args, *common, "--json"], env=env, catch_exceptions=False)
    document = json.loads(result.stdout) if result.stdout.strip() else None
    return result.exit_code, document, result.stderr


@pytest.fixture(scope="module")
def reconcile_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("reconcile") / "reconcile.yml"
    path.write_text(
        "segments:\n"
        "  - {segment_id: 7, name: VIPs, model: cio_people, where: is_vip}\n"
        "  - {segment_id: 8, name: Everyone, model: cio_people}\n"
    )
    return path


def test_counts_and_members_match_after_a_sync(duckdb_build, synced, reconcile_config):
    server, _ = synced
    code, report, stderr = invoke(duckdb_build, server, "reconcile", "--config", str(reconcile_config), "--membership")
    assert code == 0, stderr
    counts = {s["name"]: (s["warehouse_count"], s["customerio_count"], s["gap"]) for s in report["segments"]}
    assert counts == {"VIPs": (1, 1, 0), "Everyone": (8, 8, 0)}
    assert all(s["only_in_warehouse"] == 0 and s["only_in_customerio"] == 0 for s in report["segments"])


def test_spot_check_finds_nothing_wrong_after_a_sync(duckdb_build, synced):
    server, state = synced
    code, report, stderr = invoke(duckdb_build, server, "spot-check", "--sample", "8", "--seed", "fixed",
                                  "--state-schema", state)  # fmt: skip
    assert code == 0, stderr
    assert report["checked"] == 8 and report["mismatches"] == 0
    assert report["events_expected_from"] == "ledger"
    assert sum(p["attributes_checked"] for p in report["people"]) > 8 * 10
    assert sum(p["events_checked"] for p in report["people"]) > 0
    assert "0 of 8 people differ" in stderr


def tamper(server) -> dict[str, str]:
    """What can go wrong on Customer.io's side: a value overwritten by another source, a
    person deleted, a second profile for one email, an event lost."""
    later = int(time.time()) + 3600
    batch = {"batch": [
        {"type": "person", "identifiers": {"id": "c002"}, "action": "identify", "timestamp": later,
         "attributes": {"is_vip": True}},
        {"type": "person", "identifiers": {"email": "jane.doe@example.com"}, "action": "identify",
         "attributes": {"first_name": "Jane"}},
    ]}  # fmt: skip
    assert httpx.post(f"{server.url}/api/v2/batch", json=batch, auth=(SITE, KEY)).status_code == 200
    assert httpx.delete(f"{server.url}/api/v1/customers/c010", auth=(SITE, KEY)).status_code == 200
    newest = max((e for e in server.events() if e["identifiers"] == {"id": "c003"}), key=lambda e: e["timestamp"])
    server.forget_event(newest["id"])
    return {"lost_event": newest["name"]}


def test_tampering_is_found_by_reconcile_and_spot_check(duckdb_build, synced, reconcile_config):
    server, state = synced
    lost = tamper(server)

    code, report, stderr = invoke(duckdb_build, server, "reconcile", "--config", str(reconcile_config), "--membership")
    assert code == 1 and "in the warehouse only: c010" in stderr
    by_name = {s["name"]: s for s in report["segments"]}
    vips, everyone = by_name["VIPs"], by_name["Everyone"]
    assert (vips["warehouse_count"], vips["customerio_count"], vips["gap"], vips["ok"]) == (1, 2, 1, False)
    assert vips["sample_only_in_customerio"] == ["c002"]
    # Everyone's count still matches (one deleted, one duplicate): the members do not.
    assert everyone["gap"] == 0 and not everyone["ok"]
    assert everyone["sample_only_in_warehouse"] == ["c010"]
    assert everyone["sample_only_in_customerio"] == ["email=jane.doe@example.com, cio_id=" + everyone[
        "sample_only_in_customerio"][0].rsplit("cio_id=", 1)[1]]  # fmt: skip

    # Counts only, with tolerances.
    assert invoke(duckdb_build, server, "reconcile", "--config", str(reconcile_config), "--tolerance", "1")[0] == 0
    assert invoke(duckdb_build, server, "reconcile", "--config", str(reconcile_config), "--tolerance", "10%")[0] == 1

    code, report, stderr = invoke(duckdb_build, server, "spot-check", "--sample", "8", "--seed", "fixed",
                                  "--state-schema", state)  # fmt: skip
    assert code == 1
    people = {p["identifier"]: p for p in report["people"]}
    assert report["mismatches"] == 4
    [wrong] = people["c002"]["problems"]
    assert (wrong["check"], wrong["field"], wrong["expected"], wrong["actual"]) == (
        "attribute", "is_vip", False, "true")  # fmt: skip
    [duplicate] = people["c001"]["problems"]
    assert duplicate["check"] == "duplicate" and duplicate["actual"] == 2
    assert [p["check"] for p in people["c010"]["problems"]] == ["profile"]
    [missing] = people["c003"]["problems"]
    assert (missing["check"], missing["field"]) == ("event", lost["lost_event"])
    assert {p["status"] for i, p in people.items() if i not in ("c001", "c002", "c003", "c010")} == {"ok"}
    assert "is_vip: warehouse False, Customer.io 'true'" in stderr


def test_the_app_api_client_paces_itself_and_retries_429(synced):
    server, _ = synced
    server.configure(rate_limit=2, rate_limit_burst=1, fault_paths=["/v1/"])
    try:
        settings = AppApiSettings(api_key=APP_KEY, base_url=server.url, rate_limit=50, backoff_base=0.05)
        with AppApiClient(settings) as client:
            counts = [client.segment_count(8) for _ in range(3)]
        assert counts == [counts[0]] * 3
        assert server.stats()["rate_limited"] > 0
    finally:
        server.configure(rate_limit=None, fault_paths=["/api/"])


def test_a_wrong_app_key_is_a_credentials_error(duckdb_build, synced, reconcile_config):
    server, _ = synced
    env_key = {"CUSTOMERIO_APP_API_KEY": "wrong-app-key-42"}
    settings = AppApiSettings(api_key=env_key["CUSTOMERIO_APP_API_KEY"], base_url=server.url)
    with AppApiClient(settings) as client, pytest.raises(Exception, match="refused the App API key") as raised:
        client.segment_count(7)
    assert raised.value.exit_code == 2 and "wrong-app-key-42" not in str(raised.value)


def test_values_compare_as_customerio_stores_them():
    assert same_value(59.9, "59.9") and same_value(12, "12") and same_value(5.0, "5")
    assert same_value(True, "true") and not same_value(False, "true") and not same_value(1, True)
    assert same_value([{"sku": "A"}], '[{"sku":"A"}]') and not same_value("12", "12.0")
    assert Tolerance.parse("2%").allowed(200) == 4 and Tolerance.parse(3).allowed(10) == 3


def test_the_fake_app_api_pages_members_and_needs_its_key(synced):
    server, _ = synced
    assert httpx.get(f"{server.url}/v1/segments/8/customer_count").status_code == 401
    assert httpx.get(f"{server.url}/v1/segments/8/customer_count", auth=(SITE, KEY)).status_code == 401
    settings = AppApiSettings(api_key=APP_KEY, base_url=server.url, rate_limit=100)
    with AppApiClient(settings) as client:
        members = list(client.segment_members(8, page_size=3))
        assert len(members) == client.segment_count(8) and client.requests >= 4  # 3 pages and the count
        assert all(set(m) == {"id", "email", "cio_id"} for m in members)
        profile = client.customer("c004")
        assert profile["attributes"]["is_vip"] == "true" and profile["identifiers"]["email"] == "dave@example.org"
        assert client.customer("dave@example.org", "email")["identifiers"]["id"] == "c004"
        assert client.customer("nobody") is None
        assert client.customers_by_email("dave@example.org") == [
            {"email": "dave@example.org", "id": "c004", "cio_id": profile["identifiers"]["cio_id"]}
        ]
        orders = client.activities("c004", activity_type="event", name="order_placed")
        assert orders and {a["name"] for a in orders} == {"order_placed"}
        assert [a["timestamp"] for a in orders] == sorted((a["timestamp"] for a in orders), reverse=True)
    bad = httpx.post(f"{server.url}/_fake/segments", json={"id": 9, "attribute": "x", "gt": "a"})
    assert bad.status_code == 400 and "compares with a number" in bad.text


def test_the_app_api_client_names_the_ca_setting_when_the_certificate_is_unknown():
    with FakeCustomerIO(site_id="site-tls", api_key="key-tls", app_api_key=APP_KEY, tls=True) as srv:
        settings = AppApiSettings(api_key=APP_KEY, base_url=srv.url, max_retries=0)
        with AppApiClient(settings) as client, pytest.raises(Exception, match="certificate verification") as raised:
            client.segment_count(8)
        assert "CUSTOMERIO_CA_BUNDLE" in str(raised.value) and raised.value.exit_code == 2
        assert client.requests == 1  # not retried
        with AppApiClient(AppApiSettings(api_key=APP_KEY, base_url=srv.url, ca_bundle=srv.ca_bundle)) as client:
            srv.define_segment(8, "is_vip", equals=True)
            assert client.segment_count(8) == 0
