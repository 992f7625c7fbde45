{#- Implementation of the generic test `one_row_per_person` (tests/generic/one_row_per_person.sql); dispatched so an adapter can override it. -#}
{% macro default__test_one_row_per_person(model, column_name) %}
{%- set column_name = column_name or cio_sync.identifier() -%}
select {{ column_name }} as identifier, count(*) as rows_for_person
from {{ model }}
group by {{ column_name }}
having count(*) > 1
{% endmacro %}
