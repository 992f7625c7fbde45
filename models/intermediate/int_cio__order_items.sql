{{ config(enabled=cio_sync.input_enabled('order_lines')) }}
{#- Valid order lines of valid purchases, with the person and when the units run out
    (replenishment_due_at = ordered_at + quantity x replenishment_days). -#}

select
    lines.order_id,
    lines.sku,
    lines.quantity,
    lines.line_total,
    lines.product_category,
    lines.replenishment_days,
    orders.person_id,
    orders.customer_id,
    orders.email,
    orders.ordered_at,
    case when lines.replenishment_days > 0 then
        {{ dbt.dateadd('day', 'lines.quantity * lines.replenishment_days', 'orders.ordered_at') }}
    end as replenishment_due_at,
    row_number() over (partition by lines.order_id order by lines.line_total desc, lines.sku) as line_rank
from {{ ref('stg_cio__order_lines') }} as lines
inner join {{ ref('int_cio__orders') }} as orders
    on orders.order_id = lines.order_id
where lines._cio_reason is null
    and orders._cio_reason is null
    and orders.counts_as_purchase
