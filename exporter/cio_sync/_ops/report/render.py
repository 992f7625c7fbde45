"""The status page as one self-contained HTML document: Jinja2 with autoescape (every value from
the warehouse is text, never markup), the charts' data as JSON escaped for HTML (`tojson`), and
uPlot with the page's own script inlined and allowed by their hashes alone (Content-Security-
Policy), so nothing is fetched when it is viewed and no other script can run."""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime, timezone
from functools import lru_cache
from importlib.resources import files
from typing import Any

from ..._errors import ConfigError
from ..._output import human_duration, utc_text
from .collect import Report

_ASSETS = {"uplot_js": "vendor/uplot/uPlot.iife.min.js", "uplot_css": "vendor/uplot/uPlot.min.css",
           "page_js": "static/page.js", "page_css": "static/page.css"}


@lru_cache(maxsize=1)
def _assets() -> dict[str, str]:
    """The inlined scripts and styles. None may end the element it is put in."""
    root = files(__package__)
    assets = {name: root.joinpath(path).read_text(encoding="utf-8") for name, path in _ASSETS.items()}
    for name, text in assets.items():
        closing = "</script" if name.endswith("_js") else "</style"
        if closing in text.lower() or "<!--" in text:
            raise ConfigError(f"{_ASSETS[name]} cannot be inlined: it contains {closing} or <!--")
    return assets


def _csp_hash(script: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode() + "'"


@lru_cache(maxsize=1)
def _environment():
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(loader=PackageLoader(__package__, "templates"), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["utc"] = utc_text
    env.filters["duration"] = human_duration
    env.filters["count"] = lambda n: "-" if n is None else f"{n:,}"
    return env


def _unix(moment: datetime | None) -> float | None:
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


def chart_data(report: Report) -> dict[str, Any]:
    """The charts' series, oldest first: per run, items sent, rejected and the events' p95 lag;
    per reconcile, each segment's gap (Customer.io minus the warehouse)."""
    runs = [r for r in reversed(report.runs) if r.started_at is not None]
    segments = sorted({(r.segment_id, r.segment_name) for r in report.reconciliations})
    checks: dict[str, dict[int, int | None]] = {}
    moments: dict[str, datetime] = {}
    for record in report.reconciliations:
        checks.setdefault(record.reconcile_id, {})[record.segment_id] = record.gap
        moments[record.reconcile_id] = record.checked_at
    order = sorted(checks, key=lambda k: moments[k])
    return {
        "runs": {"t": [_unix(r.started_at) for r in runs], "sent": [r.sent for r in runs],
                 "rejected": [r.rejected for r in runs], "lag_p95": [r.lag_p95_seconds for r in runs]},
        "reconcile": {"t": [_unix(moments[k]) for k in order],
                      "series": [{"label": f"{name} ({sid})", "gaps": [checks[k].get(sid) for k in order]}
                                 for sid, name in segments]},
    }


def render_html(report: Report) -> str:
    """The page; the same document whether written to a file or served."""
    from markupsafe import Markup

    assets = _assets()
    scripts = (assets["uplot_js"], assets["page_js"])
    policy = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; "
              f"script-src {' '.join(_csp_hash(s) for s in scripts)}")
    template = _environment().get_template("page.html.j2")
    return template.render(
        report=report, charts=chart_data(report), csp=policy, now=report.generated_at,
        assets={name: Markup(text) for name, text in assets.items()},
        reconcile_runs=_by_reconcile(report),
    )


def _by_reconcile(report: Report) -> list[dict[str, Any]]:
    """The recorded reconciles, newest first, each with its segments."""
    runs: dict[str, dict[str, Any]] = {}
    for record in report.reconciliations:
        run = runs.setdefault(record.reconcile_id, {"checked_at": record.checked_at, "segments": []})
        run["segments"].append(record)
    return list(runs.values())
