{{ config(
    enabled=cio_sync.input_enabled('refunds'),
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{{ cio_sync.delete_rows_of('refund_id', 'select refund_id from ' ~ ref('int_cio__refunds') ~ ' where ' ~ cio_sync.changed_since_last_build()) }}",
    contract={'enforced': true},
    indexes=cio_sync.time_index('event_at'),
    tags=['cio'],
    dist=cio_sync.identifier(),
    sort='event_at',
    meta={'cio': cio_sync.event_meta('refund_issued', ['refunds', 'orders'])},
) }}
{#- One event per refund. Incrementally: the events of the refunds that changed since the last
    build are replaced. -#}

select
    cast({{ cio_sync.event_key('refund_issued', ['refund_id']) }} as {{ cio_sync.type_string(32) }}) as event_id,
    cast('refund_issued' as {{ cio_sync.type_string(100) }}) as event_name,
    cast(customer_id as {{ cio_sync.type_string() }}) as customer_id,
    cast(email as {{ cio_sync.type_string() }}) as email,
    cast(refunded_at as {{ dbt.type_timestamp() }}) as event_at,
    cast(order_id as {{ cio_sync.type_string() }}) as order_id,
    cast(refund_id as {{ cio_sync.type_string() }}) as refund_id,
    cast(amount as {{ cio_sync.type_money() }}) as amount,
    cast(reason as {{ cio_sync.type_string(512) }}) as reason
from {{ ref('int_cio__refunds') }}
where _cio_reason is null
{%- if cio_sync.is_incremental_run() %}
    and {{ cio_sync.changed_since_last_build() }}
{%- endif %}
