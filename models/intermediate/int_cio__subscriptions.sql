{{ config(enabled=cio_sync.input_enabled('subscriptions')) }}
{#- Subscription status changes resolved to a person; 'cancelled' is spelled 'canceled'.
    is_status_change is true on the first row of each run of one status (history inputs). -#}

with subscriptions as (
    select
        subscription_id,
        customer_id,
        cast(null as {{ cio_sync.type_string() }}) as email,
        case when status = 'cancelled' then 'canceled' else status end as status,
        updated_at,
        _cio_reason,
        _cio_column,
        _cio_value
    from {{ ref('stg_cio__subscriptions') }}
),

{{ cio_sync.person_lookups() }},

resolved as (
    {{ cio_sync.resolve_person('subscriptions', ['subscription_id', 'status', 'updated_at']) }}
)

select
    resolved.*,
    coalesce(
        status <> lag(status) over (partition by subscription_id order by updated_at),
        true
    ) as is_status_change
from resolved
