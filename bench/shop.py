"""A messy D2C shop, generated in the warehouse with SQL, for building the dbt package at scale.

The same rows on PostgreSQL and DuckDB (integer arithmetic only; no random(), no float division),
in the input contract's column names, with what real shops send: ids with spaces, null ids,
mixed-case emails with spaces, emails shared by two customers, test rows and test domains, text
numbers (some not numbers), naive local times (America/New_York) beside timezone-aware ones,
future timestamps, orders and lines repeated by joins, guest orders identified by email only,
orders of unknown customers, cancelled orders, subscriptions with a status history, refunds of
unknown orders, push tokens of an unsupported platform or an unknown customer, and a
`loaded_at` on every row (on PostgreSQL with the B-tree on it the input contract asks for).

Sizes follow the customers: 10 orders, ~15 lines and 3 checkouts per customer, a subscription
per 10 customers (3 status rows each), a refund per 50 orders, 0.7 device tokens per customer.
`changes(step)` is what a shop does between two builds: 1% new orders (with their lines), 1%
new checkouts, 0.5% of customers changed, a few recent orders cancelled, 1% new tokens, 0.5%
used again and 0.1% unregistered.

    from shop import Shop
    shop = Shop(customers=20_000)
    for sql in shop.create("postgres", "my_schema"): cursor.execute(sql)
    for sql in shop.changes("postgres", "my_schema", step=1): cursor.execute(sql)
"""

from __future__ import annotations

from dataclasses import dataclass

#: The shop's "now" (UTC): builds of the generated shop pin var cio_now to it.
NOW = "2026-06-01 12:00:00"
#: Local zone of the naive timestamps (var cio_source_timezone).
TIMEZONE = "America/New_York"
TABLES = ("raw_customers", "raw_orders", "raw_order_lines", "raw_checkouts", "raw_subscriptions", "raw_refunds",
          "raw_devices")
#: Seconds from the first order to two days before NOW; new orders of changes() come after.
HISTORY_START = "2023-06-01 00:00:00"
HISTORY_SECONDS = 1096 * 86400 - 2 * 86400 - 12 * 3600
RECENT_START = "2026-05-30 12:00:00"  # NOW - 2 days
RECENT_MS = (2 * 86400 - 3600) * 1000  # new rows of changes() fall before NOW - 1 hour
MAX_STEPS = 10  # changes() steps that fit in the recent window


def _ts(literal: str) -> str:
    return f"cast('{literal}' as timestamp)"


def _email(c: str) -> str:
    """The email customer c has (before normalization), as customers and guest orders spell it."""
    return (f"case when {c} % 211 = 0 then 'not-an-email'"
            f" when {c} % 401 = 0 then 'qa' || cast({c} as varchar) || '@myshop.test'"
            f" when {c} % 997 = 0 then 'user' || cast({c} - 1 as varchar) || '@example.com'"
            f" when {c} % 5 = 0 then '  User' || cast({c} as varchar) || '@Example.COM '"
            f" else 'user' || cast({c} as varchar) || '@example.com' end")


def _money(cents: str, dialect: str) -> str:
    """Text of a decimal amount from integer cents: '59.90'."""
    div = "//" if dialect == "duckdb" else "/"
    return f"cast(({cents}) {div} 100 as varchar) || '.' || lpad(cast(({cents}) % 100 as varchar), 2, '0')"


def _series(first: int, last: int) -> str:
    return f"generate_series(cast({first} as bigint), cast({last} as bigint)) as g(n)"


