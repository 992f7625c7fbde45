"""Alerts: a webhook (Slack's body, or a generic JSON object) told once per incident, a failed
run, a blocked model, open rejects over a threshold, a stalled model (its last success older
than max_lag) or a reconciliation beyond tolerance, and told again when it recovers.

Configured once, in the environment (config). Evaluated at the end of `run`, by `status
--alert` and by `reconcile` (dispatch); what was found is a set of incidents (incidents, from
the state: health), de-duplicated across processes in the state schema (ledger: cio_incidents),
written as the webhook's body (payload) and posted (webhook). An alert never changes a
command's outcome.

The package: config, incidents, health, ledger, payload, webhook, dispatch.
"""

from .config import AlertSettings, alert_settings_from_env, redact
from .dispatch import alert_after_run, alert_on_reconcile, alert_on_status, raise_alerts
from .incidents import Evaluation, Incident, RunOutcome

__all__ = ["AlertSettings", "Evaluation", "Incident", "RunOutcome", "alert_after_run", "alert_on_reconcile",
           "alert_on_status", "alert_settings_from_env", "raise_alerts", "redact"]
