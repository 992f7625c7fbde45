{{ config(
    enabled=cio_sync.input_enabled('order_lines'),
    materialized='incremental',
    unique_key=['person_id', 'sku'],
    incremental_strategy='cio_sync_replace',
    pre_hook=["{{ cio_sync.stage_key_set('recount', cio_sync.persons_to_recount) }}",
              "{{ cio_sync.delete_rows_of('person_id', cio_sync.key_set('recount', cio_sync.persons_to_recount)) }}"],
    indexes=cio_sync.staged_at_index() + cio_sync.lookup_index(['person_id', 'sku'], unique=true),
    dist='person_id',
    sort='person_id',
) }}
{#- The latest purchase of each replenishable SKU per person (one row per person and SKU), with
    when its units run out: replenishment_due_at = ordered_at + quantity x replenishment_days.
    Buying the SKU again replaces it. Incrementally, as int_cio__person_orders: the lines of
    orders resolved for the first time replace a person's row for their SKU when they are the
    later purchase; the persons of an order held before are recounted from all their orders. -#}
{%- set incremental = cio_sync.is_incremental_run() -%}

with purchases as {{ '' if incremental else cio_sync.inline_cte() }} (
    {{ cio_sync.purchases_to_count(['order_id', 'person_id', 'customer_id', 'email', 'ordered_at']) }}
),

lines as (
    {#- Incrementally the lines of those purchases, looked up by order (rows_with_keys); in a
        full build every line, the join below selecting them (a semi-join would read the
        purchases twice). #}
    select
        staged.order_id,
        staged.sku,
        staged.quantity,
        staged.product_category,
        staged.replenishment_days
    from {{ cio_sync.rows_with_keys(ref('stg_cio__order_lines'), 'order_id', 'select order_id from purchases', whole_otherwise=true)
        if incremental else ref('stg_cio__order_lines') }} as staged
    where staged._cio_reason is null
        and staged.replenishment_days > 0
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
    {#- The join in byte order, as the order_id indexes are: a merge join through them is a plan
        PostgreSQL can choose (sort_key; cio_event_order_placed). #}
    from lines
    inner join purchases
        on {{ cio_sync.sort_key('lines.order_id') }} = {{ cio_sync.sort_key('purchases.order_id') }}
),

latest as (
    select * from ranked
    where is_latest_purchase
)

select
    latest.person_id,
    latest.sku,
    latest.order_id,
    latest.customer_id,
    latest.email,
    latest.ordered_at,
    latest.quantity,
    latest.product_category,
    latest.replenishment_due_at,
    {{ cio_sync.staged_at() }} as _cio_staged_at
from latest
{%- if incremental %}
{#- A person's row for the SKU so far (recounted persons have none: the pre-hook deleted them)
    stays when it is the later purchase. #}
left join {{ cio_sync.rows_with_keys(this, 'person_id', 'select person_id from latest', whole_otherwise=true) }} as held
    on held.person_id = latest.person_id
    and held.sku = latest.sku
where held.person_id is null
    or held.ordered_at < latest.ordered_at
    or (held.ordered_at = latest.ordered_at
        and {{ cio_sync.sort_key('held.order_id') }} < {{ cio_sync.sort_key('latest.order_id') }})
{%- endif %}
-- depends_on: {{ ref('int_cio__orders') }}, {{ ref('int_cio__order_summaries') }}
