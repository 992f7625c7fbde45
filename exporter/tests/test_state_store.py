"""The state store's writes on PostgreSQL, below the exporter: the writer thread's ordering and
the fallback from straight COPY inserts to upserts when a key is already there."""

from __future__ import annotations

import json
import threading
from datetime import datetime
from types import SimpleNamespace

import psycopg2
import pytest
from conftest import pg_settings
from test_redshift_state_sql import RedshiftAdapterStandIn

from cio_sync._state import StateStore, lease_lock_key, utcnow


class PostgresStandIn(RedshiftAdapterStandIn):
    """What StateStore asks of a dbt adapter when it is handed a connection, for PostgreSQL."""

    @staticmethod
    def type() -> str:
        return "postgres"


@pytest.fixture
def store(pg_schema_factory):
    schema = pg_schema_factory("cio_store")
    handle = psycopg2.connect(**pg_settings())
    store = StateStore(PostgresStandIn(), schema.name).attach(SimpleNamespace(handle=handle))
    yield store, schema
    store.close()


def test_writes_run_on_the_writer_thread_and_commit_in_order(store):
    store, schema = store
    assert store._writer is not None
    seen = []
    store.in_background(lambda: seen.append(threading.current_thread().name))
    store.events_sent("m", "run1", [(f"k{i}", f"id{i}", "h" * 32, i) for i in range(500)], new=True)
    parts = store.inflight("m", "all", "run1", [f"k{i}" for i in range(500, 1500)])
    first = store.flush(force=True, only="inflight")  # the in-flight keys alone, ahead of the rest
    assert store._buffers and "inflight" not in store._buffers
    store.inflight_done(parts)
    second = store.flush(force=True)
    assert second == first + 1
    store.wait(first)
    assert store.committed(first)
    store.wait(second)
    assert store.committed(second)
    assert seen and seen[0].startswith("cio-state")
    statuses = dict(schema.query(f"select status, count(*) from {schema.name}.cio_event_ledger group by status"))
    assert statuses == {"sent": 500}
    assert schema.query(f"select count(*) from {schema.name}.cio_inflight") == [(0,)]


def test_a_key_already_in_state_turns_the_straight_insert_into_an_upsert(store):
    store, schema = store
    store.people_synced("people", "run1", [("p1", "a@x.io", "1" * 32), ("p2", "b@x.io", "2" * 32)], new=True)
    store.flush(force=True)
    # p1 again as "new" (a model with a duplicate key, or another writer): COPY would violate the key
    store.people_synced("people", "run2", [("p1", "c@x.io", "3" * 32), ("p3", "d@x.io", "4" * 32)], new=True)
    store.events_sent("ev", "run2", [("k1", "id1", "5" * 32, 1), ("k1", "id1", "6" * 32, 1)], new=True)
    store.flush(force=True)
    store.sync()
    rows = schema.query(f"select person_key, identifier, row_hash, run_id from {schema.name}.cio_people_state "
                        "order by person_key")
    assert rows == [("p1", "c@x.io", "3" * 32, "run2"), ("p2", "b@x.io", "2" * 32, "run1"),
                    ("p3", "d@x.io", "4" * 32, "run2")]
    ledger = schema.query(f"select event_key, status, row_hash from {schema.name}.cio_event_ledger")
    assert ledger == [("k1", "sent", "6" * 32)]  # last one wins, once


def test_a_failed_write_is_raised_on_the_next_call(store):
    store, schema = store
    store.people_synced("people", "run1", [("p1", "a@x.io", "x" * 40)], new=True)  # row_hash is varchar(32)
    store.flush(force=True)
    with pytest.raises(psycopg2.errors.StringDataRightTruncation):
        store.sync()


