"""Leases: one run per (model, shard) at a time. On PostgreSQL an advisory lock of the state
connection, freed when a killed run's session ends; elsewhere a row with an expiry."""

from __future__ import annotations

import hashlib
import os
import socket
import time
from datetime import datetime

from .connection import StateConnection, utcnow


def lease_holder(run_id: str) -> str:
    """A lease's holder as written in cio_leases: the run, and the host and process running it
    (within the column's 64 characters), so that a run on the same host can tell a dead one."""
    return f"{run_id}@{socket.gethostname()[:16]}:{os.getpid()}"


def holder_is_dead(holder: str) -> bool:
    """Whether a lease holder is known dead: a process of this host that no longer exists. A
    holder on another host, or written by an older cio-export, cannot be checked (False)."""
    _, at, place = holder.rpartition("@")
    host, _, pid = place.rpartition(":")
    if not at or host != socket.gethostname()[:16] or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists (another user's process): alive
        return False
    return False


def lease_lock_key(schema: str, model: str, shard: str) -> int:
    """PostgreSQL: the advisory lock key (a signed 64-bit integer) of the (model, shard) lease of
    the state schema `schema`."""
    digest = hashlib.md5(f"{schema}\x00{model}\x00{shard}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class StateLeases(StateConnection):
    # -- leases --------------------------------------------------------------------------------
    def lease_lock_key(self, model: str, shard: str) -> int:
        return lease_lock_key(self.schema, model, shard)

    def acquire_lease(self, model: str, shard: str, holder: str, ttl: float) -> bool:
        """Take the (model, shard) lease unless a live one is held by someone else.

        On PostgreSQL the lease is a session-level advisory lock on the state connection, which
        PostgreSQL releases the moment the holder's connection ends: a killed run's lease is free
        at once, whatever its row in cio_leases says (the row, renewed by heartbeats, is what
        `status` shows). Elsewhere the row is the lease, and a killed run's expires after `ttl`."""
        if not self.writable:
            return True
        now = utcnow()
        table = self.table("cio_leases")
        row = (model, shard, holder, now, datetime.fromtimestamp(now.timestamp() + ttl))
        if self.dialect.advisory_locks:
            [(locked,)] = self.execute(f"select pg_try_advisory_lock({self.lease_lock_key(model, shard)})")
            if not locked:  # a live session holds it
                self.commit()
                return False
            self.execute(
                f"insert into {table} (model, shard, holder, heartbeat_at, expires_at) values (%s, %s, %s, %s, %s) "
                "on conflict (model, shard) do update set holder = excluded.holder, "
                "heartbeat_at = excluded.heartbeat_at, expires_at = excluded.expires_at", row)
            self.commit()
            return True
        for lock in self.dialect.lock(table):
            self.execute(lock)
        rows = self.execute(f"select holder, expires_at from {table} where model = %s and shard = %s", (model, shard))
        if rows and rows[0][0] != holder and rows[0][1] is not None and rows[0][1] > now \
                and not holder_is_dead(rows[0][0]):  # a killed run of this host frees it at once
            self.commit()
            return False
        self.execute(f"delete from {table} where model = %s and shard = %s", (model, shard))
        self.execute(f"insert into {table} (model, shard, holder, heartbeat_at, expires_at) "
                     "values (%s, %s, %s, %s, %s)", row)
        self.commit()
        return True

    def heartbeat_if_due(self, model: str, shard: str, holder: str, ttl: float) -> None:
        if self.writable and time.monotonic() - self._last_heartbeat > min(ttl / 4, 15):
            self._last_heartbeat = time.monotonic()
            self.in_background(lambda: self.heartbeat(model, shard, holder, ttl))

    def heartbeat(self, model: str, shard: str, holder: str, ttl: float) -> None:
        self._last_heartbeat = time.monotonic()
        now = utcnow()
        self.execute(f"update {self.table('cio_leases')} set heartbeat_at = %s, expires_at = %s "
                     "where model = %s and shard = %s and holder = %s",
                     (now, datetime.fromtimestamp(now.timestamp() + ttl), model, shard, holder))
        self.commit()

    def release_lease(self, model: str, shard: str, holder: str) -> None:
        if not self.writable:
            return
        self.execute(f"delete from {self.table('cio_leases')} where model = %s and shard = %s and holder = %s",
                     (model, shard, holder))
        self.commit()
        if self.dialect.advisory_locks:
            self.execute(f"select pg_advisory_unlock({self.lease_lock_key(model, shard)})")
            self.commit()

    def live_lease_shards(self, model: str) -> set[str]:
        """The shards of `model` whose lease a live run holds: on PostgreSQL those whose advisory
        lock is held (a killed run's row stays until overwritten, but its lock is gone), elsewhere
        those whose row has not expired and whose holder is not known dead."""
        rows = self.execute(f"select shard, expires_at, holder from {self.table('cio_leases')} where model = %s",
                            (model,))
        if not self.dialect.advisory_locks:
            now = utcnow()
            return {shard for shard, expires_at, holder in rows
                    if expires_at is not None and expires_at > now and not holder_is_dead(holder or "")}
        live = set()
        for shard, _, _ in rows:
            key = self.lease_lock_key(model, shard) & 0xFFFFFFFFFFFFFFFF
            held = self.execute("select count(*) from pg_locks where locktype = 'advisory' and granted and "
                                f"objsubid = 1 and classid::bigint = {key >> 32} and objid::bigint = {key & 0xFFFFFFFF}"
                                " and database = (select oid from pg_database where datname = current_database())")
            if held[0][0]:
                live.add(shard)
        return live
