{{ config(
    enabled=cio_sync.input_enabled('refunds'),
    materialized='incremental',
    unique_key='refund_id',
    incremental_strategy='cio_sync_replace',
    pre_hook="{{ cio_sync.stage_key_set('refunds', cio_sync.refunds_to_resolve()) }}",
    indexes=cio_sync.staged_at_index(),
    dist='person_id',
    sort='_cio_staged_at',
) }}
{#- Refunds with a key, resolved to a person through their order. Incrementally: refunds staged
    since the last build and refunds of orders that changed. -#}

with refunds as (
    select * from {{ ref('stg_cio__refunds') }}
    where refund_id is not null
    {%- if cio_sync.is_incremental_run() %}
        and refund_id in ({{ cio_sync.key_set('refunds', cio_sync.refunds_to_resolve()) }})
    {%- endif %}
),

orders as (
    {#- No semi-join on refunds here: referenced twice, that CTE would be materialized, and
        PostgreSQL guesses 200 distinct orders in it. The left join below hashes the refunds.
        Incrementally, the orders of the refunds recomputed, through int_cio__orders' order_id
        index on PostgreSQL (rows_with_keys), where the join read its ten million rows. #}
    select
        order_id,
        person_id,
        customer_id,
        email,
        _cio_reason
    {%- if cio_sync.is_incremental_run() %}
    from {{ cio_sync.rows_with_keys(ref('int_cio__orders'), 'order_id',
        'select order_id from ' ~ ref('stg_cio__refunds') ~ ' where refund_id in ('
        ~ cio_sync.key_set('refunds', cio_sync.refunds_to_resolve()) ~ ')', whole_otherwise=true) }} as orders
    {%- else %}
    from {{ ref('int_cio__orders') }}
    {%- endif %}
)

select
    refunds.refund_id,
    refunds.order_id,
    refunds.refunded_at,
    refunds.amount,
    refunds.reason,
    orders.person_id,
    orders.customer_id,
    orders.email,
    coalesce(
        refunds._cio_reason,
        case when orders.order_id is null or orders._cio_reason is not null then 'unresolvable_order' end
    ) as _cio_reason,
    coalesce(
        refunds._cio_column,
        case when orders.order_id is null or orders._cio_reason is not null then 'order_id' end
    ) as _cio_column,
    coalesce(
        refunds._cio_value,
        case when orders.order_id is null or orders._cio_reason is not null then refunds.order_id end
    ) as _cio_value,
    {{ cio_sync.held_value('person_id') }} as _cio_previous_person_id,
    {{ cio_sync.staged_at() }} as _cio_staged_at
from refunds
left join orders
    on refunds.order_id = orders.order_id
{%- if cio_sync.is_incremental_run() %}
left join {{ cio_sync.held_rows('refund_id', cio_sync.key_set('refunds', cio_sync.refunds_to_resolve())) }} as held
    on held.refund_id = refunds.refund_id
{%- endif %}
