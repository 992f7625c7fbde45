{#- Lower-cased, trimmed email, or null when empty. Identity matching in Customer.io is exact,
    so ' Jane@Example.com ' and 'jane@example.com' must become the same value upstream. -#}
{% macro normalize_email(expr) -%}
    {{ return(adapter.dispatch('normalize_email', 'cio_sync')(expr)) }}
{%- endmacro %}

{% macro default__normalize_email(expr) -%}
    nullif(lower(trim({{ expr }})), '')
{%- endmacro %}
