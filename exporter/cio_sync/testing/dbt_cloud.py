"""A local stand-in for the dbt Cloud Admin API v2 (the part cio-export reads) and for the
webhooks dbt Cloud sends, so ``cio-export cloud-run`` and ``cio-export serve`` can be tested end
to end without dbt Cloud.

```python
from cio_sync.testing.dbt_cloud import FakeDbtCloud, Step, signed_webhook

with FakeDbtCloud(account_id=1, token="t") as cloud:
    cloud.add_run(501, job_id=42, steps=[
        Step("dbt build", artifacts={"manifest.json": target / "manifest.json",
                                     "run_results.json": target / "run_results.json"}),
        Step("dbt docs generate", artifacts={...}),
    ])
    env = cloud.env()   # DBT_CLOUD_URL, DBT_CLOUD_ACCOUNT_ID, DBT_CLOUD_API_TOKEN
    body, headers = signed_webhook(cloud.webhook_event(501), secret="s")
```

Served (``Authorization: Token <token>`` or ``Bearer <token>``):

* ``GET /api/v2/accounts/{account}/runs/{run}/?include_related=["run_steps","job"]``
* ``GET /api/v2/accounts/{account}/runs/?job_definition_id=J&order_by=-id&limit=N&offset=M``
* ``GET /api/v2/accounts/{account}/runs/{run}/artifacts/{path}?step=N``: the file of that step;
  without ``step``, the last step's (as dbt Cloud does), 404 when the step has no such file.

Runs are laid out as dbt Cloud lays them out: steps 1-3 are "Clone git repository", "Create
profile from connection ..." and "Invoke dbt with `dbt deps`", then one step per job command
("Invoke dbt with `dbt build`"), indexes from 1. Status codes: 10 success, 20 error, 30
cancelled. Every request is recorded (:attr:`FakeDbtCloud.requests`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

__all__ = ["FakeDbtCloud", "Step", "signed_webhook"]

STATUS_CODES = {"Queued": 1, "Starting": 2, "Running": 3, "Success": 10, "Error": 20, "Errored": 20, "Cancelled": 30}
SETUP_STEPS = ("Clone git repository", "Create profile from connection Warehouse", "Invoke dbt with `dbt deps`")


@dataclass
class Step:
    """One command of a job run. ``artifacts`` maps a file name to bytes, text, a JSON-able
    dict or a Path to read."""

    command: str
    status: str = "Success"
    artifacts: dict[str, Any] = field(default_factory=dict)
    name: str | None = None

    @property
    def title(self) -> str:
        if self.name:
            return self.name
        return f"Invoke dbt with `{self.command}`" if self.command.startswith("dbt ") else self.command


def _content(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, Path):
        return value.read_bytes()
    if isinstance(value, str):
        return value.encode()
    return orjson.dumps(value)


def _envelope(data: Any, code: int = 200, message: str | None = None, extra: dict | None = None) -> JSONResponse:
    body: dict[str, Any] = {
        "status": {"code": code, "is_success": code < 400, "user_message": message or "Success!",
                   "developer_message": ""},
        "data": data,
    }  # fmt: skip
    if extra:
        body["extra"] = extra
    return JSONResponse(body, status_code=code)


class FakeDbtCloud:
    """dbt Cloud Admin API v2 stand-in on a free loopback port, in a background thread."""

    def __init__(self, *, account_id: int = 1, token: str = "dbtc-test-token", host: str = "127.0.0.1") -> None:
        self.account_id = account_id
        self.token = token
        self.host = host
        self.runs: dict[int, dict[str, Any]] = {}
        self._artifacts: dict[int, list[dict[str, bytes]]] = {}
        self.requests: list[dict[str, Any]] = []
        self._failures: list[tuple[int, str | None]] = []  # answers owed before serving again
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._url: str | None = None
        self.app = Starlette(
            routes=[
                Route("/api/v2/accounts/{account:int}/runs/", self._list_runs, methods=["GET"]),
                Route("/api/v2/accounts/{account:int}/runs/{run:int}/", self._get_run, methods=["GET"]),
                Route("/api/v2/accounts/{account:int}/runs/{run:int}", self._get_run, methods=["GET"]),
                Route(
                    "/api/v2/accounts/{account:int}/runs/{run:int}/artifacts/{path:path}",
                    self._artifact,
                    methods=["GET"],
                ),
            ]
        )

    # ---------------------------------------------------------------- lifecycle

    def __enter__(self) -> FakeDbtCloud:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> FakeDbtCloud:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        self._url = f"http://{self.host}:{sock.getsockname()[1]}"
        ready = threading.Event()
        config = uvicorn.Config(self.app, lifespan="off", log_config=None, access_log=False, log_level="warning")
        server = self._server = uvicorn.Server(config)
        original = server.startup

        async def startup(sockets=None):
            await original(sockets=sockets)
            ready.set()

        server.startup = startup  # type: ignore[method-assign]
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True,
                                        name="fake-dbt-cloud")  # fmt: skip
        self._thread.start()
        if not ready.wait(20):
            raise RuntimeError("the dbt Cloud stand-in did not start")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self._server = self._thread = None

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("not started")
        return self._url

    def env(self) -> dict[str, str]:
        """The DBT_CLOUD_* variables pointing cio-export here."""
        return {
            "DBT_CLOUD_URL": self.url,
            "DBT_CLOUD_ACCOUNT_ID": str(self.account_id),
            "DBT_CLOUD_API_TOKEN": self.token,
        }

    # ---------------------------------------------------------------- runs

    def add_run(
        self,
        run_id: int,
        job_id: int,
        *,
        steps: list[Step],
        status: str | None = None,
        setup_steps: bool = True,
        job_name: str = "Daily build",
        finished: datetime | None = None,
    ) -> dict[str, Any]:
        """Register a finished run. Its status defaults to Error when a step errored, else
        Success; steps 1-3 are dbt Cloud's setup steps unless ``setup_steps=False``."""
        all_steps = ([Step(name, "Success") for name in SETUP_STEPS] if setup_steps else []) + list(steps)
        if status is None:
            status = "Error" if any(STATUS_CODES[s.status] == 20 for s in all_steps) else "Success"
        code = STATUS_CODES[status]
        finished = finished or datetime.now(timezone.utc)
        started = finished - timedelta(minutes=3)
        run_steps, artifacts = [], []
        for index, step in enumerate(all_steps, start=1):
            step_code = STATUS_CODES[step.status]
            run_steps.append(
                {
                    "id": run_id * 100 + index,
                    "run_id": run_id,
                    "account_id": self.account_id,
                    "index": index,
                    "name": step.title,
                    "status": step_code,
                    "status_humanized": "Error" if step_code == 20 else step.status,
                    "logs": "",
                    "started_at": started.isoformat(),
                    "finished_at": finished.isoformat(),
                }
            )
            artifacts.append({name: _content(value) for name, value in step.artifacts.items()})
        humanized = {1: "Queued", 2: "Starting", 3: "Running", 10: "Success", 20: "Error", 30: "Cancelled"}[code]
        run = {
            "id": run_id,
            "account_id": self.account_id,
            "job_definition_id": job_id,
            "job_id": job_id,
            "environment_id": 7,
            "project_id": 3,
            "status": code,
            "status_humanized": humanized,
            "status_message": None if code == 10 else "Failure in a step",
            "in_progress": code in (1, 2, 3),
            "is_complete": code in (10, 20, 30),
            "is_success": code == 10,
            "is_error": code == 20,
            "is_cancelled": code == 30,
            "created_at": started.isoformat(),
            "started_at": started.isoformat(),
            "finished_at": finished.isoformat() if code in (10, 20, 30) else None,
            "git_sha": "0123456789abcdef0123456789abcdef01234567",
            "href": f"{self._url or ''}/deploy/{self.account_id}/projects/3/runs/{run_id}/",
            "job": {"id": job_id, "name": job_name, "execute_steps": [s.command for s in steps]},
            "run_steps": run_steps,
        }
        with self._lock:
            self.runs[run_id] = run
            self._artifacts[run_id] = artifacts
        return run

    def webhook_event(
        self, run_id: int, *, event_type: str = "job.run.completed", webhook_id: str = "wsu_cio_test"
    ) -> dict[str, Any]:
        """The JSON body dbt Cloud sends for the run (its webhook payload shape)."""
        run = self.runs[run_id]
        humanized = {10: "Success", 20: "Errored", 30: "Cancelled"}.get(run["status"], "Running")
        data = {
            "jobId": str(run["job_definition_id"]),
            "jobName": run["job"]["name"],
            "runId": str(run_id),
            "environmentId": str(run["environment_id"]),
            "environmentName": "Production",
            "dbtVersion": "1.10.0",
            "projectName": "Shop",
            "projectId": str(run["project_id"]),
            "runStatus": humanized,
            "runStatusCode": run["status"],
            "runStatusMessage": str(run["status_message"]),
            "runReason": "Kicked off by the scheduler",
            "runStartedAt": run["started_at"],
        }
        data["runErroredAt" if run["status"] == 20 else "runFinishedAt"] = run["finished_at"]
        return {
            "accountId": self.account_id,
            "webhooksID": webhook_id,
            "eventId": f"wev_{run_id:012d}",
            "timestamp": datetime.now(timezone.utc).isoformat(),
            "eventType": event_type,
            "webhookName": "cio-export",
            "data": data,
        }

    # ---------------------------------------------------------------- HTTP

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append({"method": request.method, "path": request.url.path,
                                  "query": dict(request.query_params)})  # fmt: skip

    def fail_next(self, count: int, status: int = 503, retry_after: str | None = None) -> None:
        """The next `count` API requests are answered `status` (with ``Retry-After`` if given),
        as dbt Cloud does when it is overloaded or under maintenance."""
        with self._lock:
            self._failures.extend([(status, retry_after)] * count)

    def _refused(self, request: Request) -> Response | None:
        self._record(request)
        with self._lock:
            failure = self._failures.pop(0) if self._failures else None
        if failure is not None:
            status, retry_after = failure
            response = _envelope(None, status, "Service temporarily unavailable.")
            if retry_after is not None:
                response.headers["Retry-After"] = retry_after
            return response
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() not in ("token", "bearer") or not hmac.compare_digest(token.strip(), self.token):
            return _envelope(None, 401, "Invalid token.")
        if request.path_params["account"] != self.account_id:
            return _envelope(None, 403, "You do not have permission to access this account.")
        return None

    async def _get_run(self, request: Request) -> Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        run = self.runs.get(request.path_params["run"])
        if run is None:
            return _envelope(None, 404, "Requested resource not found.")
        related = request.query_params.get("include_related", "")
        try:
            wanted = set(json.loads(related)) if related.startswith("[") else set(related.split(","))
        except ValueError:
            wanted = set()
        data = {k: v for k, v in run.items() if k not in ("run_steps", "job")}
        if "run_steps" in wanted:
            data["run_steps"] = run["run_steps"]
        if "job" in wanted:
            data["job"] = run["job"]
        return _envelope(data)

    async def _list_runs(self, request: Request) -> Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        params = request.query_params
        runs = list(self.runs.values())
        if params.get("job_definition_id"):
            runs = [r for r in runs if str(r["job_definition_id"]) == params["job_definition_id"]]
        order = params.get("order_by", "id")
        runs.sort(key=lambda r: r[order.lstrip("-")], reverse=order.startswith("-"))
        offset, limit = int(params.get("offset", 0)), min(int(params.get("limit", 100)), 100)
        page = [{k: v for k, v in r.items() if k not in ("run_steps", "job")} for r in runs[offset : offset + limit]]
        return _envelope(page, extra={"pagination": {"count": len(page), "total_count": len(runs)},
                                      "filters": {"limit": limit, "offset": offset}})  # fmt: skip

    async def _artifact(self, request: Request) -> Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        run_id = request.path_params["run"]
        steps = self._artifacts.get(run_id)
        if steps is None:
            return _envelope(None, 404, "Requested resource not found.")
        step = request.query_params.get("step")
        index = int(step) if step and step.isdigit() else len(steps)
        files = steps[index - 1] if 1 <= index <= len(steps) else {}
        content = files.get(request.path_params["path"])
        if content is None:
            return _envelope(None, 404, f"No artifact {request.path_params['path']} for step {index}.")
        return Response(content, media_type="application/json")


def signed_webhook(event: dict[str, Any] | bytes, secret: str) -> tuple[bytes, dict[str, str]]:
    """The body and headers of a webhook delivery as dbt Cloud makes it: ``Authorization`` is
    the hex HMAC-SHA256 of the raw body keyed with the webhook's secret."""
    body = event if isinstance(event, bytes) else json.dumps(event).encode()
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return body, {"Authorization": signature, "Content-Type": "application/json"}
