"""The per-row policy (cio_sync._decide.rules) on its own: rows as build_query lays them out, no
database. What each rule protects is in docs/guarantees.md; the end-to-end tests prove the same
rules through real runs."""

from __future__ import annotations

import pytest

from cio_sync._decide import rules as _decide
from cio_sync._decide.rules import EventRules, event_after_encoding, people_plain, person_after_encoding
from cio_sync._project.model import OUT_OF_RANGE_TIME
from cio_sync._read.rows import EVENT_HEAD, PERSON_HEAD

NOW = 1_800_000_000
DAY = 86_400


def event(**head) -> tuple:
    """An event row: the head named as in _rows.EVENT_HEAD, then one attribute."""
    values = {"identifier": "p1", "key": "e1", "time": NOW - 60, "time_ms": (NOW - 60) * 1000,
              "id_hash": "0" * 32, "name": "order_placed", "row_hash": "h", "ledger_status": None,
              "first_attempt": None, "sent_event_id": None, "key_rows": 1, "person_known": True, **head}
    return (*(values[name] for name in EVENT_HEAD), 42.0)


def person(**head) -> tuple:
    values = {"identifier": "a@x.test", "key": "c1", "row_hash": "h", "previous_hash": None,
              "previous_identifier": None, **head}
    return (*(values[name] for name in PERSON_HEAD), "Ada")


RULES = EventRules(snapshot=NOW, dedupe_window=7 * DAY, max_age=3 * DAY, backfill="skip")


@pytest.mark.parametrize(("head", "rules", "decision"), [
    ({}, RULES, _decide.ENCODE),
    # a key shared by several rows to send: none of them goes (each would count as an event)
    ({"key_rows": 2}, RULES, _decide.DUPLICATE),
    ({"key_rows": 2, "ledger_status": "pending"}, RULES, _decide.DUPLICATE_PENDING),
    # sent, never answered: resent under its id within dedupe_window, never after
    ({"ledger_status": "pending", "first_attempt": NOW - DAY}, RULES, _decide.RESEND),
    ({"ledger_status": "pending", "first_attempt": NOW - 8 * DAY}, RULES, _decide.UNCERTAIN),
    ({"ledger_status": "pending", "first_attempt": None}, RULES, _decide.RESEND),
    # older than max_event_age: the backfill rule
    ({"time": NOW - 4 * DAY}, RULES, _decide.BACKFILL),
    ({"time": NOW - 4 * DAY}, EventRules(NOW, 7 * DAY, 3 * DAY, backfill="rename"), _decide.RENAME),
    ({"time": NOW - 4 * DAY}, EventRules(NOW, 7 * DAY, 3 * DAY, backfill="send"), _decide.ENCODE),
    # a rejected event retried: no backfill rule (it is not new)
    ({"time": NOW - 4 * DAY, "ledger_status": "rejected"}, RULES, _decide.ENCODE),
    # a dry run's first sync: what the baseline would record is skipped
    ({"time": NOW - 2 * DAY}, EventRules(NOW, 7 * DAY, 3 * DAY, "skip", baseline_cutoff=NOW - DAY), _decide.SKIP),
    # no time to judge it by: the encoder says what is wrong
    ({"time": None}, RULES, _decide.ENCODE),
    ({"time": OUT_OF_RANGE_TIME}, RULES, _decide.ENCODE),
    # a key too long to record is not recorded as backfill: the encoder rejects it
    ({"time": NOW - 4 * DAY, "key": "k" * 10_000}, RULES, _decide.ENCODE),
])
def test_an_event_row_is_decided_before_it_is_encoded(head, rules, decision):
    assert rules.before_encoding(event(**head)) == decision