def test_recording_sent_events_looks_up_their_keys_instead_of_scanning_the_ledger(store):
    """Events resent after a stopped run are pending in the ledger; a flush's keys are a few
    percent of a large model's ledger: the planner would scan the whole ledger for each flush
    (work growing with the ledger)."""
    store, schema = store
    rows = [(f"k{i:06d}", f"id{i}", "h" * 32, i) for i in range(100_000)]
    schema.execute(f"insert into {schema.name}.cio_event_ledger (model, event_key, event_id, status, row_hash, "
                   "event_at) select 'm', 'k' || lpad(i::text, 6, '0'), 'id' || i, 'pending', repeat('h', 32), i "
                   "from generate_series(0, 99999) i")
    store.execute(f"analyze {schema.name}.cio_event_ledger")
    store.commit()
    # rows read by sequential scans (this backend's counts, not yet flushed to the shared stats)
    read_by_scans = f"select pg_stat_get_xact_tuples_returned('{schema.name}.cio_event_ledger'::regclass)"
    before = store.execute(read_by_scans)[0][0]
    store._events_sent("m", "run1", rows[40_000:43_000], utcnow())
    assert store.execute(read_by_scans)[0][0] - before < 3_000  # a scan reads all 100,000
    store.commit()
    statuses = dict(schema.query(f"select status, count(*) from {schema.name}.cio_event_ledger group by status"))
    assert statuses == {"sent": 3_000, "pending": 97_000}
    # the planner's own choice, for comparison: a scan (so the assertion above can fail)
    plan = store.execute(f"explain update {schema.name}.cio_event_ledger set status = 'sent' where model = 'm' "
                         "and event_key = any(%s)", ([r[0] for r in rows[:3_000]],))
    store.commit()
    assert "Seq Scan" in " ".join(r[0] for r in plan)


def test_events_a_stopped_run_had_in_flight_become_pending_unless_answered(store):
    """What a killed run left in cio_inflight: its keys become pending ledger rows (first sent
    when the keys were recorded), except those whose answer was recorded; another shard's rows
    are left to it while its lease is live."""
    store, schema = store
    then = utcnow()
    # k4 was refused in an earlier run, then resent: in flight again; k5 was refused by this run.
    store.ledger([("ev", "k4", "id4", "rejected", "h" * 32, 4, then, then, None, "old-run", "refused")])
    store.flush(force=True)
    store.inflight("ev", "0/2", "dead-run", ["k1", "k2", "k3", "k4", "k5"])
    store.inflight("ev", "1/2", "live-run", ["k9"])
    store.inflight("other", "0/2", "dead-run", ["k1"])
    store.flush(force=True, only="inflight")
    store.sync()
    store.events_sent("ev", "dead-run", [("k2", "id2", "h" * 32, 2)], new=True)  # answered before the kill
    store.ledger([("ev", "k5", "id5", "rejected", "h" * 32, 5, None, utcnow(), None, "dead-run", "refused")])
    store.flush(force=True)
    store.sync()
    store.acquire_lease("ev", "1/2", "live-run", 3600)
    recorded = schema.query(f"select min(created_at) from {schema.name}.cio_inflight")[0][0]
    assert store.recover_inflight("ev", "0/2") == 3
    ledger = schema.query(f"select event_key, status, first_attempt_at, run_id from {schema.name}.cio_event_ledger "
                          "where model = 'ev' order by event_key")
    assert [(k, s) for k, s, _, _ in ledger] == [("k1", "pending"), ("k2", "sent"), ("k3", "pending"),
                                                  ("k4", "pending"), ("k5", "rejected")]
    assert ledger[0][2] == recorded and ledger[0][3] == "dead-run"
    assert ledger[3][2] == then  # the dedupe window still counts from k4's first attempt
    # Resent and accepted, the recovered rows get their id, hash and time.
    store.events_sent("ev", "rerun", [("k1", "id1", "1" * 32, 1), ("k4", "id4", "4" * 32, 4)])
    store.flush(force=True)
    store.sync()
    assert schema.query(f"select event_key, status, event_id, row_hash, event_at from {schema.name}.cio_event_ledger "
                        "where event_key in ('k1', 'k4') order by 1") == [
        ("k1", "sent", "id1", "1" * 32, 1), ("k4", "sent", "id4", "4" * 32, 4)]
    left = schema.query(f"select model, shard from {schema.name}.cio_inflight order by model")
    assert left == [("ev", "1/2"), ("other", "0/2")]
    assert store.recover_inflight("ev", "0/2") == 0  # once
    store.release_lease("ev", "1/2", "live-run")
    assert store.recover_inflight("ev", "0/2") == 1  # the other shard's run is gone: its keys too
    assert schema.query(f"select count(*) from {schema.name}.cio_inflight where model = 'ev'") == [(0,)]


