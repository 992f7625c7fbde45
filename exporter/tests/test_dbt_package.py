"""The dbt package's configuration surface: optional inputs, the identifier choice, the
meta.cio contract, input-contract errors, guardrail tests and incremental event models."""

from __future__ import annotations

import json
from datetime import datetime
from importlib import resources

import jsonschema
import pytest
from conftest import SEND_HISTORY
from dbt_project_runner import DbtFailed

OPTIONAL_INPUTS = ("order_lines", "checkouts", "subscriptions", "refunds", "devices")
SYNCED_MODELS = {
    "cio_people",
    "cio_event_order_placed",
    "cio_event_checkout_started",
    "cio_event_cart_abandoned",
    "cio_event_refund_issued",
    "cio_event_subscription_canceled",
    "cio_event_subscription_paused",
    "cio_event_replenishment_due",
    "cio_subscription_objects",
    "cio_subscription_relationships",
    "cio_devices",
}


def meta_cio_schema() -> dict:
    return json.loads(resources.files("cio_sync").joinpath("schemas/meta_cio.schema.json").read_text())


def package_models(manifest: dict) -> dict[str, dict]:
    return {
        node["name"]: node
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["package_name"] == "cio_sync"
    }


def test_every_synced_model_has_valid_meta_cio(duckdb_build):
    schema = meta_cio_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    models = package_models(duckdb_build.manifest())
    tagged = {name for name, node in models.items() if "cio" in node["tags"]}
    assert tagged == SYNCED_MODELS
    for name in tagged:
        meta = models[name]["config"]["meta"]["cio"]
        jsonschema.validate(meta, schema)
        assert models[name]["config"]["contract"]["enforced"] is True
    people = models["cio_people"]["config"]["meta"]["cio"]
    assert people["identifier"] == {"column": "customer_id", "kind": "id"}
    assert people["exclude"] == ["days_since_last_order"]
    abandoned = models["cio_event_cart_abandoned"]["config"]["meta"]["cio"]
    assert abandoned["event_name"] == "cart_abandoned"
    assert (abandoned["event_id_column"], abandoned["timestamp_column"]) == ("event_id", "event_at")


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({"kind": "events", "identifier": {"column": "id", "kind": "id"}}, "'events' is not one of"),
        ({"kind": "people"}, "'identifier' is a required property"),
        ({"kind": "people", "identifier": {"column": "email", "kind": "mobile"}}, "'mobile' is not one of"),
        (
            {
                "kind": "event",
                "identifier": {"column": "id", "kind": "id"},
                "event_name": "x",
                "event_id_column": "event_id",
            },
            "'timestamp_column' is a required property",
        ),
        (
            {
                "kind": "event",
                "identifier": {"column": "id", "kind": "id"},
                "event_name": "Order Placed",
                "event_id_column": "event_id",
                "timestamp_column": "at",
            },
            "does not match",
        ),
        ({"kind": "people", "identifier": {"column": "id", "kind": "id"}, "max_lag": "soon"}, "does not match"),
        ({"kind": "people", "identifier": {"column": "id", "kind": "id"}, "colour": "red"}, "Additional properties"),
    ],
)
def test_meta_cio_schema_rejects_bad_config(meta, message):
    with pytest.raises(jsonschema.ValidationError, match=message):
        jsonschema.validate(meta, meta_cio_schema())


def test_optional_inputs_switched_off_disable_their_models(duckdb_project_factory):
    project = duckdb_project_factory(
        "core_only",
        vars={**{f"cio_{name}": None for name in OPTIONAL_INPUTS},
              **{f"cio_using_{name}": False for name in OPTIONAL_INPUTS}},
    )
    project.run("build")
    manifest = project.manifest()
    enabled = package_models(manifest)
    assert set(enabled) & SYNCED_MODELS == {"cio_people", "cio_event_order_placed"}
    disabled = {nodes[0]["name"] for nodes in manifest["disabled"].values()}
    assert {
        "stg_cio__checkouts",
        "cio_event_cart_abandoned",
        "cio_event_replenishment_due",
        "int_cio__refunds",
    } <= disabled
    # cio_people depends on nothing that is disabled, and the attributes of missing inputs are
    # excluded from the sync (their columns stay, typed and empty, for the contract).
    depends = enabled["cio_people"]["depends_on"]["nodes"]
    assert all(manifest["nodes"].get(node) for node in depends)
    meta = enabled["cio_people"]["config"]["meta"]["cio"]
    assert set(meta["exclude"]) == {
        "days_since_last_order",
        "last_product_category",
        "next_reorder_due_at",
        "last_checkout_started_at",
        "is_subscriber",
        "subscription_status",
        "has_refund",
    }
    assert meta["inputs"] == ["customers", "orders"]
    order_meta = enabled["cio_event_order_placed"]["config"]["meta"]["cio"]
    assert {"items", "item_count"} <= set(order_meta["exclude"])
    rows = project.query(
        "select customer_id, lifetime_value, has_refund, last_checkout_started_at from cio_people order by 1"
    )
    assert [r[0] for r in rows] == ["c001", "c002", "c003", "c004", "c009", "c010", "c011", "c012"]
    assert all(r[2] is None and r[3] is None for r in rows)


def test_email_as_identifier(duckdb_project_factory):
    project = duckdb_project_factory("email_mode", vars={"cio_identifier": "email"})
    project.run("build")
    meta = package_models(project.manifest())["cio_people"]["config"]["meta"]["cio"]
    assert meta["identifier"] == {"column": "email", "kind": "email"}
    # A guest checkout with a valid email is resolvable when email is the identifier.
    assert project.query("select email from cio_event_checkout_started where checkout_id = 'k004'") == [
        ("newguest@example.org",)
    ]
    quarantine = set(project.query("select source, row_key, reason from cio_quarantine where source = 'customers'"))
    assert ("customers", "c007", "invalid_identifier") in quarantine
    assert ("customers", "<null>", "null_key") in quarantine


def test_bad_identifier_var_is_a_clear_error(duckdb_project_factory):
    project = duckdb_project_factory("bad_identifier", vars={"cio_identifier": "phone"})
    with pytest.raises(DbtFailed, match="var cio_identifier must be 'customer_id' or 'email', not 'phone'"):
        project.run("compile", "--select", "cio_people")


def test_missing_required_input_is_a_clear_error(duckdb_project_factory):
    project = duckdb_project_factory("no_orders", vars={"cio_orders": None})
    with pytest.raises(DbtFailed, match="input 'orders' is not configured. Set var 'cio_orders'"):
        project.run("compile", "--select", "stg_cio__orders")


def test_an_optional_input_used_but_not_configured_names_both_vars(duckdb_project_factory):
    project = duckdb_project_factory("no_refunds", vars={"cio_refunds": None})
    with pytest.raises(DbtFailed, match="input 'refunds' is not configured. Set var 'cio_refunds'.*"
                                        "set var 'cio_using_refunds' to false instead"):
        project.run("compile", "--select", "stg_cio__refunds")


