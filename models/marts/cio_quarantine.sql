{{ config(
    materialized='view',
    contract={'enforced': true},
    tags=['cio_quarantine'],
) }}
{#- Every input row kept out of Customer.io, with why: one row per rejected row, naming the
    input, the row's key, the column at fault, the reason and the offending value.
    Reasons: null_identifier, null_key, invalid_identifier, invalid_email, test_row,
    null_timestamp, future_timestamp, invalid_number, person_quarantined,
    unresolvable_identifier, unresolvable_order. A view: it reads the rows where they are kept
    (resolved rows in intermediate models, rows without a key in staging) when asked. -#}
{%- set sources = [
    ('customers', 'int_cio__customers', none, "customer_id"),
    ('orders', 'int_cio__orders', 'stg_cio__orders', "order_id"),
] -%}
{%- if cio_sync.input_enabled('order_lines') -%}
{%- do sources.append(('order_lines', 'stg_cio__order_lines', none,
    "coalesce(order_id, '') || ':' || coalesce(sku, '')")) -%}
{%- endif -%}
{%- if cio_sync.input_enabled('checkouts') -%}
{%- do sources.append(('checkouts', 'int_cio__checkouts', 'stg_cio__checkouts', "checkout_id")) -%}
{%- endif -%}
{%- if cio_sync.input_enabled('subscriptions') -%}
{%- do sources.append(('subscriptions', 'int_cio__subscriptions', 'stg_cio__subscriptions',
    "coalesce(subscription_id, '') || ':' || coalesce(status, '')")) -%}
{%- endif -%}
{%- if cio_sync.input_enabled('refunds') -%}
{%- do sources.append(('refunds', 'int_cio__refunds', 'stg_cio__refunds', "refund_id")) -%}
{%- endif -%}
{%- if cio_sync.input_enabled('devices') -%}
{%- do sources.append(('devices', 'int_cio__devices', 'stg_cio__devices', "token")) -%}
{%- endif -%}

{#- Each part: (input, relation, key expression, extra condition). -#}
{%- set parts = [] -%}
{%- for input_name, model, staging, key in sources -%}
{%- do parts.append((input_name, model, key, none)) -%}
{%- if staging -%}
{%- do parts.append((input_name, staging, key,
    cio_sync.input_keys(input_name) | join(' is null or ') ~ ' is null')) -%}
{%- endif -%}
{%- endfor %}

{% for input_name, relation, key, condition in parts %}
select
    cast('{{ input_name }}' as {{ cio_sync.type_string(32) }}) as source,
    cast(coalesce({{ key }}, '<null>') as {{ cio_sync.type_string(512) }}) as row_key,
    cast(_cio_column as {{ cio_sync.type_string(64) }}) as column_name,
    cast(_cio_reason as {{ cio_sync.type_string(64) }}) as reason,
    cast(_cio_value as {{ cio_sync.type_string(1024) }}) as raw_value
from {{ ref(relation) }}
where _cio_reason is not null{{ ' and (' ~ condition ~ ')' if condition }}
{% if not loop.last %}union all{% endif %}
{%- endfor %}
