{#- Implementation of the generic test `no_mixed_identifiers` (tests/generic/no_mixed_identifiers.sql); dispatched so an adapter can override it. -#}
{% macro default__test_no_mixed_identifiers(model, column_name, kind) %}
{%- set column_name = column_name or cio_sync.identifier() -%}
{%- set kind = kind or cio_sync.identifier_kind() -%}
select {{ column_name }} as identifier
from {{ cio_sync.sendable_rows(model) }}
where {{ column_name }} is not null
    and {% if kind == 'email' %}not {% endif %}({{ column_name }} like '%@%')
{% endmacro %}