def test_parsing_needs_no_input_configured(duckdb_project_factory):
    """An unconfigured input fails the models that read it when they compile or run, not dbt's
    parse: a project that disables the package's models and uses only its macros and hooks (as
    the benchmark's does) must parse without configuring any input."""
    project = duckdb_project_factory("parse_only", vars={"cio_orders": None, "cio_refunds": None})
    assert project.run("parse").returncode == 0


def test_only_staging_models_depend_on_the_input_relations(duckdb_build):
    """The inputs are the project's own relations (here the example's seeds): in dbt's graph only
    the staging models reach them, so nothing downstream joins raw inputs again."""
    manifest = duckdb_build.manifest()
    inputs = {uid for uid, node in manifest["nodes"].items() if node["package_name"] != "cio_sync"}
    reaching = {node["name"] for node in package_models(manifest).values()
                if set(node["depends_on"]["nodes"]) & inputs}
    assert reaching and all(name.startswith("stg_cio__") for name in reaching), reaching


def test_every_reason_counts_toward_an_inputs_quarantine_share(duckdb_project_factory):
    """5 of the example's 12 orders are kept out, 3 of them by staging's checks (25%) and 2 when
    they are resolved to a person (unknown customer, quarantined customer): 42%, over a limit
    of 40%, so the guardrail fails. (Customers, 5 of 13 kept out, stay under it.)"""
    project = duckdb_project_factory("quarantine_share", vars={"cio_max_quarantine_share": 0.4})
    proc = project.run("build", "--select", "+int_cio__orders", check=False)
    assert proc.returncode == 1
    failed = {r["unique_id"].split(".")[2]: r.get("failures") for r in project.run_results()["results"]
              if r["status"] == "fail"}
    assert any(name.startswith("cio_sync_quarantine_share_int_cio__orders") for name in failed), failed


def test_missing_required_column_names_input_and_column(duckdb_project_factory):
    project = duckdb_project_factory("missing_column", vars={"cio_guardrail_fixtures": True})
    project.run("seed", "--select", "orders_without_total")
    with pytest.raises(DbtFailed, match="input 'orders' \\(var cio_orders\\) has no column 'order_total'"):
        project.run("compile", "--select", "stg_cio__orders", vars={"cio_orders": "{{ ref('orders_without_total') }}"})


def test_an_identifier_that_is_not_text_or_an_integer_stops_the_build_naming_input_and_column(
        duckdb_project_factory):
    """A date (or an interval, a fraction) as customer_id would become a Customer.io id like
    "2020-01-02" for every customer: refused when the staging model compiles. (One project for
    every case: each compile with other vars parses the whole project again.)"""
    project = duckdb_project_factory("identifier_type")
    project.run("seed", "--select", "raw_customers")
    for expression in ("cast(created_at as date)", "created_at - cast(created_at as date)",
                       "cast(length(customer_id) as double) / 7"):
        relation = f"(select * replace ({expression} as customer_id) from {{{{ ref('raw_customers') }}}})"
        proc = project.run("compile", "--select", "stg_cio__customers", vars={"cio_customers": relation},
                           check=False)
        assert proc.returncode != 0, expression
        assert ("input 'customers' (var cio_customers) has column 'customer_id' of type" in proc.stdout
                and "keys and identifiers must be text or integers" in proc.stdout), proc.stdout[-3000:]
    project.run("compile", "--select", "stg_cio__customers",
                vars={"cio_customers": "(select * replace (cast(length(customer_id) as bigint) as customer_id) "
                                       "from {{ ref('raw_customers') }})"})


def test_every_guardrail_test_fails_on_bad_data(duckdb_project_factory):
    project = duckdb_project_factory("guardrails", vars={"cio_guardrail_fixtures": True})
    proc = project.run("build", "--select", "tag:guardrail_fixture", check=False)
    assert proc.returncode == 1
    results = {
        r["unique_id"]: r["status"] for r in project.run_results()["results"] if r["unique_id"].startswith("test.")
    }
    tests = {uid.split(".")[2] for uid in results}
    for name in (
        "identifier_normalized",
        "no_mixed_identifiers",
        "one_row_per_person",
        "no_json_attributes",
        "value_over_1000_bytes",
        "too_many_attributes",
        "guardrail",
        "not_in_future",
        "unique_event_key",
        "consistent_event_names",
        "quarantine_share",
    ):
        assert any(name in test for test in tests), name
    assert len(results) == 13
    assert set(results.values()) == {"fail"}, results


def test_a_build_of_the_line_summaries_alone_still_reaches_order_placed(duckdb_project_factory):
    """int_cio__order_summaries built without int_cio__orders (a partial selection): the next
    build of cio_event_order_placed still recomputes the order whose lines changed."""
    import duckdb

    project = duckdb_project_factory("partial_summaries", vars=dict(SEND_HISTORY))
    project.run("build", "--select", "+cio_event_order_placed")
    assert project.query("select item_count from cio_event_order_placed where order_id = 'o1002'") == [(1,)]
    with duckdb.connect(project.env["CIO_DUCKDB_PATH"]) as conn:
        conn.execute("update raw_order_lines set quantity = 4 where order_id = 'o1002'")
    project.run("build", "--select", "stg_cio__order_lines", "int_cio__order_summaries")
    project.run("build", "--select", "cio_event_order_placed")
    assert project.query("select item_count from cio_event_order_placed where order_id = 'o1002'") == [(4,)]


def test_a_value_removed_at_the_source_is_removed_by_the_next_build(duckdb_project_factory):
    """An order's discount code taken off (its change time unchanged: the input has no
    loaded_at) reaches the event on the next incremental build; the staged row was once kept
    because comparing a value with a null said neither same nor different."""
    import duckdb

    project = duckdb_project_factory("value_removed", vars=dict(SEND_HISTORY))
    project.run("build", "--select", "+cio_event_order_placed")
    placed = "select discount_code from cio_event_order_placed where order_id = 'o9001'"
    with duckdb.connect(project.env["CIO_DUCKDB_PATH"]) as conn:
        conn.execute("insert into raw_orders (order_id, customer_id, ordered_at, order_total, status, discount_code,"
                     " currency, is_test) values ('o9001', 'c002', '2026-05-31 09:00:00', '20.00', 'paid', 'SPRING5',"
                     " 'USD', false)")
    project.run("run", "--select", "+cio_event_order_placed")  # run: a build would seed the inputs again
    assert project.query(placed) == [("SPRING5",)]
    with duckdb.connect(project.env["CIO_DUCKDB_PATH"]) as conn:
        conn.execute("update raw_orders set discount_code = null where order_id = 'o9001'")
    project.run("run", "--select", "+cio_event_order_placed")
    assert project.query(placed) == [(None,)]


