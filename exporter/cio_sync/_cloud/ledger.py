"""``cio-export serve``'s JSON log and its durable run ledger (``cio_cloud_runs`` in the state
schema): a redelivered or replayed run is never synced twice, also across restarts."""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timezone
from typing import IO, Any

import orjson

from .._errors import ConfigError
from .._project.artifacts import DEFAULT_STATE_SCHEMA, STATE_SCHEMA_NAME
from .._read.dialects import dialect_for
from .._sql import literal
from .api import LEDGER_TABLE

# --------------------------------------------------------------------------------------------
# serve: structured log
# --------------------------------------------------------------------------------------------


class JsonLog:
    """One JSON object per line: ``{"ts", "level", "event", ...}``."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self._lock = threading.Lock()

    def __call__(self, event: str, level: str = "info", **fields: Any) -> None:
        record = {"ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "level": level,
                  "event": event, **fields}  # fmt: skip
        line = orjson.dumps(record, default=str).decode()
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()


class _JsonLogHandler(logging.Handler):
    """Writes uvicorn's own messages through the JSON log."""

    def __init__(self, log: JsonLog) -> None:
        super().__init__()
        self.log = log

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.log("server", record.levelname.lower(), message=record.getMessage())
        except Exception:  # a log line must never break the server
            self.handleError(record)



# --------------------------------------------------------------------------------------------
# serve: the durable run ledger
# --------------------------------------------------------------------------------------------


def _sql_text(value: str | None, limit: int = 1000) -> str:
    return literal(value, limit)


def _utc_text(moment: datetime | None = None) -> str:
    moment = moment or datetime.now(timezone.utc)
    return "'" + moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S") + "'"


class RunLedger:
    """``<state schema>.cio_cloud_runs(run_id, job_id, received_at, status, updated_at, detail)``
    in the warehouse, through the dbt profile's connection: every run id the receiver accepted,
    so a redelivery or a restart never syncs a run twice.

    The connection is opened per operation and closed right after (DuckDB allows one process at
    a time on its file, and the syncs run in child processes); operations are serialized."""

    FINAL_PENDING = ("queued", "running")

    def __init__(self, ctx, schema: str = DEFAULT_STATE_SCHEMA, *, lock_wait: float = 120.0) -> None:
        if not STATE_SCHEMA_NAME.match(schema):
            raise ConfigError(f"--state-schema must be a plain SQL identifier, not {schema!r}")
        self.ctx = ctx
        self.schema = schema
        self.table = f"{schema}.{LEDGER_TABLE}"
        self.lock_wait = lock_wait
        self._lock = threading.Lock()
        self._adapter: Any = None  # a dbt adapter while open
        self.adapter_type: str | None = None  # the warehouse, for the log
        self.embedded = False  # one process at a time (DuckDB)

    def open(self) -> dict[str, tuple[str, str]]:
        """Connect, create the schema and table when missing; return ``{run_id: (job_id, status)}``."""
        from dbt.contracts.graph.manifest import Manifest

        from .._project.artifacts import Artifacts, open_adapter

        # Raw SQL only: no macros are needed, so an empty manifest serves the adapter.
        self._adapter = open_adapter(self.ctx, Artifacts(Manifest(), {}, None))
        self.adapter_type = self._adapter.type()
        self.embedded = dialect_for(self._adapter).embedded
        self._run(
            [
                f"create schema if not exists {self.schema}",
                f"create table if not exists {self.table} (run_id varchar(32) not null, job_id varchar(32) not null, "
                "received_at timestamp not null, status varchar(32) not null, updated_at timestamp, "
                "detail varchar(1000))",
            ]
        )
        rows = self._run([f"select run_id, job_id, status from {self.table}"], fetch=True) or []
        return {str(r[0]): (str(r[1]), str(r[2])) for r in rows}

    @property
    def exclusive(self) -> bool:
        """True when the warehouse admits one process at a time (DuckDB)."""
        return self.embedded

    def record(
        self, run_id: str, job_id: str, status: str, detail: str | None = None, *, timeout: float | None = None
    ) -> bool:
        """Insert or update the run's row; False when the ledger was busy for ``timeout`` seconds."""
        statements = [
            f"update {self.table} set status = {_sql_text(status, 32)}, updated_at = {_utc_text()}, "
            f"detail = {_sql_text(detail)} where run_id = {_sql_text(run_id)}",
            f"insert into {self.table} (run_id, job_id, received_at, status, updated_at, detail) "
            f"select {_sql_text(run_id)}, {_sql_text(job_id)}, {_utc_text()}, {_sql_text(status, 32)}, {_utc_text()}, "
            f"{_sql_text(detail)} where not exists (select 1 from {self.table} where run_id = {_sql_text(run_id)})",
        ]
        return self._run(statements, timeout=timeout) is not None

    def _run(self, statements: list[str], *, fetch: bool = False, timeout: float | None = None) -> list[tuple] | None:
        from .._project.artifacts import close_adapter

        if not self._lock.acquire(timeout=-1 if timeout is None else timeout):
            return None
        try:
            deadline = time.monotonic() + (self.lock_wait if timeout is None else timeout)
            delay = 0.2
            while True:
                try:
                    rows: list[tuple] = []
                    with self._adapter.connection_named("cio-export-serve"):
                        for sql in statements:
                            _, table = self._adapter.execute(sql, auto_begin=True, fetch=fetch)
                            if fetch:
                                rows = [tuple(r) for r in table.rows]
                        self._adapter.connections.commit_if_has_connection()
                    return rows
                except Exception as exc:
                    # DuckDB: another process (a sync) holds the database file; wait for it.
                    if time.monotonic() + delay > deadline or "lock" not in str(exc).lower():
                        raise ConfigError(f"run ledger {self.table}: {exc}") from None
                    time.sleep(delay)
                    delay = min(delay * 2, 2.0)
                finally:
                    close_adapter(self._adapter)
        finally:
            self._lock.release()


