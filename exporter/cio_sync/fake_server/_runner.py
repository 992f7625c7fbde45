"""Starting and stopping the fake server, in a thread or in a child process.

Both runners end with a server listening on an ephemeral loopback port and are driven the same
way afterwards: over HTTP through the admin endpoints. Tests use the thread (cheap to start);
benchmarks use the child process so the server does not compete with the client for the GIL.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from ._app import FakeTrackApp
from ._server import (
    CA_BUNDLE_PREFIX,
    LISTENING_PREFIX,
    ManagedServer,
    bind_loopback,
    build_config,
    url_for,
)
from ._settings import Settings
from ._store import RECORD_FILE, open_store
from ._tls import CertificateFiles, write_certificates

_PACKAGE_ROOT = Path(__file__).resolve().parents[2]
"""The directory holding ``cio_sync``, put on the child's PYTHONPATH."""


class _ThreadRunner:
    """uvicorn on its own event loop in a daemon thread of this process."""

    def __init__(self, app: FakeTrackApp, certificates: CertificateFiles | None) -> None:
        config = build_config(app, certificates, log_level="warning", configure_logging=False)
        self._ready = threading.Event()
        self._server = ManagedServer(config, app, on_ready=self._ready.set)
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    def start(self, sock: socket.socket, timeout: float) -> None:
        self._thread = threading.Thread(
            target=self._serve, args=(sock,), name="cio-fake-server", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"fake server not ready after {timeout} s")
        if not self._server.started:
            raise RuntimeError("fake server failed to start") from self._failure

    def _serve(self, sock: socket.socket) -> None:
        try:
            self._server.run(sockets=[sock])
        except BaseException as exc:  # uvicorn reports startup failures with SystemExit
            self._failure = exc
        finally:
            self._ready.set()  # also on failure, so start() stops waiting at once

    def stop(self, timeout: float) -> None:
        if self._thread is None:
            return
        self._server.request_stop()
        self._thread.join(timeout)


