"""Settings from the environment. Customer.io credentials are read here and nowhere else."""

from __future__ import annotations

import os
from collections.abc import Mapping

from ._errors import ConfigError, CredentialsError
from ._transport import TrackSettings

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
    base_url = env.get("CUSTOMERIO_TRACK_URL", "").strip().rstrip("/")
    ca_bundle = env.get("CUSTOMERIO_CA_BUNDLE", "").strip() or None
    if ca_bundle and not os.path.isfile(ca_bundle):
        raise ConfigError(f"CUSTOMERIO_CA_BUNDLE: no file at {ca_bundle}")
    fields = {
        "site_id": site_id,
        "api_key": api_key,
        "base_url": base_url or TRACK_HOSTS[region],
        "region": region,
        "region_check": not base_url,
        "ca_bundle": ca_bundle,
    }
    fields.update({k: v for k, v in overrides.items() if v is not None})
    return TrackSettings(**fields)
