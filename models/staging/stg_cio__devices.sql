{{ config(
    enabled=cio_sync.input_enabled('devices'),
    materialized='incremental',
    unique_key='token',
    incremental_strategy='cio_sync_replace',
    pre_hook="{{ cio_sync.delete_keyless_rows('devices') }}",
    indexes=cio_sync.staged_at_index() + cio_sync.lookup_index(['token']) + cio_sync.identity_indexes(email=false) + cio_sync.changed_at_index(),
    dist='token',
    sort='_cio_staged_at',
) }}
{%- set relation = cio_sync.input_relation('devices') -%}
{%- set columns = cio_sync.source_columns(relation) -%}

{#- Push tokens of the shop's app (var cio_devices): one row per token, the latest use kept. A
    token the app no longer has is marked with deleted_at (a row deleted from the input is not
    seen by an incremental build, as for every input). -#}
with source as (
    select * from {{ relation }}
    {%- if cio_sync.is_incremental_run() %}
    where {{ cio_sync.in_staging_window('devices', columns, cio_sync.window_start(this, 'devices')) }}
    {%- endif %}
),

typed as (
    select
        {{ cio_sync.stage_column(columns, 'devices', 'token', 'id', length=1024) }},
        {{ cio_sync.stage_column(columns, 'devices', 'customer_id', 'id') }},
        {{ cio_sync.stage_column(columns, 'devices', 'platform', 'lower', length=64) }},
        {{ cio_sync.stage_column(columns, 'devices', 'last_used_at', 'timestamp', required=false) }},
        {{ cio_sync.stage_column(columns, 'devices', 'deleted_at', 'timestamp', required=false) }},
        {{ cio_sync.changed_at('devices', columns) }}
    from source
    {{ cio_sync.compute_once() }}
),

checked as (
    {{ cio_sync.flag_rows('typed', [
        ("token is null", "token", "null_key", "null"),
        ("platform is null or platform not in ('ios', 'android')", "platform", "invalid_platform", "platform"),
        (cio_sync.is_future("last_used_at"), "last_used_at", "future_timestamp", "last_used_at"),
        (cio_sync.is_before_1970("last_used_at"), "last_used_at", "timestamp_out_of_range", "last_used_at"),
    ]) }}
),

deduplicated as (
    {{ cio_sync.deduplicate('checked', 'token', 'last_used_at desc nulls last, customer_id') }}
)

{{ cio_sync.staged_rows('deduplicated', 'devices', [
    'token', 'customer_id', 'platform', 'last_used_at', 'deleted_at', '_cio_reason', '_cio_column', '_cio_value',
    '_cio_changed_at',
]) }}
