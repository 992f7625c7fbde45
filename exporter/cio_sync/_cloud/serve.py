"""``cio-export serve``: the HTTP receiver of dbt Cloud's ``job.run.completed`` webhooks, one
queue per job and the child process (``cio-export cloud-run``) that syncs each run."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from .. import __version__
from .._errors import CioSyncError
from .api import _ID, COMPLETED_EVENT, MAX_BODY_BYTES, RUN_INFO_FILE
from .ledger import JsonLog, RunLedger, _JsonLogHandler
from .serve_config import JobConfig

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

    def __init__(  # noqa: PLR0913 - keyword-only settings, one per serve option
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
        models = {str(r.get("model")): str(r.get("status")) for r in summary.get("results") or ()
                  if isinstance(r, dict)}
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
        routes: Sequence[Any] = (),
    ) -> None:
        """`routes`: more routes of the same server (the status page's)."""
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
                *routes,
            ]
        )

    @property
    def exclusive(self) -> threading.Lock | None:
        """Held while a sync or a ledger write uses the warehouse, where it admits one process at a
        time (DuckDB): what else reads it (the status page) takes it too."""
        return self._exclusive

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


def page_only_app(routes: Sequence[Any]) -> Any:
    """The app of a `serve` with no dbt Cloud job: the status page and GET /health."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")

    async def health(request) -> Any:
        return JSONResponse({"status": "ok", "version": __version__, "started_at": started_at, "jobs": []})

    return Starlette(routes=[Route("/health", health, methods=["GET"]), *routes])


def serve_forever(receiver: WebhookReceiver | None, sock: socket.socket, *, log: JsonLog, shutdown_grace: float,
                  launcher: ChildLauncher | None = None, app: Any = None,
                  page_path: str | None = None) -> None:  # fmt: skip
    """Run uvicorn until SIGTERM/SIGINT, then stop: a sync in progress gets ``shutdown_grace``
    seconds to finish before it is stopped (its run stays 'running' and is resumed next start).
    Without a receiver (no dbt Cloud job), `app` is served (the status page, at `page_path`)."""
    import uvicorn

    handler = _JsonLogHandler(log)
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.propagate = False
        logger.setLevel(logging.INFO)
    config = uvicorn.Config(receiver.app if receiver is not None else app, lifespan="off", log_config=None,
                            access_log=False, timeout_graceful_shutdown=5)  # fmt: skip
    server = uvicorn.Server(config)
    host, port = sock.getsockname()[:2]
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"

    original_startup = server.startup

    async def startup(sockets=None):
        await original_startup(sockets=sockets)
        if server.started:
            jobs = sorted(receiver.jobs) if receiver is not None else []
            log("serve.listening", url=url, jobs=jobs, webhook_path="/webhooks/dbt-cloud" if jobs else None,
                status_page=url + page_path if page_path else None)

    server.startup = startup  # type: ignore[method-assign]

    # uvicorn handles SIGTERM/SIGINT while it serves, then raises the signal again once stopped;
    # this handler receives that one (and any later one, which cuts the grace period short).
    signals_seen: list[int] = []

    def on_signal(signum, frame) -> None:
        signals_seen.append(signum)
        if len(signals_seen) > 1:
            raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    if receiver is None:
        try:
            server.run(sockets=[sock])
        finally:
            for sig, previous_handler in previous.items():
                signal.signal(sig, previous_handler)
        log("serve.stopped")
        return
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
        for sig, previous_handler in previous.items():
            signal.signal(sig, previous_handler)
    log("serve.stopped", queues=receiver.queues.snapshot())

