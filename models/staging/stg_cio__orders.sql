{{ config(
    materialized='incremental',
    unique_key='order_id',
    incremental_strategy='cio_sync_replace',
    pre_hook="{{ cio_sync.delete_keyless_rows('orders') }}",
    indexes=cio_sync.staged_at_index() + cio_sync.lookup_index(['order_id']) + cio_sync.identity_indexes() + cio_sync.changed_at_index(),
    dist='order_id',
    sort='_cio_staged_at',
) }}
{%- set relation = cio_sync.input_relation('orders') -%}
{%- set columns = cio_sync.source_columns(relation) -%}

with source as (
    select * from {{ relation }}
    {%- if cio_sync.is_incremental_run() %}
    where {{ cio_sync.in_staging_window('orders', columns, cio_sync.window_start(this, 'orders')) }}
    {%- endif %}
),

typed as (
    select
        {{ cio_sync.stage_column(columns, 'orders', 'order_id', 'id') }},
        {{ cio_sync.stage_column(columns, 'orders', 'customer_id', 'id') }},
        {{ cio_sync.stage_column(columns, 'orders', 'ordered_at', 'timestamp') }},
        {{ cio_sync.stage_column(columns, 'orders', 'order_total', 'money') }},
        {{ cio_sync.stage_column(columns, 'orders', 'email', 'email', required=false) }},
        {{ cio_sync.stage_column(columns, 'orders', 'status', 'lower', required=false) }},
        {{ cio_sync.stage_column(columns, 'orders', 'discount_code', 'text', required=false) }},
        {{ cio_sync.stage_column(columns, 'orders', 'currency', 'upper', required=false, length=3) }},
        {{ cio_sync.stage_column(columns, 'orders', 'is_test', 'boolean', required=false) }},
        {{ cio_sync.raw_text(columns, 'order_total') }} as order_total_raw,
        {{ cio_sync.changed_at('orders', columns) }}
    from source
    {{ cio_sync.compute_once() }}
),

checked as (
    {{ cio_sync.flag_rows('typed', [
        ("order_id is null", "order_id", "null_key", "null"),
        ("coalesce(is_test, false)", "is_test", "test_row", "'true'"),
        (cio_sync.is_test_email("email"), "email", "test_row", "email"),
        ("ordered_at is null", "ordered_at", "null_timestamp", "null"),
        (cio_sync.is_future("ordered_at"), "ordered_at", "future_timestamp", "ordered_at"),
        (cio_sync.is_before_1970("ordered_at"), "ordered_at", "timestamp_out_of_range", "ordered_at"),
        ("order_total is null", "order_total", "invalid_number", "order_total_raw"),
    ]) }}
),

deduplicated as (
    {{ cio_sync.deduplicate('checked', 'order_id', 'ordered_at desc, order_total desc') }}
)

{{ cio_sync.staged_rows('deduplicated', 'orders', [
    'order_id', 'customer_id', 'ordered_at', 'order_total', 'email', 'status', 'discount_code', 'currency',
    'is_test', '_cio_reason', '_cio_column', '_cio_value', '_cio_changed_at',
]) }}
