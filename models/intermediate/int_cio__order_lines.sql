{{ config(
    enabled=cio_sync.input_enabled('order_lines'),
    materialized='incremental',
    unique_key='order_id',
    incremental_strategy='delete+insert',
    indexes=cio_sync.staged_at_index(),
    dist='order_id',
    sort='_cio_staged_at',
) }}
{#- What the valid lines of each order add up to (one row per order with a valid line): items
    (JSON text, the var cio_items_max most valuable lines, highest value first), item_count
    (units) and top_category (category of the most valuable line that has one). Kept apart from
    int_cio__orders so that the models that only need orders do not read the JSON.
    Incrementally: orders with a line staged since the last build. -#}

with ranked as (
    select
        order_id,
        sku,
        quantity,
        line_total,
        product_category,
        row_number() over (
            partition by {{ cio_sync.sort_key('order_id') }}
            order by line_total desc, {{ cio_sync.sort_key('sku') }}
        ) as line_rank
    from {{ ref('stg_cio__order_lines') }}
    where _cio_reason is null
    {%- if cio_sync.is_incremental_run() %}
        and order_id in (
            select order_id from {{ ref('stg_cio__order_lines') }} where {{ cio_sync.changed_since_last_build() }}
        )
    {%- endif %}
),

lines as (
    select
        ranked.*,
        min(case when product_category is not null then line_rank end) over (
            partition by {{ cio_sync.sort_key('order_id') }}
        ) as top_category_rank
    from ranked
)

select
    order_id,
    {{ cio_sync.json_array_agg('case when line_rank <= ' ~ var('cio_items_max', 20) ~ ' then ' ~ cio_sync.json_object([
        ('sku', 'sku', 'string'),
        ('quantity', 'quantity', 'number'),
        ('line_total', 'line_total', 'number'),
        ('product_category', 'product_category', 'string'),
    ]) ~ ' end', 'line_rank') }} as items,
    sum(quantity) as item_count,
    max(case when line_rank = top_category_rank then product_category end) as top_category,
    {{ cio_sync.staged_at() }} as _cio_staged_at
from lines
group by order_id