def test_a_first_time_order_is_added_and_its_cancellation_recounted_as_a_full_refresh_would(duckdb_project_factory):
    """Purchases per person, replenishments and abandoned carts are added to from a first-time
    order and recounted when an order they counted changes. Each incremental build gives the
    rows a full refresh of the same shop gives, and the cart the new order took out of
    cart_abandoned comes back when that order is cancelled."""
    import duckdb

    # Nine days after the example's last checkout: no cart is recomputed for its window alone.
    later = {**SEND_HISTORY, "cio_now": "2026-06-10 12:00:00"}
    incremental = duckdb_project_factory("added", vars=later)
    refreshed = duckdb_project_factory("added_refreshed", vars=later)
    compared = ("cio_people", "cio_event_cart_abandoned", "cio_event_replenishment_due",
                "int_cio__person_orders", "int_cio__replenishments")
    selected = ["--select", *(f"+{model}" for model in compared)]
    for project in (incremental, refreshed):
        project.run("seed")
    incremental.run("run", *selected)  # the refreshed project is only ever built with --full-refresh

    def change_both(*statements: str) -> None:
        for project in (incremental, refreshed):
            with duckdb.connect(project.env["CIO_DUCKDB_PATH"]) as conn:
                for sql in statements:
                    conn.execute(sql)
        incremental.run("run", *selected)
        refreshed.run("run", *selected, "--full-refresh")
        for model in compared:
            columns = [c for (c,) in incremental.query(
                f"select column_name from information_schema.columns where table_name = '{model}'"
                " and column_name not in ('_cio_staged_at', '_cio_recounted')")]
            sql = f"select {', '.join(columns)} from {model} order by all"
            assert incremental.query(sql) == refreshed.query(sql), model

    def c003() -> tuple:
        [row] = incremental.query("select orders_count, last_order_at from cio_people where customer_id = 'c003'")
        return row

    carts = "select checkout_id from cio_event_cart_abandoned where checkout_id = 'k002'"
    assert incremental.query(carts) == [("k002",)]
    count_before, last_before = c003()
    # c003 buys after abandoning k002 (started 2026-05-31 07:00 UTC): k002 is no longer abandoned.
    change_both(
        "insert into raw_orders (order_id, customer_id, ordered_at, order_total, status, currency, is_test)"
        " values ('o3001', 'c003', '2026-05-31 12:00:00', '30.00', 'paid', 'usd', false)",
        "insert into raw_order_lines (order_id, sku, quantity, line_total, product_category, replenishment_days)"
        " values ('o3001', 'SKU-CLEANSER', 1, 30.00, 'skincare', 30)",
    )
    assert incremental.query(carts) == []
    assert c003()[0] == count_before + 1
    assert incremental.query("select order_id from int_cio__replenishments where person_id = 'c003'"
                             " and sku = 'SKU-CLEANSER'") == [("o3001",)]
    # Cancelled: c003 is recounted from all their orders, and k002 is abandoned again.
    change_both("update raw_orders set status = 'cancelled' where order_id = 'o3001'")
    assert incremental.query(carts) == [("k002",)]
    assert c003() == (count_before, last_before)


def test_windows_that_elapsed_while_no_build_ran_are_counted_however_long_the_gap(duckdb_project_factory):
    """A cart whose window elapses, and units that run out, between two builds five days apart
    (three more than var cio_event_lookback_hours), with no input changed in between, are in
    cart_abandoned and replenishment_due after the second build: the incremental path starts
    from the "now" of the mart's last build (clock_at in the build log), not from a lookback
    before this one. A build log written before clock_at existed gets the column, and its
    builds fall back to the lookback; a clock set back takes out what elapsed after it; the
    rows are those of a full refresh throughout."""
    import duckdb

    project = duckdb_project_factory("clock_gap", vars={**SEND_HISTORY, "cio_now": "2026-06-01 12:00:00"})
    project.run("seed")

    def execute(sql: str) -> None:
        with duckdb.connect(project.env["CIO_DUCKDB_PATH"]) as conn:
            conn.execute(sql)

    def checkout(checkout_id: str, started_at: str) -> str:
        return ("insert into raw_checkouts (checkout_id, customer_id, started_at, cart_value, checkout_url,"
                f" item_count, in_stock, is_test) values ('{checkout_id}', 'c002', '{started_at}', 90.00,"
                f" 'https://shop.example/c/{checkout_id}', 1, true, false)")

    # c002's last order is 2026-05-30: a checkout at 11:30 UTC on June 1st is abandoned at 12:30.
    execute(checkout("k9001", "2026-06-01 11:30:00+00:00"))
    # One unit lasting 30 days, bought 2026-05-03 12:00 in New York: runs out 2026-06-02 16:00 UTC.
    execute("insert into raw_orders (order_id, customer_id, ordered_at, order_total, status, currency, is_test)"
            " values ('o9003', 'c002', '2026-05-03 12:00:00', '12.00', 'paid', 'USD', false)")
    execute("insert into raw_order_lines (order_id, sku, quantity, line_total, product_category, replenishment_days)"
            " values ('o9003', 'SKU-SERUM-X', 1, 12.00, 'skincare', 30)")
    marts = ["cio_event_cart_abandoned", "cio_event_replenishment_due"]
    selected = ["--select", *(f"+{mart}" for mart in marts)]
    carts = "select checkout_id from cio_event_cart_abandoned where checkout_id like 'k9%' order by 1"
    due = "select order_id, sku from cio_event_replenishment_due where order_id = 'o9003'"
    project.run("run", *selected)
    assert (project.query(carts), project.query(due)) == ([], [])

    # Five days later; a checkout of 11:45 that day is staged, its window not elapsed yet.
    execute(checkout("k9002", "2026-06-06 11:45:00+00:00"))
    project.run("run", *selected, vars={"cio_now": "2026-06-06 12:00:00"})
    assert (project.query(carts), project.query(due)) == ([("k9001",)], [("o9003", "SKU-SERUM-X")])

    # A log from before clock_at: the next build adds the column, and looks back 72 hours.
    execute("alter table cio_sync_state.cio_builds drop column clock_at")
    later = {"cio_now": "2026-06-07 12:00:00"}
    project.run("run", *selected, vars=later)
    assert project.query(carts) == [("k9001",), ("k9002",)]

    def as_a_full_refresh_has_them(clock: dict) -> None:
        incremental = {mart: project.query(f"select * from {mart} order by all") for mart in marts}
        project.run("run", *selected, "--full-refresh", vars=clock)
        assert {mart: project.query(f"select * from {mart} order by all") for mart in marts} == incremental

    as_a_full_refresh_has_them(later)
    # The clock set back to June 1st: what had elapsed after it is taken out.
    earlier = {"cio_now": "2026-06-01 12:00:00"}
    project.run("run", *selected, vars=earlier)
    assert (project.query(carts), project.query(due)) == ([], [])
    as_a_full_refresh_has_them(earlier)


