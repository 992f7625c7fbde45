{{ config(
    materialized='incremental',
    unique_key='customer_id',
    incremental_strategy='cio_sync_replace',
    pre_hook="{{ cio_sync.delete_keyless_rows('customers') }}",
    indexes=cio_sync.staged_at_index() + cio_sync.lookup_index(['customer_id'], unique=true) + cio_sync.changed_at_index(),
    dist='customer_id',
    sort='_cio_staged_at',
) }}
{%- set relation = cio_sync.input_relation('customers') -%}
{%- set columns = cio_sync.source_columns(relation) -%}
{%- set identifier = var('cio_identifier', 'customer_id') -%}
{%- set extra = cio_sync.customer_attributes(columns) -%}

{%- set checks = [
    ("customer_id is null", "customer_id", "null_identifier" if identifier == "customer_id" else "null_key", "null"),
    ("coalesce(is_test, false)", "is_test", "test_row", "'true'"),
    (cio_sync.is_test_email("email"), "email", "test_row", "email"),
] -%}
{%- if identifier == 'email' -%}
    {%- do checks.append(("email is null", "email", "null_identifier", "null")) -%}
{%- endif -%}
{%- do checks.append(("not " ~ cio_sync.is_valid_email("email"), "email",
    "invalid_identifier" if identifier == "email" else "invalid_email", "email")) -%}
{%- do checks.append((cio_sync.is_future("created_at"), "created_at", "future_timestamp", "created_at")) -%}
{%- do checks.append((cio_sync.is_before_1970("created_at"), "created_at", "timestamp_out_of_range", "created_at")) -%}

with source as (
    select * from {{ relation }}
    {%- if cio_sync.is_incremental_run() %}
    where {{ cio_sync.in_staging_window('customers', columns, cio_sync.window_start(this, 'customers')) }}
    {%- endif %}
),

typed as (
    select
        {{ cio_sync.stage_column(columns, 'customers', 'customer_id', 'id') }},
        {{ cio_sync.stage_column(columns, 'customers', 'email', 'email') }},
        {{ cio_sync.stage_column(columns, 'customers', 'created_at', 'timestamp') }},
        {{ cio_sync.stage_column(columns, 'customers', 'sms_opt_in', 'boolean', required=false) }},
        {{ cio_sync.stage_column(columns, 'customers', 'email_opt_in', 'boolean', required=false) }},
        {{ cio_sync.stage_column(columns, 'customers', 'is_test', 'boolean', required=false) }},
        {{ cio_sync.stage_column(columns, 'customers', 'do_not_message', 'boolean', required=false) }},
        {%- for name, as_type in extra %}
        {{ cio_sync.stage_column(columns, 'customers', name, as_type) }},
        {%- endfor %}
        {{ cio_sync.changed_at('customers', columns) }}
    from source
    {{ cio_sync.compute_once() }}
),

checked as (
    {{ cio_sync.flag_rows('typed', checks) }}
),

deduplicated as (
    {{ cio_sync.deduplicate('checked', 'customer_id', 'created_at, email') }}
)

{#- _cio_previous_email: the email this customer had before a change, so that rows matched by
    the old email are matched again. -#}
{{ cio_sync.staged_rows('deduplicated', 'customers', [
    'customer_id', 'email', 'created_at', 'sms_opt_in', 'email_opt_in', 'is_test', 'do_not_message',
] + (extra | map(attribute=0) | list) + [
    '_cio_reason', '_cio_column', '_cio_value', '_cio_changed_at',
], previous=['email']) }}
