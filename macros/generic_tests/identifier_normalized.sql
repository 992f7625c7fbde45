{#- Implementation of the generic test `identifier_normalized` (tests/generic/identifier_normalized.sql); dispatched so an adapter can override it. -#}
{% macro default__test_identifier_normalized(model, column_name, kind) %}
{%- set column_name = column_name or cio_sync.identifier() -%}
{%- set kind = kind or cio_sync.identifier_kind() -%}
select {{ column_name }} as identifier,
    case
        when {{ column_name }} is null then 'null identifier'
        when {{ column_name }} <> trim({{ column_name }}) then 'untrimmed identifier'
        when {{ column_name }} = '' then 'empty identifier'
        when {{ cio_sync.byte_length(column_name) }} > 150 then 'identifier over 150 bytes'
        {%- if kind == 'email' %}
        when {{ column_name }} <> lower({{ column_name }}) then 'email not lower-case'
        when not {{ cio_sync.is_valid_email(column_name) }} then 'not an email'
        {%- elif kind == 'phone' %}
        when not {{ cio_sync.is_e164_phone(column_name) }} then 'not an E.164 phone number'
        {%- endif %}
    end as problem
from {{ cio_sync.sendable_rows(model) }}
where {{ column_name }} is null
    or {{ column_name }} <> trim({{ column_name }})
    or {{ column_name }} = ''
    or {{ cio_sync.byte_length(column_name) }} > 150
    {%- if kind == 'email' %}
    or {{ column_name }} <> lower({{ column_name }})
    or not {{ cio_sync.is_valid_email(column_name) }}
    {%- elif kind == 'phone' %}
    or not {{ cio_sync.is_e164_phone(column_name) }}
    {%- endif %}
{% endmacro %}
