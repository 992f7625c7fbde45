{{ config(
    enabled=cio_sync.input_enabled('refunds'),
    materialized='incremental',
    unique_key='refund_id',
    incremental_strategy='cio_sync_replace',
    pre_hook="{{ cio_sync.delete_keyless_rows('refunds') }}",
    indexes=cio_sync.staged_at_index() + cio_sync.lookup_index(['refund_id']) + cio_sync.changed_at_index(),
    dist='refund_id',
    sort='_cio_staged_at',
) }}
{%- set relation = cio_sync.input_relation('refunds') -%}
{%- set columns = cio_sync.source_columns(relation) -%}

with source as (
    select * from {{ relation }}
    {%- if cio_sync.is_incremental_run() %}
    where {{ cio_sync.in_staging_window('refunds', columns, cio_sync.window_start(this, 'refunds')) }}
    {%- endif %}
),

typed as (
    select
        {{ cio_sync.stage_column(columns, 'refunds', 'refund_id', 'id') }},
        {{ cio_sync.stage_column(columns, 'refunds', 'order_id', 'id') }},
        {{ cio_sync.stage_column(columns, 'refunds', 'refunded_at', 'timestamp') }},
        {{ cio_sync.stage_column(columns, 'refunds', 'amount', 'money') }},
        {{ cio_sync.stage_column(columns, 'refunds', 'reason', 'text', required=false, length=512) }},
        {{ cio_sync.raw_text(columns, 'amount') }} as amount_raw,
        {{ cio_sync.changed_at('refunds', columns) }}
    from source
    {{ cio_sync.compute_once() }}
),

checked as (
    {{ cio_sync.flag_rows('typed', [
        ("refund_id is null", "refund_id", "null_key", "null"),
        ("refunded_at is null", "refunded_at", "null_timestamp", "null"),
        (cio_sync.is_future("refunded_at"), "refunded_at", "future_timestamp", "refunded_at"),
        (cio_sync.is_before_1970("refunded_at"), "refunded_at", "timestamp_out_of_range", "refunded_at"),
        ("amount is null", "amount", "invalid_number", "amount_raw"),
    ]) }}
),

deduplicated as (
    {{ cio_sync.deduplicate('checked', 'refund_id', 'refunded_at desc') }}
)

{{ cio_sync.staged_rows('deduplicated', 'refunds', [
    'refund_id', 'order_id', 'refunded_at', 'amount', 'reason', '_cio_reason', '_cio_column',
    '_cio_value', '_cio_changed_at',
]) }}
