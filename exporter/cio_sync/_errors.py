"""Exceptions raised by cio_sync, each carrying the process exit code the CLI should use.

Messages are written for the person running ``cio-export``: they say what went wrong and what
to do about it. They never contain the Track API key or an ``Authorization`` header; code
raising these must build messages only from values that are safe to show (site id, URLs,
HTTP statuses, response text with secrets scrubbed).
"""

from __future__ import annotations

__all__ = [
    "AppApiUnavailable",
    "CioSyncError",
    "ConfigError",
    "CredentialsError",
    "DbtCloudUnavailable",
    "DeliveryIncomplete",
    "RegionMismatchError",
    "RunNotSyncable",
]


class CioSyncError(Exception):
    """Base class of every error cio_sync raises on purpose."""

    exit_code: int = 1


class ConfigError(CioSyncError):
    """Bad configuration or usage, found before anything was sent (or that stops a run early)."""

    exit_code = 2


class CredentialsError(ConfigError):
    """Customer.io refused the Track API credentials (401/403), or they are missing."""


class RegionMismatchError(ConfigError):
    """The region preflight says the workspace lives in the other data-center region."""


class DeliveryIncomplete(CioSyncError):
    """Some items could not be delivered: retries ran out, so their fate is unknown.

    Re-running the export is safe: event ids are deterministic and identify calls are
    idempotent, so anything that did arrive is not duplicated.
    """

    exit_code = 3


class AppApiUnavailable(CioSyncError):
    """Customer.io's App API kept failing (5xx, 429, timeouts) after every retry: run again later."""

    exit_code = 3


class DbtCloudUnavailable(CioSyncError):
    """dbt Cloud kept failing (5xx, 429, timeouts) after every retry: nothing was synced; run
    again later."""

    exit_code = 3


class RunNotSyncable(CioSyncError):
    """The dbt Cloud run errored or was cancelled: nothing is synced from it (exit 1, like a
    blocked model)."""

    exit_code = 1
