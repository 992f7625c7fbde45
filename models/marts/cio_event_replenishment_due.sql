{{ config(
    enabled=cio_sync.input_enabled('order_lines'),
    materialized='incremental',
    incremental_strategy='cio_sync_recompute',
    on_schema_change='fail',
    pre_hook="{{ cio_sync.hold_replenishments_to_recompute() }}",
    contract={'enforced': true},
    indexes=cio_sync.time_index('event_at') + cio_sync.lookup_index([cio_sync.identifier()]),
    tags=['cio'],
    dist=cio_sync.identifier(),
    sort='event_at',
    meta={'cio': cio_sync.event_meta('replenishment_due', ['order_lines', 'orders'])},
) }}
{#- The latest purchase of each replenishable SKU per person, once its units have run out
    (replenishment_due_at <= now). Buying the SKU again replaces the due date. The event time
    is the run-out date, so a daily build still triggers "within the past day" journeys.
    Incrementally: the (person, SKU) rows of int_cio__replenishments written since the last
    build or whose units ran out since then, and every SKU of the persons recounted
    (replenishments_to_recompute), looked up by person. -#}
{%- set recomputed = cio_sync.key_set('replenishments', cio_sync.replenishments_to_recompute) %}

with replenishments as (
    {%- if cio_sync.is_incremental_run() %}
    select held.*
    from {{ cio_sync.rows_with_keys(ref('int_cio__replenishments'), 'person_id',
        'select person_id from (' ~ recomputed ~ ') as pairs') }} as held
    inner join ({{ recomputed }}) as recomputed
        on recomputed.person_id = held.person_id
        and recomputed.sku = held.sku
    {%- else %}
    select * from {{ ref('int_cio__replenishments') }}
    {%- endif %}
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
from replenishments
where replenishment_due_at <= {{ cio_sync.utc_now() }}
-- depends_on: {{ ref('int_cio__orders') }}, {{ ref('int_cio__order_summaries') }}
