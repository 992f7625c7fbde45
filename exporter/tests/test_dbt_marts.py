"""The example shop built on DuckDB and PostgreSQL: every mart and the quarantine, row by row.

The seeds in integration_tests/seeds hold the mess the package must absorb: emails with spaces
and capitals, string numbers, naive local timestamps (America/New_York) beside timezone-aware
ones, rows multiplied by joins, test rows, unknown customers, a backfill of old checkouts and a
customer who abandons a cart and buys ten minutes later. "Now" is pinned to 2026-06-01 12:00 UTC.
"""

from __future__ import annotations

import calendar
from datetime import datetime
from decimal import Decimal

import pytest

D = Decimal
T = datetime

PEOPLE_COLUMNS = (
    "customer_id, email, created_at, first_order_at, last_order_at, orders_count, lifetime_value,"
    " average_order_value, days_since_last_order, last_product_category, next_reorder_due_at, is_vip,"
    " is_subscriber, subscription_status, sms_opt_in, email_opt_in, has_refund, do_not_message,"
    " last_checkout_started_at"
)

EXPECTED_PEOPLE = [
    # Jane: email trimmed and lower-cased; created_at 09:00 New York (EST) -> 14:00 UTC; the
    # order o1001 tripled by a join counts once; her cancelled order o1011 does not count.
    (
        "c001",
        "jane.doe@example.com",
        T(2025, 1, 10, 14),
        T(2026, 5, 20, 14),
        T(2026, 5, 20, 14),
        1,
        D("59.90"),
        D("59.90"),
        12,
        "skincare",
        T(2026, 6, 19, 14),
        False,
        False,
        None,
        True,
        True,
        False,
        False,
        T(2026, 5, 31, 14),
    ),
    (
        "c002",
        "bob@example.org",
        T(2025, 2, 1, 15),
        T(2026, 5, 30, 14, 10),
        T(2026, 5, 30, 14, 10),
        1,
        D("85.00"),
        D("85.00"),
        2,
        'skin "care" \\ serums',
        None,
        False,
        False,
        None,
        False,
        True,
        False,
        False,
        T(2026, 5, 30, 14),
    ),
    # Carol's guest order o1012 has no customer_id: resolved through her email.
    (
        "c003",
        "carol@example.org",
        T(2025, 3, 1, 13, 30),
        T(2026, 4, 16, 3, 30),
        T(2026, 4, 16, 3, 30),
        1,
        D("35.00"),
        D("35.00"),
        46,
        "tea",
        None,
        False,
        False,
        None,
        True,
        False,
        False,
        False,
        T(2026, 6, 1, 11, 30),
    ),
    # Dave: " 300 " parsed as a number; LTV 750 makes him VIP; "abc" total quarantined.
    (
        "c004",
        "dave@example.org",
        T(2025, 1, 5, 17),
        T(2026, 3, 1, 14),
        T(2026, 5, 25, 22, 30),
        2,
        D("750.00"),
        D("375.00"),
        7,
        "supplements",
        T(2026, 6, 24, 22, 30),
        True,
        False,
        None,
        True,
        True,
        False,
        False,
        T(2026, 5, 31, 13),
    ),
    (
        "c009",
        "erin@example.org",
        T(2025, 4, 1, 16),
        None,
        None,
        0,
        D("0.00"),
        None,
        None,
        None,
        None,
        False,
        False,
        None,
        False,
        True,
        False,
        True,
        T(2026, 5, 31, 10),
    ),
    (
        "c010",
        "frank@example.org",
        T(2025, 4, 2, 16),
        None,
        None,
        0,
        D("0.00"),
        None,
        None,
        None,
        None,
        False,
        False,
        None,
        None,
        None,
        False,
        False,
        T(2026, 5, 31, 12),
    ),
    (
        "c011",
        "gina@example.org",
        T(2025, 4, 3, 16),
        None,
        None,
        0,
        D("0.00"),
        None,
        None,
        None,
        None,
        False,
        False,
        "canceled",
        True,
        True,
        False,
        False,
        None,
    ),
    (
        "c012",
        "hank@example.org",
        T(2025, 4, 4, 16),
        T(2026, 5, 1, 12),
        T(2026, 5, 1, 12),
        1,
        D("64.00"),
        D("64.00"),
        31,
        "coffee",
        T(2026, 5, 15, 12),
        False,
        True,
        "active",
        True,
        True,
        True,
        False,
        None,
    ),
]

