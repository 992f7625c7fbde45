{{ config(enabled=cio_sync.input_enabled('refunds')) }}
{%- set relation = cio_sync.input_relation('refunds') -%}
{%- set columns = cio_sync.source_columns(relation) -%}

with source as (
    select * from {{ relation }}
),

typed as (
    select
        {{ cio_sync.stage_column(columns, 'refunds', 'refund_id', 'id') }},
        {{ cio_sync.stage_column(columns, 'refunds', 'order_id', 'id') }},
        {{ cio_sync.stage_column(columns, 'refunds', 'refunded_at', 'timestamp') }},
        {{ cio_sync.stage_column(columns, 'refunds', 'amount', 'money') }},
        {{ cio_sync.stage_column(columns, 'refunds', 'reason', 'text', required=false, length=512) }},
        {{ cio_sync.raw_text(columns, 'amount') }} as amount_raw
    from source
),

checked as (
    select
        typed.*,
        {{ cio_sync.quarantine_reason([
            ("refund_id is null", "refund_id", "null_key", "null"),
            ("refunded_at is null", "refunded_at", "null_timestamp", "null"),
            (cio_sync.is_future("refunded_at"), "refunded_at", "future_timestamp", "refunded_at"),
            ("amount is null", "amount", "invalid_number", "amount_raw"),
        ]) }}
    from typed
),

deduplicated as (
    {{ cio_sync.deduplicate('checked', 'refund_id', 'refunded_at desc') }}
)

select * from deduplicated
