"""dbt Cloud's Admin API v2: settings from the environment (the token never logged) and the
client that reads runs and their artifacts."""

from __future__ import annotations

import os
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from .. import __version__
from .._errors import ConfigError, CredentialsError, DbtCloudUnavailable
from .._send.transport import _RetryingGets, _ssl_context

DEFAULT_URL = "https://cloud.getdbt.com"
LEDGER_TABLE = "cio_cloud_runs"
RUN_INFO_FILE = "dbt_cloud_run.json"
MAX_BODY_BYTES = 1_048_576
COMPLETED_EVENT = "job.run.completed"

# dbt Cloud run (and run step) status codes.
STATUS_QUEUED, STATUS_STARTING, STATUS_RUNNING, STATUS_SUCCESS, STATUS_ERROR, STATUS_CANCELLED = 1, 2, 3, 10, 20, 30
_STATUS_NAMES: dict[Any, str] = {1: "Queued", 2: "Starting", 3: "Running", 10: "Success", 20: "Error", 30: "Cancelled"}

# dbt sub-commands, to read a step's command ("Invoke dbt with `dbt --log-format json build -s x`").
_DBT_SUBCOMMANDS = frozenset(
    {
        "build", "run", "test", "seed", "snapshot", "docs", "compile", "source", "run-operation", "deps",
        "ls", "list", "parse", "clone", "retry", "show", "debug", "freshness", "init", "clean",
    }
)  # fmt: skip
_NODE_ERROR_STATUSES = frozenset({"error", "runtime error"})
_ID = re.compile(r"^[0-9]{1,20}$")
ERRORED_RUN_POLICIES = ("skip", "gate")




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