def test_in_flight_keys_are_split_into_rows_a_redshift_varchar_holds(store):
    store, schema = store
    # escaped (6 and 2 characters in JSON) and outside the BMP (12 each: a surrogate pair)
    keys = [f"{i:05d}-é\\\"" + "😀" * 300 for i in range(200)]
    parts = store.inflight("ev", "all", "run", keys)
    store.flush(force=True)
    store.sync()
    rows = schema.query(f"select part, event_keys from {schema.name}.cio_inflight order by part")
    assert len(rows) == len(parts) > 1
    assert all(len(text) <= 60_000 for _, text in rows)
    assert [k for _, text in rows for k in json.loads(text)] == keys


AWKWARD_KEYS = ["tab\there", "line\nbreak", "cr\rhere", "back\\slash", "\\.", "\\N", "100%s", "%(x)s", "None",
                "", "quote\"d, comma", "ünïcødé 🛒"]


@pytest.mark.parametrize(("awkward", "null"), [(False, False), (True, False), (False, True)])
def test_straight_copies_keep_every_value_as_it_was(store, awkward, null, monkeypatch):
    """The ledger and people state are COPYed in PostgreSQL's text format, in pieces made one `%`
    each; a piece with a value the format needs escaped (or a null) is made value by value,
    escaped. Either way every value arrives unchanged, whichever piece it is in."""
    monkeypatch.setattr("cio_sync._state.copy.COPY_PIECE_ROWS", 7)
    store, schema = store
    keys = [f"k{i}" for i in range(150)] + (AWKWARD_KEYS if awkward else []) + [f"j{i}" for i in range(150)]
    events = [(key, f"id{i}", None if null and i == 3 else f"{i:032x}", 1_700_000_000 + i)
              for i, key in enumerate(keys)]
    store.events_sent("m%s", "run1", events, new=True)
    store.people_synced("p", "run1", [(key, f"{key}@x.io", f"{i:032x}") for i, key in enumerate(keys)], new=True)
    store.flush(force=True)
    store.wait(store.flush(force=True))
    ledger = schema.query(f"select event_key, event_id, row_hash, event_at, model, status, run_id "
                          f"from {schema.name}.cio_event_ledger")
    assert sorted(ledger) == sorted((k, i, h, a, "m%s", "sent", "run1") for k, i, h, a in events)
    people = schema.query(f"select person_key, identifier, model from {schema.name}.cio_people_state")
    assert sorted(people) == sorted((key, f"{key}@x.io", "p") for key in keys)


def test_staged_rows_keep_every_value_as_it_was(store, monkeypatch):
    """Upserts stage their rows in a temporary table with the same COPY text format: awkward
    text, nulls, booleans and times (the rejects' rows) arrive unchanged."""
    monkeypatch.setattr("cio_sync._state.copy.COPY_PIECE_ROWS", 5)
    store, schema = store
    seen = datetime(2026, 11, 23, 10, 47, 30, 694938)
    rows = [("m", key, "invalid", f"message: {key}", i % 2 == 0, None if i % 3 else f"{i:032x}", seen, "run1")
            for i, key in enumerate(AWKWARD_KEYS + [f"k{i}" for i in range(20)])]
    store.rejects(rows)
    store.wait(store.flush(force=True))
    found = schema.query(f"select model, row_key, reason, message, transient, row_hash, first_seen_at, run_id "
                         f"from {schema.name}.cio_rejects")
    assert sorted(found) == sorted(rows)


