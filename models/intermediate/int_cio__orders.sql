{{ config(
    materialized='incremental',
    unique_key='order_id',
    incremental_strategy='cio_sync_replace',
    on_schema_change='append_new_columns',
    pre_hook="{{ cio_sync.stage_rows_to_resolve('orders', ref('stg_cio__orders'), 'order_id', cio_sync.orders_to_resolve()) }}",
    indexes=cio_sync.staged_at_index() + cio_sync.lookup_index(['person_id']) + cio_sync.lookup_index(['order_id'], unique=true),
    dist='person_id',
    sort='_cio_staged_at',
) }}
{#- on_schema_change: a table built before int_cio__order_summaries existed has items,
    item_count and top_category; they are kept (nothing reads them, a full refresh drops them),
    so that an upgrade needs no full refresh. -#}
{#- Every staged order with a key, resolved to a person. counts_as_purchase is false for
    statuses in var cio_excluded_order_statuses (cancelled and voided orders count toward
    nothing). What its lines add up to is int_cio__order_summaries.
    Incrementally: orders staged since the last build or with a line staged since (so that the
    models after it see them as changed), and orders a changed customer may resolve
    differently. -#}
{%- set excluded = var('cio_excluded_order_statuses', ['cancelled', 'canceled', 'voided']) -%}
{%- set order_columns = ['order_id', 'ordered_at', 'order_total', 'status', 'discount_code', 'currency'] -%}
{%- set counts_as_purchase -%}
{%- if excluded | length > 0 -%}
coalesce(resolved.status not in ({% for s in excluded %}'{{ s | lower }}'{{ ', ' if not loop.last }}{% endfor %}), true)
{%- else -%}
true
{%- endif -%}
{%- endset %}

with orders as {{ cio_sync.inline_cte() if cio_sync.is_incremental_run() }} (
    {#- Incrementally the staged orders of the key set, through the key's index where there is
        one: a few hundred thousand of ten million (rows_to_resolve). #}
    select staged.* from {{ cio_sync.rows_to_resolve('orders', ref('stg_cio__orders'), 'order_id', cio_sync.orders_to_resolve()) }} as staged
    where staged.order_id is not null
),

{{ cio_sync.person_lookups('orders') }},

resolved as (
    {{ cio_sync.resolve_person('orders', order_columns) }}
),

counted as (
    select
        resolved.*,
        {{ counts_as_purchase }} as counts_as_purchase
    from resolved
)

select
    counted.*,
    {{ cio_sync.held_value('person_id') }} as _cio_previous_person_id,
    {{ cio_sync.staged_at() }} as _cio_staged_at
from counted
{%- if cio_sync.is_incremental_run() %}
left join {{ cio_sync.held_rows('order_id', cio_sync.key_set('orders', cio_sync.orders_to_resolve())) }} as held
    on held.order_id = counted.order_id
{#- Only orders that are new, resolve differently than before, or have a line staged since
    (the models after it read their summaries): an order re-read because its customer changed
    and resolved as before is not written again, so nothing after it recomputes it. #}
where held.order_id is null
    or {{ cio_sync.row_differs('counted', 'held',
        order_columns[1:] + cio_sync.resolved_person_columns() + ['counts_as_purchase']) }}
    {%- if cio_sync.input_enabled('order_lines') %}
    or counted.order_id in ({{ cio_sync.orders_with_lines_changed() }})
    {%- endif %}
{%- endif %}
-- depends_on: {{ ref('stg_cio__customers') }}{{ (', ' ~ ref('stg_cio__order_lines')) if cio_sync.input_enabled('order_lines') }}
