{{ config(enabled=cio_sync.input_enabled('refunds')) }}
{#- Refunds resolved to a person through their order. -#}

select
    refunds.refund_id,
    refunds.order_id,
    refunds.refunded_at,
    refunds.amount,
    refunds.reason,
    orders.person_id,
    orders.customer_id,
    orders.email,
    coalesce(refunds._cio_reason,
        case when orders.order_id is null or orders._cio_reason is not null then 'unresolvable_order' end) as _cio_reason,
    coalesce(refunds._cio_column,
        case when orders.order_id is null or orders._cio_reason is not null then 'order_id' end) as _cio_column,
    coalesce(refunds._cio_value,
        case when orders.order_id is null or orders._cio_reason is not null then refunds.order_id end) as _cio_value
from {{ ref('stg_cio__refunds') }} as refunds
left join {{ ref('int_cio__orders') }} as orders
    on orders.order_id = refunds.order_id