def test_a_checkout_an_overlapping_build_committed_late_still_becomes_an_abandoned_cart(duckdb_project_factory):
    """A row is stamped when its build's transaction starts; one an overlapping `dbt build`
    committed after this one's cart mart read int_cio__checkouts carries a stamp older than
    the mart's last build, so the mart never sees it as changed. Its window elapsing within the
    lookback brings it back (the time path starts var cio_event_lookback_hours before the last
    build's "now"). Simulated by back-dating the stamp."""
    import duckdb

    project = duckdb_project_factory("late_commit", vars={**SEND_HISTORY, "cio_now": "2026-06-01 12:00:00"})
    project.run("seed")
    project.run("run", "--select", "+cio_event_cart_abandoned")
    with duckdb.connect(project.env["CIO_DUCKDB_PATH"]) as conn:
        conn.execute("insert into raw_checkouts (checkout_id, customer_id, started_at, cart_value, checkout_url,"
                     " item_count, in_stock, is_test) values ('k9001', 'c002', '2026-06-01 10:00:00+00:00', 90.00,"
                     " 'https://shop.example/c/k9001', 1, true, false)")
    project.run("run", "--select", "stg_cio__checkouts", "int_cio__checkouts")
    with duckdb.connect(project.env["CIO_DUCKDB_PATH"]) as conn:
        conn.execute("update int_cio__checkouts set _cio_staged_at = (select max(built_at) - interval 1 second"
                     " from cio_sync_state.cio_builds where relation_name like '%cio_event_cart_abandoned%')"
                     " where checkout_id = 'k9001'")
    project.run("run", "--select", "cio_event_cart_abandoned", vars={"cio_now": "2026-06-01 13:00:00"})
    assert project.query("select checkout_id from cio_event_cart_abandoned where checkout_id = 'k9001'") == [("k9001",)]


def test_with_no_clock_pinned_now_is_when_the_build_started_for_every_model(duckdb_project_factory):
    """Unpinned, "now" is the time the dbt invocation started, one value for every model: the
    build log records it (clock_at) once for the whole build, no later than any model was
    built, and a build pinned to that time gives the same rows (windows elapsed, days since
    the last order)."""
    marts = ["cio_people", "cio_event_cart_abandoned", "cio_event_replenishment_due"]
    selected = ["--select", *(f"+{mart}" for mart in marts)]
    unpinned = duckdb_project_factory("clock_unpinned", vars={**SEND_HISTORY, "cio_now": None})
    unpinned.run("build", *selected)
    [(clocks, first_built)] = unpinned.query(
        "select count(distinct clock_at), min(built_at) from cio_sync_state.cio_builds")
    [(clock,)] = unpinned.query("select max(clock_at) from cio_sync_state.cio_builds")
    assert clocks == 1 and clock <= first_built, (clocks, clock, first_built)
    pinned = duckdb_project_factory("clock_pinned", vars={**SEND_HISTORY, "cio_now": f"{clock:%Y-%m-%d %H:%M:%S.%f}"})
    pinned.run("build", *selected)
    for mart in marts:
        sql = f"select * from {mart} order by all"
        assert unpinned.query(sql) == pinned.query(sql), mart


def test_incremental_event_model_picks_up_late_rows(tmp_path_factory, pg_schema_factory):
    """A second build reads only the lookback window, adds late-arriving orders and
    updates changed ones in place: no duplicate keys, nothing lost."""
    from conftest import PostgresBuild

    schema = pg_schema_factory("cio_inc")
    builds = pg_schema_factory("cio_inc_builds")  # where the build proofs go, dropped afterwards
    project = PostgresBuild(
        target="postgres",
        workdir=tmp_path_factory.mktemp("incremental"),
        env={"CIO_TEST_SCHEMA": schema.name},
        vars={"cio_state_schema": builds.name},
    )
    project.schema = schema
    project.run("build", "--select", "+cio_event_order_placed")
    assert schema.query("select count(*) from cio_event_order_placed") == [(6,)]
    schema.execute(
        "insert into raw_orders (order_id, customer_id, ordered_at, order_total, status, currency, is_test)"
        " values ('o2001', 'c002', '2026-05-31 08:00:00', '42.00', 'paid', 'USD', false)"
    )
    # o1002 lies inside the lookback (cio_event_lookback_hours before the newest event), o1001 not.
    schema.execute("update raw_orders set order_total = '86.00' where order_id = 'o1002'")
    schema.execute("update raw_orders set order_total = '61.00' where order_id = 'o1001'")
    project.run("run", "--select", "+cio_event_order_placed")
    rows = {k: str(v) for k, v in schema.query("select order_id, total from cio_event_order_placed")}
    assert len(rows) == 7
    assert (rows["o2001"], rows["o1002"], rows["o1001"]) == ("42.00", "86.00", "59.90")
    assert schema.query("select count(distinct event_id) from cio_event_order_placed") == [(7,)]


def seeded_postgres_project(prefix: str, tmp_path_factory, pg_schema_factory):
    """integration_tests seeded into a PostgreSQL schema of its own (build proofs in another)."""
    from conftest import PostgresBuild

    schema = pg_schema_factory(prefix)
    builds = pg_schema_factory(f"{prefix}_builds")
    project = PostgresBuild(target="postgres", workdir=tmp_path_factory.mktemp(prefix),
                            env={"CIO_TEST_SCHEMA": schema.name}, vars={"cio_state_schema": builds.name})
    project.schema = schema
    project.run("seed")
    return project


def seeded_project(adapter: str, name: str, prefix: str, duckdb_project_factory, tmp_path_factory,
                   pg_schema_factory):
    """integration_tests seeded on DuckDB or PostgreSQL, and a function that runs one SQL
    statement in its database."""
    if adapter == "postgres":
        project = seeded_postgres_project(prefix, tmp_path_factory, pg_schema_factory)
        return project, project.schema.execute
    project = duckdb_project_factory(name)
    project.run("seed")

    def execute(sql: str) -> None:
        import duckdb

        with duckdb.connect(project.env["CIO_DUCKDB_PATH"]) as conn:
            conn.execute(sql)

    return project, execute


