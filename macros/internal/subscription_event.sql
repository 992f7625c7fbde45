{#- Body of a subscription status event model: one event per change into `status`,
    keyed on (subscription_id, status, change time in Unix seconds). Incrementally: the events
    of the subscriptions that changed since the last build are replaced. -#}
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
{%- if cio_sync.is_incremental_run() %}
    and subscription_id in ({{ cio_sync.subscriptions_changed() }})
{%- endif %}
{%- endmacro %}

{#- The subscriptions with a status row staged since this model's last build. -#}
{% macro subscriptions_changed() -%}
    select subscription_id from {{ ref('int_cio__subscriptions') }} where {{ cio_sync.changed_since_last_build() }}
{%- endmacro %}
