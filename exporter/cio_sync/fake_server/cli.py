"""Command line of the fake server (``python -m cio_sync.fake_server``).

Once listening it prints ``cio-fake-server listening on <url>`` (then ``ca-bundle: <path>`` in
TLS mode) to stdout and flushes, which is the readiness signal the subprocess runner waits for.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

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
from ._store import open_store
from ._tls import write_certificates

_RUNTIME_OPTIONS = (
    "region",
    "max_request_bytes",
    "max_item_bytes",
    "request_log_size",
    "rate_limit",
    "rate_limit_burst",
    "error_rate",
    "drop_rate",
    "latency",
    "slow_rate",
    "slow_seconds",
    "slow_accepts",
    "seed",
)
"""Options that map one-to-one onto :class:`Settings` fields."""


def build_parser(prog: str = "python -m cio_sync.fake_server") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Serve a fake Customer.io Track API on a loopback address.",
    )
    server = parser.add_argument_group("server")
    server.add_argument("--host", default="127.0.0.1", help="loopback address (default 127.0.0.1)")
    server.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    server.add_argument("--tls", action="store_true", help="serve HTTPS with a throwaway CA")
    server.add_argument("--cert-dir", type=Path, help="where to write the CA and server cert")
    server.add_argument("--site-id", default="site", help="Basic auth user (default 'site')")
    server.add_argument("--api-key", default="key", help="Basic auth password (default 'key')")
    server.add_argument(
        "--app-api-key", default="app-key", help="App API bearer token (default 'app-key')"
    )
    server.add_argument("--record", choices=("memory", "disk"), default="memory")
    server.add_argument("--record-dir", type=Path, help="directory for accepted.ndjson (disk)")
    server.add_argument(
        "--log-level", default="warning", choices=("critical", "error", "warning", "info", "debug")
    )

    limits = parser.add_argument_group("limits")
    limits.add_argument("--region", help="region reported by /api/v1/accounts/region (us)")
    limits.add_argument("--max-request-bytes", type=int, help="batch bodies must be smaller")
    limits.add_argument("--max-item-bytes", type=int, help="largest batch item (32768)")
    limits.add_argument("--request-log-size", type=int, help="requests kept for /_fake/requests")

    faults = parser.add_argument_group("faults")
    faults.add_argument("--rate-limit", type=float, help="requests per second before 429s")
    faults.add_argument("--rate-limit-burst", type=float, help="token bucket size")
    faults.add_argument("--error-rate", type=float, help="share of requests answered 5xx")
    faults.add_argument("--drop-rate", type=float, help="share of connections closed unanswered")
    faults.add_argument("--latency", type=float, help="seconds added to every response")
    faults.add_argument("--slow-rate", type=float, help="share of responses delayed long")
    faults.add_argument("--slow-seconds", type=float, help="delay of slow responses (30)")
    faults.add_argument(
        "--slow-accepts",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="record the items of slow requests (default yes)",
    )
    faults.add_argument("--seed", type=int, help="seed for the random fault choices")
    return parser


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    # uvicorn re-raises the signal that stopped it once it has shut down; ending through
    # SystemExit (rather than the default handler) lets cleanup of temporary files run.
    raise SystemExit(0)


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Run the server until SIGTERM or SIGINT; returns the process exit code."""
    parser = build_parser(prog) if prog else build_parser()
    args = parser.parse_args(argv)
    changes = {name: getattr(args, name) for name in _RUNTIME_OPTIONS}
    try:
        settings = Settings().updated({k: v for k, v in changes.items() if v is not None})
        if args.record == "disk" and args.record_dir is None:
            raise ValueError("--record disk needs --record-dir")
        sock = bind_loopback(args.host, args.port)
    except (ValueError, OSError) as exc:
        parser.error(str(exc))

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _exit_on_signal)
    with contextlib.ExitStack() as cleanup:
        certificates = None
        if args.tls:
            cert_dir = args.cert_dir or Path(
                cleanup.enter_context(tempfile.TemporaryDirectory(prefix="cio-fake-"))
            )
            certificates = write_certificates(cert_dir)
        store = open_store(args.record, args.record_dir, settings.request_log_size)
        cleanup.callback(store.close)
        app = FakeTrackApp(
            site_id=args.site_id,
            api_key=args.api_key,
            settings=settings,
            store=store,
            app_api_key=args.app_api_key,
        )
        url = url_for(sock, args.tls)

        def announce() -> None:
            lines = [LISTENING_PREFIX + url]
            if certificates is not None:
                lines.append(CA_BUNDLE_PREFIX + str(certificates.ca_bundle))
            sys.stdout.write("\n".join(lines) + "\n")
            sys.stdout.flush()

        config = build_config(app, certificates, log_level=args.log_level, configure_logging=True)
        server = ManagedServer(config, app, on_ready=announce)
        # Everything allocated so far (modules, the app) lives as long as the process. Moving it
        # out of the collector's reach keeps the full collections that parsing big batches sets
        # off short: they only look at what was allocated since.
        gc.freeze()
        server.run(sockets=[sock])
    return 0 if server.started else 1
