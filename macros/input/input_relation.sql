{#- The relation configured for an input (customers, orders, order_lines, checkouts,
    subscriptions, refunds) through var('cio_<input>'): any relation expression, e.g.
    "{{ ref('stg_orders') }}" or "{{ source('shop', 'orders') }}". Only staging models call it,
    so only they depend on your relations. -#}
{% macro input_relation(input_name) -%}
    {%- if not cio_sync.input_enabled(input_name) -%}
        {#- An optional input switched off: its models are disabled and never run. -#}
        {{ return(none) }}
    {%- endif -%}
    {%- set value = var('cio_' ~ input_name, none) -%}
    {%- if (value is none or (value | string | trim) == '') and not execute -%}
        {#- Parsing: a model a project disables (say the whole staging folder) is never run, so
            an input it would read need not be configured; one that runs fails below. -#}
        {{ return(none) }}
    {%- elif value is none or (value | string | trim) == '' -%}
        {%- set switch = '' if input_name in ('customers', 'orders') else
            " If your shop has no " ~ input_name ~ ", set var 'cio_using_" ~ input_name ~ "' to false instead." -%}
        {{ exceptions.raise_compiler_error(
            "cio_sync: input '" ~ input_name ~ "' is not configured. Set var 'cio_" ~ input_name
            ~ "' in your dbt_project.yml to the relation that holds it, e.g. "
            ~ "cio_" ~ input_name ~ ": \"{{ ref('stg_" ~ input_name ~ "') }}\" (see docs/input-contract.md)." ~ switch
        ) }}
    {%- endif -%}
    {{ return(value) }}
{%- endmacro %}

{#- True when an input is used: customers and orders always; an optional input unless its
    var cio_using_<input> is false (devices: when cio_using_devices is true) (then its models are disabled and its attributes excluded).
    Reads only the boolean, never the relation var, so nothing depends on your relations
    but staging. -#}
{% macro input_enabled(input_name) -%}
    {%- if input_name in ('customers', 'orders') -%}
        {{ return(true) }}
    {%- endif -%}
    {#- Devices are new: off unless switched on (var cio_using_devices), so a project that has
        no devices relation needs no change. -#}
    {%- set value = var('cio_using_' ~ input_name, input_name != 'devices') -%}
    {%- if value not in (true, false) -%}
        {{ exceptions.raise_compiler_error("cio_sync: var cio_using_" ~ input_name ~ " must be true or false, not '" ~ value ~ "'.") }}
    {%- endif -%}
    {{ return(value) }}
{%- endmacro %}
