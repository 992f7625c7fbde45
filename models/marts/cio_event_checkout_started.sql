{{ config(
    enabled=cio_sync.input_enabled('checkouts'),
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook="{{ cio_sync.delete_rows_of('checkout_id', 'select checkout_id from ' ~ ref('int_cio__checkouts') ~ ' where ' ~ cio_sync.changed_since_last_build()) }}",
    contract={'enforced': true},
    indexes=cio_sync.time_index('event_at') + cio_sync.lookup_index(['checkout_id']),
    tags=['cio'],
    dist=cio_sync.identifier(),
    sort='event_at',
    meta={'cio': cio_sync.event_meta('checkout_started', ['checkouts'], cadence='cart')},
) }}
{#- One event per checkout. Incrementally: the events of the checkouts that changed since the
    last build are replaced. -#}

with checkouts as (
    select * from {{ ref('int_cio__checkouts') }}
    where _cio_reason is null
    {%- if cio_sync.is_incremental_run() %}
        and {{ cio_sync.changed_since_last_build() }}
    {%- endif %}
)

select
    cast({{ cio_sync.event_key('checkout_started', ['checkout_id']) }} as {{ cio_sync.type_string(32) }}) as event_id,
    cast('checkout_started' as {{ cio_sync.type_string(100) }}) as event_name,
    cast(customer_id as {{ cio_sync.type_string() }}) as customer_id,
    cast(email as {{ cio_sync.type_string() }}) as email,
    cast(started_at as {{ dbt.type_timestamp() }}) as event_at,
    cast(checkout_id as {{ cio_sync.type_string() }}) as checkout_id,
    cast(cart_value as {{ cio_sync.type_money() }}) as cart_value,
    cast(item_count as {{ dbt.type_int() }}) as item_count,
    cast(checkout_url as {{ cio_sync.type_string(2048) }}) as checkout_url
from checkouts
