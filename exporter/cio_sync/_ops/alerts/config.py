"""Alert settings from the environment, configured once for every command that alerts:
CIO_ALERT_WEBHOOK_URL (where), CIO_ALERT_FORMAT (slack or json) and
CIO_ALERT_MAX_OPEN_REJECTS (the rejects threshold). The webhook URL is a credential (a Slack
webhook's path is its secret): it is kept out of reprs and messages, which show
:func:`redact`'s scheme and host only."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..._errors import ConfigError

URL_VARIABLE = "CIO_ALERT_WEBHOOK_URL"
FORMAT_VARIABLE = "CIO_ALERT_FORMAT"
REJECTS_VARIABLE = "CIO_ALERT_MAX_OPEN_REJECTS"
FORMATS = ("slack", "json")

#: Seconds per webhook request, retries after the first attempt, the first backoff (doubling,
#: with jitter) and the longest wait between attempts: an alert never holds a run up for long.
TIMEOUT = 5.0
MAX_RETRIES = 2
BACKOFF_BASE = 0.5
BACKOFF_MAX = 2.0


@dataclass(frozen=True)
class AlertSettings:
    url: str = field(repr=False)
    format: str = "slack"
    max_open_rejects: int = 0
    timeout: float = TIMEOUT
    max_retries: int = MAX_RETRIES
    backoff_base: float = BACKOFF_BASE
    backoff_max: float = BACKOFF_MAX

    @property
    def where(self) -> str:
        """The webhook for messages: scheme and host, never its path, query or user."""
        return redact(self.url)

    def scrub(self, text: str) -> str:
        """`text` without the webhook URL (an error message from the HTTP client, an answer)."""
        return text.replace(self.url, self.where) if self.url else text


def redact(url: str) -> str:
    """`https://hooks.slack.com/…`: what a message may show of a webhook URL."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(a URL that cannot be read)"
    if not parts.scheme or not host:
        return "(a URL that cannot be read)"
    return f"{parts.scheme}://{host}{port}/…"


def alert_settings_from_env(env: Mapping[str, str] | None = None) -> AlertSettings | None:
    """The alert settings, or None when CIO_ALERT_WEBHOOK_URL is not set (no alerts). A value
    that is set but unusable is a configuration error naming the variable."""
    env = os.environ if env is None else env
    if URL_VARIABLE not in env:
        for name in (FORMAT_VARIABLE, REJECTS_VARIABLE):
            if env.get(name, "").strip():
                raise ConfigError(f"{name} is set but {URL_VARIABLE} is not: set the webhook URL to send alerts, or "
                                  f"unset {name}")
        return None
    url = env[URL_VARIABLE].strip()
    if not url:
        raise ConfigError(f"{URL_VARIABLE} is set but empty: unset it to send no alerts, or set it to the webhook's "
                          "URL (a Slack incoming webhook, or any endpoint taking a JSON POST)")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError on a port that is not a number)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{URL_VARIABLE} ({redact(url)}) is not an http(s) URL: write it as "
                          "https://host[:port]/path, as the webhook's provider gives it")
    kind = env.get(FORMAT_VARIABLE, "slack").strip().lower() or "slack"
    if kind not in FORMATS:
        raise ConfigError(f"{FORMAT_VARIABLE} must be 'slack' (Slack's incoming webhooks and the tools that take "
                          f"their body) or 'json' (a JSON object per incident), not {kind!r}")
    raw = env.get(REJECTS_VARIABLE, "0").strip() or "0"
    try:
        threshold = int(raw)
    except ValueError:
        threshold = -1
    if threshold < 0:
        raise ConfigError(f"{REJECTS_VARIABLE} must be a whole number of open rejects per model (0 or more), "
                          f"not {raw!r}")
    return AlertSettings(url=url, format=kind, max_open_rejects=threshold)
