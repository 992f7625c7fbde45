"""The status page as a person sees it. The example shop is built on DuckDB and synced for real to
the fake Customer.io server: identifies over 420 bytes refused (rejects), a new order whose event
cannot be delivered (a failing model), then resent and held mid-send while its run is killed
(an event in flight), a build whose test on the refunds failed (a blocked model), cio_people's
last sync two days old against its max_lag of 26h (a late model), two reconciles recorded, and a
customer whose email is a `<script>`. The page `cio-export report --html` writes is opened from
its file with the network off, and the page `cio-export serve` answers behind its credentials,
both in headless Chromium (Debian's chromium and chromium-driver, driven with Selenium)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from conftest import SEND_HISTORY
from dbt_project_runner import INTEGRATION_TESTS

from cio_sync.fake_server import FakeCustomerIO

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("status_page")]

SITE, KEY, APP_KEY = "site-page", "key-page-0123456789abcdef", "app-key-page-0123456789"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
#: A customer's email as the shop has it: markup, which the page must show as text.
MARKUP = "<script>document.title='owned';window.owned=1</script>"
USER, PASSWORD, TOKEN = "lifecycle", "page-password-8f3a1c77e2", "page-token-0b5d9e4a6c11f2"
SHOTS = os.environ.get("CIO_STATUS_PAGE_SCREENSHOT")  # a path: the report's screenshot is saved there
#: The example's events are months old: no max_lag on the event marts, so that only the model
#: made late below is late.
VARS = {**SEND_HISTORY, "cio_max_lag_events": "", "cio_max_lag_cart_events": ""}


@dataclass
class Shop:
    project: object
    state: str
    target: Path  # the artifacts the page reads: the build whose refund test failed


def duck(project, sql: str) -> None:
    import duckdb

    with duckdb.connect(project.env["CIO_DUCKDB_PATH"]) as conn:
        conn.execute(sql)


def wait_for(condition, process, what: str, limit: float = 120.0) -> None:
    """Poll `condition` until it holds; fail if `process` ended first (`limit` bounds a hang)."""
    deadline = time.monotonic() + limit
    while not condition():
        assert process is None or process.poll() is None, f"the process ended before {what}"
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def shop(duckdb_project_factory, tmp_path_factory) -> Shop:
    project = duckdb_project_factory("status_page", vars=VARS)
    project.run("build")
    state = f"cio_state_{uuid.uuid4().hex[:10]}"
    config = tmp_path_factory.mktemp("reconcile") / "reconcile.yml"
    config.write_text("segments:\n  - {segment_id: 8, name: Everyone, model: cio_people}\n")
    with FakeCustomerIO(site_id=SITE, api_key=KEY, app_api_key=APP_KEY) as server:
        env = {"CUSTOMERIO_SITE_ID": SITE, "CUSTOMERIO_API_KEY": KEY, "CUSTOMERIO_TRACK_URL": server.url}
        # 1. The larger identifies are refused: rejects, and those people's events held back.
        server.configure(max_item_bytes=420)
        first = project.cio_export("run", "--select", "tag:cio", "--no-progress", env=env, state_schema=state)
        assert first.returncode == 1, first.stderr
        server.configure(max_item_bytes=32768)
        # 2. A new order of a person Customer.io has, and a customer whose email is markup.
        duck(project, "insert into raw_customers (customer_id, email, created_at, sms_opt_in, email_opt_in, is_test, "
                      f"do_not_message) values ('c666', '{MARKUP.replace(chr(39), chr(39) * 2)}', "
                      "'2026-05-01 10:00:00', 'no', true, 'false', false)")
        duck(project, "insert into raw_orders (order_id, customer_id, ordered_at, order_total, status, discount_code, "
                      "currency, is_test) values ('o9001', 'c010', '2026-05-31 09:00:00', '20.00', 'paid', null, "
                      "'USD', false)")
        project.run("build", "--exclude", "resource_type:seed")
        # 3. Its event cannot be delivered: cio_event_order_placed is failing.
        server.configure(error_rate=1.0, fault_paths=["/api/v2/"])
        failed = project.cio_export("run", "--select", "cio_event_order_placed", "--max-retries", "0",
                                    "--no-progress", env=env, state_schema=state)
        assert failed.returncode == 3, failed.stderr
        # 4. Resent, its answer held, and the run killed: the event stays in flight.
        server.configure(error_rate=0.0, answers_allowed=0)
        held = project.cio_export_process("run", "--select", "cio_event_order_placed", "--no-progress", env=env,
                                          state_schema=state, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: server.stats()["held"] >= 1, held, "the event's answer held")
        finally:
            held.kill()
            held.wait(timeout=60)
        server.configure(answers_allowed=None, fault_paths=["/api/"])
        # 5. Two reconciles: Customer.io lacks the refused people (a gap), then within 100%.
        server.define_segment(8, name="Everyone")
        app = {"CUSTOMERIO_APP_API_KEY": APP_KEY, "CUSTOMERIO_APP_URL": server.url, "CUSTOMERIO_APP_RATE_LIMIT": "100"}
        for tolerance, code in (("0", 1), ("100%", 0)):
            checked = project.cio_export("reconcile", "--config", str(config), "--tolerance", tolerance,
                                         "--state-schema", state, env=app, state_schema="")
            assert checked.returncode == code, checked.stderr
    # 6. cio_people last synced two days ago: late against its max_lag (26h).
    duck(project, f"update {state}.cio_runs set started_at = started_at - interval '2 days', "
                  "finished_at = finished_at - interval '2 days' where model = 'cio_people'")
    # 7. The build the page reads: a test on the refunds failed, which blocks cio_event_refund_issued.
    target = tmp_path_factory.mktemp("blocked") / "target"
    shutil.copytree(project.target_path, target)
    results = json.loads((target / "run_results.json").read_text())
    test = next(r for r in results["results"] if r["unique_id"].startswith("test.")
                and "cio_event_refund_issued" in r["unique_id"])
    test.update(status="fail", failures=2, message="Got 2 results, configured to fail if != 0")
    (target / "run_results.json").write_text(json.dumps(results))
    return Shop(project, state, target)


@pytest.fixture(scope="module")
def report_file(shop, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("report") / "status.html"
    proc = shop.project.cio_export("report", "--html", str(path), "--state-schema", shop.state,
                                   target_path=shop.target, state_schema="")
    assert proc.returncode == 0, proc.stderr
    return path


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Chromium with a fresh profile, nothing in the background."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if missing:
        message = f"no {' or '.join(missing)}: apt-get install chromium chromium-driver (.ci/run does)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # Selenium never looks for a driver or browser to download
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--no-first-run",
                     f"--user-data-dir={tmp_path_factory.mktemp('chromium')}", "--window-size=1400,1000"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def series_pixels(driver, chart: str, rgb: tuple[int, int, int]) -> int:
    """Pixels of the chart's canvas drawn in the series' colour (the axes and grid are grey)."""
    return driver.execute_script("""
        const canvas = document.querySelector(arguments[0] + ' canvas');
        if (!canvas) { return -1; }
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let n = 0;
        for (let i = 0; i < data.length; i += 4) {
            if (data[i + 3] > 200 && Math.abs(data[i] - arguments[1]) < 30 && Math.abs(data[i + 1] - arguments[2]) < 30
                && Math.abs(data[i + 2] - arguments[3]) < 30) { n++; }
        }
        return n;""", chart, *rgb)


def text_of(driver, css: str) -> str:
    return driver.find_element("css selector", css).text


def assert_shows_the_shop(driver) -> None:
    """What a person sees on the page, section by section."""
    assert driver.title == "Customer.io sync status · cio_sync_integration_tests"
    states = {row.get_attribute("data-model"): row.find_element("css selector", ".badge").text
              for row in driver.find_elements("css selector", "tr.model")}
    assert states["cio_people"] == "late"
    assert states["cio_event_order_placed"] == "failing"
    assert states["cio_event_refund_issued"] == "blocked"
    assert states["cio_devices"] == "ok" and states["cio_subscription_objects"] == "ok"
    assert "late: last success" in text_of(driver, 'tr.problems[data-model="cio_people"]')
    assert "test" in text_of(driver, 'tr.problems[data-model="cio_event_refund_issued"]')
    assert text_of(driver, "#summary").split() == ["1", "failing", "1", "blocked", "1", "late",
                                                   str(len(states) - 3), "ok"]
    # Run history: the charts drawn, in their series' colours.
    assert driver.find_element("tag name", "body").get_attribute("data-charts") == "4"
    assert series_pixels(driver, "#chart-sent", (0x15, 0x80, 0x3d)) > 20
    assert series_pixels(driver, "#chart-rejected", (0xb9, 0x1c, 0x1c)) > 20
    assert len(driver.find_elements("css selector", "tr.run")) == 3  # the sync, the failed one, the killed one
    # Rejects by reason, open, with a sample.
    people = 'tr.reject[data-model="cio_people"][data-reason="item_too_large"]'
    assert text_of(driver, people + " .open") == "5"
    assert "c001 item is 502 bytes, more than 420" in text_of(driver, people + " .samples")
    # Events in flight: the one the killed run left.
    assert text_of(driver, 'tr.flight[data-model="cio_event_order_placed"] .in-flight') == "1"
    # Quarantine by input and reason; the customer's markup shown as text, never run.
    invalid = 'tr.quarantined[data-source="customers"][data-reason="invalid_email"]'
    assert text_of(driver, invalid + " .rows") == "2"
    assert MARKUP in text_of(driver, invalid + " .samples")
    assert driver.find_elements("css selector", "#quarantine script") == []
    assert driver.execute_script("return window.owned === undefined")
    # Reconciliation over time: the gap, then within tolerance.
    segments = driver.find_elements("css selector", "tr.segment")
    assert [s.get_attribute("class") for s in segments] == ["segment ok", "segment gap"]
    assert series_pixels(driver, "#chart-reconcile", (0x1f, 0x6f, 0xeb)) > 20
    # The tests of the last build: the failing one first.
    failing = driver.find_elements("css selector", "table.tests:not(.all) tr.test-fail")
    assert len(failing) == 1 and "cio_event_refund_issued" in failing[0].text
    # Nothing was fetched, and no script was refused or failed.
    assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0
    assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []


def test_the_report_file_shows_the_sync_offline(browser, report_file):
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.emulateNetworkConditions", {"offline": True, "latency": 0,
                                                                  "downloadThroughput": -1, "uploadThroughput": -1})
    try:
        browser.get(report_file.as_uri())
        assert_shows_the_shop(browser)
        if SHOTS:
            height = browser.execute_script("return document.documentElement.scrollHeight")
            browser.set_window_size(1400, min(height, 2600))
            browser.save_screenshot(SHOTS)
            browser.set_window_size(1400, 1000)
    finally:
        browser.execute_cdp_cmd("Network.emulateNetworkConditions", {"offline": False, "latency": 0,
                                                                      "downloadThroughput": -1,
                                                                      "uploadThroughput": -1})


def test_the_report_escapes_what_the_warehouse_holds(report_file):
    page = report_file.read_text()
    assert MARKUP not in page  # only as text: &lt;script&gt;...
    assert "&lt;script&gt;document.title=&#39;owned&#39;" in page
    # the chart data, uPlot and the page's own script: no other
    assert page.count("<script") == 3 and '<script type="application/json" id="cio-chart-data">' in page


@pytest.fixture(scope="module")
def served(shop, tmp_path_factory):
    """`cio-export serve` for the page alone (no dbt Cloud job), its JSON log in a file."""
    workdir = tmp_path_factory.mktemp("serve")
    log = workdir / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CUSTOMERIO_", "DBT_CLOUD_", "CIO_STATUS_"))}
    env.update(shop.project.env, DBT_SEND_ANONYMOUS_USAGE_STATS="false", CIO_STATUS_PAGE_USER=USER,
               CIO_STATUS_PAGE_PASSWORD=PASSWORD, CIO_STATUS_PAGE_TOKEN=TOKEN)
    cmd = [sys.executable, "-m", "cio_sync.cli", "serve", "--port", "0", "--project-dir", str(INTEGRATION_TESTS),
           "--profiles-dir", str(INTEGRATION_TESTS), "--target", "duckdb", "--target-path", str(shop.target),
           "--vars", json.dumps(VARS), "--state-schema", shop.state, "--log-file", str(log)]
    process = subprocess.Popen(cmd, env=env, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def records() -> list[dict]:
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    try:
        wait_for(lambda: any(r["event"] == "serve.listening" for r in records()), process, "serve listening")
        url = next(r["url"] for r in records() if r["event"] == "serve.listening")
        yield url, records
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def test_the_served_page_needs_its_credentials_and_never_shows_them(served):
    url, records = served
    anonymous = httpx.get(f"{url}/status", timeout=30)
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"].startswith("Basic ")
    assert httpx.get(f"{url}/status", auth=(USER, "not-the-password"), timeout=30).status_code == 401
    assert httpx.get(f"{url}/status", headers={"Authorization": "Bearer not-the-token"}, timeout=30).status_code == 401
    page = httpx.get(f"{url}/status", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120)
    assert page.status_code == 200, page.text
    assert page.headers["cache-control"] == "no-store" and "Customer.io sync status" in page.text
    for secret in (PASSWORD, TOKEN, KEY, APP_KEY):
        assert secret not in page.text
        assert secret not in json.dumps(records())
    assert any(r["event"] == "page.unauthorized" for r in records())
    assert httpx.get(f"{url}/health", timeout=10).json()["status"] == "ok"


def test_the_served_page_shows_the_sync_in_a_browser(browser, served):
    url, _ = served
    credentials = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {credentials}"}})
    try:
        browser.get(f"{url}/status")
        assert_shows_the_shop(browser)
        assert PASSWORD not in browser.page_source
    finally:
        browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {}})


def test_the_pages_credentials_are_checked_at_start_and_kept_as_digests():
    from cio_sync._cloud import page_auth_from_env
    from cio_sync._errors import ConfigError

    assert page_auth_from_env({}) is None
    for env, named in (({"CIO_STATUS_PAGE_USER": "x"}, "CIO_STATUS_PAGE_PASSWORD"),
                       ({"CIO_STATUS_PAGE_PASSWORD": "short"}, "CIO_STATUS_PAGE_PASSWORD"),
                       ({"CIO_STATUS_PAGE_TOKEN": ""}, "CIO_STATUS_PAGE_TOKEN")):
        with pytest.raises(ConfigError, match=named) as raised:
            page_auth_from_env(env)
        assert "short" not in str(raised.value).replace("shorter", "")
    auth = page_auth_from_env({"CIO_STATUS_PAGE_PASSWORD": PASSWORD})
    assert PASSWORD not in repr(auth) and repr(auth) == "PageAuth(basic)"
    basic = "Basic " + base64.b64encode(f"cio:{PASSWORD}".encode()).decode()
    assert auth.allows(basic) and auth.allows(basic.lower().replace("basic", "BASIC", 1)[:6] + basic[6:])
    assert not auth.allows("Basic " + base64.b64encode(f"other:{PASSWORD}".encode()).decode())
    assert not auth.allows("Basic !!not base64") and not auth.allows(f"Bearer {PASSWORD}") and not auth.allows("")
