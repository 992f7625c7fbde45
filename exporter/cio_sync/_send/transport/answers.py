"""Reading the Track API's answers: error entries, a 207's refused items, a body too large, TLS
failures; and the TLS context of every client (certifi, or CUSTOMERIO_CA_BUNDLE)."""

from __future__ import annotations

import ssl

import certifi
import orjson

from ..._errors import ConfigError
from .settings import _TOO_LARGE_REASONS


def _error_entries(status: int, content: bytes) -> list[tuple[str, str]]:
    """``(reason, message)`` pairs from a non-2xx body in any of Customer.io's shapes.

    ``{"errors":[{"reason","message",...}]}``, ``{"meta":{"errors":["..."]}}``,
    ``{"meta":{"error":"..."}}``, or plain text.
    """
    try:
        document = orjson.loads(content) if content else None
    except orjson.JSONDecodeError:
        document = None
    entries: list[tuple[str, str]] = []
    if isinstance(document, dict):
        errors = document.get("errors")
        meta = document.get("meta")
        if not isinstance(errors, list) and isinstance(meta, dict):
            errors = meta.get("errors")
            if not isinstance(errors, list) and meta.get("error") is not None:
                errors = [meta.get("error")]
        if not isinstance(errors, list) and document.get("error") is not None:
            errors = [document.get("error")]
        for entry in errors if isinstance(errors, list) else []:
            if isinstance(entry, dict):
                reason = str(entry.get("reason") or "")
                message = str(entry.get("message") or entry.get("error") or reason or entry)
                if entry.get("field"):
                    message = f"{message} (field: {entry['field']})"
                entries.append((reason, message))
            else:
                entries.append(("", str(entry)))
    if not entries:
        text = content.decode("utf-8", "replace").strip()
        entries.append(("", text or f"HTTP {status} with an empty body"))
    return entries


def _too_large(status: int, entries: list[tuple[str, str]]) -> bool:
    if status == 413:
        return True
    for reason, message in entries:
        lowered = message.lower()
        if reason in _TOO_LARGE_REASONS or "too large" in lowered or "too big" in lowered:
            return True
    return False


def _parse_207(content: bytes, size: int) -> dict[int, tuple[str, str]] | None:
    """``{batch_index: (reason, message)}`` from a 207 body, or None if it cannot be read."""
    try:
        document = orjson.loads(content)
    except orjson.JSONDecodeError:
        return None
    errors = document.get("errors") if isinstance(document, dict) else None
    if not isinstance(errors, list):
        return None
    failed: dict[int, tuple[str, str]] = {}
    for entry in errors:
        if not isinstance(entry, dict):
            return None
        index = entry.get("batch_index")
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < size:
            return None
        reason = str(entry.get("reason") or "rejected")
        message = str(entry.get("message") or reason)
        if entry.get("field"):
            message = f"{message} (field: {entry['field']})"
        failed[index] = (reason, message)
    return failed


def _is_certificate_error(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            break
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)


def _ssl_context(ca_bundle: str | None) -> ssl.SSLContext:
    """System CAs + certifi's CAs + the extra ``ca_bundle``; verification is always on."""
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=certifi.where())
    if ca_bundle:
        try:
            context.load_verify_locations(cafile=ca_bundle)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"cannot load CA bundle {ca_bundle!r} ({exc}): it must be a PEM file of CA certificates"
            ) from None
    return context
