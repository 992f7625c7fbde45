"""``cio-export serve``'s status page: ``GET /status`` answers the page ``cio-export report``
writes, made by that command in a child process (dbt and the warehouse stay out of the
server's process, as for the syncs), at most once per ``max_age`` seconds, read only. Behind
HTTP basic auth or a bearer token from the environment, compared in constant time; a
credential is never echoed, logged, passed to the child or put in the page."""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._errors import ConfigError
from .ledger import JsonLog

PAGE_PATH = "/status"
USER_ENV, PASSWORD_ENV, TOKEN_ENV = "CIO_STATUS_PAGE_USER", "CIO_STATUS_PAGE_PASSWORD", "CIO_STATUS_PAGE_TOKEN"
DEFAULT_USER = "cio"
#: Variables the page's child process never gets: it reads the warehouse, nothing else.
SECRET_ENV = ("DBT_CLOUD_WEBHOOK_SECRET", "DBT_CLOUD_API_TOKEN", "CUSTOMERIO_API_KEY", "CUSTOMERIO_APP_API_KEY",
              USER_ENV, PASSWORD_ENV, TOKEN_ENV)
#: Headers of every answer of the page's routes.
HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "X-Frame-Options": "DENY", "Content-Security-Policy": "frame-ancestors 'none'"}
_CHALLENGE = {"WWW-Authenticate": 'Basic realm="cio-export status", charset="UTF-8"'}


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


@dataclass(frozen=True)
class PageAuth:
    """Who may see the page: a user and password (HTTP basic auth, what a browser asks for), a
    bearer token (for a proxy or a script), or both. Kept as digests only."""

    user: bytes | None = None
    password: bytes | None = None
    token: bytes | None = None

    def __repr__(self) -> str:  # never the digests either
        kinds = [k for k, v in (("basic", self.password), ("bearer", self.token)) if v is not None]
        return f"PageAuth({', '.join(kinds)})"

    def allows(self, authorization: str) -> bool:
        """Whether an Authorization header carries the configured credentials (constant time for
        a given header length: each comparison is made whatever the others gave)."""
        scheme, _, value = authorization.strip().partition(" ")
        scheme, value = scheme.lower(), value.strip()
        if scheme == "bearer" and self.token is not None:
            return hmac.compare_digest(_digest(value), self.token)
        if scheme == "basic" and self.password is not None and self.user is not None:
            try:
                user, _, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
            same_user = hmac.compare_digest(_digest(user), self.user)
            same_password = hmac.compare_digest(_digest(password), self.password)
            return same_user & same_password
        return False


def page_auth_from_env(env: Mapping[str, str]) -> PageAuth | None:
    """The page's credentials from CIO_STATUS_PAGE_PASSWORD (with CIO_STATUS_PAGE_USER, default
    'cio') and/or CIO_STATUS_PAGE_TOKEN; None when neither is set (no page)."""
    password, token, user = env.get(PASSWORD_ENV), env.get(TOKEN_ENV), env.get(USER_ENV)
    if password is None and token is None:
        if user is not None:
            raise ConfigError(f"{USER_ENV} is set without {PASSWORD_ENV}: set the password too, or unset it")
        return None
    for name, value in ((PASSWORD_ENV, password), (TOKEN_ENV, token)):
        if value is not None and len(value) < 12:
            raise ConfigError(f"{name} is set but shorter than 12 characters: use a long random value "
                              "(e.g. `openssl rand -hex 24`), or unset it")
    if user is not None and (not user or ":" in user):
        raise ConfigError(f"{USER_ENV} must be a non-empty name without ':'")
    return PageAuth(user=_digest(user or DEFAULT_USER) if password is not None else None,
                    password=_digest(password) if password is not None else None,
                    token=_digest(token) if token is not None else None)


