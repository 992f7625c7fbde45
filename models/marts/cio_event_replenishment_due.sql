{{ config(
    enabled=cio_sync.input_enabled('order_lines'),
    materialized='table',
    contract={'enforced': true},
    tags=['cio'],
    meta={'cio': cio_sync.event_meta('replenishment_due', ['order_lines', 'orders'])},
) }}
{#- The latest purchase of each replenishable SKU per person, once its units have run out
    (replenishment_due_at <= now). Buying the SKU again replaces the due date. The event time
    is the run-out date, so a daily build still triggers "within the past day" journeys. -#}

with latest as (
    select *
    from (
        select
            order_items.*,
            row_number() over (partition by person_id, sku order by ordered_at desc, order_id desc) as purchase_rank
        from {{ ref('int_cio__order_items') }} as order_items
        where replenishment_due_at is not null
    ) as ranked
    where purchase_rank = 1
)

select
    cast({{ cio_sync.event_key('replenishment_due', ['order_id', 'sku']) }} as {{ cio_sync.type_string(32) }}) as event_id,
    cast('replenishment_due' as {{ cio_sync.type_string(100) }}) as event_name,
    cast(customer_id as {{ cio_sync.type_string() }}) as customer_id,
    cast(email as {{ cio_sync.type_string() }}) as email,
    cast(replenishment_due_at as {{ dbt.type_timestamp() }}) as event_at,
    cast(order_id as {{ cio_sync.type_string() }}) as order_id,
    cast(sku as {{ cio_sync.type_string() }}) as sku,
    cast(product_category as {{ cio_sync.type_string() }}) as product_category,
    cast(quantity as {{ dbt.type_int() }}) as quantity,
    cast(ordered_at as {{ dbt.type_timestamp() }}) as ordered_at
from latest
where replenishment_due_at <= {{ cio_sync.utc_now() }}
