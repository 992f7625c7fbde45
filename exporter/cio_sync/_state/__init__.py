"""State kept in the user's warehouse: what was synced, what is in flight, what was refused.

Tables (schema `cio_sync_state` unless configured), created and migrated here:

- cio_people_state   one row per synced person of a people model: stable key, identifier, the
                     hash of the row last acknowledged by Customer.io.
- cio_event_ledger   one row per event id of an event model: sent (acknowledged), rejected,
                     pending (sent or about to be sent by a run that stopped before the answer,
                     or undelivered: resent with the same id), baseline / backfill (recorded,
                     never sent), uncertain (pending longer than the dedupe window).
- cio_inflight       the event keys of batches a run is sending (committed before they are
                     sent, a few rows per batch), deleted in the transaction that records the
                     run's last answers. What a stopped run left here becomes `pending` in the
                     ledger before the next run of the model reads anything.
- cio_rejects        rows refused (by cio-export's checks or by Customer.io), with the reason,
                     first and last seen, resolved when later accepted.
- cio_runs           one row per model per run: counts, status, dbt invocation, lag.
- cio_payload_schemas  each model's attribute names and kinds, and identifier kind.
- cio_leases         one lease per (model, shard): who runs it, until when.
- cio_builds         written by the dbt package's post-hook: which invocation built a relation.
- cio_state_settings how this schema's state was made: `row_hash`, the function of the rows'
                     hashes (see StateStore.row_hash).
- cio_model_scopes   what each model's state describes: the relation it was synced from and the
                     Customer.io workspace (site id) it was sent to; a run reading another
                     relation or sending to another workspace is refused (see _decide.checks.scope_problem).
- cio_incidents      alerts' incidents (a failed run, a blocked or stalled model, ...): first
                     and last seen, when alerted, when resolved, and which process is alerting
                     (see _ops/alerts/ledger.py).

Writes go through a second connection (a commit on the reading connection would close its
streaming cursor) and are set-based: COPY into a temporary table then one upsert on PostgreSQL,
a multi-row insert then MERGE on Redshift (no client COPY, no ON CONFLICT), batched inserts
then an upsert on DuckDB. They are buffered and committed every few seconds, never per row;
the one exception is recording the keys of events in flight, which is committed before they
are sent (one row per batch, not per event: each event is written to the ledger once, when
Customer.io has answered for it).

On PostgreSQL the writes run on a writer thread that owns the state connection, so the
warehouse works on them while the exporter encodes the next rows: `flush()` hands the buffers
over and returns a sequence number, `committed(seq)` says whether that write has committed
(in order: a later sequence number implies every earlier one), and every other statement waits
for the writes handed over before it. Redshift (redshift_connector does not share connections
between threads) and DuckDB write inline.

The package: tables (the schema), connection (the connection and the write queue), writes (what
is recorded and how a flush writes it), leases, copy (COPY text), store (StateStore).
"""

from .connection import utcnow
from .leases import holder_is_dead, lease_holder, lease_lock_key
from .store import StateStore
from .tables import DEFAULT_SCHEMA, SCHEMA_VERSION, SYNCED_RUN_STATUSES, TABLES

__all__ = ["DEFAULT_SCHEMA", "SCHEMA_VERSION", "SYNCED_RUN_STATUSES", "TABLES", "StateStore", "holder_is_dead",
           "lease_holder", "lease_lock_key", "utcnow"]
