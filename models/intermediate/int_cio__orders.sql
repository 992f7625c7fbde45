{{ config(
    materialized='incremental',
    unique_key='order_id',
    incremental_strategy='delete+insert',
    indexes=cio_sync.staged_at_index(),
    dist='person_id',
    sort='_cio_staged_at',
) }}
{#- Every staged order with a key, resolved to a person. counts_as_purchase is false for
    statuses in var cio_excluded_order_statuses (cancelled and voided orders count toward
    nothing). Incrementally: orders staged since the last build and orders a changed customer
    may resolve differently. -#}
{%- set excluded = var('cio_excluded_order_statuses', ['cancelled', 'canceled', 'voided']) -%}

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
        and order_id in ({{ cio_sync.keys_to_resolve(ref('stg_cio__orders'), 'order_id') }})
    {%- endif %}
),

{{ cio_sync.person_lookups('orders') }},

resolved as (
    {{ cio_sync.resolve_person('orders', ['order_id', 'ordered_at', 'order_total', 'status', 'discount_code', 'currency']) }}
)


select
    resolved.*,
    {%- if excluded | length > 0 %}
    coalesce(resolved.status not in ({% for s in excluded %}'{{ s | lower }}'{{ ', ' if not loop.last }}{% endfor %}), true) as counts_as_purchase,
    {%- else %}
    true as counts_as_purchase,
    {%- endif %}
    {{ cio_sync.held_value('person_id') }} as _cio_previous_person_id,
    {{ cio_sync.staged_at() }} as _cio_staged_at
from resolved
{%- if cio_sync.is_incremental_run() %}
left join {{ this }} as held
    on held.order_id = resolved.order_id
{%- endif %}
-- depends_on: {{ ref('stg_cio__customers') }}
