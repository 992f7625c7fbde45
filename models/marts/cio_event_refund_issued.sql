{{ config(
    enabled=cio_sync.input_enabled('refunds'),
    materialized='table',
    contract={'enforced': true},
    tags=['cio'],
    meta={'cio': cio_sync.event_meta('refund_issued', ['refunds', 'orders'])},
) }}

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