def test_an_encoded_event_waits_for_its_person_and_is_held_if_its_identify_was_rejected():
    assert event_after_encoding(event(), "p1", set()) == _decide.SEND
    assert event_after_encoding(event(), "p1", {"p1"}) == _decide.HOLD
    assert event_after_encoding(event(person_known=False), "p1", set()) == _decide.WAIT
    # a resend went out once already: it is not held back for its person
    assert event_after_encoding(event(person_known=False, ledger_status="pending"), "p1", set()) == _decide.SEND
    # a dry run's people models identified them first (a run's state would know them by now)
    assert event_after_encoding(event(person_known=False), "p1", set(), {"p1"}) == _decide.SEND
    assert event_after_encoding(event(person_known=False), "p1", set(), {"p2"}) == _decide.WAIT


def test_a_person_with_another_identifier_for_the_same_key_is_merged_or_rejected():
    assert person_after_encoding(person(), merge=False) == _decide.SEND
    assert person_after_encoding(person(previous_identifier="a@x.test"), merge=False) == _decide.SEND
    changed = person(previous_identifier="old@x.test")
    assert person_after_encoding(changed, merge=False) == _decide.IDENTIFIER_CHANGED
    assert person_after_encoding(changed, merge=True) == _decide.MERGE


def test_only_chunks_without_any_row_to_decide_take_the_fast_path():
    rows = [event(key=f"e{i}") for i in range(3)]
    assert RULES.plain(rows)
    for head in ({"ledger_status": "pending"}, {"ledger_status": "rejected"}, {"key_rows": 2},
                 {"person_known": False}, {"time": NOW - 4 * DAY}, {"time": None}):
        assert not RULES.plain([*rows, event(**head)]), head
    assert not EventRules(NOW, 7 * DAY).plain(rows)  # no max_event_age: every row is decided
    assert people_plain([person(), person(key="c2")])
    assert not people_plain([person(), person(previous_identifier="old@x.test")])


def test_the_row_layout_is_the_one_the_query_selects():
    """Each head position the exporter reads by name is the column build_query selects there."""
    import re

    from cio_sync._project.model import TEXT, TIMESTAMP, Column, ModelSpec
    from cio_sync._read.dialects import PostgresDialect
    from cio_sync._read.query import StateTables, build_query
    from cio_sync._read.rows import E_KEY_ROWS, E_LEDGER_STATUS, E_PERSON_KNOWN, E_SENT_EVENT_ID, P_PREVIOUS_IDENTIFIER

    def columns(spec: dict, relation_columns: list[Column], **options) -> dict[int, str]:
        node = {"unique_id": "model.p.m", "name": "m", "relation_name": "s.m", "database": "db", "schema": "s",
                "alias": "m", "config": {"meta": {"cio": spec}}}
        model = ModelSpec.from_node(node).resolve(relation_columns)
        tables = StateTables("st.people", "st.ledger", "st.rejects")
        sql = build_query(model, PostgresDialect(lambda name: f'"{name}"'), "s.m", state=tables, **options).sql
        head = sql.split("\nfrom (")[0].removeprefix("select")
        return {int(i): expr.strip() for expr, i in re.findall(r"(?:^|,)\s*(.+?) as c(\d+)", head)}

    ident = {"column": "person_id", "kind": "id"}
    event_sql = columns({"kind": "event", "identifier": ident, "event_id_column": "event_id",
                         "timestamp_column": "at", "event_name": "x"},
                        [Column("person_id", TEXT), Column("event_id", TEXT), Column("at", TIMESTAMP)],
                        key_checked=False, people_models=(("people", True),))
    assert event_sql[E_LEDGER_STATUS] == "l.status"
    assert event_sql[E_SENT_EVENT_ID] == "l.event_id"
    assert event_sql[E_KEY_ROWS] == "h.__keyrows"
    assert event_sql[E_PERSON_KNOWN] == "(p0.person_key is not null)"
    assert len(event_sql) == len(EVENT_HEAD)  # no attribute: the head alone
    people_sql = columns({"kind": "people", "identifier": ident}, [Column("person_id", TEXT)])
    assert people_sql[P_PREVIOUS_IDENTIFIER] == "s.identifier"
    assert len(people_sql) == len(PERSON_HEAD)
