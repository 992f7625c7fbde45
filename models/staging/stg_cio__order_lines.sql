{{ config(
    enabled=cio_sync.input_enabled('order_lines'),
    materialized='incremental',
    unique_key=['order_id', 'sku'],
    incremental_strategy='cio_sync_replace',
    pre_hook="{{ cio_sync.delete_keyless_rows('order_lines') }}",
    indexes=cio_sync.staged_at_index() + cio_sync.lookup_index(['order_id']) + cio_sync.changed_at_index(),
    dist='order_id',
    sort='_cio_staged_at',
) }}
{#- Without a loaded_at column, lines are re-read with their order (see in_staging_window). -#}
{%- set relation = cio_sync.input_relation('order_lines') -%}
{%- set columns = cio_sync.source_columns(relation) -%}

with source as (
    select * from {{ relation }}
    {%- if cio_sync.is_incremental_run() %}
    where {{ cio_sync.in_staging_window('order_lines', columns, cio_sync.window_start(this, 'order_lines')) }}
    {%- endif %}
),

typed as (
    select
        {{ cio_sync.stage_column(columns, 'order_lines', 'order_id', 'id') }},
        {{ cio_sync.stage_column(columns, 'order_lines', 'sku', 'id') }},
        {{ cio_sync.stage_column(columns, 'order_lines', 'quantity', 'integer') }},
        {{ cio_sync.stage_column(columns, 'order_lines', 'line_total', 'money') }},
        {{ cio_sync.stage_column(columns, 'order_lines', 'product_category', 'text', required=false) }},
        {{ cio_sync.stage_column(columns, 'order_lines', 'replenishment_days', 'integer', required=false) }},
        {{ cio_sync.raw_text(columns, 'quantity') }} as quantity_raw,
        {{ cio_sync.raw_text(columns, 'line_total') }} as line_total_raw,
        {{ cio_sync.changed_at('order_lines', columns) }}
    from source
    {{ cio_sync.compute_once() }}
),

checked as (
    {{ cio_sync.flag_rows('typed', [
        ("order_id is null", "order_id", "null_key", "null"),
        ("sku is null", "sku", "null_key", "null"),
        ("quantity is null", "quantity", "invalid_number", "quantity_raw"),
        ("line_total is null", "line_total", "invalid_number", "line_total_raw"),
    ]) }}
),

deduplicated as (
    {{ cio_sync.deduplicate('checked', ['order_id', 'sku'], 'quantity desc, line_total desc') }}
)

{{ cio_sync.staged_rows('deduplicated', 'order_lines', [
    'order_id', 'sku', 'quantity', 'line_total', 'product_category', 'replenishment_days', '_cio_reason', '_cio_column', '_cio_value', '_cio_changed_at',
]) }}
-- depends_on: {{ cio_sync.input_relation('orders') }}
