{{ config(
    enabled=cio_sync.input_enabled('checkouts'),
    materialized='table',
    contract={'enforced': true},
    tags=['cio'],
    meta={'cio': cio_sync.event_meta('cart_abandoned', ['checkouts', 'orders'])},
) }}
{#- A checkout becomes cart_abandoned once its window (var cio_cart_abandon_minutes) has fully
    elapsed, when the cart is worth more than var cio_cart_min_value, is in stock (when known),
    the person is not suppressed, and that person has placed no order at or after the checkout
    started (an order 10 minutes later suppresses it). The event time is started_at + window,
    never the build time. Rebuilt in full each run so a late order still suppresses. -#}
{%- set window = var('cio_cart_abandon_minutes', 60) -%}

with checkouts as (
    select * from {{ ref('int_cio__checkouts') }}
    where _cio_reason is null
),

purchases as (
    select person_id, ordered_at
    from {{ ref('int_cio__orders') }}
    where _cio_reason is null
),

abandoned as (
    select checkouts.*
    from checkouts
    left join purchases
        on purchases.person_id = checkouts.person_id
        and purchases.ordered_at >= checkouts.started_at
    where purchases.person_id is null
        and {{ dbt.dateadd('minute', window, 'checkouts.started_at') }} <= {{ cio_sync.utc_now() }}
        and checkouts.cart_value > {{ var('cio_cart_min_value', 0) }}
        and coalesce(checkouts.in_stock, true)
        and not checkouts.do_not_message
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