EXPECTED_QUARANTINE = sorted(
    [
        ("checkouts", "k004", "email", "unresolvable_identifier", "newguest@example.org"),
        ("checkouts", "k010", "is_test", "test_row", "true"),
        ("checkouts", "k011", "started_at", "future_timestamp", "2099-05-31 15:00:00"),
        ("customers", "<null>", "customer_id", "null_identifier", None),
        ("customers", "c005", "email", "test_row", "qa-bot@myshop.test"),
        ("customers", "c006", "is_test", "test_row", "true"),
        ("customers", "c007", "email", "invalid_email", "not-an-email"),
        ("customers", "c008", "created_at", "future_timestamp", "2099-01-01 05:00:00"),
        ("devices", "tok-ghost-1", "customer_id", "unresolvable_identifier", "c999"),
        ("devices", "tok-web-1", "platform", "invalid_platform", "web"),
        ("order_lines", "o1010:", "sku", "null_key", None),
        ("orders", "o1005", "customer_id", "person_quarantined", "c005"),
        ("orders", "o1006", "customer_id", "unresolvable_identifier", "c999"),
        ("orders", "o1007", "is_test", "test_row", "true"),
        ("orders", "o1008", "order_total", "invalid_number", "abc"),
        ("orders", "o1009", "ordered_at", "future_timestamp", "2099-01-01 15:00:00"),
        ("refunds", "r002", "order_id", "unresolvable_order", "o9999"),
        ("refunds", "r003", "amount", "invalid_number", "twelve"),
        ("subscriptions", "3:active", "customer_id", "unresolvable_identifier", "c999"),
    ],
    key=lambda r: (r[0], r[1]),
)

EXPECTED_EVENTS = {
    # (customer_id, event_at UTC, natural key)
    "cio_event_order_placed": sorted(
        [
            ("c001", T(2026, 5, 20, 14), "o1001"),
            ("c002", T(2026, 5, 30, 14, 10), "o1002"),
            ("c003", T(2026, 4, 16, 3, 30), "o1012"),
            ("c004", T(2026, 3, 1, 14), "o1003"),
            ("c004", T(2026, 5, 25, 22, 30), "o1004"),
            ("c012", T(2026, 5, 1, 12), "o1010"),
        ]
    ),
    "cio_event_checkout_started": sorted(
        [
            ("c001", T(2026, 5, 31, 14), "k008"),
            ("c002", T(2026, 5, 30, 14), "k001"),
            ("c003", T(2026, 5, 31, 7), "k002"),  # 09:00+02:00
            ("c003", T(2026, 6, 1, 11, 30), "k006"),
            ("c004", T(2026, 5, 31, 13), "k007"),
            ("c009", T(2026, 5, 31, 10), "k003"),
            ("c010", T(2026, 5, 31, 12), "k005"),  # email-only checkout resolved to Frank
            ("c010", T(2025, 6, 1, 12), "k009"),
        ]
    ),
    # Not k001 (Bob bought 10 minutes later), k003 (Erin is suppressed), k006 (window still
    # open), k007 (out of stock), k008 (cart under cio_cart_min_value). k009 is last year's:
    # emitted with its own old timestamp; the exporter's backfill guard keeps it from journeys.
    "cio_event_cart_abandoned": sorted(
        [
            ("c003", T(2026, 5, 31, 8), "k002"),
            ("c010", T(2025, 6, 1, 13), "k009"),
            ("c010", T(2026, 5, 31, 13), "k005"),
        ]
    ),
    "cio_event_refund_issued": [("c012", T(2026, 5, 29, 20, 45), "r001")],
    "cio_event_subscription_canceled": [("c011", T(2026, 5, 28, 13), "1")],
    "cio_event_subscription_paused": [("c012", T(2026, 5, 15, 13), "2")],
    "cio_event_replenishment_due": [("c012", T(2026, 5, 15, 12), "o1010")],
}

NATURAL_KEY = {
    "cio_event_order_placed": "order_id",
    "cio_event_checkout_started": "checkout_id",
    "cio_event_cart_abandoned": "checkout_id",
    "cio_event_refund_issued": "refund_id",
    "cio_event_subscription_canceled": "subscription_id",
    "cio_event_subscription_paused": "subscription_id",
    "cio_event_replenishment_due": "order_id",
}


@pytest.fixture(params=["duckdb", "postgres"])
def built(request):
    return request.getfixturevalue(f"{request.param}_build")


def _normalize(rows):
    return [tuple(v.replace(tzinfo=None) if isinstance(v, datetime) else v for v in row) for row in rows]


