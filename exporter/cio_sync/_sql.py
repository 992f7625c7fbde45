"""SQL text the exporter writes itself: quoted literals, the same on every warehouse."""

from __future__ import annotations


def literal(value: object, limit: int | None = None) -> str:
    """`value` as a quoted SQL string literal (its text, cut to `limit` characters), or `null`
    for None. Quotes are doubled; no warehouse here reads backslashes as escapes in a standard
    string literal."""
    if value is None:
        return "null"
    text = str(value) if limit is None else str(value)[:limit]
    return "'" + text.replace("'", "''") + "'"
