{{ config(
    enabled=cio_sync.input_enabled('order_lines'),
    materialized='incremental',
    incremental_strategy='append',
    pre_hook=["{{ cio_sync.stage_key_set('persons', cio_sync.persons_changed_in(ref('int_cio__orders'))) }}",
              "{{ cio_sync.delete_rows_of('person_id', cio_sync.key_set('persons', cio_sync.persons_changed_in(ref('int_cio__orders')))) }}"],
    indexes=cio_sync.staged_at_index(),
    dist='person_id',
    sort='person_id',
) }}
{#- The latest purchase of each replenishable SKU per person (one row per person and SKU), with
    when its units run out: replenishment_due_at = ordered_at + quantity x replenishment_days.
    Buying the SKU again replaces it. Incrementally: every SKU of the persons whose orders
    changed since the last build. -#}

with purchases as (
    select
        order_id,
        person_id,
        customer_id,
        email,
        ordered_at
    from {{ ref('int_cio__orders') }}
    where _cio_reason is null
        and counts_as_purchase
    {%- if cio_sync.is_incremental_run() %}
        and person_id in ({{ cio_sync.key_set('persons', cio_sync.persons_changed_in(ref('int_cio__orders'))) }})
    {%- endif %}
),

lines as (
    {#- No semi-join on purchases here (the join below selects the lines): read twice, that
        CTE would be kept, and PostgreSQL guesses 200 distinct orders in it. #}
    select
        order_id,
        sku,
        quantity,
        product_category,
        replenishment_days
    from {{ ref('stg_cio__order_lines') }}
    where _cio_reason is null
        and replenishment_days > 0
),

ranked as (
    select
        purchases.person_id,
        lines.sku,
        purchases.order_id,
        purchases.customer_id,
        purchases.email,
        purchases.ordered_at,
        lines.quantity,
        lines.product_category,
        {{ dbt.dateadd('day', 'lines.quantity * lines.replenishment_days', 'purchases.ordered_at') }} as replenishment_due_at,
        row_number() over (
            partition by {{ cio_sync.sort_key('purchases.person_id') }}, {{ cio_sync.sort_key('lines.sku') }}
            order by purchases.ordered_at desc, {{ cio_sync.sort_key('purchases.order_id') }} desc
        ) = 1 as is_latest_purchase
    from lines
    inner join purchases
        on lines.order_id = purchases.order_id
)

select
    person_id,
    sku,
    order_id,
    customer_id,
    email,
    ordered_at,
    quantity,
    product_category,
    replenishment_due_at,
    {{ cio_sync.staged_at() }} as _cio_staged_at
from ranked
where is_latest_purchase