def sent_by_a_new_store(schema, key: str) -> None:
    """One event acknowledged through a store opened on `schema` now (as a new run opens it)."""
    store = StateStore(PostgresStandIn(), schema.name).attach(SimpleNamespace(handle=psycopg2.connect(**pg_settings())))
    try:
        store.events_sent("ev", "run-" + key, [(key, "id-" + key, "h" * 32, 1_700_000_000)], new=True)
        store.wait(store.flush(force=True))
    finally:
        store.close()


def test_copied_rows_get_the_writing_transactions_time_from_column_defaults(store, pg_schema_factory):
    """Rows COPYed straight in leave their times out (PostgreSQL parsing them cost more than the
    rest of a ledger row): the columns default to the transaction's time, in UTC. A schema made
    before has the defaults added when a store opens it; one whose tables cannot be altered now
    (another run's read holds them) gets the times sent instead, and the defaults next time."""
    store, schema = store
    before = utcnow()
    store.events_sent("ev", "run1", [("e1", "id1", "h" * 32, 1_700_000_000)], new=True)
    store.people_synced("p", "run1", [("p1", "a@x.io", "h" * 32)], new=True)
    store.wait(store.flush(force=True))
    after = utcnow()
    (first, last, sent), = schema.query(f"select first_attempt_at, last_attempt_at, sent_at "
                                        f"from {schema.name}.cio_event_ledger")
    (synced,), = schema.query(f"select synced_at from {schema.name}.cio_people_state")
    assert first == last == sent and before <= sent <= after and before <= synced <= after

    # an older schema: no defaults, and a long read of the ledger by another run
    for table, column in (("cio_event_ledger", "first_attempt_at"), ("cio_event_ledger", "last_attempt_at"),
                          ("cio_event_ledger", "sent_at"), ("cio_people_state", "synced_at")):
        schema.execute(f"alter table {schema.name}.{table} alter column {column} drop default")
    reader = psycopg2.connect(**pg_settings())
    try:
        reader.cursor().execute(f"select count(*) from {schema.name}.cio_event_ledger")  # its transaction stays open
        sent_by_a_new_store(schema, "e2")
    finally:
        reader.close()
    (sent,), = schema.query(f"select sent_at from {schema.name}.cio_event_ledger where event_key = 'e2'")
    assert sent is not None and before <= sent <= utcnow()

    sent_by_a_new_store(schema, "e3")  # this store adds the defaults
    (sent,), = schema.query(f"select sent_at from {schema.name}.cio_event_ledger where event_key = 'e3'")
    assert sent is not None
    assert schema.query(
        "select count(*) from pg_attrdef d join pg_class c on c.oid = d.adrelid join pg_namespace n "
        f"on n.oid = c.relnamespace where n.nspname = '{schema.name}'") == [(4,)]


def test_status_tells_events_a_stopped_shard_left_in_flight_from_a_running_shards(store):
    """Shard 1/2 is running (its lease is live), shard 0/2's run stopped: only shard 0's keys are
    reported as left by a stopped run."""
    from cio_sync._ops.status import Thresholds, model_status

    store, schema = store
    store.inflight("ev", "0/2", "run-a", ["a1", "a2"])
    store.inflight("ev", "0/2", "run-a", ["a2", "a3"])  # resent after a split: counted once
    store.inflight("ev", "1/2", "run-b", ["b1"])
    store.wait(store.flush(force=True))
    assert store.acquire_lease("ev", "1/2", "run-b", 60)
    status = model_status(store, SimpleNamespace(name="ev", kind="event", meta={}), None, Thresholds())
    assert (status.in_flight, status.in_flight_stopped) == (4, 3)
    assert store.acquire_lease("ev", "0/2", "run-c", 60)  # shard 0 runs again (before it recovers them)
    status = model_status(store, SimpleNamespace(name="ev", kind="event", meta={}), None, Thresholds())
    assert (status.in_flight, status.in_flight_stopped) == (4, 0)