class _ProcessRunner:
    """``python -m cio_sync.fake_server`` as a child process, ready once it prints its URL."""

    def __init__(self, argv: list[str]) -> None:
        self._argv = argv
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr = tempfile.TemporaryFile()

    def start(self, timeout: float, tls: bool) -> tuple[str, str | None]:
        """Start the child and return (url, ca_bundle) from its announcement lines."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(_PACKAGE_ROOT), env.get("PYTHONPATH")) if p
        )
        self._process = subprocess.Popen(
            self._argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            bufsize=0,
        )
        lines = self._read_announcement(time.monotonic() + timeout, tls)
        url = next(
            line[len(LISTENING_PREFIX) :] for line in lines if line.startswith(LISTENING_PREFIX)
        )
        ca_bundle = next(
            (line[len(CA_BUNDLE_PREFIX) :] for line in lines if line.startswith(CA_BUNDLE_PREFIX)),
            None,
        )
        return url, ca_bundle

    def _read_announcement(self, deadline: float, tls: bool) -> list[str]:
        assert self._process is not None and self._process.stdout is not None
        fd = self._process.stdout.fileno()
        buffer = b""
        lines: list[str] = []
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"fake server not ready in time; stderr:\n{self._errors()}")
                if not selector.select(remaining):
                    continue
                chunk = os.read(fd, 4096)
                if not chunk:
                    code = self._process.wait()
                    raise RuntimeError(
                        f"fake server exited with code {code} during startup; "
                        f"stderr:\n{self._errors()}"
                    )
                buffer += chunk
                *complete, buffer = buffer.split(b"\n")
                lines.extend(line.decode() for line in complete)
                listening = any(line.startswith(LISTENING_PREFIX) for line in lines)
                has_bundle = any(line.startswith(CA_BUNDLE_PREFIX) for line in lines)
                if listening and (has_bundle or not tls):
                    return lines

    def _errors(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-4000:]

    def stop(self, timeout: float) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process is not None and process.stdout is not None:
            process.stdout.close()
        self._stderr.close()


class FakeCustomerIO:
    """A running fake Customer.io Track API, for tests and benchmarks.

    Use as a context manager. Keyword settings (``rate_limit``, ``error_rate``, ``drop_rate``,
    ``latency``, ``slow_rate``, ``slow_seconds``, ``slow_accepts``, ``seed``, ``region``,
    ``max_request_bytes``, ``max_item_bytes``, ``request_log_size``) are applied once the server
    is up and can be changed later with :meth:`configure`.
    """

    def __init__(  # noqa: PLR0913 - keyword-only settings of the server, its documented API
        self,
        site_id: str = "site",
        api_key: str = "key",
        *,
        tls: bool = False,
        in_process: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
        cert_dir: str | os.PathLike[str] | None = None,
        record: str = "memory",
        record_dir: str | os.PathLike[str] | None = None,
        startup_timeout: float = 30.0,
        app_api_key: str = "app-key",
        **settings: Any,
    ) -> None:
        Settings().updated(settings)  # fail here, not after a server was started
        if record not in ("memory", "disk"):
            raise ValueError(f"unknown recording mode {record!r}: use 'memory' or 'disk'")
        if record == "disk" and record_dir is None:
            raise ValueError("record='disk' needs a record_dir")
        self.site_id = site_id
        self.api_key = api_key
        self.app_api_key = app_api_key
        self.tls = tls
        self.in_process = in_process
        self._host = host
        self._port = port
        self._cert_dir = Path(cert_dir) if cert_dir is not None else None
        self._record = record
        self._record_dir = Path(record_dir) if record_dir is not None else None
        self._startup_timeout = startup_timeout
        self._initial_settings = settings
        self._url: str | None = None
        self._ca_bundle: str | None = None
        self._admin: httpx.Client | None = None
        self._runner: _ThreadRunner | _ProcessRunner | None = None
        self._cleanup = contextlib.ExitStack()

    # ----------------------------------------------------------- lifecycle

    def __enter__(self) -> FakeCustomerIO:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> FakeCustomerIO:
        """Start the server and return once it answers; stops again if anything fails."""
        if self._runner is not None:
            raise RuntimeError("server already started")
        try:
            if self.in_process:
                self._start_thread()
            else:
                self._start_process()
            verify: ssl.SSLContext | bool = self.ssl_context() or True
            self._admin = httpx.Client(base_url=self.url, verify=verify, timeout=30.0)
            if self._initial_settings:
                self.configure(**self._initial_settings)
        except BaseException:
            self.stop()
            raise
        return self

    def _cert_directory(self) -> Path:
        if self._cert_dir is not None:
            return self._cert_dir
        return Path(self._cleanup.enter_context(tempfile.TemporaryDirectory(prefix="cio-fake-")))

    def _start_thread(self) -> None:
        certificates = write_certificates(self._cert_directory()) if self.tls else None
        store = open_store(self._record, self._record_dir, Settings().request_log_size)
        self._cleanup.callback(store.close)
        app = FakeTrackApp(
            site_id=self.site_id,
            api_key=self.api_key,
            settings=Settings(),
            store=store,
            app_api_key=self.app_api_key,
        )
        sock = bind_loopback(self._host, self._port)
        self._url = url_for(sock, self.tls)
        self._ca_bundle = str(certificates.ca_bundle) if certificates else None
        runner = self._runner = _ThreadRunner(app, certificates)
        runner.start(sock, self._startup_timeout)

    def _start_process(self) -> None:
        argv = [
            sys.executable, "-m", "cio_sync.fake_server",
            "--host", self._host,
            "--port", str(self._port),
            "--site-id", self.site_id,
            "--api-key", self.api_key,
            "--app-api-key", self.app_api_key,
            "--record", self._record,
        ]  # fmt: skip
        if self._record_dir is not None:
            argv += ["--record-dir", str(self._record_dir)]
        if self.tls:
            argv += ["--tls", "--cert-dir", str(self._cert_directory())]
        runner = self._runner = _ProcessRunner(argv)
        self._url, self._ca_bundle = runner.start(self._startup_timeout, self.tls)

    def stop(self) -> None:
        """Stop the server and remove temporary files; calling it twice is harmless."""
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        if self._runner is not None:
            self._runner.stop(timeout=15.0)
            self._runner = None
        self._cleanup.close()

    # ---------------------------------------------------------- properties

    @property
    def url(self) -> str:
        """Base URL of the Track API, e.g. ``http://127.0.0.1:54321``."""
        if self._url is None:
            raise RuntimeError("server not started")
        return self._url

    @property
    def ca_bundle(self) -> str | None:
        """Path of the PEM CA file clients must trust in TLS mode, else None."""
        return self._ca_bundle

    @property
    def record_file(self) -> Path | None:
        """The NDJSON file of accepted items in disk mode, else None."""
        if self._record != "disk" or self._record_dir is None:
            return None
        return self._record_dir / RECORD_FILE

    def ssl_context(self) -> ssl.SSLContext | None:
        """A client SSL context trusting this server's CA (None without TLS)."""
        if self._ca_bundle is None:
            return None
        return ssl.create_default_context(cafile=self._ca_bundle)

    # --------------------------------------------------------------- admin

    def _get(self, path: str, **params: Any) -> Any:
        return self._call("GET", path, params=params)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        if self._admin is None:
            raise RuntimeError("server not started")
        response = self._admin.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path} -> {response.status_code}: {response.text}")
        return response.json()

    def stats(self) -> dict[str, Any]:
        """Counters, recording summary and current settings (``GET /_fake/stats``)."""
        return self._get("/_fake/stats")

    def people(self) -> dict[str, Any]:
        """All profiles keyed ``"<kind>:<value>"`` (memory mode)."""
        return self._get("/_fake/people")

    def person(self, kind: str, value: str) -> dict[str, Any] | None:
        """One profile, or None when that person does not exist (memory mode)."""
        if self._admin is None:
            raise RuntimeError("server not started")
        response = self._admin.get(f"/_fake/people/{quote(kind, safe='')}/{quote(value, safe='')}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """Stored events, optionally only those called ``name`` (memory mode)."""
        return self._get("/_fake/events", **({} if name is None else {"name": name}))

    def forget_event(self, event_id: str) -> None:
        """Remove a stored event as if Customer.io had lost it (memory mode)."""
        self._call("DELETE", f"/_fake/events/{quote(event_id, safe='')}")

    def deletions(self) -> list[dict[str, Any]]:
        """Recorded profile deletions (memory mode)."""
        return self._get("/_fake/deletions")

    def objects(self) -> dict[str, Any]:
        """All objects keyed ``"<object_type_id>:<object_id>"`` (memory mode)."""
        return self._get("/_fake/objects")

    def relationships(self) -> list[dict[str, Any]]:
        """Person-object relationships: ``{"person": ..., "object": ..., "attributes": ...}`` (memory mode)."""
        return self._get("/_fake/relationships")

    def devices(self) -> list[dict[str, Any]]:
        """People's devices: ``{"person", "token", "platform", "last_used", "attributes"}`` (memory mode)."""
        return self._get("/_fake/devices")

    def suppressed(self) -> list[str]:
        """Suppressed identifiers, ``"<kind>:<value>"`` (memory mode)."""
        return self._get("/_fake/suppressed")

    def merges(self) -> list[dict[str, Any]]:
        """Recorded ``merge_customers`` calls (memory mode)."""
        return self._get("/_fake/merges")

    def requests(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The latest API requests: method, path, status, bytes, items, rejected."""
        return self._get("/_fake/requests", **({} if limit is None else {"limit": limit}))

    def define_segment(self, segment_id: int, attribute: str | None = None, **condition: Any) -> dict[str, Any]:
        """Define an App API segment: people whose ``attribute`` meets one condition (``equals``,
        ``not_equals``, ``gt``, ``gte``, ``lt``, ``lte``, ``exists``); without an attribute,
        everyone. ``name`` may be given too. Returns the definition as stored."""
        document: dict[str, Any] = {"id": segment_id, **condition}
        if attribute is not None:
            document["attribute"] = attribute
        [stored] = self._call("POST", "/_fake/segments", json=document)
        return stored

    def segments(self) -> list[dict[str, Any]]:
        """The App API segments defined so far."""
        return self._get("/_fake/segments")

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change runtime settings (faults, limits, region); returns all settings."""
        return self._call("POST", "/_fake/config", json=changes)

    def reset(self) -> None:
        """Forget all accepted data and zero the counters; settings are kept."""
        self._call("POST", "/_fake/reset")