def report_command(dbt_args: Sequence[str], *, target: str | None, vars_: str | None, target_path: str | None,
                   state_schema: str, select: Sequence[str], exclude: Sequence[str]) -> list[str]:
    """`cio-export report --html -` with serve's project, target, vars, artifacts, state schema
    and selection."""
    cmd = [sys.executable, "-m", "cio_sync.cli", "report", "--html", "-", *dbt_args, "--state-schema", state_schema]
    for flag, value in (("--target", target), ("--vars", vars_), ("--target-path", target_path)):
        if value:
            cmd += [flag, value]
    cmd += ["--select", *(select or ("tag:cio",))]
    if exclude:
        cmd += ["--exclude", *exclude]
    return cmd


def _error_page(title: str, detail: str) -> str:
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'\">"
            "<title>Customer.io sync status</title></head><body>"
            f"<h1>{html.escape(title)}</h1><p>{html.escape(detail)}</p></body></html>")


class StatusPage:
    """The page's routes and the child process that makes it. One page is made at a time; a
    request while one is being made waits for it; a page younger than `max_age` is served again."""

    def __init__(self, *, auth: PageAuth, command: list[str], log: JsonLog, max_age: float = 60.0,
                 timeout: float = 300.0, exclusive: threading.Lock | None = None) -> None:
        self.auth = auth
        self.command = command
        self.log = log
        self.max_age = max_age
        self.timeout = timeout
        self.exclusive = exclusive  # DuckDB: taken in turns with the syncs and the run ledger
        self._lock = threading.Lock()
        self._page: tuple[float, int, str] | None = None  # (made at, HTTP status, document)

    def routes(self) -> list[Any]:
        from starlette.routing import Route

        return [Route(PAGE_PATH, self.page, methods=["GET"])]

    async def page(self, request) -> Any:
        import asyncio

        from starlette.responses import HTMLResponse, PlainTextResponse

        if not self.auth.allows(request.headers.get("authorization", "")):
            self.log("page.unauthorized", "warning", client=request.client.host if request.client else None)
            return PlainTextResponse("401: the status page needs its credentials (see docs/exporter.md)\n",
                                     status_code=401, headers={**HEADERS, **_CHALLENGE})
        status, document = await asyncio.get_running_loop().run_in_executor(None, self.current)
        headers = dict(HEADERS)
        if status == 503:
            headers["Retry-After"] = "30"
        return HTMLResponse(document, status_code=status, headers=headers)

    def current(self) -> tuple[int, str]:
        """The page made at most `max_age` seconds ago, or made now."""
        with self._lock:
            if self._page is not None and time.monotonic() - self._page[0] < self.max_age:
                return self._page[1], self._page[2]
            status, document = self._make()
            self._page = (time.monotonic(), status, document) if status == 200 else None
            return status, document

    def _make(self) -> tuple[int, str]:
        started = time.monotonic()
        env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV}
        if self.exclusive is not None and not self.exclusive.acquire(timeout=self.timeout):
            return 503, _error_page("The warehouse is busy", "A sync holds the warehouse: reload in a minute.")
        try:
            done = subprocess.run(self.command, capture_output=True, text=True, env=env, timeout=self.timeout,
                                  stdin=subprocess.DEVNULL, check=False)
        except subprocess.TimeoutExpired:
            self.log("page.failed", "error", reason=f"took longer than {self.timeout:.0f} s")
            return 503, _error_page("The status page could not be made", f"It took longer than {self.timeout:.0f} s.")
        except OSError as exc:
            self.log("page.failed", "error", reason=str(exc))
            return 500, _error_page("The status page could not be made", str(exc))
        finally:
            if self.exclusive is not None:
                self.exclusive.release()
        if done.returncode != 0 or not done.stdout.strip():
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            reason = next((line[7:] for line in reversed(lines) if line.startswith("error: ")), None) or (
                lines[-1] if lines else f"exit code {done.returncode}")
            self.log("page.failed", "error", exit_code=done.returncode, reason=reason)
            busy = "lock" in reason.lower()
            return (503 if busy else 500), _error_page(
                "The warehouse is busy" if busy else "The status page could not be made",
                "A sync holds the warehouse: reload in a minute." if busy else reason)
        self.log("page.made", seconds=round(time.monotonic() - started, 2), bytes=len(done.stdout))
        return 200, done.stdout
