{{ config(
    enabled=cio_sync.input_enabled('devices'),
    materialized='incremental',
    unique_key='token',
    incremental_strategy='cio_sync_replace',
    pre_hook="{{ cio_sync.stage_key_set('devices', cio_sync.keys_to_resolve(ref('stg_cio__devices'), 'token', email=false)) }}",
    indexes=cio_sync.staged_at_index(),
    dist='person_id',
    sort='_cio_staged_at',
) }}
{#- Every staged device token resolved to a person by customer_id. Incrementally: tokens staged
    since the last build and those of a changed customer. -#}

with devices as (
    select
        token,
        customer_id,
        cast(null as {{ cio_sync.type_string() }}) as email,
        platform,
        last_used_at,
        deleted_at,
        _cio_reason,
        _cio_column,
        _cio_value
    from {{ ref('stg_cio__devices') }}
    where token is not null
    {%- if cio_sync.is_incremental_run() %}
        and token in ({{ cio_sync.key_set('devices', cio_sync.keys_to_resolve(ref('stg_cio__devices'), 'token', email=false)) }})
    {%- endif %}
),

{{ cio_sync.person_lookups('devices') }},

resolved as (
    {{ cio_sync.resolve_person('devices', ['token', 'platform', 'last_used_at', 'deleted_at']) }}
)

select
    resolved.*,
    {{ cio_sync.held_value('person_id') }} as _cio_previous_person_id,
    {{ cio_sync.staged_at() }} as _cio_staged_at
from resolved
{%- if cio_sync.is_incremental_run() %}
left join {{ cio_sync.held_rows('token', cio_sync.key_set('devices', cio_sync.keys_to_resolve(ref('stg_cio__devices'), 'token', email=false))) }} as held
    on held.token = resolved.token
{%- endif %}
-- depends_on: {{ ref('stg_cio__customers') }}