@pytest.mark.parametrize("adapter", ["duckdb", "postgres"])
def test_a_build_whose_incremental_path_would_recompute_every_row_builds_the_model_whole(
    adapter, duckdb_project_factory, tmp_path_factory, pg_schema_factory
):
    """A staging model refreshed alone (`--full-refresh --select stg_cio__orders`) stamps every
    order anew; an intermediate table emptied (a crash empties PostgreSQL's unlogged tables);
    a model the build log has lost. The incremental path would then recompute every row key by
    key, at many times the cost of a whole build (461 s against 39 s for int_cio__orders at
    1,000,000 customers): such a model, and every model after it, is built whole, with the same
    rows, and says why. The build after that is incremental again."""
    project, execute = seeded_project(adapter, "whole", "cio_whole", duckdb_project_factory, tmp_path_factory,
                                      pg_schema_factory)
    state = project.vars["cio_state_schema"] if adapter == "postgres" else "cio_sync_state"
    people = "select * from cio_people order by 1"
    placed = "select * from cio_event_order_placed order by event_id"
    project.run("run")
    expected_people, expected_placed = project.query(people), project.query(placed)
    assert expected_people and expected_placed
    # PostgreSQL: a whole build drops the table's indexes and makes them again after the insert
    indexes = ("select tablename, indexdef from pg_indexes where schemaname = current_schema() "
               "and tablename in ('int_cio__orders', 'cio_people', 'cio_event_order_placed') order by 1, 2")
    expected_indexes = project.query(indexes) if adapter == "postgres" else []
    assert adapter != "postgres" or len({table for table, _ in expected_indexes}) == 3

    def run_and_read_log(*args: str) -> tuple[dict[str, bool], str]:
        proc = project.run("run", *args)
        invocation = project.run_results()["metadata"]["invocation_id"]
        rows = project.query(f"select relation_name, full_build from {state}.cio_builds "
                             f"where invocation_id = '{invocation}'")
        return {name.split(".")[-1].strip('"'): full for name, full in rows}, proc.stdout

    def whole_ones(built: dict[str, bool]) -> set[str]:
        return {name for name, full in built.items() if full and not name.startswith("int_cio__customers")}

    built, _ = run_and_read_log()
    assert whole_ones(built) == {"cio_quarantine"}  # views are always whole

    project.run("run", "--full-refresh", "--select", "stg_cio__orders")
    built, output = run_and_read_log()
    after_orders = {"int_cio__orders", "int_cio__person_orders", "int_cio__refunds", "int_cio__replenishments",
                    "cio_event_order_placed", "cio_event_cart_abandoned", "cio_event_refund_issued",
                    "cio_event_replenishment_due", "cio_people"}
    assert after_orders <= whole_ones(built), built
    assert not {"stg_cio__orders", "int_cio__checkouts", "int_cio__order_summaries",
                "cio_event_checkout_started"} & whole_ones(built)
    assert 'int_cio__orders" whole: ' in output, output
    assert 'stg_cio__orders" was built whole since its last build' in output, output
    assert (project.query(people), project.query(placed)) == (expected_people, expected_placed)

    execute("delete from int_cio__orders")  # as a crash leaves an unlogged table
    built, _ = run_and_read_log()
    assert after_orders <= whole_ones(built), built
    assert (project.query(people), project.query(placed)) == (expected_people, expected_placed)
    if adapter == "postgres":
        assert project.query(indexes) == expected_indexes

    execute(f"delete from {state}.cio_builds where relation_name like '%cio_people%'")
    built, output = run_and_read_log()
    assert whole_ones(built) & {"cio_people", "int_cio__orders"} == {"cio_people"}, built
    assert "has no entry for" in output, output
    assert project.query(people) == expected_people

    built, _ = run_and_read_log()
    assert not after_orders & whole_ones(built), built


def test_infinite_and_pre_1970_times_are_quarantined_on_postgres(tmp_path_factory, pg_schema_factory):
    """'-infinity' passed every check ('infinity' is caught as a future time): the staging
    models quarantine any time before 1970, so it never reaches a mart or cio-export."""
    project = seeded_postgres_project("cio_inf", tmp_path_factory, pg_schema_factory)
    schema = project.schema
    schema.execute("insert into raw_customers (customer_id, email, created_at, is_test) "
                   "values ('c900', 'c900@example.org', '-infinity', false)")
    schema.execute("insert into raw_orders (order_id, customer_id, ordered_at, order_total, status, currency, is_test)"
                   " values ('o900', 'c001', '-infinity', '10.00', 'paid', 'USD', false),"
                   " ('o901', 'c001', '1960-01-01 00:00:00', '10.00', 'paid', 'USD', false)")
    project.run("run", "--select", "+cio_people", "+cio_event_order_placed", "+cio_quarantine")
    quarantined = schema.query("select source, row_key, column_name, reason from cio_quarantine "
                               "where row_key in ('c900', 'o900', 'o901') order by row_key")
    assert quarantined == [("customers", "c900", "created_at", "timestamp_out_of_range"),
                           ("orders", "o900", "ordered_at", "timestamp_out_of_range"),
                           ("orders", "o901", "ordered_at", "timestamp_out_of_range")]
    assert schema.query("select count(*) from cio_people where customer_id = 'c900'") == [(0,)]
    assert schema.query("select count(*) from cio_event_order_placed where order_id in ('o900', 'o901')") == [(0,)]


@pytest.mark.parametrize("adapter", ["duckdb", "postgres"])
def test_the_key_tests_of_an_incremental_model_catch_a_duplicate_its_last_build_wrote(
    adapter, duckdb_project_factory, tmp_path_factory, pg_schema_factory
):
    """unique_key on a model stamped with _cio_staged_at checks only the keys its last build
    wrote (found through the key's index on PostgreSQL): a key written twice, and a key written
    again while an older row still holds it, both fail the test, with one key column
    (int_cio__orders) and two (int_cio__replenishments); the clean incremental build passed.
    On PostgreSQL the key's unique index refuses such a row as it is written, naming the key,
    and the test does not read the table; a table without that index (built by an earlier
    version of the package) is checked as on DuckDB."""
    project, execute = seeded_project(adapter, "key_tests", "cio_keys", duckdb_project_factory, tmp_path_factory,
                                      pg_schema_factory)
    models = ["int_cio__orders", "int_cio__replenishments"]
    project.run("build", "--select", *(f"+{m}" for m in models))
    project.run("build", "--select", *models)  # incremental, clean: its tests pass
    [(person, sku)] = project.query("select person_id, sku from int_cio__replenishments order by 1, 2 limit 1")
    if adapter == "postgres":
        import psycopg2

        compiled = {r["unique_id"].split(".")[2]: r["compiled_code"] for r in project.run_results()["results"]
                    if ".cio_sync_unique_key_" in r["unique_id"]}
        assert compiled and all("where false" in sql for sql in compiled.values()), compiled
        with pytest.raises(psycopg2.errors.UniqueViolation, match=r"Key \(order_id\)=\(o1001\) already exists"):
            execute("insert into int_cio__orders select * from int_cio__orders where order_id = 'o1001'")
        unique = project.query("select indexname from pg_indexes where schemaname = current_schema() and tablename in "
                               "('int_cio__orders', 'int_cio__replenishments') and indexdef like 'CREATE UNIQUE%'")
        assert len(unique) == 2, unique
        for (index,) in unique:  # as a table built before the package made these indexes unique
            execute(f'drop index "{index}"')
    later = "cast('2999-01-01 00:00:00' as timestamp)"  # after every build: written by the last one
    for sql in (
        "create table dup_orders as select * from int_cio__orders where order_id = 'o1001'",
        f"update dup_orders set _cio_staged_at = {later}",
        "insert into int_cio__orders select * from dup_orders",  # o1001 again, beside its older row
        "update dup_orders set order_id = 'o-twice'",
        "insert into int_cio__orders select * from dup_orders",  # o-twice written twice
        "insert into int_cio__orders select * from dup_orders",
        "create table dup_lines as select * from int_cio__replenishments"
        f" where person_id = '{person}' and sku = '{sku}'",
        f"update dup_lines set _cio_staged_at = {later}",
        "insert into int_cio__replenishments select * from dup_lines",
        "drop table dup_orders",
        "drop table dup_lines",
    ):
        execute(sql)
    proc = project.run("test", "--select", *models, check=False)
    assert proc.returncode == 1, proc.stdout
    failures = {r["unique_id"].split(".")[2]: (r["status"], r["failures"]) for r in project.run_results()["results"]
                if ".cio_sync_unique_key_" in r["unique_id"]}
    assert failures == {"cio_sync_unique_key_int_cio__orders_order_id": ("fail", 2),
                        "cio_sync_unique_key_int_cio__replenishments_person_id__sku": ("fail", 1)}, failures


