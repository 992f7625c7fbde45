{{ config(
    materialized='incremental',
    unique_key='order_id',
    incremental_strategy='delete+insert',
    indexes=cio_sync.staged_at_index(),
    dist='person_id',
    sort='_cio_staged_at',
) }}
{#- Every staged order with a key, resolved to a person, with what its valid lines add up to:
    items (JSON text, the var cio_items_max most valuable lines), item_count (units) and
    top_category (category of the most valuable line that has one). counts_as_purchase is false
    for statuses in var cio_excluded_order_statuses (cancelled and voided orders count toward
    nothing). Incrementally: orders staged since the last build, orders whose lines were, and
    orders a changed customer may resolve differently. -#}
{%- set excluded = var('cio_excluded_order_statuses', ['cancelled', 'canceled', 'voided']) -%}
{%- set with_lines = cio_sync.input_enabled('order_lines') -%}

with
{%- if cio_sync.is_incremental_run() %}
changed_customers as (
    {{ cio_sync.changed_customers() }}
),
{%- endif %}

orders as (
    select * from {{ ref('stg_cio__orders') }}
    where order_id is not null
    {%- if cio_sync.is_incremental_run() %}
        and (
            {{ cio_sync.changed_since_last_build() }}
            or {{ cio_sync.matches_changed_customer() }}
            {%- if with_lines %}
            or order_id in (select order_id from {{ ref('stg_cio__order_lines') }} where {{ cio_sync.changed_since_last_build() }})
            {%- endif %}
        )
    {%- endif %}
),

{{ cio_sync.person_lookups('orders') }},

resolved as (
    {{ cio_sync.resolve_person('orders', ['order_id', 'ordered_at', 'order_total', 'status', 'discount_code', 'currency']) }}
)

{%- if with_lines %},

ranked_lines as (
    select
        order_id,
        sku,
        quantity,
        line_total,
        product_category,
        row_number() over (partition by order_id order by line_total desc, sku) as line_rank
    from {{ ref('stg_cio__order_lines') }}
    where _cio_reason is null
    {%- if cio_sync.is_incremental_run() %}
        and order_id in (select order_id from orders)
    {%- endif %}
),

lines as (
    select
        ranked_lines.*,
        min(case when product_category is not null then line_rank end) over (partition by order_id) as top_category_rank
    from ranked_lines
),

line_summary as (
    select
        order_id,
        {{ cio_sync.json_array_agg('case when line_rank <= ' ~ var('cio_items_max', 20) ~ ' then ' ~ cio_sync.json_object([
            ('sku', 'sku', 'string'),
            ('quantity', 'quantity', 'number'),
            ('line_total', 'line_total', 'number'),
            ('product_category', 'product_category', 'string'),
        ]) ~ ' end', 'line_rank') }} as items,
        sum(quantity) as item_count,
        max(case when line_rank = top_category_rank then product_category end) as top_category
    from lines
    group by order_id
)
{%- endif %}

select
    resolved.*,
    {%- if excluded | length > 0 %}
    coalesce(resolved.status not in ({% for s in excluded %}'{{ s | lower }}'{{ ', ' if not loop.last }}{% endfor %}), true) as counts_as_purchase,
    {%- else %}
    true as counts_as_purchase,
    {%- endif %}
    {%- if with_lines %}
    coalesce(line_summary.items, '[]') as items,
    coalesce(line_summary.item_count, 0) as item_count,
    line_summary.top_category,
    {%- else %}
    cast(null as {{ cio_sync.type_string() }}) as items,
    cast(null as {{ dbt.type_int() }}) as item_count,
    cast(null as {{ cio_sync.type_string() }}) as top_category,
    {%- endif %}
    {{ 'held.person_id' if cio_sync.is_incremental_run() else 'cast(null as ' ~ cio_sync.type_string() ~ ')' }} as _cio_previous_person_id,
    {{ cio_sync.staged_at() }} as _cio_staged_at
from resolved
{%- if with_lines %}
left join line_summary
    on line_summary.order_id = resolved.order_id
{%- endif %}
{%- if cio_sync.is_incremental_run() %}
left join {{ this }} as held
    on held.order_id = resolved.order_id
{%- endif %}
-- depends_on: {{ ref('stg_cio__customers') }}