def test_people_rows(built):
    rows = _normalize(built.query(f"select {PEOPLE_COLUMNS} from cio_people order by customer_id"))
    assert rows == EXPECTED_PEOPLE


def test_quarantine_rows(built):
    rows = built.query(
        "select source, row_key, column_name, reason, raw_value from cio_quarantine order by source, row_key"
    )
    assert rows == EXPECTED_QUARANTINE


@pytest.mark.parametrize("model", sorted(EXPECTED_EVENTS))
def test_event_rows(built, model):
    key = NATURAL_KEY[model]
    rows = _normalize(built.query(f"select customer_id, event_at, {key} from {model} order by 1, 2, 3"))
    assert rows == EXPECTED_EVENTS[model]
    [(duplicates,)] = built.query(f"select count(*) - count(distinct event_id) from {model}")
    assert duplicates == 0


def test_subscription_objects_and_relationships(built):
    """Each subscription as it stands (its latest kept status row), as an object and as its
    person's relationship; subscription 3's customer is unknown (quarantined): neither."""
    objects = _normalize(built.query("select subscription_id, status, plan, next_charge_at, started_at, updated_at"
                                     " from cio_subscription_objects order by 1"))
    assert objects == [("1", "canceled", "monthly", None, T(2026, 1, 1, 14), T(2026, 5, 28, 13)),
                       ("2", "active", "yearly", T(2027, 5, 20, 13), T(2026, 2, 1, 14), T(2026, 5, 20, 13))]
    relationships = _normalize(built.query("select customer_id, email, subscription_id, status, started_at"
                                           " from cio_subscription_relationships order by 1"))
    assert relationships == [("c011", "gina@example.org", "1", "canceled", T(2026, 1, 1, 14)),
                             ("c012", "hank@example.org", "2", "active", T(2026, 2, 1, 14))]


def test_device_rows(built):
    """One row per token, its latest use kept (Jane's iOS token, seen twice), platforms
    lower-cased; a web token and one of an unknown customer are in cio_quarantine instead."""
    rows = _normalize(built.query("select customer_id, email, token, platform, last_used_at from cio_devices"
                                  " order by token"))
    assert rows == [("c002", "bob@example.org", "tok-bob-1", "android", None),
                    ("c001", "jane.doe@example.com", "tok-jane-1", "ios", T(2026, 5, 30, 12))]


def test_order_items_json(built):
    rows = dict(built.query("select order_id, items from cio_event_order_placed"))
    assert rows["o1001"] == (
        '[{"sku":"SKU-CLEANSER","quantity":1,"line_total":29.95,"product_category":"skincare"},'
        '{"sku":"SKU-MOIST","quantity":1,"line_total":29.95,"product_category":"skincare"}]'
    )
    # Quotes and backslashes in a value are escaped, so the text stays valid JSON.
    import json

    assert json.loads(rows["o1002"])[0]["product_category"] == 'skin "care" \\ serums'
    assert all(json.loads(v) for v in rows.values())


def test_event_ids_are_deterministic_across_adapters(duckdb_build, postgres_build):
    """The same rows give the same event ids and payload text on DuckDB and PostgreSQL."""
    for model, key in NATURAL_KEY.items():
        sql = f"select {key}, event_id from {model} order by 1"
        assert duckdb_build.query(sql) == postgres_build.query(sql), model
    sql = "select order_id, items from cio_event_order_placed order by 1"
    assert duckdb_build.query(sql) == postgres_build.query(sql)


def test_event_ids_differ_per_event_of_one_checkout(duckdb_build):
    """checkout_started and cart_abandoned of one checkout never share a key."""
    rows = duckdb_build.query(
        "select s.event_id, a.event_id from cio_event_checkout_started s"
        " join cio_event_cart_abandoned a on a.checkout_id = s.checkout_id"
    )
    assert rows and all(started != abandoned for started, abandoned in rows)


def test_event_id_is_md5_of_name_and_key(duckdb_build):
    import hashlib

    (event_id,) = duckdb_build.query("select event_id from cio_event_order_placed where order_id = 'o1001'")[0]
    assert event_id == hashlib.md5(b"order_placed|o1001").hexdigest()
    (event_id,) = duckdb_build.query("select event_id from cio_event_subscription_canceled")[0]
    # subscription events are keyed on (subscription_id, status, change time in Unix seconds)
    unix = calendar.timegm(T(2026, 5, 28, 13).timetuple())
    assert event_id == hashlib.md5(f"subscription_canceled|1|canceled|{unix}".encode()).hexdigest()