@dataclass(frozen=True)
class Shop:
    customers: int

    @property
    def orders(self) -> int:
        return 10 * self.customers

    @property
    def checkouts(self) -> int:
        return 3 * self.customers

    @property
    def subscriptions(self) -> int:
        return max(1, self.customers // 10)

    @property
    def refunds(self) -> int:
        return max(1, self.orders // 50)

    @property
    def devices(self) -> int:
        return max(1, self.customers * 7 // 10)

    def step_sizes(self) -> dict[str, int]:
        return {"orders": max(1, self.orders // 100), "checkouts": max(1, self.checkouts // 100),
                "customers": max(1, self.customers // 200)}

    # -- whole tables ----------------------------------------------------------------------------
    def create(self, dialect: str, schema: str) -> list[str]:
        """Statements that (re)create the raw tables (TABLES) in `schema` (which must exist)."""
        out = [f"drop table if exists {schema}.{table}" for table in TABLES]
        out.append(f"create table {schema}.raw_customers as {self._customers(dialect)}")
        out.append(f"create table {schema}.raw_orders as {self._orders(dialect, 1, self.orders, None)}")
        out.append(f"create table {schema}.raw_order_lines as {self._lines(dialect, 1, self.orders, None)}")
        out.append(f"create table {schema}.raw_checkouts as {self._checkouts(dialect, 1, self.checkouts, None)}")
        out.append(f"create table {schema}.raw_subscriptions as {self._subscriptions(dialect)}")
        out.append(f"create table {schema}.raw_refunds as {self._refunds(dialect)}")
        out.append(f"create table {schema}.raw_devices as {self._devices(dialect, 1, self.devices)}")
        if dialect == "postgres":
            # The index on the change time docs/input-contract.md asks of a PostgreSQL input.
            out += [f"create index {table}_loaded_at on {schema}.{table} (loaded_at)" for table in TABLES]
            out += [f"analyze {schema}.{table}" for table in TABLES]
        return out

    def changes(self, dialect: str, schema: str, step: int) -> list[str]:
        """What happens between two builds (step 1, 2, ... up to MAX_STEPS): 1% new orders with
        their lines, 1% new checkouts, 0.5% of customers changed (consent, suppression, email
        spelling), and a few of everything else a shop sees: new customers whose orders were
        waiting for them, customers with a new email or turned into test rows, an order moved to
        another customer, late lines, recent orders cancelled, new refunds and subscription
        changes. Every new or changed row gets a later loaded_at."""
        if not 1 <= step <= MAX_STEPS:
            raise ValueError(f"step must be 1..{MAX_STEPS}")
        sizes = self.step_sizes()
        o_first, o_last = self.orders + (step - 1) * sizes["orders"] + 1, self.orders + step * sizes["orders"]
        k_first = self.checkouts + (step - 1) * sizes["checkouts"] + 1
        k_last = self.checkouts + step * sizes["checkouts"]
        few = max(1, self.customers // 1000)
        loaded = f"{_ts(RECENT_START)} + {step * 4} * interval '1 hour'"
        cid = "cast(substr(trim(customer_id), 2) as bigint)"
        oid = "cast(substr(order_id, 2) as bigint)"
        tok = "cast(substr(token, 5) as bigint)"
        dev = max(1, self.devices // 100)
        out = [
            f"insert into {schema}.raw_orders {self._orders(dialect, o_first, o_last, sizes['orders'])}",
            f"insert into {schema}.raw_order_lines {self._lines(dialect, o_first, o_last, sizes['orders'])}",
            f"insert into {schema}.raw_checkouts {self._checkouts(dialect, k_first, k_last, sizes['checkouts'])}",
            # 0.5% of customers: consent flipped, some suppressed, some with a new email spelling.
            f"update {schema}.raw_customers set"
            f" email_opt_in = not coalesce(email_opt_in, false),"
            f" do_not_message = ({cid} % 7 = {step % 7}),"
            f" email = case when {cid} % 3 = 0 then upper(email) else email end,"
            f" loaded_at = {loaded}"
            f" where customer_id is not null and {cid} % 200 = {step % 200}",
            # A few customers with another email (their guest orders no longer match them), a
            # few turned into test rows (their orders are quarantined with them).
            f"update {schema}.raw_customers set email = 'moved' || cast({cid} as varchar) || '@example.net',"
            f" loaded_at = {loaded} where customer_id is not null and {cid} % 1000 = {3 * step}",
            f"update {schema}.raw_customers set is_test = 'true', loaded_at = {loaded}"
            f" where customer_id is not null and {cid} % 2000 = {7 * step + 1}",
            # New customers: orders of unknown customer ids were waiting for some of them.
            f"insert into {schema}.raw_customers "
            f"{self._customers(dialect, self.customers + (step - 1) * few + 1, self.customers + step * few, loaded)}",
            # An order of the history moved to another customer.
            f"update {schema}.raw_orders set customer_id = 'C' || cast(1 + ({oid} * 7) % {self.customers} as varchar),"
            f" loaded_at = {loaded} where order_id is not null and {oid} <= {self.orders}"
            f" and {oid} % 5000 = {17 + step}",
            f"insert into {schema}.raw_refunds "
            f"{self._refunds(dialect, self.refunds + (step - 1) * few + 1, self.refunds + step * few, loaded)}",
            f"insert into {schema}.raw_subscriptions {self._subscriptions(dialect, 3 + step, loaded)}",
            # Devices: 1% new tokens, 0.5% used again, 0.1% unregistered (deleted_at).
            f"insert into {schema}.raw_devices "
            f"{self._devices(dialect, self.devices + (step - 1) * dev + 1, self.devices + step * dev, loaded)}",
            f"update {schema}.raw_devices set last_used_at = {loaded}, loaded_at = {loaded}"
            f" where {tok} <= {self.devices} and {tok} % 200 = {step}",
            f"update {schema}.raw_devices set deleted_at = {loaded}, loaded_at = {loaded}"
            f" where {tok} <= {self.devices} and {tok} % 1000 = {500 + step}",
        ]
        if step > 1:  # orders of the previous step: some cancelled, some with a line that came late
            prev_first = self.orders + (step - 2) * sizes["orders"] + 1
            out.append(
                f"update {schema}.raw_orders set status = 'cancelled', loaded_at = {loaded}"
                f" where order_id is not null and {oid} between {prev_first} and {o_first - 1} and {oid} % 40 = 7")
            out.append(f"insert into {schema}.raw_order_lines "
                       f"{self._lines(dialect, prev_first, o_first - 1, sizes['orders'], late=loaded)}")
        if dialect == "postgres":
            out += [f"analyze {schema}.{table}" for table in TABLES]
        return out

    # -- row generators --------------------------------------------------------------------------
    def _customers(self, dialect: str, first: int = 1, last: int | None = None, loaded: str | None = None) -> str:
        n_ = self.customers
        step = max(1, (4 * 365 * 86400) // n_)
        created = f"{_ts('2022-01-01 00:00:00')} + (n * {step} + (n * 7919) % {step}) * interval '1 second'"
        if loaded is not None:  # customers who sign up later: created when loaded
            created = loaded
        return f"""
select
    case when n % 499 = 0 then null
         when n % 7 = 0 then ' C' || cast(n as varchar) || ' '
         else 'C' || cast(n as varchar) end as customer_id,
    {_email('n')} as email,
    case when n % 2003 = 0 then {_ts('2099-01-01 00:00:00')} else {created} end as created_at,
    case n % 6 when 0 then 'yes' when 1 then 'No' when 2 then '1' when 3 then '0' when 4 then 'TRUE' end as sms_opt_in,
    case when n % 9 = 0 then null else n % 3 <> 0 end as email_opt_in,
    case when n % 1009 = 0 then 'true' when n % 2 = 0 then 'false' end as is_test,
    n % 101 = 0 as do_not_message,
    {created} + interval '1 minute' as loaded_at
from {_series(first, last or n_)}
cross join (values (1), (2)) as copies(k)
where k = 1 or n % 250 = 0"""

    def _order_time(self, first_new: int | None, batch: int | None) -> str:
        """ordered_at (naive, local) of order n: history orders spread over three years in order of
        n; orders of changes() in the two days before NOW."""
        if first_new is None:
            step = max(1, HISTORY_SECONDS // self.orders)
            return f"{_ts(HISTORY_START)} + (n * {step} + (n * 7907) % {step}) * interval '1 second'"
        ms = max(1, RECENT_MS // (MAX_STEPS * batch))
        return f"{_ts(RECENT_START)} + ((n - {self.orders}) * {ms}) * interval '1 millisecond'"

    def _orders(self, dialect: str, first: int, last: int, batch: int | None) -> str:
        n_ = self.customers
        c = f"(1 + (n * 48271) % {n_})"
        at = self._order_time(None if batch is None else first, batch)
        cents = "(1500 + (n * 7717) % 30000)"
        return f"""
select
    case when n % 4999 = 0 then null else 'O' || cast(n as varchar) end as order_id,
    case when n % 31 = 0 then null
         when n % 211 = 5 then 'C' || cast({n_} + 1 + n % 1000 as varchar)
         when {c} % 7 = 0 then ' C' || cast({c} as varchar) || ' '
         else 'C' || cast({c} as varchar) end as customer_id,
    case when n % 31 = 0 then upper({_email(c)})
         when n % 3 = 0 then {_email(c)} end as email,
    case when n % 20011 = 0 then {_ts('2099-01-01 00:00:00')} else {at} end as ordered_at,
    case when n % 1999 = 0 then 'abc'
         when n % 3 = 0 then ' ' || {_money(cents, dialect)} || ' '
         else {_money(cents, dialect)} end as order_total,
    case n % 40 when 0 then 'cancelled' when 1 then 'CANCELED ' when 2 then 'voided' when 3 then 'Refunded'
         else 'paid' end as status,
    case when n % 10 = 0 then 'SAVE10' when n % 17 = 0 then '' end as discount_code,
    case when n % 4 = 0 then 'usd ' else 'USD' end as currency,
    n % 3001 = 0 as is_test,
    {at} + interval '5 minute' as loaded_at
from {_series(first, last)}
cross join (values (1), (2), (3)) as copies(k)
where k = 1 or (k = 2 and n % 97 = 0) or n % 389 = 0"""

    def _lines(self, dialect: str, first: int, last: int, batch: int | None, late: str | None = None) -> str:
        """Lines of orders first..last; with `late` (a loaded_at), a third line of every 97th
        order, arriving after its order."""
        sku = "(1 + (n * 31 + line * 17) % 397)"
        qty = "(1 + (n + line) % 3)"
        cents = f"({qty} * (500 + ({sku} * 37) % 9500))"
        at = self._order_time(None if batch is None else first, batch)
        categories = ("skincare", "supplements", "coffee", "tea", "haircare", 'skin "care" \\ serums', "pet food",
                      "vitamins")
        category = "case " + f"{sku} % 8" + "".join(
            f" when {i} then '{name}'" for i, name in enumerate(categories)) + " end"
        return f"""
select
    'O' || cast(n as varchar) as order_id,
    case when n % 7001 = 0 and line = 1 then null else 'SKU-' || lpad(cast({sku} as varchar), 4, '0') end as sku,
    case when n % 3001 = 0 then 'two'
         when n % 5 = 0 then ' ' || cast({qty} as varchar) || ' '
         else cast({qty} as varchar) end as quantity,
    cast({_money(cents, dialect)} as numeric(18, 2)) as line_total,
    {category} as product_category,
    case when {sku} % 4 = 0 then 30 when {sku} % 4 = 1 then 60 end as replenishment_days,
    {late or (at + " + interval '5 minute'")} as loaded_at
from {_series(first, last)}
cross join (values ({3 if late else 1}), ({3 if late else 2})) as lines(line)
cross join (values (1), (2)) as copies(k)
where {"n % 97 = 3 and line = 3 and k = 1" if late else "line <= 1 + n % 2 and (k = 1 or n % 101 = 0)"}"""

    def _checkouts(self, dialect: str, first: int, last: int, batch: int | None) -> str:
        n_ = self.customers
        c = f"(1 + (n * 69621) % {n_})"
        if batch is None:
            step = max(1, HISTORY_SECONDS // self.checkouts)
            local = f"{_ts(HISTORY_START)} + (n * {step} + (n * 6007) % {step}) * interval '1 second'"
        else:
            ms = max(1, RECENT_MS // (MAX_STEPS * batch))
            local = f"{_ts(RECENT_START)} + ((n - {self.checkouts}) * {ms}) * interval '1 millisecond'"
        aware = f"cast(cast({local} as varchar) || '+00' as timestamptz)"
        cents = "(800 + (n * 4111) % 40000)"
        return f"""
select
    case when n % 9973 = 0 then null else 'K' || cast(n as varchar) end as checkout_id,
    case when n % 4 = 0 then null else 'C' || cast({c} as varchar) end as customer_id,
    {_email(c)} as email,
    case when n % 30011 = 0 then cast('2099-01-01 00:00:00+00' as timestamptz) else {aware} end as started_at,
    case when n % 2999 = 0 then 'n/a' else {_money(cents, dialect)} end as cart_value,
    'https://shop.example/cart/' || cast(n as varchar) as checkout_url,
    cast(1 + n % 5 as integer) as item_count,
    case n % 10 when 0 then 'no' when 1 then null else 'yes' end as in_stock,
    n % 5003 = 0 as is_test,
    {local} + interval '1 minute' as loaded_at
from {_series(first, last)}"""

    def _subscriptions(self, dialect: str, change_row: int | None = None, loaded: str | None = None) -> str:
        """Three status rows per subscription; with `change_row` (4, 5, ...), one more row for
        every 50th subscription, changed at `loaded`."""
        n_, s_ = self.customers, self.subscriptions
        step = max(1, (2 * 365 * 86400) // s_)
        at = f"{_ts('2024-01-01 00:00:00')} + (n * {step} + change * 2592000) * interval '1 second'"
        if loaded is not None:
            at = loaded
        return f"""
select
    cast(n as integer) as subscription_id,
    case when n % 97 = 0 then 'C' || cast({n_} + 5000 + n as varchar)
         else 'C' || cast(1 + (n * 7727) % {n_} as varchar) end as customer_id,
    case
        when change = 1 then 'active'
        when change = 2 then case n % 3 when 0 then 'paused' when 1 then 'Cancelled ' else 'active' end
        when change = 3 then case n % 3 when 0 then 'active' when 1 then 'canceled' else 'PAUSED' end
        else case n % 3 when 0 then 'cancelled' when 1 then 'active' else 'paused' end
    end as status,
    {at} as updated_at,
    case n % 3 when 0 then 'monthly' when 1 then 'quarterly' else 'yearly' end as plan,
    case when n % 4 = 0 then null else {at} + interval '30 days' end as next_charge_at,
    {at} as loaded_at
from {_series(1, s_)}
cross join (values {"(" + str(change_row) + ")" if change_row else "(1), (2), (3)"}) as changes(change)
{"where n % 50 = " + str(change_row % 50) if change_row else ""}"""

    def _devices(self, dialect: str, first: int, last: int, loaded: str | None = None) -> str:
        """Push tokens: 0.7 a customer, some of unknown customers, some of an unsupported
        platform ('web'), platforms in mixed case, a few never used."""
        n_ = self.customers
        step = max(1, (2 * 365 * 86400) // self.devices)
        used = f"{_ts('2024-06-01 00:00:00')} + (n * {step}) * interval '1 second'" if loaded is None else loaded
        return f"""
select
    'tok-' || cast(n as varchar) as token,
    case when n % 211 = 0 then 'C' || cast({n_} + 7000 + n as varchar)
         else 'C' || cast(1 + (n * 7919) % {n_} as varchar) end as customer_id,
    case when n % 97 = 0 then 'web' when n % 3 = 0 then 'Android' else 'ios' end as platform,
    case when n % 13 = 0 then null else {used} end as last_used_at,
    cast(null as timestamp) as deleted_at,
    {used} as loaded_at
from {_series(first, last)}"""

    def _refunds(self, dialect: str, first: int = 1, last: int | None = None, loaded: str | None = None) -> str:
        step = max(1, HISTORY_SECONDS // self.orders)
        order = "(n * 50 - 7)"
        at = f"{_ts(HISTORY_START)} + ({order} * {step} + ({order} * 7907) % {step} + 259200) * interval '1 second'"
        if loaded is not None:  # refunds of recent orders, issued when loaded
            at = loaded
        return f"""
select
    case when n % 3331 = 0 then null else 'R' || cast(n as varchar) end as refund_id,
    case when n % 101 = 0 then 'O9' || cast(n as varchar) || '999' else 'O' || cast({order} as varchar) end
        as order_id,
    cast({at} as varchar) as refunded_at,
    case when n % 997 = 0 then 'twelve' else {_money('(500 + (n * 3571) % 9000)', dialect)} end as amount,
    case n % 4 when 0 then 'damaged' when 1 then 'changed mind' when 2 then 'late "delivery"' end as reason,
    {at} as loaded_at
from {_series(first, last or self.refunds)}"""
