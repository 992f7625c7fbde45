{{ config(
    materialized='incremental',
    unique_key='order_id',
    incremental_strategy='delete+insert',
    pre_hook="{{ cio_sync.stage_key_set('orders', cio_sync.orders_to_resolve()) }}",
    indexes=cio_sync.staged_at_index(),
    dist='person_id',
    sort='_cio_staged_at',
) }}
{#- Every staged order with a key, resolved to a person, with what its valid lines add up to
    (items, item_count, top_category: order_line_summaries). counts_as_purchase is false for
    statuses in var cio_excluded_order_statuses (cancelled and voided orders count toward
    nothing). One table of order facts, so that no mart joins orders to lines again.
    Incrementally: orders staged since the last build or with a line staged since, and orders
    a changed customer may resolve differently. -#}
{%- set excluded = var('cio_excluded_order_statuses', ['cancelled', 'canceled', 'voided']) -%}
{%- set with_lines = cio_sync.input_enabled('order_lines') -%}

with orders as (
    select * from {{ ref('stg_cio__orders') }}
    where order_id is not null
    {%- if cio_sync.is_incremental_run() %}
        and order_id in ({{ cio_sync.key_set('orders', cio_sync.orders_to_resolve()) }})
    {%- endif %}
),

{{ cio_sync.person_lookups('orders') }},

resolved as (
    {{ cio_sync.resolve_person('orders', [
        'order_id', 'ordered_at', 'order_total', 'status', 'discount_code', 'currency',
    ]) }}
)
{%- if with_lines %},

line_summaries as (
    {{ cio_sync.order_line_summaries(
        'order_id in (' ~ cio_sync.key_set('orders', cio_sync.orders_to_resolve()) ~ ')'
        if cio_sync.is_incremental_run() else none) }}
)
{%- endif %}


select
    resolved.*,
    {%- if excluded | length > 0 %}
    coalesce(
        resolved.status not in ({% for s in excluded %}'{{ s | lower }}'{{ ', ' if not loop.last }}{% endfor %}),
        true
    ) as counts_as_purchase,
    {%- else %}
    true as counts_as_purchase,
    {%- endif %}
    {%- if with_lines %}
    coalesce(line_summaries.items, '[]') as items,
    coalesce(line_summaries.item_count, 0) as item_count,
    line_summaries.top_category,
    {%- else %}
    cast(null as {{ cio_sync.type_string() }}) as items,
    cast(null as {{ dbt.type_int() }}) as item_count,
    cast(null as {{ cio_sync.type_string() }}) as top_category,
    {%- endif %}
    {{ cio_sync.held_value('person_id') }} as _cio_previous_person_id,
    {{ cio_sync.staged_at() }} as _cio_staged_at
from resolved
{% if with_lines -%}
left join line_summaries
    on resolved.order_id = line_summaries.order_id
{% endif -%}
{%- if cio_sync.is_incremental_run() %}
left join {{ cio_sync.held_rows('order_id', cio_sync.key_set('orders', cio_sync.orders_to_resolve())) }} as held
    on held.order_id = resolved.order_id
{%- endif %}
-- depends_on: {{ ref('stg_cio__customers') }}{{ (', ' ~ ref('stg_cio__order_lines')) if with_lines }}
