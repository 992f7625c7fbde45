"""A small client for Customer.io's **App API** (the read side), used by ``reconcile`` and
``spot-check`` to compare what Customer.io holds with the warehouse.

Only the endpoints those commands need: segment counts and membership, a person's attributes
and recent activity, and people by email. The App API takes a bearer token (an App API key,
not the Track API pair) and allows 10 requests per second: the client paces itself to that (a
setting), retries 429 and 5xx answers with backoff (honouring ``Retry-After``), and never puts
the key in a message.
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from .. import __version__
from .._errors import AppApiUnavailable, ConfigError, CredentialsError
from .._send.config import base_url_from_env
from .._send.transport import _RetryingGets, _ssl_context, _Throttle

__all__ = [
    "APP_HOSTS",
    "AppApiClient",
    "AppApiSettings",
    "AppApiUnavailable",
    "app_settings_from_env",
]

APP_HOSTS = {"us": "https://api.customer.io", "eu": "https://api-eu.customer.io"}
ID_TYPES = ("id", "email", "cio_id")
MEMBERSHIP_PAGE = 30_000  # the largest page Customer.io serves
ACTIVITIES_PAGE = 100
_MESSAGE_LIMIT = 300


@dataclass(frozen=True)
class AppApiSettings:
    api_key: str = field(repr=False)
    base_url: str = APP_HOSTS["us"]
    ca_bundle: str | None = None
    rate_limit: float = 10.0
    max_retries: int = 6
    timeout: float = 30.0
    backoff_base: float = 0.5
    backoff_max: float = 30.0

    def __post_init__(self) -> None:
        if not str(self.api_key).strip():
            raise CredentialsError(
                "CUSTOMERIO_APP_API_KEY not set: create an App API key in Customer.io "
                "(Settings > Account Settings > API Credentials > App API Keys) and export it"
            )
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"App API base URL {self.base_url!r} must start with https:// (or http:// locally)")
        if self.rate_limit <= 0:
            raise ConfigError("the App API request rate must be positive")


def app_settings_from_env(env: Mapping[str, str] | None = None, **overrides: Any) -> AppApiSettings:
    """From CUSTOMERIO_APP_API_KEY, CUSTOMERIO_APP_URL (base URL override), CUSTOMERIO_REGION
    (us/eu picks api.customer.io or api-eu.customer.io), CUSTOMERIO_APP_RATE_LIMIT (requests
    per second, default 10) and CUSTOMERIO_CA_BUNDLE. ``overrides`` (None ignored) win."""
    env = os.environ if env is None else env
    region = env.get("CUSTOMERIO_REGION", "us").strip().lower() or "us"
    if region not in APP_HOSTS:
        raise ConfigError(f"CUSTOMERIO_REGION must be 'us' or 'eu', not '{region}'")
    fields: dict[str, Any] = {
        "api_key": env.get("CUSTOMERIO_APP_API_KEY", "").strip(),
        "base_url": base_url_from_env(env, "CUSTOMERIO_APP_URL") or APP_HOSTS[region],
        "ca_bundle": env.get("CUSTOMERIO_CA_BUNDLE", "").strip() or None,
    }
    rate = env.get("CUSTOMERIO_APP_RATE_LIMIT", "").strip()
    if rate:
        try:
            fields["rate_limit"] = float(rate)
        except ValueError:
            raise ConfigError(f"CUSTOMERIO_APP_RATE_LIMIT must be a number, not {rate!r}") from None
    if fields["ca_bundle"] and not os.path.isfile(fields["ca_bundle"]):
        raise ConfigError(f"CUSTOMERIO_CA_BUNDLE: no file at {fields['ca_bundle']}")
    fields.update({k: v for k, v in overrides.items() if v is not None})
    return AppApiSettings(**fields)


class AppApiClient(_RetryingGets):
    """Synchronous, paced App API calls. Use as a context manager."""

    service = "the App API"
    unavailable = AppApiUnavailable
    ca_bundle_hint = "Set CUSTOMERIO_CA_BUNDLE to the CA of your proxy or local server"

    def __init__(self, settings: AppApiSettings, *, transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings
        self._stop = threading.Event()
        self._throttle = _Throttle(settings.rate_limit, self._stop)
        self._rng = random.Random()
        self._http = httpx.Client(
            base_url=settings.base_url.rstrip("/"),
            headers={
                "Authorization": f"Bearer {settings.api_key}",
                "Accept": "application/json",
                "User-Agent": f"cio-sync/{__version__}",
            },
            timeout=httpx.Timeout(settings.timeout),
            verify=_ssl_context(settings.ca_bundle),
            transport=transport,
            follow_redirects=False,
        )
        self.requests = 0

    def __enter__(self) -> AppApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        self._http.close()

    def __repr__(self) -> str:
        return f"AppApiClient(base_url={self.settings.base_url!r})"

    # ------------------------------------------------------------------ endpoints

    def segment_count(self, segment_id: int) -> int:
        """How many people are in the segment (``GET /v1/segments/{id}/customer_count``)."""
        document = self._get(f"/v1/segments/{int(segment_id)}/customer_count", what=f"segment {segment_id}")
        count = document.get("count") if isinstance(document, dict) else None
        if isinstance(count, bool) or not isinstance(count, int):
            raise ConfigError(f"segment {segment_id}: the App API answered no count: {self._clip(document)}")
        return count

    def segment_members(self, segment_id: int, page_size: int = MEMBERSHIP_PAGE) -> Iterator[dict[str, Any]]:
        """Every member's identifiers (``{"id", "email", "cio_id"}``), page by page."""
        start = ""
        while True:
            params: dict[str, Any] = {"limit": page_size}
            if start:
                params["start"] = start
            document = self._get(
                f"/v1/segments/{int(segment_id)}/membership", params=params, what=f"segment {segment_id}"
            )
            identifiers = document.get("identifiers")
            if identifiers is None:  # older answers only list ids
                identifiers = [{"id": value} for value in document.get("ids") or ()]
            yield from (entry for entry in identifiers if isinstance(entry, dict))
            start = document.get("next") or ""
            if not start or not identifiers:
                return

    def customer(self, customer_id: str, id_type: str = "id") -> dict[str, Any] | None:
        """The person's profile (``customer`` object: identifiers, attributes as strings,
        timestamps), or None when Customer.io has no such person."""
        document = self._get(
            f"/v1/customers/{self._path_id(customer_id)}/attributes",
            params={"id_type": self._id_type(id_type)},
            what=f"person {id_type} {customer_id}",
            missing_ok=True,
        )
        if document is None:
            return None
        customer = document.get("customer") if isinstance(document, dict) else None
        if not isinstance(customer, dict):
            raise ConfigError(f"person {customer_id}: unexpected App API answer {self._clip(document)}")
        return customer

    def activities(
        self,
        customer_id: str,
        id_type: str = "id",
        *,
        activity_type: str | None = "event",
        name: str | None = None,
        limit: int = ACTIVITIES_PAGE,
    ) -> list[dict[str, Any]] | None:
        """The person's most recent activities (newest first), at most ``limit``; None when the
        person does not exist."""
        out: list[dict[str, Any]] = []
        start = ""
        while len(out) < limit:
            params: dict[str, Any] = {"id_type": self._id_type(id_type), "limit": min(ACTIVITIES_PAGE, limit)}
            if activity_type:
                params["type"] = activity_type
            if name:
                params["name"] = name
            if start:
                params["start"] = start
            document = self._get(
                f"/v1/customers/{self._path_id(customer_id)}/activities",
                params=params,
                what=f"activity of {id_type} {customer_id}",
                missing_ok=True,
            )
            if document is None:
                return None if not out else out
            page = [a for a in document.get("activities") or () if isinstance(a, dict)]
            out.extend(page)
            start = document.get("next") or ""
            if not start or not page:
                break
        return out[:limit]

    def customers_by_email(self, email: str) -> list[dict[str, Any]]:
        """Every person holding ``email`` (``GET /v1/customers?email=``): ``{email, id, cio_id}``."""
        document = self._get("/v1/customers", params={"email": email}, what=f"people with email {email}")
        results = document.get("results") if isinstance(document, dict) else None
        return [entry for entry in results or () if isinstance(entry, dict)]

    # ------------------------------------------------------------------ plumbing

    @staticmethod
    def _id_type(id_type: str) -> str:
        if id_type not in ID_TYPES:
            raise ConfigError(f"the App API looks people up by {', '.join(ID_TYPES)}, not {id_type!r}")
        return id_type

    @staticmethod
    def _path_id(value: str) -> str:
        return quote(str(value), safe="")

    def _get(self, path: str, *, params: dict | None = None, what: str, missing_ok: bool = False) -> Any:
        return self._get_with_retries(path, params=params, what=what, missing_ok=missing_ok)

    # -- _RetryingGets hooks: paced by the shared throttle, a Retry-After pauses every caller ---------
    def _before_attempt(self) -> None:
        self._throttle.acquire()
        self.requests += 1

    def _wait(self, delay: float, retry_after: float | None) -> bool:
        if retry_after is not None and retry_after > 0:
            self._throttle.cool_down(retry_after)
        return self._stop.wait(delay)

    def _error_text(self, response: httpx.Response) -> str:
        return self._clip(response.text)

    def _refused(self, status: int) -> Exception:
        return CredentialsError(
            f"Customer.io refused the App API key (HTTP {status} from {self.settings.base_url}): check "
            "CUSTOMERIO_APP_API_KEY (an App API key, not the Track API key) and CUSTOMERIO_REGION")

    def _not_found(self, what: str) -> Exception:
        return ConfigError(f"{what}: not found in Customer.io (HTTP 404)")

    def _scrub(self, text: str) -> str:
        return text.replace(self.settings.api_key, "***") if self.settings.api_key else text

    def _clip(self, value: Any) -> str:
        text = self._scrub(value if isinstance(value, str) else orjson.dumps(value, default=str).decode())
        return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 3] + "..."

