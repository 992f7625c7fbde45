"""Settings from the environment. Customer.io credentials are read here and nowhere else."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from .._errors import ConfigError, CredentialsError
from .transport import TrackSettings

TRACK_HOSTS = {"us": "https://track.customer.io", "eu": "https://track-eu.customer.io"}


def track_settings_from_env(env: Mapping[str, str] | None = None, **overrides) -> TrackSettings:
    """TrackSettings from CUSTOMERIO_SITE_ID, CUSTOMERIO_API_KEY, CUSTOMERIO_REGION (us/eu),
    CUSTOMERIO_TRACK_URL (base URL override: a proxy or a local server) and CUSTOMERIO_CA_BUNDLE
    (an extra CA file; verification always stays on). `overrides` are TrackSettings fields
    (concurrency, rate_limit, ...) given on the command line; None values are ignored."""
    env = os.environ if env is None else env
    site_id = env.get("CUSTOMERIO_SITE_ID", "").strip()
    api_key = env.get("CUSTOMERIO_API_KEY", "").strip()
    missing = [name for name, value in (("CUSTOMERIO_SITE_ID", site_id), ("CUSTOMERIO_API_KEY", api_key)) if not value]
    if missing:
        raise CredentialsError(
            f"{' and '.join(missing)} not set: export your Track API site id and API key "
            "(Customer.io: Settings > API Credentials), or use --dry-run to send nothing."
        )
    region = env.get("CUSTOMERIO_REGION", "us").strip().lower() or "us"
    if region not in TRACK_HOSTS:
        raise ConfigError(f"CUSTOMERIO_REGION must be 'us' or 'eu', not '{region}'")
    base_url = base_url_from_env(env, "CUSTOMERIO_TRACK_URL")
    ca_bundle = env.get("CUSTOMERIO_CA_BUNDLE", "").strip() or None
    if ca_bundle and not os.path.isfile(ca_bundle):
        raise ConfigError(f"CUSTOMERIO_CA_BUNDLE: no file at {ca_bundle}")
    fields: dict[str, Any] = {
        "site_id": site_id,
        "api_key": api_key,
        "base_url": base_url or TRACK_HOSTS[region],
        "region": region,
        "region_check": not base_url,
        "ca_bundle": ca_bundle,
    }
    fields.update({k: v for k, v in overrides.items() if v is not None})
    return TrackSettings(**fields)


def base_url_from_env(env: Mapping[str, str], name: str) -> str:
    """A base URL override (CUSTOMERIO_TRACK_URL, CUSTOMERIO_APP_URL) without its trailing
    slash, or "" when the variable is not set. Set but empty, or not an http(s) URL with a host,
    is an error: it must never quietly mean Customer.io's production host."""
    if name not in env:
        return ""
    raw = env[name]
    value = raw.strip().rstrip("/")
    if not value:
        raise ConfigError(
            f"{name} is set but empty: unset it to use your region's Customer.io host "
            "(CUSTOMERIO_REGION), or set it to the base URL of a proxy or local server, e.g. https://127.0.0.1:8443"
        )
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises ValueError on a port that is not a number)
    except ValueError as exc:
        raise ConfigError(f"{name} {raw!r} is not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(
            f"{name} {raw!r} is not a base URL: write it as http(s)://host[:port][/path], "
            "without a query or fragment"
        )
    return value