def test_cio_people_holds_one_row_per_person_through_its_unique_index_on_postgres(tmp_path_factory, pg_schema_factory):
    """PostgreSQL: cio_people's identifier index is unique, so a second row for a person is
    refused as it is written (naming the person), and one_row_per_person reads only the rows
    without an identifier, which the index lets through: two of them still fail the test."""
    import psycopg2

    project = seeded_postgres_project("cio_one", tmp_path_factory, pg_schema_factory)
    project.run("build", "--select", "+cio_people")
    [test] = [r for r in project.run_results()["results"]
              if r["unique_id"].startswith("test.cio_sync.cio_sync_one_row_per_person_cio_people")]
    assert test["status"] == "pass" and "is null" in test["compiled_code"], test["compiled_code"]
    [(person,)] = project.query("select customer_id from cio_people order by 1 limit 1")
    with pytest.raises(psycopg2.errors.UniqueViolation, match=rf"Key \(customer_id\)=\({person}\) already exists"):
        project.schema.execute(f"insert into cio_people (customer_id) values ('{person}')")
    project.schema.execute("insert into cio_people (customer_id) values (null), (null)")
    proc = project.run("test", "--select", "cio_people", check=False)
    assert proc.returncode == 1, proc.stdout
    failed = {r["unique_id"].split(".")[2]: r["failures"] for r in project.run_results()["results"]
              if r["status"] == "fail"}
    assert failed.get("cio_sync_one_row_per_person_cio_people_") == 1, failed


def test_an_incremental_build_analyzes_the_stamps_only_when_it_inserted_rows_on_postgres(tmp_path_factory,
                                                                                         pg_schema_factory):
    """PostgreSQL: the models after a staging table estimate the rows stamped since their last
    build from its _cio_staged_at statistics, so an incremental build that inserted rows
    analyzes them again; one that inserted none leaves them as they are (every build analyzed
    each of the 15 stamped tables, whatever it wrote)."""
    project = seeded_postgres_project("cio_stats", tmp_path_factory, pg_schema_factory)

    def build() -> tuple[int, int]:
        project.run("run", "--select", "stg_cio__orders")
        [result] = [r for r in project.run_results()["results"] if r["unique_id"].endswith(".stg_cio__orders")]
        [(analyzed,)] = project.schema.query(
            "select analyze_count from pg_stat_user_tables where relid = 'stg_cio__orders'::regclass")
        return result["adapter_response"]["rows_affected"], analyzed

    _, first = build()
    assert build() == (0, first)
    project.schema.execute("insert into raw_orders (order_id, customer_id, ordered_at, order_total, status,"
                           " currency, is_test) values ('o990', 'c001', '2099-01-01 11:00:00', '20.00', 'paid',"
                           " 'USD', false)")
    assert build() == (1, first + 1)


@pytest.mark.parametrize("adapter", ["duckdb", "postgres"])
def test_numbers_too_large_or_not_whole_are_quarantined_or_rounded_never_a_failed_build(
    adapter, duckdb_project_factory, tmp_path_factory, pg_schema_factory
):
    """One hostile value used to fail every model on PostgreSQL: a quantity of '2.5' (cast to an
    integer) or an order total of 10^17 (numeric(18,2) overflows). Every adapter now keeps the
    same rows: the quantity is rounded like DuckDB's cast (3), totals from 10^15 and quantities
    from 10^9 are quarantined as invalid_number, and so are '1e3' and '0x10', which DuckDB's
    cast alone would have read as numbers; a lone sign or point, or two points, are not
    numbers, and leading zeros and blanks do not count as digits."""
    project, execute = seeded_project(adapter, "numbers", "cio_num", duckdb_project_factory, tmp_path_factory,
                                      pg_schema_factory)
    execute("insert into raw_orders (order_id, customer_id, ordered_at, order_total, status, currency, is_test)"
            " values ('o901', 'c001', '2026-05-10 10:00:00', '100000000000000000', 'paid', 'USD', false),"
            " ('o902', 'c001', '2026-05-11 10:00:00', '999999999999999.99', 'paid', 'USD', false),"
            " ('o903', 'c001', '2026-05-12 10:00:00', '20.00', 'paid', 'USD', false),"
            " ('o904', 'c001', '2026-05-13 10:00:00', '1e3', 'paid', 'USD', false),"
            " ('o905', 'c001', '2026-05-14 10:00:00', '0x10', 'paid', 'USD', false),"
            " ('o906', 'c001', '2026-05-15 10:00:00', ' 000000000000000000012.50 ', 'paid', 'USD', false),"
            " ('o907', 'c001', '2026-05-16 10:00:00', '1000000000000000', 'paid', 'USD', false),"
            " ('o908', 'c001', '2026-05-17 10:00:00', '.', 'paid', 'USD', false),"
            " ('o909', 'c001', '2026-05-18 10:00:00', '-', 'paid', 'USD', false),"
            " ('o910', 'c001', '2026-05-19 10:00:00', '-.5', 'paid', 'USD', false),"
            " ('o911', 'c001', '2026-05-20 10:00:00', '1.2.3', 'paid', 'USD', false)")
    execute("insert into raw_order_lines (order_id, sku, quantity, line_total, product_category)"
            " values ('o903', 'SKU-A', '2.5', 10.00, 'x'), ('o903', 'SKU-B', '10000000000', 10.00, 'x')")
    proc = project.run("run", "--select", "+cio_event_order_placed", "+cio_quarantine")
    assert proc.returncode == 0, proc.stdout
    quarantined = project.query("select source, row_key, column_name, reason from cio_quarantine "
                                "where row_key in ('o901', 'o902', 'o903:SKU-A', 'o903:SKU-B', 'o904', 'o905', 'o906', "
                                "'o907', 'o908', 'o909', 'o910', 'o911') order by row_key")
    assert quarantined == [("orders", "o901", "order_total", "invalid_number"),
                           ("order_lines", "o903:SKU-B", "quantity", "invalid_number"),
                           ("orders", "o904", "order_total", "invalid_number"),
                           ("orders", "o905", "order_total", "invalid_number"),
                           ("orders", "o907", "order_total", "invalid_number"),
                           ("orders", "o908", "order_total", "invalid_number"),
                           ("orders", "o909", "order_total", "invalid_number"),
                           ("orders", "o911", "order_total", "invalid_number")]
    totals = dict(project.query("select order_id, cast(total as varchar) from cio_event_order_placed "
                                "where order_id in ('o906', 'o910')"))
    assert totals == {"o906": "12.50", "o910": "-0.50"}
    placed = dict(project.query("select order_id, item_count from cio_event_order_placed "
                                "where order_id in ('o902', 'o903')"))
    assert placed == {"o902": 0, "o903": 3}


