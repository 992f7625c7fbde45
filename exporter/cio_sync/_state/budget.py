"""One request rate shared by the cio-export shards (`--shard K/N`) sending to one Customer.io
workspace through one state schema (PostgreSQL).

The budget is a GCRA (generic cell rate algorithm) kept in one row per workspace of
`cio_rate_budget`: `tat`, the theoretical arrival time (Unix seconds by the database's clock)
at which the budget's next request may start. A process claims k permits in one statement,
`tat = greatest(tat, now) + k / rate`, and gets the k times from the old value on, 1 / rate
apart; it starts a request at each (the throttle, `_send.transport.retry._Throttle`). Permits
never overlap, whichever process holds them, so all processes together start at most `rate`
requests a second, give or take the one chunk a process may still be starting when the next
one's begins. A process claims ahead as many as it used lately (at most CLAIM_SECONDS' worth),
so a slow or finished one claims little or nothing, and its share goes to the others by itself.
Every time is the database's, never a process's clock.

Claims go through a connection of their own (the workers' threads claim while the run's state
connection is busy writing), each in autocommit: a single-row upsert, one round trip.

PostgreSQL only: Redshift has neither RETURNING nor quick single-row commits, and a DuckDB
file is written by one process at a time; there each shard paces itself at its part of the
rate (see _run.pacing).
"""

from __future__ import annotations

import threading
import time
from typing import Any

TABLE = "cio_rate_budget"
COLUMNS = "site_id varchar(256) primary key, tat double precision not null, updated_at timestamp not null"

CLAIM_SECONDS = 0.2
"""A claim is at most this long a share of the rate: chunks of 20 permits at 100 requests/s."""

_CLOCK = "extract(epoch from clock_timestamp())::double precision"


def chunk_for(rate: float) -> int:
    """Permits claimed at most at once at `rate` requests per second."""
    return max(1, int(rate * CLAIM_SECONDS))


class SharedRateBudget:
    """The rate budget of workspace `site_id` in `schema`, claimed at `rate` requests per second
    on `handle` (a PostgreSQL DB-API connection of its own, put in autocommit). Thread-safe:
    claims take turns on the connection."""

    def __init__(self, handle: Any, schema: str, site_id: str, rate: float) -> None:
        if rate <= 0:
            raise ValueError("a shared rate budget needs a positive rate")
        self.handle = handle
        self.handle.autocommit = True
        self.table = f'"{schema}"."{TABLE}"'
        self.site_id = site_id
        self.spacing = 1.0 / rate
        self._lock = threading.Lock()
        try:
            self._execute(f"create table if not exists {self.table} ({COLUMNS})")
        except Exception:  # two processes making it at once: one of them fails, the table is there
            if not self._execute("select to_regclass(%s)", (self.table,))[0][0]:
                raise

    def _execute(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock, self.handle.cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall()) if cursor.description else []

    def claim_at(self, permits: int) -> tuple[float, float]:
        """Claim `permits`: the database time (Unix seconds) of the first, and the database's
        time when the claim was made."""
        span = permits * self.spacing
        [(tat, now)] = self._execute(
            f"insert into {self.table} as b (site_id, tat, updated_at) values (%s, {_CLOCK} + %s, clock_timestamp()) "
            f"on conflict (site_id) do update set tat = greatest(b.tat, {_CLOCK}) + %s, updated_at = clock_timestamp() "
            f"returning b.tat, {_CLOCK}", (self.site_id, span, span))
        return float(tat) - span, float(now)

    def claim(self, permits: int) -> tuple[float, float]:
        """Claim `permits`: the time.monotonic() of the first, and the seconds between two."""
        first, now = self.claim_at(permits)
        return time.monotonic() + (first - now), self.spacing

    def hold(self, seconds: float) -> None:
        """No process starts a request of this workspace for `seconds` (a 429's Retry-After)."""
        self._execute(f"update {self.table} set tat = greatest(tat, {_CLOCK} + %s), updated_at = clock_timestamp() "
                      "where site_id = %s", (seconds, self.site_id))

    def close(self) -> None:
        try:
            self.handle.close()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass
