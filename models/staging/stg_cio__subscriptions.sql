{{ config(enabled=cio_sync.input_enabled('subscriptions')) }}
{%- set relation = cio_sync.input_relation('subscriptions') -%}
{%- set columns = cio_sync.source_columns(relation) -%}

{#- One row per subscription status change: (subscription_id, status, updated_at).
    A table holding only the current status works too: each build sees its latest change. -#}
with source as (
    select * from {{ relation }}
),

typed as (
    select
        {{ cio_sync.stage_column(columns, 'subscriptions', 'subscription_id', 'id') }},
        {{ cio_sync.stage_column(columns, 'subscriptions', 'customer_id', 'id') }},
        {{ cio_sync.stage_column(columns, 'subscriptions', 'status', 'lower', length=64) }},
        {{ cio_sync.stage_column(columns, 'subscriptions', 'updated_at', 'timestamp') }}
    from source
),

checked as (
    select
        typed.*,
        {{ cio_sync.quarantine_reason([
            ("subscription_id is null", "subscription_id", "null_key", "null"),
            ("status is null", "status", "null_key", "null"),
            ("updated_at is null", "updated_at", "null_timestamp", "null"),
            (cio_sync.is_future("updated_at"), "updated_at", "future_timestamp", "updated_at"),
        ]) }}
    from typed
),

deduplicated as (
    {{ cio_sync.deduplicate('checked', ['subscription_id', 'status', 'updated_at'], 'customer_id') }}
)

select * from deduplicated