@pytest.mark.parametrize("adapter", ["duckdb", "postgres"])
def test_control_characters_in_line_values_are_escaped_so_order_placed_stays_valid_json(
    adapter, duckdb_project_factory, tmp_path_factory, pg_schema_factory
):
    """A vertical tab pasted into a SKU or a control character in a category made `items` invalid
    JSON, and cio-export rejects such a row: the order_placed event was never sent. Every control
    character is escaped now, the values read back are the ones the shop wrote, and the text is
    the same on every adapter but for the case of a \\u escape's hexadecimal digits."""
    project, execute = seeded_project(adapter, "controls", "cio_ctl", duckdb_project_factory, tmp_path_factory,
                                      pg_schema_factory)
    sku = "SKU\x0bV"
    category = 'a\x01b\x1fc\x08d\x0ce"f\\g\th\ni\rj'

    def literal(text: str) -> str:
        return " || ".join(f"chr({ord(c)})" if ord(c) < 32 or c in "'\"\\" else f"'{c}'" for c in text)

    execute("insert into raw_orders (order_id, customer_id, ordered_at, order_total, status, currency, is_test)"
            " values ('o920', 'c001', '2026-05-21 10:00:00', '5.00', 'paid', 'USD', false)")
    execute("insert into raw_order_lines (order_id, sku, quantity, line_total, product_category)"
            f" values ('o920', {literal(sku)}, '1', 5.00, {literal(category)})")
    proc = project.run("run", "--select", "+cio_event_order_placed")
    assert proc.returncode == 0, proc.stdout
    [(items,)] = project.query("select items from cio_event_order_placed where order_id = 'o920'")
    expected = ('[{"sku":"SKU\\u000bV","quantity":1,"line_total":5.00,'
                '"product_category":"a\\u0001b\\u001fc\\bd\\fe\\"f\\\\g\\th\\ni\\rj"}]')
    if adapter == "duckdb":  # DuckDB's to_json writes the hexadecimal digits in upper case
        expected = expected.replace("\\u000b", "\\u000B").replace("\\u001f", "\\u001F")
    assert items == expected
    assert json.loads(items) == [{"sku": sku, "quantity": 1, "line_total": 5.0, "product_category": category}]
    if adapter == "duckdb":
        # Redshift's escapes, written out (default__json_value), run here: PostgreSQL's bytes.
        proc = project.run("show", "--inline", "select {{ cio_sync.default__json_value(\"" + literal(category)
                           + "\", 'string') }} as v", "--output", "json", "--quiet")
        [row] = json.loads(proc.stdout[proc.stdout.index("{"):])["show"]
        assert row["v"] == '"a\\u0001b\\u001fc\\bd\\fe\\"f\\\\g\\th\\ni\\rj"'


def test_the_build_log_is_read_through_its_index_however_long_it_has_grown(tmp_path_factory, pg_schema_factory):
    """Every build asks the build log about each model's last build some 175 times, and
    cio-export asks it for each model's proof; the log grows by a row per model and build
    (about three million rows after a year of builds every five minutes). Without an index each
    question read the whole log: a build with nothing to do took 42.5 s instead of 20.6 s at
    1,000,000 customers with a year of log. On PostgreSQL the first build makes the index,
    also on a log written before there was one, and the package's lookups go through it."""
    project = seeded_postgres_project("cio_log", tmp_path_factory, pg_schema_factory)
    assert project.run("run", "--select", "stg_cio__customers").returncode == 0
    log = f'"{project.vars["cio_state_schema"]}"."cio_builds"'
    project.schema.execute("drop index if exists " + log.replace('"cio_builds"', "cio_builds_by_relation"))
    project.schema.execute(
        f"insert into {log} (model_unique_id, relation_name, invocation_id, built_at, full_build)"
        f" select b.model_unique_id, b.relation_name || g % 30, md5(g::text),"
        f" b.built_at - g * interval '5 minutes', false"
        f" from {log} as b cross join generate_series(1, 200000) as g")
    project.schema.execute(f"analyze {log}")
    assert project.run("run", "--select", "stg_cio__customers").returncode == 0
    [(definition,)] = project.query(
        f"select indexdef from pg_indexes where schemaname = '{project.vars['cio_state_schema']}'"
        " and tablename = 'cio_builds'")
    assert definition.endswith("(relation_name, built_at)")
    [(relation,)] = project.query(
        f"""select max(relation_name) from {log} where relation_name like '%."stg_cio__customers"'""")
    assert relation and relation.endswith('."stg_cio__customers"'), relation
    for sql in (f"select max(built_at) from {log} where relation_name = '{relation}'",  # last_built_at
                f"select invocation_id from {log} where model_unique_id = 'model.cio_sync.stg_cio__customers'"
                f" and relation_name = '{relation}' order by built_at desc limit 1",  # cio-export's proof
                f"select clock_at from {log} where relation_name = '{relation}'"
                " order by built_at desc limit 1"):  # last_clock_at
        plan = "\n".join(row[0] for row in project.query("explain " + sql))
        assert "cio_builds_by_relation" in plan and "Seq Scan" not in plan, plan


def test_text_key_indexes_are_in_byte_order_and_incremental_lookups_use_them_and_older_ones(
    tmp_path_factory, pg_schema_factory
):
    """PostgreSQL: the B-trees on text keys are made in byte order (three times faster to build
    than in the database's collation), lookups compare in that order so the index serves them,
    and a table whose index was made before in the database's collation (an upgrade) is still
    looked up through it, with the same rows as a full refresh."""
    project, execute = seeded_project("postgres", "bytes", "cio_bytes", None, tmp_path_factory, pg_schema_factory)
    assert project.run("run").returncode == 0
    named = dict(project.query("select indexdef, indexname from pg_indexes where schemaname = current_schema() "
                               "and tablename = 'int_cio__orders' and indexdef like '%btree%'"))
    defs = list(named)
    assert sorted(d.split("(", 1)[1] for d in defs) == ['order_id COLLATE "C")', 'person_id COLLATE "C")'], defs
    changed_at = project.query("select indexdef from pg_indexes where schemaname = current_schema() "
                               "and tablename = 'stg_cio__orders' and indexdef like '%(_cio_changed_at)'")
    assert len(changed_at) == 1
    plan = "\n".join(r[0] for r in project.query(
        "set enable_seqscan = off; explain select * from int_cio__orders where person_id collate \"C\" = 'c001'"))
    assert "Index" in plan and "Seq Scan" not in plan, plan

    # as a table built before: its index in the database's collation
    execute('drop index "' + next(name for d, name in named.items() if "person_id" in d) + '"')
    execute("create index cio_bytes_legacy on int_cio__orders (person_id)")
    execute("insert into raw_orders (order_id, customer_id, ordered_at, order_total, status, currency, is_test)"
            " select 'o950', 'c001', max(ordered_at), '33.00', 'paid', 'USD', false from raw_orders"
            " where ordered_at < '2027-01-01'")
    assert project.run("run").returncode == 0
    people = "select * from cio_people order by 1"
    placed = "select event_id, order_id, total from cio_event_order_placed order by 1"
    incremental = project.query(people), project.query(placed)
    assert any(order_id == "o950" for _, order_id, _ in incremental[1])
    assert project.run("run", "--full-refresh").returncode == 0
    assert (project.query(people), project.query(placed)) == incremental


