{{ config(
    enabled=cio_sync.input_enabled('subscriptions'),
    materialized='incremental',
    unique_key=['subscription_id', 'status', 'updated_at'],
    incremental_strategy='cio_sync_replace',
    pre_hook="{{ cio_sync.stage_key_set('subscriptions', cio_sync.keys_to_resolve(ref('stg_cio__subscriptions'), 'subscription_id', email=false)) }}",
    indexes=cio_sync.staged_at_index(),
    dist='person_id',
    sort='_cio_staged_at',
) }}
{#- Subscription status changes resolved to a person; 'cancelled' is spelled 'canceled'.
    is_status_change is true on the first row of each run of one status (history inputs).
    Incrementally: the whole history of each subscription with a row staged since the last
    build, or whose customer changed. -#}

with subscriptions as (
    select
        subscription_id,
        customer_id,
        cast(null as {{ cio_sync.type_string() }}) as email,
        case when status = 'cancelled' then 'canceled' else status end as status,
        updated_at,
        plan,
        next_charge_at,
        _cio_reason,
        _cio_column,
        _cio_value
    from {{ ref('stg_cio__subscriptions') }}
    where subscription_id is not null and status is not null and updated_at is not null
    {%- if cio_sync.is_incremental_run() %}
        and subscription_id in (
            {{ cio_sync.key_set('subscriptions', cio_sync.keys_to_resolve(ref('stg_cio__subscriptions'), 'subscription_id', email=false)) }}
        )
    {%- endif %}
),

{{ cio_sync.person_lookups('subscriptions') }},

resolved as (
    {{ cio_sync.resolve_person('subscriptions', ['subscription_id', 'status', 'updated_at', 'plan', 'next_charge_at']) }}
)

select
    resolved.*,
    coalesce(
        resolved.status <> lag(resolved.status) over (
            partition by {{ cio_sync.sort_key('resolved.subscription_id') }} order by resolved.updated_at
        ),
        true
    ) as is_status_change,
    {{ cio_sync.held_value('person_id') }} as _cio_previous_person_id,
    {{ cio_sync.staged_at() }} as _cio_staged_at
from resolved
{%- if cio_sync.is_incremental_run() %}
left join {{ cio_sync.held_rows('subscription_id', cio_sync.key_set('subscriptions', cio_sync.keys_to_resolve(ref('stg_cio__subscriptions'), 'subscription_id', email=false))) }} as held
    on held.subscription_id = resolved.subscription_id
    and held.status = resolved.status
    and held.updated_at = resolved.updated_at
{%- endif %}
-- depends_on: {{ ref('stg_cio__customers') }}
