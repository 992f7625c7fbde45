{{ config(
    enabled=cio_sync.input_enabled('checkouts'),
    materialized='incremental',
    incremental_strategy='cio_sync_recompute',
    on_schema_change='fail',
    pre_hook="{{ cio_sync.hold_abandoned_carts_to_recompute() }}",
    contract={'enforced': true},
    tags=['cio'],
    dist=cio_sync.identifier(),
    sort='event_at',
    meta={'cio': cio_sync.event_meta('cart_abandoned', ['checkouts', 'orders'], cadence='cart')},
) }}
{#- A checkout becomes cart_abandoned once its window (var cio_cart_abandon_minutes) has fully
    elapsed, when the cart is worth more than var cio_cart_min_value, is in stock (when known),
    the person is not suppressed, and that person has placed no order at or after the checkout
    started (an order 10 minutes later suppresses it): the person's latest purchase is before
    the checkout. The event time is started_at + window, never the build time.
    Incrementally (cart_persons_to_recompute): the checkouts written since the last build, every
    checkout of the persons whose purchases may have gone down, and the checkouts whose window
    elapsed since then; a person's first-time order deletes their carts started before it. -#}
{%- set window = var('cio_cart_abandon_minutes', 60) -%}

with candidates as {{ cio_sync.inline_cte() }} (
    {#- Incrementally the checkouts recomputed, looked up by key (rows_with_keys): a few hundred
        of millions, read twice below. #}
    select checkouts.* from {{ cio_sync.rows_with_keys(ref('int_cio__checkouts'), 'checkout_id',
        cio_sync.key_set('carts', cio_sync.carts_to_recompute)) if cio_sync.is_incremental_run()
        else ref('int_cio__checkouts') }} as checkouts
    where checkouts._cio_reason is null
        and {{ dbt.dateadd('minute', window, 'checkouts.started_at') }} <= {{ cio_sync.utc_now() }}
        and checkouts.cart_value > {{ var('cio_cart_min_value', 0) }}
        and coalesce(checkouts.in_stock, true)
        and not checkouts.do_not_message
),

last_purchase as (
    select
        purchases.person_id,
        purchases.last_order_at as last_ordered_at
    from {{ cio_sync.rows_with_keys(ref('int_cio__person_orders'), 'person_id', 'select person_id from candidates')
        if cio_sync.is_incremental_run() else ref('int_cio__person_orders') }} as purchases
),

abandoned as (
    select candidates.*
    from candidates
    left join last_purchase
        on candidates.person_id = last_purchase.person_id
    where last_purchase.last_ordered_at is null
        or last_purchase.last_ordered_at < candidates.started_at
)

select
    cast({{ cio_sync.event_key('cart_abandoned', ['checkout_id']) }} as {{ cio_sync.type_string(32) }}) as event_id,
    cast('cart_abandoned' as {{ cio_sync.type_string(100) }}) as event_name,
    cast(customer_id as {{ cio_sync.type_string() }}) as customer_id,
    cast(email as {{ cio_sync.type_string() }}) as email,
    cast({{ dbt.dateadd('minute', window, 'started_at') }} as {{ dbt.type_timestamp() }}) as event_at,
    cast(checkout_id as {{ cio_sync.type_string() }}) as checkout_id,
    cast(cart_value as {{ cio_sync.type_money() }}) as cart_value,
    cast(item_count as {{ dbt.type_int() }}) as item_count,
    cast(checkout_url as {{ cio_sync.type_string(2048) }}) as checkout_url
from abandoned
-- depends_on: {{ ref('int_cio__orders') }}{{ (', ' ~ ref('int_cio__order_summaries')) if cio_sync.input_enabled('order_lines') }}