@pytest.mark.parametrize("adapter", ["duckdb", "postgres"])
def test_marts_selected_whole_or_recomputed_by_time_write_only_what_changed(
    adapter, duckdb_project_factory, tmp_path_factory, pg_schema_factory
):
    """cio_devices and the subscription marts are selected whole by every build, and
    cio_event_cart_abandoned and cio_event_replenishment_due recompute every cart and run-out
    date that elapsed within the lookback;
    all are written as a difference (cio_sync_mirror, cio_sync_recompute): a build where
    nothing changed writes no row (the rows keep their place on PostgreSQL, so no write-ahead
    log is spent on them), a changed row is replaced, a row that leaves is deleted, a new one
    added, and the tables hold what a full refresh gives."""
    project, execute = seeded_project(adapter, "mirror", "cio_mirror", duckdb_project_factory, tmp_path_factory,
                                      pg_schema_factory)
    marts = ("cio_devices", "cio_subscription_objects", "cio_subscription_relationships", "cio_event_cart_abandoned",
             "cio_event_replenishment_due")
    selected = ("--select", "+cio_devices", "+cio_subscription_objects", "+cio_subscription_relationships",
                "+cio_event_cart_abandoned", "+cio_event_replenishment_due")

    def written() -> dict[str, int]:
        # Rows the build inserted (PostgreSQL's response to the last statement; DuckDB's
        # response has no count, so its checks are the rows alone).
        if adapter != "postgres":
            return {}
        return {r["unique_id"].split(".")[-1]: r["adapter_response"].get("rows_affected")
                for r in project.run_results()["results"] if r["unique_id"].split(".")[-1] in marts}

    def places(mart: str, key: str) -> dict:
        # PostgreSQL: where each row lies; a row written again moves.
        return dict(project.query(f"select {key}, ctid::text from {mart}")) if adapter == "postgres" else {}

    # A purchase whose units ran out yesterday: a run-out date in the lookback.
    execute("insert into raw_orders (order_id, customer_id, ordered_at, order_total, status, currency) values"
            " ('o9100', 'c002', '2026-05-30 10:00:00', '12.00', 'paid', 'usd')")
    execute("insert into raw_order_lines (order_id, sku, quantity, line_total, product_category, replenishment_days)"
            " values ('o9100', 'SKU-FILTER', 1, '12.00', 'home', 1)")
    project.run("run", *selected)
    assert all(project.query(f"select count(*) from {mart}") != [(0,)] for mart in marts)
    devices_at, objects_at = places("cio_devices", "token"), places("cio_subscription_objects", "subscription_id")
    carts_at = places("cio_event_cart_abandoned", "checkout_id")
    due_at = places("cio_event_replenishment_due", "event_id")
    # The carts and run-out dates the next build recomputes (elapsed within the lookback).
    assert project.query("select count(*) from cio_event_cart_abandoned"
                         " where event_at >= cast('2026-05-29 12:00:00' as timestamp)") != [(0,)]
    assert project.query("select order_id from cio_event_replenishment_due"
                         " where event_at >= cast('2026-05-29 12:00:00' as timestamp)") == [("o9100",)]

    project.run("run", *selected)
    assert written() == ({} if adapter != "postgres" else dict.fromkeys(marts, 0))
    assert places("cio_devices", "token") == devices_at
    assert places("cio_subscription_objects", "subscription_id") == objects_at
    assert places("cio_event_cart_abandoned", "checkout_id") == carts_at
    assert places("cio_event_replenishment_due", "event_id") == due_at

    # Bob's token is deleted, Jane's used again, a new one for Bob; subscription 2 moves to
    # another plan (its relationship, status and start, stays as it is).
    execute("update raw_devices set deleted_at = '2026-05-31 08:00:00', last_used_at = '2026-05-31 08:00:00'"
            " where token = 'tok-bob-1'")
    execute("update raw_devices set last_used_at = '2026-05-31 09:00:00' where token = 'tok-jane-1'"
            " and platform = 'ios'")
    execute("insert into raw_devices (token, customer_id, platform, last_used_at) values"
            " ('tok-bob-2', 'c002', 'android', '2026-05-31 10:00:00')")
    execute("insert into raw_subscriptions (subscription_id, customer_id, status, updated_at, plan) values"
            " (2, 'c012', 'active', '2026-05-31 09:00:00', 'monthly')")
    project.run("run", *selected)
    devices = project.query("select token, platform, last_used_at from cio_devices order by token")
    assert devices == [("tok-bob-2", "android", datetime(2026, 5, 31, 14)),
                       ("tok-jane-1", "ios", datetime(2026, 5, 31, 13))]
    assert project.query("select plan from cio_subscription_objects where subscription_id = '2'") == [("monthly",)]
    if adapter == "postgres":
        assert written() == {"cio_devices": 2, "cio_subscription_objects": 1, "cio_subscription_relationships": 0,
                             "cio_event_cart_abandoned": 0, "cio_event_replenishment_due": 0}
        assert places("cio_subscription_objects", "subscription_id")["1"] == objects_at["1"]

    incremental = {mart: sorted(project.query(f"select * from {mart}"), key=repr) for mart in marts}
    project.run("run", *selected, "--full-refresh")
    assert {mart: sorted(project.query(f"select * from {mart}"), key=repr) for mart in marts} == incremental


def test_two_builds_of_a_mart_written_as_a_difference_take_turns_on_postgres(tmp_path_factory, pg_schema_factory):
    """Another build of cio_devices has written a new token and not committed yet: a build that
    selects the same token waits for it (cio_sync_mirror locks the mart against other writers,
    not readers), then finds the row committed and does not write it a second time. Without
    the lock both builds insert the token: two rows, and a cio_devices that fails unique_key."""
    import threading

    from conftest import _connect_pg

    project, execute = seeded_project("postgres", "turns", "cio_turns", None, tmp_path_factory, pg_schema_factory)
    selected = ("--select", "+cio_devices")
    project.run("run", *selected)
    execute("insert into raw_devices (token, customer_id, platform, last_used_at) values"
            " ('tok-bob-2', 'c002', 'android', '2026-05-31 10:00:00')")

    other = _connect_pg()  # the other build, in its own transaction
    with other.cursor() as cur:
        cur.execute(f"set search_path to {project.schema.name}")
        cur.execute("insert into cio_devices (customer_id, email, token, platform, last_used_at)"
                    " select customer_id, email, 'tok-bob-2', 'android', cast('2026-05-31 14:00:00' as timestamp)"
                    " from cio_devices where token = 'tok-bob-1'")
    waiting = ("select count(*) from pg_locks as l join pg_class as c on c.oid = l.relation"
               " join pg_namespace as n on n.oid = c.relnamespace"
               f" where n.nspname = '{project.schema.name}' and c.relname = 'cio_devices' and not l.granted")
    result: dict = {}
    build = threading.Thread(target=lambda: result.update(proc=project.run("run", *selected, check=False)))
    build.start()
    try:
        # Until the build queues behind the other one, or ends without having waited.
        while build.is_alive() and project.query(waiting) == [(0,)]:
            build.join(0.05)
        assert build.is_alive(), "the build wrote cio_devices while another build held uncommitted rows"
    finally:
        other.commit()
        other.close()
        build.join()
    assert result["proc"].returncode == 0, result["proc"].stdout[-3000:]
    assert project.query("select count(*) from cio_devices where token = 'tok-bob-2'") == [(1,)]