def test_copy_text_writes_a_value_the_same_way_whichever_piece_it_falls_in():
    """A piece made by `%` and one made value by value (it holds a null) write booleans, numbers
    and times alike, so a text column gets the same value whatever else is in its piece."""
    from cio_sync._state.copy import _copy_text

    rows = [("a", True, 1.5, datetime(2026, 1, 2, 3, 4, 5)), ("b", False, 2, datetime(2026, 1, 2))] * 2
    pieces = list(_copy_text(rows[:2] + [("c", None, 3, None)] + rows[2:], ("m",), piece=2))
    assert pieces == ["a\tt\t1.5\t2026-01-02 03:04:05\tm\nb\tf\t2\t2026-01-02 00:00:00\tm\n",
                      "c\t\\N\t3\t\\N\tm\na\tt\t1.5\t2026-01-02 03:04:05\tm\n",
                      "b\tf\t2\t2026-01-02 00:00:00\tm\n"]


class _Statements(list):
    """A file-like log for psycopg2's LoggingConnection: one entry per statement sent."""

    def write(self, text) -> None:
        self.append(text.decode() if isinstance(text, bytes) else text)


def test_outcomes_commit_without_waiting_for_the_disk_and_keys_in_flight_wait_for_it(pg_schema_factory):
    """Only a write of keys in flight, committed before their batch is sent, waits for the
    disk; a write of outcomes commits asynchronously (a PostgreSQL crash loses them whole, and
    their events are still in flight for the next run)."""
    from psycopg2.extras import LoggingConnection

    schema = pg_schema_factory("cio_store_sync")
    handle = psycopg2.connect(connection_factory=LoggingConnection, **pg_settings())
    log = _Statements()
    handle.initialize(log)
    store = StateStore(PostgresStandIn(), schema.name).attach(SimpleNamespace(handle=handle))
    try:
        def write(action) -> list[str]:
            store.sync()
            start = len(log)
            action()
            store.sync()
            return [s.strip().lower() for s in log[start:]]

        parts = store.inflight("m", "all", "run1", ["k1", "k2"])
        in_flight = write(lambda: store.flush(force=True, only="inflight"))
        store.events_sent("m", "run1", [("k1", "id1", "h", 1), ("k2", "id2", "h", 2)], new=True)
        store.inflight_done(parts)
        store.people_synced("p", "run1", [("c1", "c1", "h")], new=True)
        outcomes = write(lambda: store.flush(force=True))
    finally:
        store.close()
    assert any(s.startswith("insert into") and "cio_inflight" in s for s in in_flight)
    assert not any("synchronous_commit" in s for s in in_flight)
    assert outcomes[0] == "set local synchronous_commit = off"
    assert any(s.startswith("delete") and "cio_inflight" in s for s in outcomes), outcomes
    assert schema.query(f"select count(*) from {schema.name}.cio_event_ledger") == [(2,)]
    assert schema.query(f"select count(*) from {schema.name}.cio_inflight") == [(0,)]


def test_two_runs_taking_one_lease_together_one_is_locked_out_without_an_error(store):
    """Run A holds the lease (its session's advisory lock) and has inserted the lease row but not
    committed; run B asks for it meanwhile: B is told the lease is taken (`locked`) at once, not
    made to wait and not given a unique violation. When A's session ends, B gets it."""
    store, schema = store
    store.acquire_lease("other", "all", "warm-up", 60)  # creates the state tables
    other = psycopg2.connect(**pg_settings())
    try:
        with other.cursor() as cursor:
            cursor.execute(f"select pg_advisory_lock({lease_lock_key(schema.name, 'ev', 'all')})")
            cursor.execute(f"insert into {schema.name}.cio_leases values ('ev', 'all', 'run-a', now(), "
                           "now() + interval '1 hour')")
            outcome: dict = {}
            try:
                outcome["taken"] = store.acquire_lease("ev", "all", "run-b", 60)
            except Exception as exc:  # noqa: BLE001 - the failure this test is about
                outcome["error"] = exc
        other.commit()
        assert outcome == {"taken": False}
        assert store.execute(f"select holder from {schema.name}.cio_leases where model = 'ev'") == [("run-a",)]
        store.commit()
    finally:
        other.close()  # run A's session ends (it finished, or was killed)
    key = lease_lock_key(schema.name, "ev", "all") & 0xFFFFFFFFFFFFFFFF
    for _ in range(100_000):  # until PostgreSQL has ended that session (moments after the close)
        if not schema.query("select count(*) from pg_locks where locktype = 'advisory' and objsubid = 1 and "
                            f"classid::bigint = {key >> 32} and objid::bigint = {key & 0xFFFFFFFF}")[0][0]:
            break
    assert store.acquire_lease("ev", "all", "run-b", 60) is True
    assert store.execute(f"select holder from {schema.name}.cio_leases where model = 'ev'") == [("run-b",)]
    store.release_lease("ev", "all", "run-b")


