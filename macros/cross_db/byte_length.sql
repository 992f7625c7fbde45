{#- Length of a text value in UTF-8 bytes (Customer.io's limits are in bytes). -#}
{% macro byte_length(expr) -%}
    {{ return(adapter.dispatch('byte_length', 'cio_sync')(expr)) }}
{%- endmacro %}

{% macro default__byte_length(expr) -%}
    strlen({{ expr }})
{%- endmacro %}

{% macro postgres__byte_length(expr) -%}
    octet_length({{ expr }})
{%- endmacro %}
