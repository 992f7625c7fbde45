{#- Body of a subscription status event model: one event per change into `status`,
    keyed on (subscription_id, status, change time in Unix seconds). -#}
{% macro subscription_event(event_name, status) -%}
select
    cast({{ cio_sync.event_key(event_name, ['subscription_id', 'status', cio_sync.unix_seconds('updated_at')]) }} as {{ cio_sync.type_string(32) }}) as event_id,
    cast('{{ event_name }}' as {{ cio_sync.type_string(100) }}) as event_name,
    cast(customer_id as {{ cio_sync.type_string() }}) as customer_id,
    cast(email as {{ cio_sync.type_string() }}) as email,
    cast(updated_at as {{ dbt.type_timestamp() }}) as event_at,
    cast(subscription_id as {{ cio_sync.type_string() }}) as subscription_id,
    cast(status as {{ cio_sync.type_string(64) }}) as status
from {{ ref('int_cio__subscriptions') }}
where _cio_reason is null
    and is_status_change
    and status = '{{ status }}'
{%- endmacro %}