def test_events_recovered_from_a_killed_run_keep_the_ids_they_went_out_with(store):
    """A run killed with events in flight: they become pending with the ids they were sent
    under (a rerun resends them under those ids, whatever changed in their rows), the newest
    flight's id when a key flew twice; an older cio-export's rows without ids recover too."""
    store, schema = store
    store.inflight("ev", "all", "dead-run", ["k1", "k2"], ["01AAAAAAAAAAAAAAAAAAAAAAA1", "01AAAAAAAAAAAAAAAAAAAAAAA2"])
    store.inflight("ev", "all", "dead-run", ["k2"], ["01AAAAAAAAAAAAAAAAAAAAAAB2"])  # resent after a split
    store.inflight("ev", "all", "dead-run", ["k3"])  # written by an older cio-export: no ids
    store.flush(force=True, only="inflight")
    store.sync()
    assert store.recover_inflight("ev", "all") == 3
    assert schema.query(f"select event_key, status, event_id from {schema.name}.cio_event_ledger order by 1") == [
        ("k1", "pending", "01AAAAAAAAAAAAAAAAAAAAAAA1"), ("k2", "pending", "01AAAAAAAAAAAAAAAAAAAAAAB2"),
        ("k3", "pending", None)]


def test_a_version_3_schema_gains_the_ids_of_events_in_flight_and_recovers_its_old_rows(pg_schema_factory):
    """A schema an older cio-export made (cio_inflight without event_ids, a row left by a killed
    run): migrated to the current version, the row is recovered as pending without an id."""
    from cio_sync._state import SCHEMA_VERSION

    schema = pg_schema_factory("cio_v3")
    StateStore(PostgresStandIn(), schema.name).attach(SimpleNamespace(handle=psycopg2.connect(**pg_settings()))).close()
    schema.execute(f"alter table {schema.name}.cio_inflight drop column event_ids")
    schema.execute(f"update {schema.name}.cio_state_version set version = 3")
    schema.execute(f"insert into {schema.name}.cio_inflight values ('ev', 'all', 'old-run', 1, now(), '[\"k1\"]')")
    store = StateStore(PostgresStandIn(), schema.name).attach(SimpleNamespace(handle=psycopg2.connect(**pg_settings())))
    try:
        assert schema.query(f"select max(version) from {schema.name}.cio_state_version") == [(SCHEMA_VERSION,)]
        assert store.recover_inflight("ev", "all") == 1
        assert schema.query(f"select event_key, status, event_id from {schema.name}.cio_event_ledger") == [
            ("k1", "pending", None)]
    finally:
        store.close()


def test_a_first_syncs_baseline_takes_each_key_once_and_leaves_unusable_keys_to_the_read(store):
    """Old events sharing a key, with no key, or with a key longer than the ledger holds: the
    baseline records each usable key once and does not fail (it used to stop every first sync)."""
    store, schema = store
    store.acquire_lease("warm-up", "all", "run", 60)  # creates the state tables
    source = ("select 'k1' as __key, 'h1' as __hash, 5 as __ts union all select 'k1', 'h2', 6 "
              f"union all select null, 'h3', 5 union all select '{'x' * 1500}', 'h4', 5 "
              "union all select 'k2', 'h5', 50")
    assert store.record_baseline("ev", source, 10, "run") == 1
    assert schema.query(f"select event_key, row_hash, status from {schema.name}.cio_event_ledger") == [
        ("k1", "h1", "baseline")]
