"""dbt Cloud: sync the models of a dbt Cloud job run, on demand or from its webhook.

Two entry points share this module:

* :func:`fetch_run_artifacts` downloads ``manifest.json`` and ``run_results.json`` of the step
  of a run that built the models (``dbt build``, or ``dbt run`` followed by ``dbt test``; not
  the last step, which is often ``dbt docs generate``) from the dbt Cloud Admin API v2 into a
  directory, so the normal exporter can run with ``--target-path`` pointing there. The per-model
  gates then decide, exactly as after a local ``dbt build``.
* :class:`WebhookReceiver` (``cio-export serve``) answers dbt Cloud's ``job.run.completed``
  webhooks: it checks the HMAC signature, answers at once (dbt Cloud gives up after 10
  seconds), remembers every run id it accepted in the warehouse (``cio_cloud_runs`` in the state
  schema) so a redelivery or a restart never syncs a run twice, and runs one sync at a time per
  job in a child process (``cio-export cloud-run``).

Secrets (the API token, the webhook secret) are read from the environment only, never logged
and never put in an error message.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import os
import queue
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import httpx
import orjson

from . import __version__
from ._errors import CioSyncError, ConfigError, CredentialsError
from ._sql import literal
from ._transport import _RetryingGets, _ssl_context

__all__ = [
    "CloudRun",
    "CloudSettings",
    "DbtCloudClient",
    "DbtCloudUnavailable",
    "JobConfig",
    "RunLedger",
    "RunNotSyncable",
    "ServeConfig",
    "WebhookReceiver",
    "choose_steps",
    "classify_run",
    "cloud_settings_from_env",
    "fetch_run_artifacts",
    "load_serve_config",
    "prepare_cloud_target",
    "sign_body",
]

DEFAULT_URL = "https://cloud.getdbt.com"
# The state store's default (_state.DEFAULT_SCHEMA), written here so that this module does not
# load the state store.
DEFAULT_STATE_SCHEMA = "cio_sync_state"
LEDGER_TABLE = "cio_cloud_runs"
RUN_INFO_FILE = "dbt_cloud_run.json"
MAX_BODY_BYTES = 1_048_576
COMPLETED_EVENT = "job.run.completed"

# dbt Cloud run (and run step) status codes.
STATUS_QUEUED, STATUS_STARTING, STATUS_RUNNING, STATUS_SUCCESS, STATUS_ERROR, STATUS_CANCELLED = 1, 2, 3, 10, 20, 30
_STATUS_NAMES = {1: "Queued", 2: "Starting", 3: "Running", 10: "Success", 20: "Error", 30: "Cancelled"}

# dbt sub-commands, to read a step's command ("Invoke dbt with `dbt --log-format json build -s x`").
_DBT_SUBCOMMANDS = frozenset(
    {
        "build", "run", "test", "seed", "snapshot", "docs", "compile", "source", "run-operation", "deps",
        "ls", "list", "parse", "clone", "retry", "show", "debug", "freshness", "init", "clean",
    }
)  # fmt: skip
_NODE_ERROR_STATUSES = frozenset({"error", "runtime error"})
_ID = re.compile(r"^[0-9]{1,20}$")
_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
ERRORED_RUN_POLICIES = ("skip", "gate")


class DbtCloudUnavailable(CioSyncError):
    """dbt Cloud kept failing (5xx, 429, timeouts) after every retry: nothing was synced; run
    again later."""

    exit_code = 3


class RunNotSyncable(CioSyncError):
    """The run errored or was cancelled: nothing is synced from it (exit 1, like a blocked model)."""

    exit_code = 1


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CloudSettings:
    """How to reach the dbt Cloud Admin API (and the webhook secret of `serve`)."""

    account_id: str
    api_token: str = field(repr=False)
    base_url: str = DEFAULT_URL
    webhook_secret: str | None = field(default=None, repr=False)
    ca_bundle: str | None = None
    timeout: float = 60.0
    max_retries: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 30.0

    @property
    def api_root(self) -> str:
        return f"{self.base_url}/api/v2/accounts/{self.account_id}"


def _normalise_url(url: str) -> str:
    url = url.strip().rstrip("/")
    for suffix in ("/api/v2", "/api"):
        if url.endswith(suffix):
            url = url[: -len(suffix)]
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"DBT_CLOUD_URL {url!r} must start with https:// (your dbt Cloud access URL)")
    return url


def cloud_settings_from_env(
    env: Mapping[str, str] | None = None,
    *,
    base_url: str | None = None,
    account_id: str | int | None = None,
    require_token: bool = True,
    require_secret: bool = False,
) -> CloudSettings:
    """Settings from DBT_CLOUD_URL (default https://cloud.getdbt.com: use your region's or
    cell's access URL), DBT_CLOUD_ACCOUNT_ID, DBT_CLOUD_API_TOKEN, DBT_CLOUD_WEBHOOK_SECRET and
    DBT_CLOUD_CA_BUNDLE; ``base_url``/``account_id`` (command-line flags) win over the
    environment. Secrets come from the environment only."""
    env = os.environ if env is None else env
    url = _normalise_url(base_url or env.get("DBT_CLOUD_URL", "") or DEFAULT_URL)
    account = str(account_id if account_id is not None else env.get("DBT_CLOUD_ACCOUNT_ID", "")).strip()
    token = env.get("DBT_CLOUD_API_TOKEN", "").strip()
    secret = env.get("DBT_CLOUD_WEBHOOK_SECRET", "").strip() or None
    ca_bundle = env.get("DBT_CLOUD_CA_BUNDLE", "").strip() or None
    problems = []
    if not account:
        problems.append("DBT_CLOUD_ACCOUNT_ID (or --account-id) is not set")
    elif not _ID.match(account):
        problems.append(f"the dbt Cloud account id must be a number, not {account!r}")
    if require_token and not token:
        problems.append(
            "DBT_CLOUD_API_TOKEN is not set: create a service token with read access to job runs "
            "(dbt Cloud: Account settings > Service tokens, permission 'Job Viewer' or higher)"
        )
    if require_secret and not secret:
        problems.append(
            "DBT_CLOUD_WEBHOOK_SECRET is not set: it is the secret dbt Cloud shows once when the webhook is "
            "created (hmac_secret); without it no request can be authenticated"
        )
    if ca_bundle and not os.path.isfile(ca_bundle):
        problems.append(f"DBT_CLOUD_CA_BUNDLE: no file at {ca_bundle}")
    if problems:
        error = CredentialsError if any("TOKEN" in p or "SECRET" in p for p in problems) else ConfigError
        raise error("; ".join(problems))
    return CloudSettings(
        account_id=account, api_token=token, base_url=url, webhook_secret=secret, ca_bundle=ca_bundle
    )


# --------------------------------------------------------------------------------------------
# Admin API client
# --------------------------------------------------------------------------------------------


class DbtCloudClient(_RetryingGets):
    """The few Admin API v2 calls needed: a run with its steps, a job's latest runs, artifacts."""

    service = "dbt Cloud"
    unavailable = DbtCloudUnavailable
    unavailable_advice = "Nothing was synced; run again later"
    ca_bundle_hint = "Set DBT_CLOUD_CA_BUNDLE to the CA of your proxy"

    def __init__(self, settings: CloudSettings, *, transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings
        self._rng = random.Random()
        self._http = httpx.Client(
            headers={
                # dbt Cloud accepts "Token <token>" (and "Bearer <token>") for API v2.
                "Authorization": f"Token {settings.api_token}",
                "Accept": "application/json",
                "User-Agent": f"cio-sync/{__version__}",
            },
            timeout=httpx.Timeout(settings.timeout),
            verify=_ssl_context(settings.ca_bundle),
            transport=transport,
            # Artifacts may be served through a redirect; httpx drops Authorization when the
            # redirect leaves the origin, so the token never reaches another host.
            follow_redirects=True,
        )

    def __enter__(self) -> DbtCloudClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def get_run(self, run_id: int | str) -> dict[str, Any]:
        """The run with its steps and job (``include_related=["run_steps","job"]``)."""
        document = self._request(
            f"/runs/{_checked_id(run_id, 'run')}/",
            params={"include_related": '["run_steps","job"]'},
            what=f"run {run_id}",
        )
        run = document.get("data") if isinstance(document, dict) else None
        if not isinstance(run, dict):
            raise ConfigError(f"run {run_id}: the dbt Cloud API answered without run data")
        return run

    def latest_runs(self, job_id: int | str, limit: int = 10) -> list[dict[str, Any]]:
        """The job's most recent runs, newest first."""
        document = self._request(
            "/runs/",
            params={"job_definition_id": _checked_id(job_id, "job"), "order_by": "-id", "limit": limit},
            what=f"runs of job {job_id}",
        )
        runs = document.get("data") if isinstance(document, dict) else None
        return [run for run in runs or () if isinstance(run, dict)]

    def artifact(self, run_id: int | str, path: str, step: int | None) -> bytes | None:
        """An artifact of one step of a run; None when that step has no such file."""
        params = {"step": step} if step is not None else None
        return self._request(
            f"/runs/{_checked_id(run_id, 'run')}/artifacts/{path}",
            params=params,
            what=f"{path} of run {run_id}" + (f" step {step}" if step is not None else ""),
            raw=True,
            missing_ok=True,
        )

    def _request(
        self, path: str, *, params: dict | None, what: str, raw: bool = False, missing_ok: bool = False
    ) -> Any:
        return self._get_with_retries(self.settings.api_root + path, params=params, what=what, raw=raw,
                                      missing_ok=missing_ok)

    # -- _RetryingGets hooks --------------------------------------------------------------------
    def _error_text(self, response: httpx.Response) -> str:
        return self._message(response)

    def _refused(self, status: int) -> Exception:
        s = self.settings
        return CredentialsError(
            f"dbt Cloud refused the API token for account {s.account_id} (HTTP {status} from {s.base_url}): check "
            "DBT_CLOUD_API_TOKEN, its permissions, DBT_CLOUD_ACCOUNT_ID and DBT_CLOUD_URL (your region's access URL)")

    def _not_found(self, what: str) -> Exception:
        return ConfigError(f"{what}: not found in dbt Cloud account {self.settings.account_id} (HTTP 404)")

    def _message(self, response: httpx.Response) -> str:
        try:
            status = response.json().get("status") or {}
            text = status.get("user_message") or status.get("developer_message") or response.text
        except (ValueError, AttributeError):
            text = response.text
        text = self._scrub(str(text)).strip()
        return text[:300] or "(empty body)"

    def _scrub(self, text: str) -> str:
        return text.replace(self.settings.api_token, "***") if self.settings.api_token else text


def _checked_id(value: int | str, what: str) -> str:
    text = str(value).strip()
    if not _ID.match(text):
        raise ConfigError(f"a dbt Cloud {what} id is a number, not {value!r}")
    return text


# --------------------------------------------------------------------------------------------
# Steps, artifacts and run classification
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunStep:
    index: int
    name: str
    command: str | None  # "dbt build --select tag:cio"
    subcommand: str | None  # "build"
    status: int | None

    @classmethod
    def from_api(cls, step: Mapping[str, Any]) -> RunStep:
        name = str(step.get("name") or "")
        quoted = re.search(r"`([^`]*)`", name)
        command = quoted.group(1).strip() if quoted else (name.strip() if name.strip().startswith("dbt ") else None)
        status = step.get("status")
        return cls(
            index=int(step.get("index") or 0),
            name=name,
            command=command,
            subcommand=dbt_subcommand(command) if command else None,
            status=status if isinstance(status, int) else None,
        )

    @property
    def ran(self) -> bool:
        return self.status in (STATUS_SUCCESS, STATUS_ERROR)

    def describe(self) -> str:
        return f"step {self.index} ({self.name})"


def dbt_subcommand(command: str) -> str | None:
    """``build`` for ``dbt --warn-error build -s x``; None when it is not a dbt command."""
    try:
        tokens = shlex.split(command)
    except ValueError:
        tokens = command.split()
    if not tokens or tokens[0] != "dbt":
        return None
    for token in tokens[1:]:
        if token in _DBT_SUBCOMMANDS:
            return "docs" if token == "docs" else token
    return None


def choose_steps(run: Mapping[str, Any]) -> tuple[RunStep, RunStep | None]:
    """The step whose artifacts to sync from: the last ``dbt build`` that ran; else the last
    ``dbt run`` together with the first ``dbt test`` after it (their results are merged).
    The default artifacts of a run are its last step's, often ``dbt docs generate``, whose
    run_results.json builds nothing: that step is never chosen."""
    steps = sorted((RunStep.from_api(s) for s in run.get("run_steps") or () if isinstance(s, Mapping)),
                   key=lambda s: s.index)  # fmt: skip
    if not steps:
        raise ConfigError(
            f"run {run.get('id')}: dbt Cloud listed no steps for it (include_related=run_steps), so the step "
            "that built the models cannot be found"
        )

    def last_of(kind: str, after: int = 0) -> RunStep | None:
        candidates = [s for s in steps if s.subcommand == kind and s.index > after]
        ran = [s for s in candidates if s.ran]
        return (ran or candidates or [None])[-1]

    build = last_of("build")
    if build is not None:
        return build, None
    run_step = last_of("run")
    if run_step is not None:
        tests = [s for s in steps if s.subcommand == "test" and s.index > run_step.index]
        return run_step, (tests[0] if tests else None)
    listed = "; ".join(f"{s.index}: {s.name}" for s in steps)
    raise ConfigError(
        f"run {run.get('id')}: no step ran `dbt build` or `dbt run` (steps: {listed}); add `dbt build` to the job"
    )


def classify_run(run: Mapping[str, Any], run_results: Mapping[str, Any] | None) -> tuple[str, str | None]:
    """What a finished run means for syncing, with the reason:

    * ``success``: the run succeeded, or only a step after the build failed;
    * ``tests_failed``: the run errored only because tests failed (results ``fail``): the
      per-model gates block exactly the models those tests are attached to;
    * ``errored``: dbt could not build or run something (a node ``error``, or no run_results.json
      for the build step: it never ran or failed before writing results);
    * ``cancelled``.

    Raises ConfigError for a run that has not finished."""
    status = run.get("status")
    if run.get("is_cancelled") or status == STATUS_CANCELLED:
        return "cancelled", "the run was cancelled"
    if status in (STATUS_QUEUED, STATUS_STARTING, STATUS_RUNNING) or run.get("in_progress"):
        raise ConfigError(f"run {run.get('id')} has not finished ({_STATUS_NAMES.get(status, status)}): wait for it")
    if run_results is None:
        if status == STATUS_SUCCESS:
            return "success", None
        return "errored", "the build step wrote no run_results.json (it failed before building anything)"
    results = [r for r in run_results.get("results") or () if isinstance(r, Mapping)]
    errors = [r for r in results if r.get("status") in _NODE_ERROR_STATUSES]
    if errors:
        names = ", ".join(str(r.get("unique_id")) for r in errors[:5])
        more = f" and {len(errors) - 5} more" if len(errors) > 5 else ""
        return "errored", f"{len(errors)} node(s) errored: {names}{more}"
    if status == STATUS_SUCCESS:
        return "success", None
    failed = [r for r in results if r.get("status") == "fail"]
    if failed:
        return "tests_failed", f"{len(failed)} test(s) failed; models whose tests passed are synced"
    return "success", "the build step succeeded; a later step of the run failed"


@dataclass
class CloudRun:
    """A run whose artifacts were downloaded, and what they mean."""

    run_id: int
    job_id: int | None
    status: int | None
    status_humanized: str
    step: int
    step_name: str
    test_step: int | None
    classification: str
    reason: str | None
    target_path: Path
    invocation_id: str | None
    finished_at: str | None = None

    @property
    def syncable(self) -> bool:
        return self.classification in ("success", "tests_failed")

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "job_id": self.job_id,
            "status": self.status,
            "status_humanized": self.status_humanized,
            "step": self.step,
            "step_name": self.step_name,
            "test_step": self.test_step,
            "classification": self.classification,
            "reason": self.reason,
            "target_path": str(self.target_path),
            "invocation_id": self.invocation_id,
            "finished_at": self.finished_at,
        }


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{what} from dbt Cloud is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{what} from dbt Cloud is not a JSON object")
    return document


def _merge_run_and_test(run_results: dict[str, Any], test_results: dict[str, Any], steps: str) -> dict[str, Any]:
    """One run_results.json from a `dbt run` step and the `dbt test` step after it, so the
    gates see the models' results and their tests' results together. The tests ran on the same
    commit in the same run; the merged file keeps the run step's invocation id (its manifest's)."""
    merged = dict(run_results)
    tested = {r.get("unique_id") for r in test_results.get("results") or () if isinstance(r, dict)}
    merged["results"] = [
        r for r in run_results.get("results") or () if isinstance(r, dict) and r.get("unique_id") not in tested
    ] + [r for r in test_results.get("results") or () if isinstance(r, dict)]
    metadata = dict(merged.get("metadata") or {})
    metadata["cio_sync_merged_steps"] = steps
    metadata["cio_sync_test_invocation_id"] = (test_results.get("metadata") or {}).get("invocation_id")
    merged["metadata"] = metadata
    return merged


def _pick_run(client: DbtCloudClient, run_id: int | str | None, job_id: int | str | None) -> dict[str, Any]:
    if (run_id is None) == (job_id is None):
        raise ConfigError("give exactly one of a dbt Cloud run id or a job id (its latest finished run)")
    if run_id is not None:
        return client.get_run(run_id)
    runs = client.latest_runs(job_id)
    done = (STATUS_SUCCESS, STATUS_ERROR, STATUS_CANCELLED)
    finished = [r for r in runs if r.get("is_complete") or r.get("status") in done]
    if not finished:
        raise ConfigError(f"job {job_id} has no finished run among its {len(runs)} most recent run(s)")
    return client.get_run(finished[0]["id"])


def fetch_run_artifacts(
    settings: CloudSettings,
    run_id: int | str | None = None,
    job_id: int | str | None = None,
    dest: Path | None = None,
    *,
    client: DbtCloudClient | None = None,
) -> CloudRun:
    """Download ``manifest.json`` and ``run_results.json`` of the run's build step into ``dest``
    (created if missing) and classify the run. ``job_id`` picks the job's latest finished run.
    Writes ``dbt_cloud_run.json`` describing the run next to them."""
    if dest is None:
        raise ConfigError("fetch_run_artifacts needs a destination directory")
    own = client is None
    client = client or DbtCloudClient(settings)
    try:
        run = _pick_run(client, run_id, job_id)
        rid = int(run.get("id") or run_id)
        step, test_step = choose_steps(run)
        manifest = client.artifact(rid, "manifest.json", step.index)
        if manifest is None and run.get("status") == STATUS_SUCCESS:
            raise ConfigError(f"run {rid} {step.describe()} has no manifest.json (were artifacts saved?)")
        manifest_doc = _json_object(manifest, f"manifest.json of run {rid}") if manifest is not None else None
        results_raw = client.artifact(rid, "run_results.json", step.index) if manifest is not None else None
        run_results = _json_object(results_raw, f"run_results.json of run {rid}") if results_raw is not None else None
        if run_results is not None and test_step is not None:
            tests_raw = client.artifact(rid, "run_results.json", test_step.index)
            if tests_raw is not None:
                run_results = _merge_run_and_test(
                    run_results,
                    _json_object(tests_raw, f"run_results.json of run {rid} step {test_step.index}"),
                    f"{step.index}+{test_step.index}",
                )
    finally:
        if own:
            client.close()
    classification, reason = classify_run(run, run_results)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if manifest is not None:
        (dest / "manifest.json").write_bytes(manifest)
    if run_results is not None:
        (dest / "run_results.json").write_bytes(
            results_raw if test_step is None else orjson.dumps(run_results)  # type: ignore[arg-type]
        )
    job = run.get("job_definition_id") or (run.get("job") or {}).get("id")
    cloud_run = CloudRun(
        run_id=rid,
        job_id=int(job) if job is not None else None,
        status=run.get("status"),
        status_humanized=str(run.get("status_humanized") or _STATUS_NAMES.get(run.get("status"), "unknown")),
        step=step.index,
        step_name=step.name,
        test_step=test_step.index if test_step else None,
        classification=classification,
        reason=reason,
        target_path=dest,
        invocation_id=((manifest_doc or {}).get("metadata") or {}).get("invocation_id"),
        finished_at=run.get("finished_at"),
    )
    (dest / RUN_INFO_FILE).write_bytes(orjson.dumps(cloud_run.as_dict(), option=orjson.OPT_INDENT_2))
    return cloud_run


def prepare_cloud_target(
    run_id: int | str | None = None,
    job_id: int | str | None = None,
    dest: Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    errored_runs: str = "skip",
    base_url: str | None = None,
    account_id: str | None = None,
    note: Callable[[str], None] | None = None,
) -> Path:
    """A target path holding the dbt Cloud run's artifacts, for ``cio-export run``: the one-liner
    behind ``run --dbt-cloud-run RUN_ID`` / ``--dbt-cloud-job JOB_ID``.

    Settings come from DBT_CLOUD_* (see :func:`cloud_settings_from_env`). Without ``dest`` a
    temporary directory is used and removed when the process exits. An errored or cancelled run
    raises :class:`RunNotSyncable` (exit 1) unless ``errored_runs="gate"``, which lets the
    per-model gates decide anyway. A run whose only problem is failing tests is synced: its
    gates block the models those tests belong to."""
    if errored_runs not in ERRORED_RUN_POLICIES:
        raise ConfigError(f"errored runs are handled with 'skip' or 'gate', not {errored_runs!r}")
    settings = cloud_settings_from_env(env, base_url=base_url, account_id=account_id)
    if dest is None:
        dest = Path(tempfile.mkdtemp(prefix="cio-export-dbt-cloud-"))
        import atexit

        atexit.register(shutil.rmtree, dest, True)
    cloud_run = fetch_run_artifacts(settings, run_id=run_id, job_id=job_id, dest=dest)
    say = note or (lambda message: print(message, file=sys.stderr))
    say(
        f"dbt Cloud run {cloud_run.run_id} (job {cloud_run.job_id}, {cloud_run.status_humanized}): artifacts of "
        f"step {cloud_run.step} ({cloud_run.step_name})"
        + (f" merged with the tests of step {cloud_run.test_step}" if cloud_run.test_step else "")
        + f"; {cloud_run.classification}" + (f": {cloud_run.reason}" if cloud_run.reason else "")
    )
    if not cloud_run.syncable:
        if errored_runs == "skip":
            raise RunNotSyncable(
                f"dbt Cloud run {cloud_run.run_id} {cloud_run.classification}"
                + (f" ({cloud_run.reason})" if cloud_run.reason else "")
                + ": nothing synced. Fix the run and sync a successful one"
                + (", or pass --errored-runs gate to let the per-model gates decide" if cloud_run.step else "")
            )
        if not (dest / "manifest.json").is_file():
            raise RunNotSyncable(f"dbt Cloud run {cloud_run.run_id} produced no artifacts: nothing to sync")
        say(f"--errored-runs gate: syncing the models of run {cloud_run.run_id} whose gates pass")
    return dest


# --------------------------------------------------------------------------------------------
# serve: configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobConfig:
    """What to sync when a run of one dbt Cloud job completes."""

    job_id: str
    select: tuple[str, ...] = ("tag:cio",)
    exclude: tuple[str, ...] = ()
    target: str | None = None
    vars: str | None = None
    errored_runs: str = "skip"
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServeConfig:
    jobs: dict[str, JobConfig]
    account_id: str | None = None
    state_schema: str | None = None


_SELECTION = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
SERVE_CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["jobs"],
    "properties": {
        "account_id": {"type": ["integer", "string"], "pattern": "^[0-9]+$"},
        "state_schema": {"type": "string", "pattern": _SCHEMA_NAME.pattern},
        "jobs": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"pattern": "^[0-9]{1,20}$"},
            "additionalProperties": {
                "type": ["object", "null"],
                "additionalProperties": False,
                "properties": {
                    "select": _SELECTION,
                    "exclude": _SELECTION,
                    "target": {"type": "string", "minLength": 1},
                    "vars": {"type": ["object", "string"]},
                    "errored_runs": {"enum": list(ERRORED_RUN_POLICIES)},
                    "args": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
}


def _selection(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else list(value)
    return tuple(part for item in items for part in str(item).split() if part)


def load_serve_config(path: Path) -> ServeConfig:
    """Read and validate a serve config file (YAML); errors name the file and the key."""
    import jsonschema
    import yaml  # PyYAML, a dependency of dbt-core

    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if isinstance(document, dict) and isinstance(document.get("jobs"), dict):
        document["jobs"] = {str(k): v for k, v in document["jobs"].items()}
    errors = sorted(jsonschema.Draft202012Validator(SERVE_CONFIG_SCHEMA).iter_errors(document), key=str)
    if errors:
        lines = [f"  {'.'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}" for e in errors]
        raise ConfigError(f"{path}: invalid serve configuration\n" + "\n".join(lines))
    jobs = {}
    for job_id, spec in document["jobs"].items():
        spec = spec or {}
        vars_ = spec.get("vars")
        jobs[job_id] = JobConfig(
            job_id=job_id,
            select=_selection(spec.get("select")) or ("tag:cio",),
            exclude=_selection(spec.get("exclude")),
            target=spec.get("target"),
            vars=json.dumps(vars_) if isinstance(vars_, dict) else vars_,
            errored_runs=spec.get("errored_runs", "skip"),
            args=tuple(spec.get("args") or ()),
        )
    account = document.get("account_id")
    return ServeConfig(jobs=jobs, account_id=str(account) if account is not None else None,
                       state_schema=document.get("state_schema"))  # fmt: skip


def sign_body(body: bytes, secret: str) -> str:
    """What dbt Cloud puts in the Authorization header: hex HMAC-SHA256 of the raw body."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


# --------------------------------------------------------------------------------------------
# serve: structured log
# --------------------------------------------------------------------------------------------


class JsonLog:
    """One JSON object per line: ``{"ts", "level", "event", ...}``."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self._lock = threading.Lock()

    def __call__(self, event: str, level: str = "info", **fields: Any) -> None:
        record = {"ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "level": level,
                  "event": event, **fields}  # fmt: skip
        line = orjson.dumps(record, default=str).decode()
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()


class _JsonLogHandler(logging.Handler):
    """Writes uvicorn's own messages through the JSON log."""

    def __init__(self, log: JsonLog) -> None:
        super().__init__()
        self.log = log

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.log("server", record.levelname.lower(), message=record.getMessage())
        except Exception:  # a log line must never break the server
            self.handleError(record)


# --------------------------------------------------------------------------------------------
# serve: the durable run ledger
# --------------------------------------------------------------------------------------------


def _sql_text(value: str | None, limit: int = 1000) -> str:
    return literal(value, limit)


def _utc_text(moment: datetime | None = None) -> str:
    moment = moment or datetime.now(timezone.utc)
    return "'" + moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S") + "'"


class RunLedger:
    """``<state schema>.cio_cloud_runs(run_id, job_id, received_at, status, updated_at, detail)``
    in the warehouse, through the dbt profile's connection: every run id the receiver accepted,
    so a redelivery or a restart never syncs a run twice.

    The connection is opened per operation and closed right after (DuckDB allows one process at
    a time on its file, and the syncs run in child processes); operations are serialized."""

    FINAL_PENDING = ("queued", "running")

    def __init__(self, ctx, schema: str = DEFAULT_STATE_SCHEMA, *, lock_wait: float = 120.0) -> None:
        if not _SCHEMA_NAME.match(schema):
            raise ConfigError(f"--state-schema must be a plain SQL identifier, not {schema!r}")
        self.ctx = ctx
        self.schema = schema
        self.table = f"{schema}.{LEDGER_TABLE}"
        self.lock_wait = lock_wait
        self._lock = threading.Lock()
        self._adapter = None
        self.adapter_type: str | None = None

    def open(self) -> dict[str, tuple[str, str]]:
        """Connect, create the schema and table when missing; return ``{run_id: (job_id, status)}``."""
        from dbt.contracts.graph.manifest import Manifest

        from ._dbt import Artifacts, open_adapter

        # Raw SQL only: no macros are needed, so an empty manifest serves the adapter.
        self._adapter = open_adapter(self.ctx, Artifacts(Manifest(), {}, None))
        self.adapter_type = self._adapter.type()
        self._run(
            [
                f"create schema if not exists {self.schema}",
                f"create table if not exists {self.table} (run_id varchar(32) not null, job_id varchar(32) not null, "
                "received_at timestamp not null, status varchar(32) not null, updated_at timestamp, "
                "detail varchar(1000))",
            ]
        )
        rows = self._run([f"select run_id, job_id, status from {self.table}"], fetch=True)
        return {str(r[0]): (str(r[1]), str(r[2])) for r in rows}

    @property
    def exclusive(self) -> bool:
        """True when the warehouse admits one process at a time (DuckDB)."""
        return self.adapter_type == "duckdb"

    def record(
        self, run_id: str, job_id: str, status: str, detail: str | None = None, *, timeout: float | None = None
    ) -> bool:
        """Insert or update the run's row; False when the ledger was busy for ``timeout`` seconds."""
        statements = [
            f"update {self.table} set status = {_sql_text(status, 32)}, updated_at = {_utc_text()}, "
            f"detail = {_sql_text(detail)} where run_id = {_sql_text(run_id)}",
            f"insert into {self.table} (run_id, job_id, received_at, status, updated_at, detail) "
            f"select {_sql_text(run_id)}, {_sql_text(job_id)}, {_utc_text()}, {_sql_text(status, 32)}, {_utc_text()}, "
            f"{_sql_text(detail)} where not exists (select 1 from {self.table} where run_id = {_sql_text(run_id)})",
        ]
        return self._run(statements, timeout=timeout) is not None

    def _run(self, statements: list[str], *, fetch: bool = False, timeout: float | None = None) -> list[tuple] | None:
        from ._dbt import close_adapter

        if not self._lock.acquire(timeout=-1 if timeout is None else timeout):
            return None
        try:
            deadline = time.monotonic() + (self.lock_wait if timeout is None else timeout)
            delay = 0.2
            while True:
                try:
                    rows: list[tuple] = []
                    with self._adapter.connection_named("cio-export-serve"):
                        for sql in statements:
                            _, table = self._adapter.execute(sql, auto_begin=True, fetch=fetch)
                            if fetch:
                                rows = [tuple(r) for r in table.rows]
                        self._adapter.connections.commit_if_has_connection()
                    return rows
                except Exception as exc:
                    # DuckDB: another process (a sync) holds the database file; wait for it.
                    if time.monotonic() + delay > deadline or "lock" not in str(exc).lower():
                        raise ConfigError(f"run ledger {self.table}: {exc}") from None
                    time.sleep(delay)
                    delay = min(delay * 2, 2.0)
                finally:
                    close_adapter(self._adapter)
        finally:
            self._lock.release()


# --------------------------------------------------------------------------------------------
# serve: queue, child processes and the HTTP receiver
# --------------------------------------------------------------------------------------------


@dataclass
class RunRequest:
    run_id: str
    job_id: str
    run_status: str | None
    event_id: str | None = None
    resumed: bool = False


@dataclass
class SyncOutcome:
    status: str
    exit_code: int | None
    detail: str | None
    models: dict[str, str] = field(default_factory=dict)


class ChildLauncher:
    """Runs ``cio-export cloud-run`` for one dbt Cloud run in a child process (dbt and the
    warehouse stay out of the receiver's process) and reads what it reported."""

    def __init__(
        self,
        *,
        dbt_args: list[str],
        cloud_args: list[str],
        work_dir: Path,
        keep_artifacts: bool,
        timeout: float,
        log: JsonLog,
        extra_run_args: list[str] | None = None,
        default_target: str | None = None,
        default_vars: str | None = None,
    ) -> None:
        self.dbt_args = dbt_args
        self.default_target = default_target
        self.default_vars = default_vars
        self.cloud_args = cloud_args
        self.work_dir = work_dir
        self.keep_artifacts = keep_artifacts
        self.timeout = timeout
        self.log = log
        self.extra_run_args = extra_run_args or []
        self._children: dict[str, subprocess.Popen] = {}
        self._lock = threading.Lock()
        self._shutting_down = False

    def command(self, request: RunRequest, job: JobConfig, artifacts: Path) -> list[str]:
        cmd = [sys.executable, "-m", "cio_sync.cli", "cloud-run", "--run-id", request.run_id,
               "--artifacts-dir", str(artifacts), "--errored-runs", job.errored_runs,
               "--json", "--no-progress", *self.cloud_args, *self.dbt_args]  # fmt: skip
        target, vars_ = job.target or self.default_target, job.vars or self.default_vars
        if target:
            cmd += ["--target", target]
        if vars_:
            cmd += ["--vars", vars_]
        cmd += ["--select", *job.select]
        if job.exclude:
            cmd += ["--exclude", *job.exclude]
        return cmd + self.extra_run_args + list(job.args)

    def __call__(self, request: RunRequest, job: JobConfig) -> SyncOutcome:
        artifacts = self.work_dir / f"job_{request.job_id}" / f"run_{request.run_id}"
        shutil.rmtree(artifacts, ignore_errors=True)
        artifacts.mkdir(parents=True)
        cmd = self.command(request, job, artifacts)
        started = time.monotonic()
        self.log("sync.started", run_id=request.run_id, job_id=request.job_id, select=list(job.select),
                 exclude=list(job.exclude), target=job.target)  # fmt: skip
        try:
            # The child needs the API token and the warehouse's credentials, not the webhook secret.
            env = {k: v for k, v in os.environ.items() if k != "DBT_CLOUD_WEBHOOK_SECRET"}
            process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                       stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        except OSError as exc:
            return SyncOutcome("failed", None, f"could not start the sync: {exc}")
        with self._lock:
            self._children[request.run_id] = process
        try:
            stdout, stderr = process.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self._terminate(process)
            stdout, stderr = process.communicate()
            outcome = SyncOutcome("timeout", None, f"the sync took longer than {self.timeout:.0f} s and was stopped")
            self._log_output(request, stderr, "warning")
            return outcome
        finally:
            with self._lock:
                self._children.pop(request.run_id, None)
        if self._shutting_down and process.returncode != 0:
            self._log_output(request, stderr, "warning")
            return SyncOutcome("interrupted", process.returncode, "stopped by the receiver's shutdown")
        outcome = self._outcome(process.returncode, stdout, stderr, artifacts)
        self._log_output(request, stderr, "info" if outcome.exit_code == 0 else "warning")
        self.log("sync.finished", "info" if outcome.exit_code == 0 else "warning", run_id=request.run_id,
                 job_id=request.job_id, status=outcome.status, exit_code=outcome.exit_code, detail=outcome.detail,
                 models=outcome.models, seconds=round(time.monotonic() - started, 2))  # fmt: skip
        if not self.keep_artifacts:
            shutil.rmtree(artifacts, ignore_errors=True)
        return outcome

    def _outcome(self, code: int, stdout: str, stderr: str, artifacts: Path) -> SyncOutcome:
        info: dict[str, Any] = {}
        try:
            info = orjson.loads((artifacts / RUN_INFO_FILE).read_bytes())
        except (OSError, orjson.JSONDecodeError):
            pass
        summary: dict[str, Any] = {}
        try:
            summary = orjson.loads(stdout) if stdout.strip() else {}
        except orjson.JSONDecodeError:
            summary = {}
        models = {r.get("model"): r.get("status") for r in summary.get("results") or () if isinstance(r, dict)}
        last_error = next((line[7:] for line in reversed(stderr.splitlines()) if line.startswith("error: ")), None)
        classification = info.get("classification")
        if classification in ("errored", "cancelled") and not summary:
            return SyncOutcome(f"skipped_{classification}", code, info.get("reason") or last_error, models)
        status = {0: "synced", 1: "partial", 2: "config_error", 3: "undelivered"}.get(code, "failed")
        return SyncOutcome(status, code, last_error or summary.get("error"), models)

    def _log_output(self, request: RunRequest, stderr: str, level: str) -> None:
        lines = [line for line in stderr.splitlines() if line.strip()]
        if lines:
            self.log("sync.output", level, run_id=request.run_id, lines=lines[-40:])

    @staticmethod
    def _terminate(process: subprocess.Popen, grace: float = 10.0) -> None:
        if process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except OSError:
            process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except OSError:
                process.kill()

    def stop_all(self, grace: float) -> None:
        """Stop every sync still running (their runs are resumed at the next start)."""
        with self._lock:
            self._shutting_down = True
            children = list(self._children.values())
        for process in children:
            self._terminate(process, grace)


class JobQueues:
    """One FIFO queue and one worker thread per job: runs of a job are synced one at a time, in
    the order they arrived."""

    def __init__(self, handle: Callable[[RunRequest], None], log: JsonLog) -> None:
        self._handle = handle
        self._log = log
        self._queues: dict[str, queue.Queue] = {}
        self._running: dict[str, str | None] = {}
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def submit(self, request: RunRequest) -> None:
        with self._lock:
            q = self._queues.get(request.job_id)
            if q is None:
                q = self._queues[request.job_id] = queue.Queue()
                self._running[request.job_id] = None
                thread = threading.Thread(target=self._work, args=(request.job_id, q), daemon=True,
                                          name=f"cio-serve-job-{request.job_id}")  # fmt: skip
                self._threads.append(thread)
                thread.start()
        q.put(request)

    def _work(self, job_id: str, q: queue.Queue) -> None:
        while not self._stopping.is_set():
            try:
                request = q.get(timeout=0.2)
            except queue.Empty:
                continue
            if request is None:
                return
            self._running[job_id] = request.run_id
            try:
                self._handle(request)
            except Exception as exc:  # the worker must survive one bad run
                error = f"{type(exc).__name__}: {exc}"
                self._log("sync.crashed", "error", run_id=request.run_id, job_id=job_id, error=error)
            finally:
                self._running[job_id] = None
                q.task_done()

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {job: {"queued": q.qsize(), "running": self._running.get(job)} for job, q in self._queues.items()}

    def running(self) -> bool:
        return any(v["running"] for v in self.snapshot().values())

    def stop_taking(self) -> None:
        """Finish the runs in progress, start no other (queued runs stay queued in the ledger)."""
        self._stopping.set()

    def join(self, timeout: float) -> None:
        self._stopping.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))


class WebhookReceiver:
    """The ASGI app of ``cio-export serve`` and the work behind it."""

    def __init__(
        self,
        *,
        secret: str,
        jobs: Mapping[str, JobConfig],
        account_id: str | None,
        ledger: RunLedger,
        launcher: Callable[[RunRequest, JobConfig], SyncOutcome],
        log: JsonLog,
        max_body: int = MAX_BODY_BYTES,
    ) -> None:
        from starlette.applications import Starlette
        from starlette.routing import Route

        self._secret = secret.encode("utf-8")
        self.jobs = dict(jobs)
        self.account_id = account_id
        self.ledger = ledger
        self.launcher = launcher
        self.log = log
        self.max_body = max_body
        self.handled: dict[str, str] = {}
        self.recent: deque[dict[str, Any]] = deque(maxlen=50)
        self.started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        # DuckDB admits one process at a time on its file: syncs and ledger writes then take
        # turns. Other warehouses let jobs sync side by side (still one run at a time per job).
        self._exclusive = threading.Lock() if ledger.exclusive else None
        self.queues = JobQueues(self._process, log)
        self.app = Starlette(
            routes=[
                Route("/", self.webhook, methods=["POST"]),
                Route("/webhooks/dbt-cloud", self.webhook, methods=["POST"]),
                Route("/health", self.health, methods=["GET"]),
            ]
        )

    # -- startup: what the ledger remembers ---------------------------------------------------

    def load(self, rows: Mapping[str, tuple[str, str]]) -> None:
        """Remember every run in the ledger; requeue the ones a previous process left unfinished."""
        for run_id, (_job_id, status) in rows.items():
            self.handled[run_id] = status
        for run_id, (job_id, status) in sorted(rows.items(), key=lambda kv: int(kv[0])):
            if status not in RunLedger.FINAL_PENDING:
                continue
            if job_id in self.jobs:
                self.log("run.resumed", run_id=run_id, job_id=job_id, previous_status=status)
                self._track(run_id, job_id, "queued")
                self.queues.submit(RunRequest(run_id, job_id, None, resumed=True))
            else:
                self.ledger.record(run_id, job_id, "abandoned", "its job is no longer configured")
                self.handled[run_id] = "abandoned"

    # -- HTTP --------------------------------------------------------------------------------

    async def health(self, request) -> Any:
        from starlette.responses import JSONResponse

        return JSONResponse(
            {
                "status": "ok",
                "version": __version__,
                "started_at": self.started_at,
                "jobs": sorted(self.jobs),
                "queues": self.queues.snapshot(),
                "runs_remembered": len(self.handled),
                "recent": list(self.recent),
            }
        )

    async def webhook(self, request) -> Any:
        from starlette.responses import JSONResponse

        started = time.monotonic()

        def answer(status: int, body: dict[str, Any], level: str = "info", **fields: Any) -> JSONResponse:
            self.log("webhook." + body.get("status", "error"), level, http_status=status,
                     ms=round((time.monotonic() - started) * 1000, 1), **fields)  # fmt: skip
            return JSONResponse(body, status_code=status)

        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return answer(413, {"status": "too_large", "error": f"body over {self.max_body} bytes"}, "warning")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body:
                return answer(413, {"status": "too_large", "error": f"body over {self.max_body} bytes"}, "warning")
            chunks.append(chunk)
        body = b"".join(chunks)

        given = request.headers.get("authorization", "").strip().lower().encode("latin-1", "replace")
        expected = hmac.new(self._secret, body, hashlib.sha256).hexdigest().encode()
        if not given or not hmac.compare_digest(given, expected):
            return answer(401, {"status": "unauthorized", "error": "bad or missing signature"}, "warning",
                          client=request.client.host if request.client else None)  # fmt: skip

        try:
            event = orjson.loads(body)
        except orjson.JSONDecodeError:
            return answer(400, {"status": "bad_request", "error": "body is not JSON"}, "warning")
        data = event.get("data") if isinstance(event, dict) else None
        if not isinstance(data, dict):
            return answer(400, {"status": "bad_request", "error": "no 'data' object"}, "warning")
        event_type = event.get("eventType")
        fields = {"event_type": event_type, "event_id": event.get("eventId"), "webhook_id": event.get("webhooksID"),
                  "job_id": str(data.get("jobId")), "run_id": str(data.get("runId")),
                  "run_status": data.get("runStatus")}  # fmt: skip
        if event_type != COMPLETED_EVENT:
            return answer(200, {"status": "ignored", "reason": f"event type {event_type}"}, **fields)
        run_id, job_id = fields["run_id"], fields["job_id"]
        if not _ID.match(run_id) or not _ID.match(job_id):
            return answer(400, {"status": "bad_request", "error": "data.runId and data.jobId must be ids"}, "warning")
        if self.account_id is not None and str(event.get("accountId")) != self.account_id:
            return answer(200, {"status": "ignored", "reason": "another dbt Cloud account"}, **fields)
        if job_id not in self.jobs:
            return answer(200, {"status": "ignored", "reason": f"job {job_id} is not configured"}, **fields)
        if run_id in self.handled:
            return answer(200, {"status": "duplicate", "run_id": run_id, "run_state": self.handled[run_id]}, **fields)
        # Claimed before any await: a concurrent redelivery finds it taken.
        self._track(run_id, job_id, "queued")
        saved = await asyncio.get_running_loop().run_in_executor(None, self._save_claim, run_id, job_id)
        self.queues.submit(RunRequest(run_id, job_id, data.get("runStatus"), event.get("eventId")))
        return answer(202, {"status": "queued", "run_id": run_id, "job_id": job_id}, saved=saved, **fields)

    # -- work --------------------------------------------------------------------------------

    def _track(self, run_id: str, job_id: str, status: str, detail: str | None = None) -> None:
        self.handled[run_id] = status
        for entry in self.recent:
            if entry["run_id"] == run_id:
                entry.update(status=status, detail=detail)
                return
        self.recent.append({"run_id": run_id, "job_id": job_id, "status": status, "detail": detail})

    def _save_claim(self, run_id: str, job_id: str) -> bool:
        """Write the claim now if the warehouse is free within a few seconds (DuckDB is busy
        while a sync runs); otherwise the worker writes it before the sync starts."""
        try:
            if self._exclusive is None:
                return self.ledger.record(run_id, job_id, "queued", timeout=3.0)
            if not self._exclusive.acquire(timeout=3.0):
                return False
            try:
                return self.ledger.record(run_id, job_id, "queued", timeout=3.0)
            finally:
                self._exclusive.release()
        except CioSyncError as exc:
            self.log("ledger.error", "error", run_id=run_id, error=str(exc))
            return False

    def _process(self, request: RunRequest) -> None:
        job = self.jobs[request.job_id]
        with self._exclusive or contextlib.nullcontext():
            self.ledger.record(request.run_id, request.job_id, "running")
            self._track(request.run_id, request.job_id, "running")
            if request.run_status == "Cancelled":
                outcome = SyncOutcome("skipped_cancelled", None, "the run was cancelled")
                self.log("sync.skipped", run_id=request.run_id, job_id=request.job_id, reason=outcome.detail)
            else:
                outcome = self.launcher(request, job)
            if outcome.status == "interrupted":  # resumed at the next start
                outcome = SyncOutcome("queued", outcome.exit_code, "interrupted by a shutdown; resumed next start")
            self.ledger.record(request.run_id, request.job_id, outcome.status, outcome.detail)
        self._track(request.run_id, request.job_id, outcome.status, outcome.detail)


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket bound before uvicorn starts, so the real port is known (port 0)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    return sock


def serve_forever(receiver: WebhookReceiver, sock: socket.socket, *, log: JsonLog, shutdown_grace: float,
                  launcher: ChildLauncher | None = None) -> None:  # fmt: skip
    """Run uvicorn until SIGTERM/SIGINT, then stop: a sync in progress gets ``shutdown_grace``
    seconds to finish before it is stopped (its run stays 'running' and is resumed next start)."""
    import uvicorn

    handler = _JsonLogHandler(log)
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.propagate = False
        logger.setLevel(logging.INFO)
    config = uvicorn.Config(receiver.app, lifespan="off", log_config=None, access_log=False,
                            timeout_graceful_shutdown=5)  # fmt: skip
    server = uvicorn.Server(config)
    host, port = sock.getsockname()[:2]
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"

    original_startup = server.startup

    async def startup(sockets=None):
        await original_startup(sockets=sockets)
        if server.started:
            log("serve.listening", url=url, jobs=sorted(receiver.jobs), webhook_path="/webhooks/dbt-cloud")

    server.startup = startup  # type: ignore[method-assign]

    # uvicorn handles SIGTERM/SIGINT while it serves, then raises the signal again once stopped;
    # this handler receives that one (and any later one, which cuts the grace period short).
    signals_seen: list[int] = []

    def on_signal(signum, frame) -> None:
        signals_seen.append(signum)
        if len(signals_seen) > 1:
            raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run(sockets=[sock])
        log("serve.stopping", queues=receiver.queues.snapshot(), grace_seconds=shutdown_grace)
        receiver.queues.stop_taking()
        deadline = time.monotonic() + shutdown_grace
        try:
            while receiver.queues.running() and time.monotonic() < deadline:
                time.sleep(0.2)
        except KeyboardInterrupt:
            log("serve.interrupted", "warning")
    finally:
        if launcher is not None:
            launcher.stop_all(grace=5.0)
        receiver.queues.join(timeout=15.0)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log("serve.stopped", queues=receiver.queues.snapshot())
