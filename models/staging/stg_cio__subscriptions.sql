{{ config(
    enabled=cio_sync.input_enabled('subscriptions'),
    materialized='incremental',
    unique_key=['subscription_id', 'status', 'updated_at'],
    incremental_strategy='cio_sync_replace',
    pre_hook="{{ cio_sync.delete_keyless_rows('subscriptions') }}",
    indexes=cio_sync.staged_at_index() + cio_sync.lookup_index(['subscription_id']) + cio_sync.identity_indexes(email=false) + cio_sync.changed_at_index(),
    dist='subscription_id',
    sort='_cio_staged_at',
) }}
{%- set relation = cio_sync.input_relation('subscriptions') -%}
{%- set columns = cio_sync.source_columns(relation) -%}

{#- One row per subscription status change: (subscription_id, status, updated_at).
    A table holding only the current status works too: each build sees its latest change. -#}
with source as (
    select * from {{ relation }}
    {%- if cio_sync.is_incremental_run() %}
    where {{ cio_sync.in_staging_window('subscriptions', columns, cio_sync.window_start(this, 'subscriptions')) }}
    {%- endif %}
),

typed as (
    select
        {{ cio_sync.stage_column(columns, 'subscriptions', 'subscription_id', 'id') }},
        {{ cio_sync.stage_column(columns, 'subscriptions', 'customer_id', 'id') }},
        {{ cio_sync.stage_column(columns, 'subscriptions', 'status', 'lower', length=64) }},
        {{ cio_sync.stage_column(columns, 'subscriptions', 'updated_at', 'timestamp') }},
        {{ cio_sync.stage_column(columns, 'subscriptions', 'plan', 'text', required=false) }},
        {{ cio_sync.stage_column(columns, 'subscriptions', 'next_charge_at', 'timestamp', required=false) }},
        {{ cio_sync.changed_at('subscriptions', columns) }}
    from source
    {{ cio_sync.compute_once() }}
),

checked as (
    {{ cio_sync.flag_rows('typed', [
        ("subscription_id is null", "subscription_id", "null_key", "null"),
        ("status is null", "status", "null_key", "null"),
        ("updated_at is null", "updated_at", "null_timestamp", "null"),
        (cio_sync.is_future("updated_at"), "updated_at", "future_timestamp", "updated_at"),
        (cio_sync.is_before_1970("updated_at"), "updated_at", "timestamp_out_of_range", "updated_at"),
    ]) }}
),

deduplicated as (
    {{ cio_sync.deduplicate('checked', ['subscription_id', 'status', 'updated_at'], 'customer_id',
        other_keys=['updated_at']) }}
)

{{ cio_sync.staged_rows('deduplicated', 'subscriptions', [
    'subscription_id', 'customer_id', 'status', 'updated_at', 'plan', 'next_charge_at', '_cio_reason', '_cio_column',
    '_cio_value', '_cio_changed_at',
]) }}
