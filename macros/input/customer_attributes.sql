{#- The customers input's columns named in var cio_customer_attributes, as (name, stage_column
    type) pairs, the type from the column's kind in `columns` (source_columns(); text when
    unknown). Each name must be a plain lower-case column name of the input that no contract
    column or cio_people attribute already uses: a compile error names the problem otherwise. -#}
{% macro customer_attributes(columns) -%}
    {%- set names = var('cio_customer_attributes', []) or [] -%}
    {%- if names is string -%}{%- set names = [names] -%}{%- endif -%}
    {%- set taken = ['customer_id', 'email', 'created_at', 'sms_opt_in', 'email_opt_in', 'is_test', 'do_not_message',
                     'loaded_at', 'person_id', 'first_order_at', 'last_order_at', 'orders_count', 'lifetime_value',
                     'average_order_value', 'days_since_last_order', 'last_product_category', 'next_reorder_due_at',
                     'is_vip', 'is_subscriber', 'subscription_status', 'has_refund', 'last_checkout_started_at'] -%}
    {%- set pairs = [] -%}
    {%- for raw in names -%}
        {%- set name = (raw | string | trim) -%}
        {%- if not modules.re.match('^[a-z_][a-z0-9_]{0,62}$', name) or name.startswith('_cio') or name in taken -%}
            {{ exceptions.raise_compiler_error(
                "cio_sync: var cio_customer_attributes names '" ~ name ~ "': give plain lower-case column names of the "
                ~ "customers input that are not already contract columns or cio_people attributes ("
                ~ (taken | join(', ')) ~ ").") }}
        {%- endif -%}
        {%- if columns is not none and name not in columns -%}
            {{ exceptions.raise_compiler_error(
                "cio_sync: var cio_customer_attributes names '" ~ name ~ "', which input 'customers' (var cio_customers) "
                ~ "does not have. Columns found: " ~ (columns.keys() | list | sort | join(', ')) ~ ".") }}
        {%- endif -%}
        {%- set kind = columns.get(name) if columns is not none else none -%}
        {%- do pairs.append((name, {'integer': 'integer', 'number': 'money', 'boolean': 'boolean', 'timestamp': 'timestamp',
                                    'aware': 'timestamp', 'date': 'timestamp'}.get(kind, 'text'))) -%}
    {%- endfor -%}
    {{ return(pairs) }}
{%- endmacro %}
