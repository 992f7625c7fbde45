"""What an alert says, as the webhook's JSON body: Slack's (`text`, and `blocks` for Slack
itself; tools that take Slack's body read `text`) or a generic JSON object, one per incident
opened or resolved."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ... import __version__
from ..._output import human_duration, utc_text
from ..history import iso_utc
from .incidents import TITLES

SLACK_SECTION_CHARS = 2900  # a section's text holds 3,000 characters at most


@dataclass(frozen=True)
class Alert:
    """One message: an incident opened (`resolved_at` None) or resolved."""

    kind: str
    subject: str
    summary: str
    advice: str
    opened_at: datetime
    resolved_at: datetime | None = None
    state_schema: str | None = None
    #: why this alert could not be de-duplicated (the incidents could not be recorded), or None
    undeduplicated: str | None = None

    @property
    def status(self) -> str:
        return "open" if self.resolved_at is None else "resolved"

    @property
    def title(self) -> str:
        return f"{self.subject}: {TITLES.get(self.kind, self.kind)}"


def body(alert: Alert, kind: str) -> dict[str, Any]:
    """The request body in the configured format (`slack` or `json`)."""
    return slack_body(alert) if kind == "slack" else json_body(alert)


def json_body(alert: Alert) -> dict[str, Any]:
    return {
        "source": "cio-export",
        "status": alert.status,
        "kind": alert.kind,
        "key": f"{alert.kind}:{alert.subject}",
        "subject": alert.subject,
        "title": alert.title,
        "summary": alert.summary,
        "advice": alert.advice or None,
        "opened_at": iso_utc(alert.opened_at),
        "resolved_at": iso_utc(alert.resolved_at),
        "state_schema": alert.state_schema,
        "deduplicated": alert.undeduplicated is None,
        "version": __version__,
    }


def _escape(text: str) -> str:
    """Slack's mrkdwn reads &, < and > as markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_body(alert: Alert) -> dict[str, Any]:
    if alert.resolved_at is None:
        headline = f"cio-export: {alert.title}"
        lines = [f":rotating_light: *{_escape(alert.title)}*", _escape(alert.summary)]
        if alert.advice:
            lines.append(f"_What to do:_ {_escape(alert.advice)}")
        when = f"since {utc_text(alert.opened_at)}"
    else:
        took = human_duration((alert.resolved_at - alert.opened_at).total_seconds())
        headline = f"cio-export: resolved: {alert.title}"
        lines = [f":white_check_mark: *Resolved: {_escape(alert.title)}*", f"Was: {_escape(alert.summary)}"]
        when = f"open {took}, {utc_text(alert.opened_at)} to {utc_text(alert.resolved_at)}"
    if alert.undeduplicated:
        lines.append(f"_Not de-duplicated:_ {_escape(alert.undeduplicated)}")
    context = " · ".join(filter(None, [when, f"state schema {alert.state_schema}" if alert.state_schema else None,
                                       f"cio-export {__version__}"]))
    section = "\n".join(lines)
    if len(section) > SLACK_SECTION_CHARS:
        section = section[:SLACK_SECTION_CHARS - 1] + "…"
    return {
        "text": _escape(f"{headline}. {alert.summary}" if alert.resolved_at is None else headline),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": section}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": _escape(context)}]},
        ],
    }
