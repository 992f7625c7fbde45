{#- The relation configured for an input (customers, orders, order_lines, checkouts,
    subscriptions, refunds) through var('cio_<input>'): any relation expression, e.g.
    "{{ ref('stg_orders') }}" or "{{ source('shop', 'orders') }}". -#}
{% macro input_relation(input_name) -%}
    {%- set value = var('cio_' ~ input_name, none) -%}
    {%- if not cio_sync.input_enabled(input_name) and input_name not in ('customers', 'orders') -%}
        {#- An optional input left unconfigured: its models are disabled and never run. -#}
        {{ return(none) }}
    {%- endif -%}
    {%- if value is none or (value | string | trim) == '' -%}
        {{ exceptions.raise_compiler_error(
            "cio_sync: input '" ~ input_name ~ "' is not configured. Set var 'cio_" ~ input_name
            ~ "' in your dbt_project.yml to the relation that holds it, e.g. "
            ~ "cio_" ~ input_name ~ ": \"{{ ref('stg_" ~ input_name ~ "') }}\" (see docs/input-contract.md)."
        ) }}
    {%- endif -%}
    {{ return(value) }}
{%- endmacro %}

{#- True when the optional input is configured; models that need it are disabled otherwise. -#}
{% macro input_enabled(input_name) -%}
    {%- set value = var('cio_' ~ input_name, none) -%}
    {{ return(value is not none and (value | string | trim) != '') }}
{%- endmacro %}
