{#- True when the (already normalized) value looks like a deliverable address:
    one @, no whitespace, a dot in the domain. -#}
{% macro is_valid_email(expr) -%}
    {{ return(adapter.dispatch('is_valid_email', 'cio_sync')(expr)) }}
{%- endmacro %}

{% macro default__is_valid_email(expr) -%}
    regexp_full_match({{ expr }}, '^[^@[:space:]]+@[^@[:space:]]+[.][^@[:space:]]+$')
{%- endmacro %}

{% macro postgres__is_valid_email(expr) -%}
    ({{ expr }} ~ '^[^@[:space:]]+@[^@[:space:]]+[.][^@[:space:]]+$')
{%- endmacro %}
