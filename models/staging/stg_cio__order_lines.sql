{{ config(enabled=cio_sync.input_enabled('order_lines')) }}
{%- set relation = cio_sync.input_relation('order_lines') -%}
{%- set columns = cio_sync.source_columns(relation) -%}

with source as (
    select * from {{ relation }}
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
        {{ cio_sync.raw_text(columns, 'line_total') }} as line_total_raw
    from source
),

checked as (
    select
        typed.*,
        {{ cio_sync.quarantine_reason([
            ("order_id is null", "order_id", "null_key", "null"),
            ("sku is null", "sku", "null_key", "null"),
            ("quantity is null", "quantity", "invalid_number", "quantity_raw"),
            ("line_total is null", "line_total", "invalid_number", "line_total_raw"),
        ]) }}
    from typed
),

deduplicated as (
    {{ cio_sync.deduplicate('checked', ['order_id', 'sku'], 'quantity desc, line_total desc') }}
)

select * from deduplicated
