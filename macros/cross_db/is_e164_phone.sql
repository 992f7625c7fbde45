{#- True when the value is a phone number in E.164, as Customer.io takes a phone identifier:
    a plus sign, then 2 to 15 digits, the first not 0. -#}
{% macro is_e164_phone(expr) -%}
    {{ return(adapter.dispatch('is_e164_phone', 'cio_sync')(expr)) }}
{%- endmacro %}

{% macro default__is_e164_phone(expr) -%}
    regexp_full_match({{ expr }}, '^[+][1-9][0-9]{1,14}$')
{%- endmacro %}

{% macro postgres__is_e164_phone(expr) -%}
    ({{ expr }} ~ '^[+][1-9][0-9]{1,14}$')
{%- endmacro %}
