{#- Whole Unix seconds of a naive UTC timestamp, as bigint: what Customer.io expects for
    timestamps, and a text form that every adapter renders identically (used in event keys). -#}
{% macro unix_seconds(expr) -%}
    {{ return(adapter.dispatch('unix_seconds', 'cio_sync')(expr)) }}
{%- endmacro %}

{% macro default__unix_seconds(expr) -%}
    cast(floor(extract(epoch from {{ expr }})) as {{ dbt.type_bigint() }})
{%- endmacro %}
