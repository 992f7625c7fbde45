"""dbt Cloud: sync the models of a dbt Cloud job run, on demand or from its webhook.

Two entry points share this module:

* :func:`fetch_run_artifacts` downloads ``manifest.json`` and ``run_results.json`` of the step
  of a run that built the models (``dbt build``, or ``dbt run`` followed by ``dbt test``; not
  the last step, which is often ``dbt docs generate``) from the dbt Cloud Admin API v2 into a
  directory, so the normal exporter can run with ``--target-path`` pointing there. The per-model
  gates then decide, exactly as after a local ``dbt build``.
* :class:`WebhookReceiver` (``cio-export serve``) answers dbt Cloud's ``job.run.completed``
  webhooks: it checks the HMAC signature, answers at once (dbt Cloud gives up after 10
  seconds), remembers every run id it accepted in the warehouse (``cio_cloud_runs`` in the state
  schema) so a redelivery or a restart never syncs a run twice, and runs one sync at a time per
  job in a child process (``cio-export cloud-run``).

Secrets (the API token, the webhook secret) are read from the environment only, never logged
and never put in an error message.

The package: ``api`` (settings, the Admin API client), ``artifacts`` (steps, classification,
downloads), ``serve_config``, ``ledger`` (the JSON log and the run ledger), ``serve`` (the
receiver, the queues and the child processes) and ``status_page`` (the status page ``serve``
also answers, behind its own credentials).
"""

from .._errors import DbtCloudUnavailable, RunNotSyncable
from .api import CloudSettings, DbtCloudClient, cloud_settings_from_env
from .artifacts import CloudRun, choose_steps, classify_run, dbt_subcommand, fetch_run_artifacts, prepare_cloud_target
from .ledger import JsonLog, RunLedger
from .serve import ChildLauncher, WebhookReceiver, bind_socket, page_only_app, serve_forever
from .serve_config import JobConfig, ServeConfig, load_serve_config, sign_body
from .status_page import PageAuth, StatusPage, page_auth_from_env, report_command

__all__ = [
    "ChildLauncher",
    "CloudRun",
    "CloudSettings",
    "DbtCloudClient",
    "DbtCloudUnavailable",
    "JobConfig",
    "JsonLog",
    "PageAuth",
    "RunLedger",
    "RunNotSyncable",
    "ServeConfig",
    "StatusPage",
    "WebhookReceiver",
    "bind_socket",
    "choose_steps",
    "classify_run",
    "cloud_settings_from_env",
    "dbt_subcommand",
    "fetch_run_artifacts",
    "load_serve_config",
    "page_auth_from_env",
    "page_only_app",
    "prepare_cloud_target",
    "report_command",
    "serve_forever",
    "sign_body",
]
