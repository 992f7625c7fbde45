"""Command line of the fake server (``python -m cio_sync.fake_server``).

Once listening it prints ``cio-fake-server listening on <url>`` (then ``ca-bundle: <path>`` in
TLS mode) to stdout and flushes, which is the readiness signal the subprocess runner waits for.
"""

from __future__ import annotations

import contextlib
import gc
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

import click

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


def _options(func):
    """The server's options: where it listens and who may call it; Customer.io's limits it
    enforces; the faults it injects (none by default)."""
    decorators = [
        click.option("--host", default="127.0.0.1", show_default=True, help="Loopback address to listen on."),
        click.option("--port", type=int, default=0, show_default=True, help="Port; 0 picks a free one."),
        click.option("--tls", is_flag=True, help="Serve HTTPS with a throwaway CA."),
        click.option("--cert-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="Where to write the CA and the server certificate [default: a temporary directory]."),
        click.option("--site-id", default="site", show_default=True, help="Basic auth user."),
        click.option("--api-key", default="key", show_default=True, help="Basic auth password."),
        click.option("--app-api-key", default="app-key", show_default=True, help="App API bearer token."),
        click.option("--record", type=click.Choice(["memory", "disk"]), default="memory", show_default=True,
                     help="Where accepted items are kept."),
        click.option("--record-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="Directory of accepted.ndjson (with --record disk)."),
        click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]),
                     default="warning", show_default=True),
        click.option("--region", default=None, help="Limits: region /api/v1/accounts/region reports [default: us]."),
        click.option("--max-request-bytes", type=int, default=None,
                     help="Limits: batch bodies must be smaller [default: Customer.io's 500 KB]."),
        click.option("--max-item-bytes", type=int, default=None,
                     help="Limits: largest batch item [default: 32768]."),
        click.option("--request-log-size", type=int, default=None, help="Limits: requests kept for /_fake/requests."),
        click.option("--rate-limit", type=float, default=None, help="Faults: requests per second before 429s."),
        click.option("--rate-limit-burst", type=float, default=None, help="Faults: token bucket size."),
        click.option("--error-rate", type=float, default=None, help="Faults: share of requests answered 5xx."),
        click.option("--drop-rate", type=float, default=None, help="Faults: share of connections closed unanswered."),
        click.option("--latency", type=float, default=None, help="Faults: seconds added to every response."),
        click.option("--slow-rate", type=float, default=None, help="Faults: share of responses delayed long."),
        click.option("--slow-seconds", type=float, default=None,
                     help="Faults: delay of slow responses [default: 30]."),
        click.option("--slow-accepts/--no-slow-accepts", default=None,
                     help="Faults: record the items of slow requests [default: yes]."),
        click.option("--seed", type=int, default=None, help="Faults: seed for the random fault choices."),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    # uvicorn re-raises the signal that stopped it once it has shut down; ending through
    # SystemExit (rather than the default handler) lets cleanup of temporary files run.
    raise SystemExit(0)


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Run the server until SIGTERM or SIGINT: the process's exit code, as SystemExit (a usage
    error exits 2, as every cio-export command does)."""
    return serve.main(args=list(argv) if argv is not None else None, prog_name=prog or "python -m cio_sync.fake_server")


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@_options
def serve(host, port, tls, cert_dir, site_id, api_key, app_api_key, record, record_dir, log_level,  # noqa: PLR0913
          **runtime) -> None:
    """Serve a fake Customer.io Track API (and the App API's reads) on a loopback address."""
    from ._app import FakeTrackApp
    from ._server import CA_BUNDLE_PREFIX, LISTENING_PREFIX, ManagedServer, bind_loopback, build_config, url_for
    from ._settings import Settings
    from ._store import open_store
    from ._tls import write_certificates

    try:
        settings = Settings().updated({k: v for k, v in runtime.items() if k in _RUNTIME_OPTIONS and v is not None})
        if record == "disk" and record_dir is None:
            raise ValueError("--record disk needs --record-dir")
        sock = bind_loopback(host, port)
    except (ValueError, OSError) as exc:
        raise click.UsageError(str(exc)) from None

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _exit_on_signal)
    with contextlib.ExitStack() as cleanup:
        certificates = None
        if tls:
            directory = cert_dir or Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="cio-fake-")))
            certificates = write_certificates(directory)
        store = open_store(record, record_dir, settings.request_log_size)
        cleanup.callback(store.close)
        app = FakeTrackApp(site_id=site_id, api_key=api_key, settings=settings, store=store, app_api_key=app_api_key)
        url = url_for(sock, tls)

        def announce() -> None:
            lines = [LISTENING_PREFIX + url]
            if certificates is not None:
                lines.append(CA_BUNDLE_PREFIX + str(certificates.ca_bundle))
            sys.stdout.write("\n".join(lines) + "\n")
            sys.stdout.flush()

        config = build_config(app, certificates, log_level=log_level, configure_logging=True)
        server = ManagedServer(config, app, on_ready=announce)
        # Everything allocated so far (modules, the app) lives as long as the process. Moving it
        # out of the collector's reach keeps the full collections that parsing big batches sets
        # off short: they only look at what was allocated since.
        gc.freeze()
        server.run(sockets=[sock])
    sys.exit(0 if server.started else 1)
