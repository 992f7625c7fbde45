"""uvicorn plumbing shared by the in-process runner and the command line.

The listening socket is bound before uvicorn starts, so the ephemeral port is known up front;
readiness is reported from uvicorn's own startup hook rather than guessed by polling.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from types import FrameType

import uvicorn

from ._app import FakeTrackApp
from ._tls import CertificateFiles

LISTENING_PREFIX = "cio-fake-server listening on "
"""Start of the line announcing readiness on stdout; the URL follows."""
CA_BUNDLE_PREFIX = "ca-bundle: "
"""Start of the line naming the CA file, printed after the URL in TLS mode."""
GRACEFUL_SHUTDOWN_SECONDS = 5
"""Upper bound on waiting for in-flight requests when stopping."""


def bind_loopback(host: str, port: int) -> socket.socket:
    """A socket bound to ``host``:``port``, refusing any address that is not loopback.

    The fake server is test infrastructure with fixed credentials; it must never be reachable
    from another machine.
    """
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    if not ipaddress.ip_address(address[0]).is_loopback:
        raise ValueError(f"refusing to listen on {host!r}: only loopback addresses are allowed")
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    return sock


def url_for(sock: socket.socket, tls: bool) -> str:
    """Base URL clients use for a bound socket."""
    host, port = sock.getsockname()[:2]
    if ":" in host:
        host = f"[{host}]"
    return f"{'https' if tls else 'http'}://{host}:{port}"


def build_config(
    app: FakeTrackApp,
    certificates: CertificateFiles | None,
    *,
    log_level: str,
    configure_logging: bool,
) -> uvicorn.Config:
    """uvicorn settings for the fake server.

    ``configure_logging=False`` leaves the host process's logging alone, which matters when
    the server runs inside a test process.
    """
    extra: dict[str, object] = {}
    if not configure_logging:
        extra["log_config"] = None
    if certificates is not None:
        extra["ssl_certfile"] = str(certificates.cert_chain)
        extra["ssl_keyfile"] = str(certificates.private_key)
    return uvicorn.Config(
        app,
        lifespan="off",
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        **extra,  # type: ignore[arg-type]
    )


class ManagedServer(uvicorn.Server):
    """uvicorn server that announces readiness and cuts injected delays short on shutdown."""

    def __init__(
        self, config: uvicorn.Config, app: FakeTrackApp, on_ready: Callable[[], None]
    ) -> None:
        super().__init__(config)
        self._app = app
        self._on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self._on_ready()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._app.closing = True
        super().handle_exit(sig, frame)

    def request_stop(self) -> None:
        """Ask the serving loop to finish; safe to call from another thread."""
        self._app.closing = True
        self.should_exit = True
