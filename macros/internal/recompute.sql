{#- What an incremental build of a time-dependent mart recomputes: rows that depend on the rows
    that changed upstream since its last build, and rows that the passing of time may have
    changed since then (a window that elapsed, units that ran out): from var
    cio_event_lookback_hours before the "now" of the last build (time_recompute_bounds). -#}

{#- int_cio__orders: orders staged since its last build, orders a changed customer may
    resolve differently, and orders with a line staged since. -#}
{% macro orders_to_resolve() -%}
    {{ cio_sync.keys_to_resolve(ref('stg_cio__orders'), 'order_id') }}
    {%- if cio_sync.input_enabled('order_lines') %}
    union
    {{ cio_sync.orders_with_lines_changed() }}
    {%- endif %}
{%- endmacro %}

{#- A mart that reads int_cio__order_summaries beside int_cio__orders (order_placed, cio_people)
    recomputes the orders int_cio__orders restamped since its last build; in a build of the
    whole package that includes every order whose summary changed (int_cio__orders re-resolves
    the orders with a line staged since). A build that selected int_cio__order_summaries
    without int_cio__orders leaves orders whose summary changed alone: their keys, asked when
    the mart compiles, or none (the common case: nothing is added to its SQL). -#}
{% macro orders_with_only_summary_changed() -%}
    {%- if not (execute and flags.INTROSPECT and cio_sync.is_incremental_run() and cio_sync.input_enabled('order_lines')) -%}
        {{ return(none) }}
    {%- endif -%}
    {#- Orders of lines that have no staged order (late lines) are left out: no event or person
        depends on them. stg_cio__orders (upstream of int_cio__orders, so built) is found in the
        graph: a ref here would be a mart's edge to a staging model. -#}
    {%- set changed = 'select order_id from ' ~ ref('int_cio__order_summaries') ~ ' where '
        ~ cio_sync.changed_since_last_build() ~ ' except select order_id from ' ~ ref('int_cio__orders')
        ~ ' where ' ~ cio_sync.changed_since_last_build() -%}
    {%- set staged_orders = cio_sync.package_model('stg_cio__orders') -%}
    {%- set sql = 'select order_id from ' ~ cio_sync.rows_with_keys(staged_orders, 'order_id', changed)
        ~ ' as staged' if staged_orders is not none else changed -%}
    {%- set found = run_query('select count(*) from (' ~ sql ~ ') as k').columns[0].values()[0] -%}
    {#- An except: read it as a subquery, never after a union (same precedence, left to right). -#}
    {{ return(sql if found > 0 else none) }}
{%- endmacro %}

{#- int_cio__order_summaries: orders with a line staged since its last build. -#}
{% macro orders_with_lines_changed() -%}
    select order_id from {{ ref('stg_cio__order_lines') }} where {{ cio_sync.changed_since_last_build() }}
{%- endmacro %}

{#- int_cio__refunds: refunds staged since its last build and refunds of orders that changed. -#}
{% macro refunds_to_resolve() -%}
    select refund_id from {{ ref('stg_cio__refunds') }} where {{ cio_sync.changed_since_last_build() }}
    union
    select refund_id from {{ ref('stg_cio__refunds') }} where order_id in (
        select order_id from {{ ref('int_cio__orders') }} where {{ cio_sync.changed_since_last_build() }}
    )
{%- endmacro %}

{#- Where the passing of time matters to an incremental build of a time-dependent mart: from
    var cio_event_lookback_hours before the "now" of its last build (last_clock_at) or this
    build's, whichever is earlier, to the later of the two (a clock set back: the rows between
    the two are recomputed, so taken out). The last build counted every window that had
    elapsed by its own "now" among the rows it could see; the lookback also covers a row an
    overlapping build committed after this mart read its upstream (its stamp then predates the
    mart's last build, so only its time brings it back). A build whose "now" was not logged (by
    an older version of the package, or compiling offline) counts from its last build instead.
    Returns [start, end], SQL of constant timestamps. -#}
{% macro time_recompute_bounds() -%}
    {%- set clock = cio_sync.last_clock_at() -%}
    {%- set now = cio_sync.utc_now() -%}
    {%- set last = clock if clock is not none else cio_sync.last_built_at() -%}
    {{ return([dbt.dateadd('hour', -1 * var('cio_event_lookback_hours', 72), 'least(' ~ last ~ ', ' ~ now ~ ')'),
               'greatest(' ~ last ~ ', ' ~ now ~ ')']) }}
{%- endmacro %}

{#- Predicate: `column` + `minutes` crossed between the bounds above (a window that elapsed,
    units that ran out), written on the column itself so that the planner estimates it from the
    column's statistics (an expression over it it estimates at a third of the table). -#}
{% macro time_crossed(column, minutes=0) -%}
    {%- set bounds = cio_sync.time_recompute_bounds() -%}
    {%- set since, until = (bounds[0], bounds[1]) if not minutes
        else (dbt.dateadd('minute', -1 * minutes, bounds[0]), dbt.dateadd('minute', -1 * minutes, bounds[1])) -%}
    ({{ column }} > {{ since }} and {{ column }} <= {{ until }})
{%- endmacro %}

{#- cio_event_cart_abandoned: a cart is abandoned when its person has no purchase at or after
    it started, so it depends on its checkout and on its person's latest purchase alone. What
    changed since the last build: checkouts written by int_cio__checkouts; persons whose
    purchases may have gone down (recounted by int_cio__person_orders, or whose orders
    int_cio__orders restamped having held them, persons_to_recount), every checkout of whom is
    recomputed; persons whose purchases only went up (a first-time order), whose carts started
    at or before their latest purchase are no longer abandoned (deleted, nothing to add); and
    the checkouts whose window elapsed since the last build. -#}
{% macro cart_persons_to_recompute() -%}
    {{ cio_sync.persons_to_recount() }}
    union
    select person_id from {{ ref('int_cio__person_orders') }}
    where {{ cio_sync.changed_since_last_build() }} and _cio_recounted
{%- endmacro %}

{% macro cart_window_elapsed_since_last_build() -%}
    {{ cio_sync.time_crossed('started_at', var('cio_cart_abandon_minutes', 60)) }}
{%- endmacro %}

{#- The checkouts it recomputes: those written since, every checkout of those persons (the key
    set 'cart_persons'), and those whose window elapsed. -#}
{% macro carts_to_recompute() -%}
    select checkout_id from {{ ref('int_cio__checkouts') }}
    where {{ cio_sync.changed_since_last_build() }}
    union
    select checkout_id from {{ ref('int_cio__checkouts') }}
    where person_id in ({{ cio_sync.key_set('cart_persons', cio_sync.cart_persons_to_recompute) }})
    union
    select checkout_id from {{ ref('int_cio__checkouts') }}
    where {{ cio_sync.cart_window_elapsed_since_last_build() }}
{%- endmacro %}

{#- Its pre-hook: the key sets, then the rows of those persons (whoever holds the checkout
    now), of those checkouts, and of carts a later purchase no longer leaves abandoned: held
    for its strategy to replace where they changed (hold_rows_to_recompute). -#}
{% macro hold_abandoned_carts_to_recompute() -%}
    {%- if execute and flags.INTROSPECT and cio_sync.is_incremental_run() -%}
        {%- set staged = [cio_sync.stage_key_set('cart_persons', cio_sync.cart_persons_to_recompute),
                          cio_sync.stage_key_set('carts', cio_sync.carts_to_recompute)] | select | list -%}
        {{ (staged | join(';\n')) ~ ';' if staged }}
        {%- set later_purchase -%}
            checkout_id in (
                select carts.checkout_id
                from {{ this }} as carts
                inner join {{ ref('int_cio__person_orders') }} as purchases
                    on purchases.person_id = carts.{{ cio_sync.identifier() }}
                where {{ cio_sync.changed_since_last_build('purchases') }}
                    and not purchases._cio_recounted
                    and carts.event_at <= {{ dbt.dateadd('minute', var('cio_cart_abandon_minutes', 60), 'purchases.last_order_at') }}
            )
        {%- endset %}
        {{ cio_sync.hold_rows_to_recompute([
            cio_sync.identifier() ~ ' in (' ~ cio_sync.key_set('cart_persons', cio_sync.cart_persons_to_recompute) ~ ')',
            'checkout_id in (' ~ cio_sync.key_set('carts', cio_sync.carts_to_recompute) ~ ')',
            later_purchase,
        ]) }}
    {%- endif -%}
{%- endmacro %}

{#- cio_event_replenishment_due: one row per (person, SKU) of int_cio__replenishments whose
    units ran out, so it recomputes per (person, SKU): the rows written since its last build,
    those whose units ran out since then, and every row of the persons recounted (deleted and
    written again upstream, persons_to_recount). A person's other SKUs are left as they are: a
    new order rewrites the rows of the SKUs it holds, where recomputing each person whole
    rewrote about ten times as many rows. -#}
{% macro replenishments_to_recompute() -%}
    select person_id, sku from {{ ref('int_cio__replenishments') }}
    where {{ cio_sync.changed_since_last_build() }}
    union
    select person_id, sku from {{ ref('int_cio__replenishments') }}
    where {{ cio_sync.time_crossed('replenishment_due_at') }}
    union
    select recounted.person_id, recounted.sku
    from {{ cio_sync.rows_with_keys(ref('int_cio__replenishments'), 'person_id',
        cio_sync.key_set('recount', cio_sync.persons_to_recount)) }} as recounted
{%- endmacro %}

{#- Its pre-hook: the key sets, then the rows of the recounted persons (an order moved to
    another person leaves none of its SKUs behind) and of the (person, SKU) pairs recomputed:
    held for its strategy to replace where they changed (hold_rows_to_recompute). -#}
{% macro hold_replenishments_to_recompute() -%}
    {%- if execute and flags.INTROSPECT and cio_sync.is_incremental_run() -%}
        {%- set staged = [cio_sync.stage_key_set('recount', cio_sync.persons_to_recount),
                          cio_sync.stage_key_set('replenishments', cio_sync.replenishments_to_recompute)] | select | list -%}
        {{ (staged | join(';\n')) ~ ';' if staged }}
        {{ cio_sync.hold_rows_to_recompute([
            cio_sync.rows_of(cio_sync.identifier(), cio_sync.key_set('recount', cio_sync.persons_to_recount)),
            cio_sync.pairs_of(cio_sync.identifier(), 'sku', cio_sync.key_set('replenishments', cio_sync.replenishments_to_recompute)),
        ]) }}
    {%- endif -%}
{%- endmacro %}

{#- The condition on the model's rows that selects those whose (`first`, `second`) is one of the
    pairs `pairs_sql` selects (columns person_id, sku). -#}
{% macro pairs_of(first, second, pairs_sql) -%}
    {{ return(adapter.dispatch('pairs_of', 'cio_sync')(first, second, pairs_sql)) }}
{%- endmacro %}

{#- The pairs' columns renamed, so that the model's columns are named alone. PostgreSQL
    estimates this semi-join as if person and SKU were independent: every row of the persons
    in the pairs (1.4M at 1M customers, where 16,000 are deleted). No plan above it depends on
    that figure, and the forms it estimates better are slower: an inner join (estimate within
    4x) hashes the whole table instead of the pairs. -#}
{% macro default__pairs_of(first, second, pairs_sql) -%}
    exists (
        select 1
        from (
            select person_id as recomputed_person_id, sku as recomputed_sku
            from ({{ pairs_sql }}) as pairs
        ) as recomputed
        where recomputed.recomputed_person_id = {{ first }}
            and recomputed.recomputed_sku = {{ second }}
    )
{%- endmacro %}

{#- With a B-tree index on the first column (lookup_index), the rows of the pairs' persons are
    found through it and those of the pairs named by their row ids, as the cio_sync_replace
    strategy does: the semi-join above read the whole table (6.6 million rows of
    cio_event_replenishment_due at 1,000,000 customers, 0.7-1.5 s, for 16,000 rows). -#}
{% macro postgres__pairs_of(first, second, pairs_sql) -%}
    {%- set lookup = cio_sync.lookup_column(this, first) -%}
    {%- if lookup is none -%}
        {{ return(cio_sync.default__pairs_of(first, second, pairs_sql)) }}
    {%- endif -%}
    ctid = any(array({{ cio_sync.postgres__keys_through_index(this, lookup, [first, second], pairs_sql, ['person_id', 'sku']) }}))
{%- endmacro %}

{#- cio_people: the persons with a row changed since the last build in any input, as they are
    now and as they were (a customer whose email changed, an order moved to another person). -#}
{% macro people_to_recompute() -%}
    {{ cio_sync.persons_changed_in(ref('int_cio__customers')) }}
    union
    {{ cio_sync.persons_changed_in(ref('int_cio__orders')) }}
    union
    select person_id from {{ ref('int_cio__person_orders') }} where {{ cio_sync.changed_since_last_build() }}
    {%- set summaries_only = cio_sync.orders_with_only_summary_changed() %}
    {%- if summaries_only %}
    union
    select person_id from {{ ref('int_cio__orders') }} where order_id in ({{ summaries_only }})
    {%- endif %}
    {%- for input_name, model in [('checkouts', 'int_cio__checkouts'), ('subscriptions', 'int_cio__subscriptions'),
                                  ('refunds', 'int_cio__refunds')] if cio_sync.input_enabled(input_name) %}
    union
    {{ cio_sync.persons_changed_in(ref(model)) }}
    {%- endfor %}
{%- endmacro %}

{#- Post-hook of cio_people: days_since_last_order follows the clock for people no input
    changed (once a day, every buyer). -#}
{% macro refresh_days_since_last_order() -%}
    {%- if execute and flags.INTROSPECT and cio_sync.is_incremental_run() -%}
        {%- set days = dbt.datediff('last_order_at', cio_sync.utc_now(), 'day') -%}
        update {{ this }} set days_since_last_order = {{ days }}
        where last_order_at is not null
            and (days_since_last_order is null or days_since_last_order <> {{ days }})
    {%- endif -%}
{%- endmacro %}

{#- cio_event_order_placed: the orders int_cio__orders restamped since its last build, and those
    whose summary alone changed (orders_with_only_summary_changed). -#}
{% macro placed_orders_to_recompute() -%}
    select order_id from {{ ref('int_cio__orders') }} where {{ cio_sync.changed_since_last_build() }}
    {%- set summaries_only = cio_sync.orders_with_only_summary_changed() %}
    {%- if summaries_only %}
    union
    select order_id from ({{ summaries_only }}) as summary_only
    {%- endif %}
{%- endmacro %}

{#- int_cio__person_orders and int_cio__replenishments: the persons recounted from all their
    orders, those of the orders int_cio__orders restamped since the model's last build that it
    held before with a person (as they are now and as they were), and of the orders whose
    summary alone changed. An order resolved for the first time (no person before) only adds
    to its person's row. For use in `in (...)` only: it may hold a null. -#}
{% macro persons_to_recount() -%}
    select person_id from {{ ref('int_cio__orders') }}
    where {{ cio_sync.changed_since_last_build() }} and _cio_previous_person_id is not null
    union
    select _cio_previous_person_id from {{ ref('int_cio__orders') }}
    where {{ cio_sync.changed_since_last_build() }}
    {%- set summaries_only = cio_sync.orders_with_only_summary_changed() %}
    {%- if summaries_only %}
    union
    select person_id from {{ ref('int_cio__orders') }} where order_id in ({{ summaries_only }})
    {%- endif %}
{%- endmacro %}

{#- The purchases (orders counted as one, not in quarantine) that int_cio__person_orders and
    int_cio__replenishments read: every one in a full build; incrementally, those of the
    persons recounted (the key set 'recount', staged by their pre-hook) and the orders resolved
    for the first time since the model's last build of everyone else. `_cio_recounted` says
    which: true for every purchase of a recounted person (and in a full build), false for a
    first-time order that only adds to its person's figures. -#}
{% macro purchases_to_count(columns) -%}
    {%- set recount = cio_sync.key_set('recount', cio_sync.persons_to_recount) -%}
    {%- if cio_sync.is_incremental_run() %}
    select {{ columns | join(', ') }}, true as _cio_recounted
    from {{ cio_sync.rows_with_keys(ref('int_cio__orders'), 'person_id', recount) }} as recounted
    where _cio_reason is null
        and counts_as_purchase
    union all
    {%- endif %}
    select {{ columns | join(', ') }}, {{ 'false' if cio_sync.is_incremental_run() else 'true' }} as _cio_recounted
    from {{ ref('int_cio__orders') }}
    where _cio_reason is null
        and counts_as_purchase
    {%- if cio_sync.is_incremental_run() %}
        and {{ cio_sync.changed_since_last_build() }}
        and _cio_previous_person_id is null
        and person_id not in (select person_id from ({{ recount }}) as r where person_id is not null)
    {%- endif %}
{%- endmacro %}
