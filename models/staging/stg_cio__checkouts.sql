{{ config(
    enabled=cio_sync.input_enabled('checkouts'),
    materialized='incremental',
    unique_key='checkout_id',
    incremental_strategy='cio_sync_replace',
    pre_hook="{{ cio_sync.delete_keyless_rows('checkouts') }}",
    indexes=cio_sync.staged_at_index() + cio_sync.lookup_index(['checkout_id']) + cio_sync.identity_indexes() + cio_sync.changed_at_index(),
    dist='checkout_id',
    sort='_cio_staged_at',
) }}
{%- set relation = cio_sync.input_relation('checkouts') -%}
{%- set columns = cio_sync.source_columns(relation) -%}
{%- if columns is not none and 'customer_id' not in columns and 'email' not in columns -%}
    {{ exceptions.raise_compiler_error("cio_sync: input 'checkouts' (var cio_checkouts) needs customer_id, email or both.") }}
{%- endif -%}

with source as (
    select * from {{ relation }}
    {%- if cio_sync.is_incremental_run() %}
    where {{ cio_sync.in_staging_window('checkouts', columns, cio_sync.window_start(this, 'checkouts')) }}
    {%- endif %}
),

typed as (
    select
        {{ cio_sync.stage_column(columns, 'checkouts', 'checkout_id', 'id') }},
        {{ cio_sync.stage_column(columns, 'checkouts', 'customer_id', 'id', required=false) }},
        {{ cio_sync.stage_column(columns, 'checkouts', 'email', 'email', required=false) }},
        {{ cio_sync.stage_column(columns, 'checkouts', 'started_at', 'timestamp') }},
        {{ cio_sync.stage_column(columns, 'checkouts', 'cart_value', 'money') }},
        {{ cio_sync.stage_column(columns, 'checkouts', 'checkout_url', 'text', required=false, length=2048) }},
        {{ cio_sync.stage_column(columns, 'checkouts', 'item_count', 'integer', required=false) }},
        {{ cio_sync.stage_column(columns, 'checkouts', 'in_stock', 'boolean', required=false) }},
        {{ cio_sync.stage_column(columns, 'checkouts', 'is_test', 'boolean', required=false) }},
        {{ cio_sync.raw_text(columns, 'cart_value') }} as cart_value_raw,
        {{ cio_sync.changed_at('checkouts', columns) }}
    from source
    {{ cio_sync.compute_once() }}
),

checked as (
    {{ cio_sync.flag_rows('typed', [
        ("checkout_id is null", "checkout_id", "null_key", "null"),
        ("coalesce(is_test, false)", "is_test", "test_row", "'true'"),
        (cio_sync.is_test_email("email"), "email", "test_row", "email"),
        ("customer_id is null and email is null", "customer_id", "null_identifier", "null"),
        ("started_at is null", "started_at", "null_timestamp", "null"),
        (cio_sync.is_future("started_at"), "started_at", "future_timestamp", "started_at"),
        (cio_sync.is_before_1970("started_at"), "started_at", "timestamp_out_of_range", "started_at"),
        ("cart_value is null", "cart_value", "invalid_number", "cart_value_raw"),
    ]) }}
),

deduplicated as (
    {{ cio_sync.deduplicate('checked', 'checkout_id', 'started_at desc, cart_value desc') }}
)

{{ cio_sync.staged_rows('deduplicated', 'checkouts', [
    'checkout_id', 'customer_id', 'email', 'started_at', 'cart_value', 'checkout_url', 'item_count', 'in_stock',
    'is_test', '_cio_reason', '_cio_column', '_cio_value', '_cio_changed_at',
]) }}
