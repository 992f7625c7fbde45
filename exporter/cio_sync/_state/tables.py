"""The state schema's tables (columns and keys) and the constants of how they are written."""

from __future__ import annotations

from .._project.artifacts import DEFAULT_STATE_SCHEMA

DEFAULT_SCHEMA = DEFAULT_STATE_SCHEMA  # the state schema unless configured

SCHEMA_VERSION = 4
FLUSH_SECONDS = 2.0
FLUSH_ROWS = 10_000
MAX_QUEUED_WRITES = 2  # writes handed to the writer thread and not yet committed, at most
# Per-model writes of one flush, in this order.
WRITE_ORDER = {"people_new": 1, "people": 1, "sent_new": 2, "sent": 2}
UNIQUE_VIOLATION = "23505"  # SQLSTATE
ANALYZE_MIN_ROWS = 10_000  # new ledger rows before its statistics are refreshed (see _keep_ledger_analyzed)
INFLIGHT_PART_CHARS = 60_000  # event keys of one cio_inflight row, as a JSON array (Redshift: varchar(65535))
INFLIGHT_PART_IDS = 2_000  # event ids of one row: 2,000 x 29 characters of JSON

#: PostgreSQL: columns COPYed rows leave out, which default to the writing transaction's time
NOW_DEFAULTS = {"cio_event_ledger": ("first_attempt_at", "last_attempt_at", "sent_at"),
                "cio_people_state": ("synced_at",)}

#: cio_runs statuses of a run that delivered what it had (some rows refused or not): a success, for
#: the time since a model's last success (status, alerts, check) and whether it has a history
SYNCED_RUN_STATUSES = "('success', 'rejected')"

T_KEY = "varchar(1024)"
T_TEXT = "varchar(4096)"
T_TS = "timestamp"

TABLES: dict[str, tuple[tuple[tuple[str, str], ...], tuple[str, ...]]] = {
    # name: (columns, key columns)
    "cio_state_version": ((("version", "integer"), ("migrated_at", T_TS)), ()),
    "cio_people_state": (
        (("model", T_KEY), ("person_key", T_KEY), ("identifier", T_KEY), ("row_hash", "varchar(32)"),
         ("synced_at", T_TS), ("run_id", "varchar(64)")),
        ("model", "person_key"),
    ),
    "cio_event_ledger": (
        (("model", T_KEY), ("event_key", T_KEY), ("event_id", "varchar(26)"), ("status", "varchar(16)"),
         ("row_hash", "varchar(32)"), ("event_at", "bigint"), ("first_attempt_at", T_TS),
         ("last_attempt_at", T_TS), ("sent_at", T_TS), ("run_id", "varchar(64)"), ("reason", T_TEXT)),
        ("model", "event_key"),
    ),
    "cio_inflight": (
        (("model", T_KEY), ("shard", "varchar(16)"), ("run_id", "varchar(64)"), ("part", "integer"),
         ("created_at", T_TS), ("event_keys", "varchar(65535)"), ("event_ids", "varchar(65535)")),
        ("model", "shard", "run_id", "part"),
    ),
    "cio_rejects": (
        (("model", T_KEY), ("row_key", T_KEY), ("reason", "varchar(64)"), ("message", T_TEXT),
         ("transient", "boolean"), ("row_hash", "varchar(32)"), ("first_seen_at", T_TS), ("last_seen_at", T_TS),
         ("resolved_at", T_TS), ("run_id", "varchar(64)")),
        ("model", "row_key"),
    ),
    "cio_runs": (
        (("run_id", "varchar(64)"), ("model", T_KEY), ("shard", "varchar(16)"), ("started_at", T_TS),
         ("finished_at", T_TS), ("scanned", "bigint"), ("changed", "bigint"), ("sent", "bigint"),
         ("rejected", "bigint"), ("skipped", "bigint"), ("deleted", "bigint"), ("status", "varchar(16)"),
         ("dbt_invocation_id", "varchar(64)"), ("lag_p50_seconds", "double precision"),
         ("lag_p95_seconds", "double precision"), ("message", T_TEXT)),
        ("run_id", "model"),
    ),
    "cio_payload_schemas": (
        (("model", T_KEY), ("identifier_kind", "varchar(16)"), ("schema_json", "varchar(65535)"),
         ("updated_at", T_TS)),
        ("model",),
    ),
    "cio_leases": (
        (("model", T_KEY), ("shard", "varchar(16)"), ("holder", "varchar(64)"), ("heartbeat_at", T_TS),
         ("expires_at", T_TS)),
        ("model", "shard"),
    ),
    "cio_builds": (
        (("model_unique_id", "varchar(512)"), ("relation_name", "varchar(1024)"), ("invocation_id", "varchar(64)"),
         ("built_at", T_TS)),
        (),
    ),
    "cio_state_settings": ((("name", "varchar(64)"), ("value", T_KEY)), ("name",)),
    "cio_model_scopes": (
        (("model", T_KEY), ("relation_name", T_KEY), ("site_id", "varchar(256)"), ("recorded_at", T_TS)),
        ("model",),
    ),
    # One row per segment of each `cio-export reconcile` (written by it, shown by `report`). Only
    # created where missing: a table no run reads needs no new SCHEMA_VERSION, which would make an
    # older cio-export refuse the schema.
    "cio_reconciliations": (
        (("reconcile_id", "varchar(64)"), ("checked_at", T_TS), ("segment_id", "bigint"),
         ("segment_name", T_KEY), ("model", T_KEY), ("predicate", T_TEXT), ("identifier_kind", "varchar(16)"),
         ("warehouse_count", "bigint"), ("customerio_count", "bigint"), ("tolerance", "varchar(32)"),
         ("allowed", "double precision"), ("only_in_warehouse", "bigint"), ("only_in_customerio", "bigint"),
         ("ok", "boolean"), ("problem", T_TEXT)),
        ("reconcile_id", "segment_id"),
    ),
    # Written by alerts (_ops/alerts/ledger.py), which create it where a command opened the state
    # read-only; older cio-export versions neither read nor write it (no version of its own).
    "cio_incidents": (
        (("incident_key", T_KEY), ("kind", "varchar(32)"), ("subject", T_KEY), ("summary", T_TEXT),
         ("opened_at", T_TS), ("last_seen_at", T_TS), ("alerted_at", T_TS), ("resolved_at", T_TS),
         ("claimed_by", "varchar(64)"), ("claimed_at", T_TS)),
        ("incident_key",),
    ),
}
