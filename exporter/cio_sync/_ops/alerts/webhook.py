"""Posting an alert to the webhook: one JSON POST with a short timeout, retried a few times on
the answers the project always retries (408, 429, 5xx, and no answer at all; see
_send/transport/retry.py), never raising: what went wrong comes back as text without the URL."""

from __future__ import annotations

import random
import time
from typing import Any

import httpx
import orjson

from ... import __version__
from ..._send.transport.retry import RETRY_STATUSES, Again, retry_loop
from ..._send.transport.retry import _retry_after as retry_after
from .config import AlertSettings

ANSWER_CHARS = 200


class Webhook:
    """One HTTP client for the alerts of one evaluation (use as a context manager)."""

    def __init__(self, settings: AlertSettings) -> None:
        self.settings = settings
        self._http = httpx.Client(timeout=settings.timeout, follow_redirects=False,
                                  headers={"User-Agent": f"cio-export/{__version__}"})
        self._rng = random.Random()

    def __enter__(self) -> Webhook:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def post(self, body: dict[str, Any]) -> str | None:
        """None once the webhook took the body (a 2xx answer), else why not (the last attempt's
        error or answer, the URL left out)."""
        content = orjson.dumps(body)
        errors: list[str] = []

        def attempt(n: int) -> Again | None:
            try:
                response = self._http.post(self.settings.url, content=content,
                                           headers={"Content-Type": "application/json"})
            except httpx.TransportError as exc:
                errors.append(f"{type(exc).__name__}: {self.settings.scrub(str(exc)) or 'no answer'}")
                return Again()
            except httpx.HTTPError as exc:  # not worth another attempt
                errors.append(f"{type(exc).__name__}: {self.settings.scrub(str(exc))}")
                return None
            if response.is_success:
                errors.clear()
                return None
            text = self.settings.scrub(" ".join(response.text.split()))[:ANSWER_CHARS]
            errors.append(f"HTTP {response.status_code}" + (f": {text}" if text else ""))
            if response.status_code in RETRY_STATUSES:
                return Again(retry_after(response.headers.get("Retry-After")))
            return None

        def wait(delay: float, again: Again) -> bool:
            time.sleep(min(delay, self.settings.backoff_max))
            return False

        retry_loop(attempt, self.settings, self._rng, wait)
        if not errors:
            return None
        attempts = len(errors)
        return f"{errors[-1]} ({attempts} attempt{'s' if attempts > 1 else ''})"
