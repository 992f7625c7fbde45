"""dbt Cloud: artifacts of the right step of a run, and `cio-export serve` receiving signed
job webhooks. Everything is local: the dbt Cloud Admin API is the project's stand-in
(cio_sync.testing.dbt_cloud) serving the artifacts of a real `dbt build` of integration_tests,
Customer.io is the fake server, the warehouse a copy of the DuckDB build. `serve` runs as a
real process (`python -m cio_sync.cli serve`) and starts its syncs as child processes."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import httpx
import orjson
import pytest
from dbt_project_runner import INTEGRATION_TESTS

from cio_sync._cloud import (
    DbtCloudClient,
    DbtCloudUnavailable,
    RunNotSyncable,
    classify_run,
    cloud_settings_from_env,
    dbt_subcommand,
    fetch_run_artifacts,
    prepare_cloud_target,
)
from cio_sync.fake_server import FakeCustomerIO
from cio_sync.testing.dbt_cloud import FakeDbtCloud, Step, signed_webhook

# The serve tests share one receiver and its run ledger, in order: one worker runs them all.
pytestmark = pytest.mark.xdist_group("cloud")

SITE, KEY = "site-cloud", "key-cloud-0123456789abcdef"
SECRET = "whsec-cloud-test-0123456789"
ACCOUNT = 77
JOB_GOOD, JOB_TESTS_FAILED, JOB_ERRORED = "4201", "4202", "4203"
PEOPLE_TEST = "test.cio_sync.cio_sync_one_row_per_person"


# ------------------------------------------------------------------------------ artifacts


@pytest.fixture(scope="module")
def build_artifacts(duckdb_build) -> dict[str, dict]:
    """manifest.json and run_results.json of the real build, and variants of them."""
    manifest = json.loads((duckdb_build.target_path / "manifest.json").read_text())
    results = json.loads((duckdb_build.target_path / "run_results.json").read_text())
    docs_manifest = copy.deepcopy(manifest)
    docs_manifest["metadata"]["invocation_id"] = "00000000-docs-0000-0000-000000000000"
    docs_results = {
        "metadata": {**results["metadata"], "invocation_id": "00000000-docs-0000-0000-000000000000"},
        "results": [],
        "args": {**results.get("args", {}), "which": "generate"},
        "elapsed_time": 1.0,
    }
    tests_failed = copy.deepcopy(results)
    failed = next(r for r in tests_failed["results"] if r["unique_id"].startswith(PEOPLE_TEST))
    failed.update(status="fail", failures=2, message="Got 2 results, configured to fail if != 0")
    errored = copy.deepcopy(results)
    broken = next(r for r in errored["results"] if r["unique_id"] == "model.cio_sync.cio_event_order_placed")
    broken.update(status="error", message="Runtime Error: division by zero")
    return {
        "manifest": manifest,
        "results": results,
        "docs_manifest": docs_manifest,
        "docs_results": docs_results,
        "tests_failed": tests_failed,
        "errored": errored,
    }


def build_and_docs(artifacts: dict, results_key: str = "results", build_status: str = "Success") -> list[Step]:
    return [
        Step("dbt build", build_status, {"manifest.json": artifacts["manifest"],
                                         "run_results.json": artifacts[results_key]}),  # fmt: skip
        Step("dbt docs generate", "Success", {"manifest.json": artifacts["docs_manifest"],
                                              "run_results.json": artifacts["docs_results"]}),  # fmt: skip
    ]


@pytest.fixture(scope="module")
def cloud(build_artifacts):
    with FakeDbtCloud(account_id=ACCOUNT, token="dbtc-cloud-test-token") as stand_in:
        a = build_artifacts
        stand_in.add_run(9001, 4100, steps=build_and_docs(a))
        stand_in.add_run(9002, 4100, steps=build_and_docs(a))  # the job's latest run
        models = [r for r in a["results"]["results"] if not r["unique_id"].startswith("test.")]
        tests = [r for r in a["results"]["results"] if r["unique_id"].startswith("test.")]
        split_run = {"metadata": a["results"]["metadata"], "args": {**a["results"]["args"], "which": "run"},
                     "results": models}  # fmt: skip
        split_test = {"metadata": {**a["results"]["metadata"], "invocation_id": "11111111-test-step"},
                      "args": {**a["results"]["args"], "which": "test"}, "results": tests}  # fmt: skip
        stand_in.add_run(9003, 4101, steps=[
            Step("dbt run", artifacts={"manifest.json": a["manifest"], "run_results.json": split_run}),
            Step("dbt test", artifacts={"manifest.json": a["manifest"], "run_results.json": split_test}),
        ])  # fmt: skip
        stand_in.add_run(9004, 4102, steps=[Step("dbt build", "Error", {})])  # failed before writing results
        stand_in.add_run(5001, int(JOB_GOOD), steps=build_and_docs(a))
        stand_in.add_run(5002, int(JOB_ERRORED), steps=[
            Step("dbt build", "Error", {"manifest.json": a["manifest"], "run_results.json": a["errored"]})])
        stand_in.add_run(5004, int(JOB_GOOD), steps=build_and_docs(a))
        stand_in.add_run(5003, int(JOB_TESTS_FAILED), steps=[
            Step("dbt build", "Error", {"manifest.json": a["manifest"], "run_results.json": a["tests_failed"]})])
        yield stand_in


def settings_for(cloud: FakeDbtCloud):
    return cloud_settings_from_env(cloud.env())


def test_the_build_step_is_chosen_when_the_last_step_is_docs_generate(cloud, build_artifacts, tmp_path):
    before = len(cloud.requests)
    run = fetch_run_artifacts(settings_for(cloud), run_id=9001, dest=tmp_path)
    assert (run.step, run.step_name, run.classification) == (4, "Invoke dbt with `dbt build`", "success")
    written = json.loads((tmp_path / "run_results.json").read_text())
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert written["metadata"]["invocation_id"] == manifest["metadata"]["invocation_id"] == run.invocation_id
    assert written["args"]["which"] == "build" and written["results"]
    downloads = [r for r in cloud.requests[before:] if "/artifacts/" in r["path"]]
    assert {(r["path"].rsplit("/", 1)[1], r["query"].get("step")) for r in downloads} == {
        ("manifest.json", "4"),
        ("run_results.json", "4"),
    }
    # What dbt Cloud answers without ?step: the last step's, which builds nothing.
    default = httpx.get(f"{cloud.url}/api/v2/accounts/{ACCOUNT}/runs/9001/artifacts/run_results.json",
                        headers={"Authorization": f"Token {cloud.token}"}).json()  # fmt: skip
    assert default["args"]["which"] == "generate"


def test_a_job_means_its_latest_finished_run(cloud, tmp_path):
    run = fetch_run_artifacts(settings_for(cloud), job_id=4100, dest=tmp_path)
    assert run.run_id == 9002 and run.job_id == 4100
    listing = [r for r in cloud.requests if r["path"].endswith("/runs/") and r["query"].get("job_definition_id")]
    assert listing[-1]["query"]["order_by"] == "-id"


def test_run_then_test_steps_are_merged_for_the_gates(cloud, build_artifacts, tmp_path):
    run = fetch_run_artifacts(settings_for(cloud), run_id=9003, dest=tmp_path)
    assert (run.step, run.test_step, run.classification) == (4, 5, "success")
    merged = json.loads((tmp_path / "run_results.json").read_text())
    expected = {r["unique_id"] for r in build_artifacts["results"]["results"]}
    assert {r["unique_id"] for r in merged["results"]} == expected
    assert merged["metadata"]["invocation_id"] == build_artifacts["manifest"]["metadata"]["invocation_id"]


def test_an_errored_run_is_not_synced_unless_asked(cloud, tmp_path):
    env = cloud.env()
    with pytest.raises(RunNotSyncable, match="errored"):
        prepare_cloud_target(5002, dest=tmp_path / "a", env=env, note=lambda _: None)
    with pytest.raises(RunNotSyncable, match="no run_results.json"):
        prepare_cloud_target(9004, dest=tmp_path / "b", env=env, note=lambda _: None)
    # 'gate' lets the per-model gates decide on an errored run's artifacts.
    assert (prepare_cloud_target(5002, dest=tmp_path / "c", env=env, errored_runs="gate",
                                 note=lambda _: None) / "manifest.json").is_file()  # fmt: skip
    # Failing tests are not an errored run: the gates block only the models they test.
    assert prepare_cloud_target(5003, dest=tmp_path / "d", env=env, note=lambda _: None).is_dir()


def test_run_classification_and_step_commands():
    run = {"id": 1, "status": 20}
    assert classify_run(run, {"results": [{"unique_id": "test.x", "status": "fail"}]})[0] == "tests_failed"
    assert classify_run(run, {"results": [{"unique_id": "model.x", "status": "error"}]})[0] == "errored"
    assert classify_run(run, {"results": [{"unique_id": "model.x", "status": "success"}]})[0] == "success"
    assert classify_run({"id": 1, "status": 30, "is_cancelled": True}, None)[0] == "cancelled"
    assert dbt_subcommand("dbt --log-format json build -s tag:cio") == "build"
    assert dbt_subcommand("dbt run-operation stage_external_sources") == "run-operation"
    assert dbt_subcommand("dbt docs generate") == "docs"


def test_a_wrong_token_is_a_credentials_error(cloud, tmp_path):
    env = {**cloud.env(), "DBT_CLOUD_API_TOKEN": "wrong-token-123456"}
    with pytest.raises(Exception, match="refused the API token") as raised:
        prepare_cloud_target(9001, dest=tmp_path, env=env, note=lambda _: None)
    assert raised.value.exit_code == 2 and "wrong-token-123456" not in str(raised.value)


def test_an_overloaded_dbt_cloud_is_retried_then_reported_as_unavailable(cloud):
    settings = dataclasses.replace(settings_for(cloud), backoff_base=0.01, max_retries=3)
    with DbtCloudClient(settings) as client:
        cloud.fail_next(2, status=503)
        cloud.fail_next(1, status=429, retry_after="0")
        before = len(cloud.requests)
        assert client.get_run(9001)["id"] == 9001  # the fourth attempt is served
        assert len(cloud.requests) - before == 4
        cloud.fail_next(4, status=502)
        with pytest.raises(DbtCloudUnavailable, match=r"still failed after 4 attempt\(s\): HTTP 502") as raised:
            client.get_run(9001)
    assert raised.value.exit_code == 3 and "Nothing was synced" in str(raised.value)
    assert cloud.token not in str(raised.value)


# ------------------------------------------------------------------------------ serve


@pytest.fixture(scope="module")
def warehouse(duckdb_build, tmp_path_factory) -> dict[str, str]:
    """A copy of the DuckDB build: serve's ledger and the syncs' state stay out of the shared one."""
    directory = tmp_path_factory.mktemp("cloud_warehouse")
    for path in duckdb_build.workdir.glob("shop.duckdb*"):
        shutil.copy(path, directory / path.name)
    return {"CIO_DUCKDB_PATH": str(directory / "shop.duckdb"), "CIO_TEST_SCHEMA": "main"}


@pytest.fixture(scope="module")
def customerio():
    with FakeCustomerIO(site_id=SITE, api_key=KEY) as server:
        yield server


class Serve:
    """`cio-export serve` as a process, its JSON log in a file."""

    def __init__(self, workdir: Path, env: dict[str, str], vars_: dict | None) -> None:
        self.workdir, self.env, self.vars = workdir, env, vars_
        self.config = workdir / "cio_serve.yml"
        self.config.write_text(
            "jobs:\n"
            + "".join(
                f'  "{job}":\n    select: "tag:cio"\n    args: ["--state-schema", "cio_state_{job}"]\n'
                for job in (JOB_GOOD, JOB_TESTS_FAILED, JOB_ERRORED)
            )
        )
        self.process: subprocess.Popen | None = None
        self.url = ""
        self.log = workdir / "serve.log"

    def start(self) -> None:
        offset = self.log.stat().st_size if self.log.exists() else 0
        cmd = [sys.executable, "-m", "cio_sync.cli", "serve", "--config", str(self.config), "--port", "0",
               "--project-dir", str(INTEGRATION_TESTS), "--profiles-dir", str(INTEGRATION_TESTS),
               "--target", "duckdb", "--log-file", str(self.log), "--shutdown-grace", "5"]  # fmt: skip
        if self.vars:
            cmd += ["--vars", json.dumps(self.vars)]
        self.process = subprocess.Popen(cmd, env=self.env, cwd=self.workdir, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for record in self.records(offset):
                if record["event"] == "serve.listening":
                    self.url = record["url"]
                    return
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited {self.process.returncode}: {self.process.stderr.read()}")
            time.sleep(0.1)
        raise AssertionError("serve did not start in time")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(30)
        self.process = None

    def records(self, offset: int = 0) -> list[dict]:
        if not self.log.exists():
            return []
        with self.log.open("rb") as handle:
            handle.seek(offset)
            return [orjson.loads(line) for line in handle.read().splitlines() if line.strip()]

    def post(self, body: bytes, headers: dict[str, str]) -> httpx.Response:
        return httpx.post(f"{self.url}/webhooks/dbt-cloud", content=body, headers=headers, timeout=10)

    def deliver(self, event: dict, secret: str = SECRET) -> httpx.Response:
        return self.post(*signed_webhook(event, secret))

    def health(self) -> dict:
        return httpx.get(f"{self.url}/health", timeout=5).json()

    def wait_for(self, run_id: int, timeout: float = 90) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entry = next((r for r in self.health()["recent"] if r["run_id"] == str(run_id)), None)
            if entry and entry["status"] not in ("queued", "running"):
                return entry
            time.sleep(0.2)
        raise AssertionError(f"run {run_id} not finished: {self.health()}; log: {self.records()[-10:]}")


@pytest.fixture(scope="module")
def serve(duckdb_build, warehouse, customerio, cloud, tmp_path_factory):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CUSTOMERIO_", "DBT_CLOUD_"))}
    env.update(
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
        CUSTOMERIO_SITE_ID=SITE,
        CUSTOMERIO_API_KEY=KEY,
        CUSTOMERIO_TRACK_URL=customerio.url,
        DBT_CLOUD_WEBHOOK_SECRET=SECRET,
        **warehouse,
        **cloud.env(),
    )
    process = Serve(tmp_path_factory.mktemp("serve"), env, duckdb_build.vars)
    process.start()
    yield process
    process.stop()


def test_missing_or_bad_signatures_are_refused_and_do_nothing(serve, cloud, customerio):
    customerio.reset()
    event = cloud.webhook_event(5001)
    body, headers = signed_webhook(event, "not-the-secret")
    assert serve.post(body, headers).status_code == 401
    assert serve.post(body, {"Content-Type": "application/json"}).status_code == 401
    tampered = json.dumps({**event, "data": {**event["data"], "runId": "5999"}}).encode()
    assert serve.post(tampered, headers).status_code == 401
    assert serve.health()["recent"] == [] and customerio.stats()["requests"] == 0
    assert any(r["event"] == "webhook.unauthorized" and r["http_status"] == 401 for r in serve.records())


def test_malformed_oversized_and_foreign_deliveries(serve, cloud):
    body, headers = signed_webhook(b"{not json", SECRET)
    assert serve.post(body, headers).status_code == 400
    big = b'{"pad": "' + b"x" * (1_048_576 + 10) + b'"}'
    assert serve.post(*signed_webhook(big, SECRET)).status_code == 413
    started = cloud.webhook_event(5001, event_type="job.run.started")
    assert serve.deliver(started).json()["status"] == "ignored"
    other_job = cloud.webhook_event(9001)  # job 4100 is not configured
    assert serve.deliver(other_job).json() == {"status": "ignored", "reason": "job 4100 is not configured"}
    assert serve.health()["recent"] == []


def test_a_signed_completed_run_is_synced_once(serve, cloud, customerio, duckdb_build):
    customerio.reset()
    started = time.monotonic()
    response = serve.deliver(cloud.webhook_event(5001))
    assert response.status_code == 202 and time.monotonic() - started < 5
    assert response.json()["status"] == "queued"
    assert serve.wait_for(5001)["status"] == "synced"
    people = customerio.people()
    assert len(people) == 8 and all(key.startswith("id:") for key in people)
    events = customerio.events()
    assert events and {e["name"] for e in events} >= {"order_placed", "cart_abandoned"}
    requests = customerio.stats()["requests"]
    # dbt Cloud redelivers: nothing happens again.
    again = serve.deliver(cloud.webhook_event(5001))
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    time.sleep(1.0)
    assert customerio.stats()["requests"] == requests
    finished = [r for r in serve.records() if r["event"] == "sync.finished" and r["run_id"] == "5001"]
    assert len(finished) == 1 and finished[0]["exit_code"] == 0
    assert set(finished[0]["models"].values()) == {"success"}


def test_an_errored_run_syncs_nothing(serve, cloud, customerio):
    customerio.reset()
    assert serve.deliver(cloud.webhook_event(5002)).status_code == 202
    entry = serve.wait_for(5002)
    assert entry["status"] == "skipped_errored" and "cio_event_order_placed" in entry["detail"]
    assert customerio.stats()["requests"] == 0


def test_a_run_whose_tests_failed_syncs_only_the_models_whose_gates_pass(serve, cloud, customerio):
    customerio.reset()
    assert serve.deliver(cloud.webhook_event(5003)).status_code == 202
    assert serve.wait_for(5003)["status"] == "partial"
    assert customerio.people() == {}  # cio_people's test failed
    # This job's state has never synced cio_people: the events wait for their people's first
    # identify instead of reaching profiles Customer.io does not have.
    assert customerio.events() == []
    finished = next(r for r in serve.records() if r["event"] == "sync.finished" and r["run_id"] == "5003")
    assert finished["models"]["cio_people"] == "blocked"
    assert finished["models"]["cio_event_order_placed"] == "success"


def test_a_replayed_run_does_nothing_after_a_restart(serve, cloud, customerio, warehouse):
    # The runs the tests above deliver, whichever of them ran first (a duplicate is a no-op).
    for run_id in (5001, 5002, 5003):
        assert serve.deliver(cloud.webhook_event(run_id)).status_code in (200, 202)
        serve.wait_for(run_id)
    serve.stop()
    assert serve.records()[-1]["event"] == "serve.stopped"
    with duckdb.connect(warehouse["CIO_DUCKDB_PATH"]) as db:
        ledger = dict(db.sql("select run_id, status from cio_sync_state.cio_cloud_runs").fetchall())
        # A run a killed receiver left half done: the next start resumes it.
        db.execute("insert into cio_sync_state.cio_cloud_runs values "
                   "('5004', '4201', current_timestamp, 'running', current_timestamp, null)")  # fmt: skip
    assert ledger == {"5001": "synced", "5002": "skipped_errored", "5003": "partial"}
    customerio.reset()
    serve.start()
    assert serve.health()["runs_remembered"] == 4
    replay = serve.deliver(cloud.webhook_event(5001))
    assert replay.status_code == 200 and replay.json()["run_state"] == "synced"
    assert serve.wait_for(5004)["status"] == "synced"
    assert any(r["event"] == "run.resumed" and r["run_id"] == "5004" for r in serve.records())
    # Nothing changed since run 5001 synced the same build into this job's state: nothing resent.
    assert customerio.stats()["requests"] <= 1  # the region preflight
    assert serve.deliver(cloud.webhook_event(5004)).json()["status"] == "duplicate"


def test_run_with_dbt_cloud_run_uses_that_runs_build_step(cloud, build_artifacts, duckdb_build, warehouse):
    """`cio-export run --dbt-cloud-run RUN_ID`: the artifacts come from dbt Cloud, not target/."""
    proc = duckdb_build.cio_export("--select", "tag:cio", "--dbt-cloud-run", "9001", "--dry-run", "--json",
                                   env={**cloud.env(), **warehouse})
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["metadata"]["dbt_invocation_id"] == build_artifacts["manifest"]["metadata"]["invocation_id"]
    assert {r["status"] for r in summary["results"]} == {"success"}
    proc = duckdb_build.cio_export("--select", "tag:cio", "--dbt-cloud-run", "404404", "--dry-run",
                                   env={**cloud.env(), **warehouse})
    assert proc.returncode == 2 and "404404" in proc.stderr
