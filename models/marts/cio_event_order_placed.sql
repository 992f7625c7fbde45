{{ config(
    materialized='incremental',
    unique_key='event_id',
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    contract={'enforced': true},
    tags=['cio'],
    meta={'cio': cio_sync.event_meta('order_placed', ['orders', 'order_lines'],
        extra_exclude=[] if cio_sync.input_enabled('order_lines') else ['items', 'item_count'],
        overrides={'json_columns': ['items']} if cio_sync.input_enabled('order_lines') else {})},
) }}
{%- set with_items = cio_sync.input_enabled('order_lines') -%}

with orders as (
    select * from {{ ref('int_cio__orders') }}
    where _cio_reason is null
        and counts_as_purchase
    {%- if cio_sync.is_incremental_run() %}
        and ordered_at >= {{ cio_sync.incremental_lower_bound() }}
    {%- endif %}
)

{%- if with_items %},

items as (
    select
        order_id,
        {{ cio_sync.json_array_agg(cio_sync.json_object([
            ('sku', 'sku', 'string'),
            ('quantity', 'quantity', 'number'),
            ('line_total', 'line_total', 'number'),
            ('product_category', 'product_category', 'string'),
        ]), 'line_rank') }} as items
    from {{ ref('int_cio__order_items') }}
    where line_rank <= {{ var('cio_items_max', 20) }}
    group by order_id
),

item_counts as (
    select order_id, sum(quantity) as item_count
    from {{ ref('int_cio__order_items') }}
    group by order_id
)
{%- endif %}

select
    cast({{ cio_sync.event_key('order_placed', ['orders.order_id']) }} as {{ cio_sync.type_string(32) }}) as event_id,
    cast('order_placed' as {{ cio_sync.type_string(100) }}) as event_name,
    cast(orders.customer_id as {{ cio_sync.type_string() }}) as customer_id,
    cast(orders.email as {{ cio_sync.type_string() }}) as email,
    cast(orders.ordered_at as {{ dbt.type_timestamp() }}) as event_at,
    cast(orders.order_id as {{ cio_sync.type_string() }}) as order_id,
    cast(orders.order_total as {{ cio_sync.type_money() }}) as total,
    cast(orders.discount_code as {{ cio_sync.type_string() }}) as discount_code,
    cast(orders.currency as {{ cio_sync.type_string(3) }}) as currency,
    {%- if with_items %}
    cast(coalesce(items.items, '[]') as {{ cio_sync.type_string(65535) }}) as items,
    cast(coalesce(item_counts.item_count, 0) as {{ dbt.type_int() }}) as item_count
    {%- else %}
    cast(null as {{ cio_sync.type_string(65535) }}) as items,
    cast(null as {{ dbt.type_int() }}) as item_count
    {%- endif %}
from orders
{%- if with_items %}
left join items on items.order_id = orders.order_id
left join item_counts on item_counts.order_id = orders.order_id
{%- endif %}
