{#- Implementation of the generic test `one_row_per_person` (tests/generic/one_row_per_person.sql); dispatched so an adapter can override it. -#}
{% macro default__test_one_row_per_person(model, column_name) %}
{%- set column_name = column_name or cio_sync.identifier() -%}
{#- On PostgreSQL the identifier is grouped as its index orders it (lookup_index: in byte
    order), as unique_key does: the index is read in order rather than every identifier
    hashed (cio_people at 1,000,000 customers, at the end of every build: 0.6 s against 0.3 s). -#}
{%- set grouped = cio_sync.lookup_column(model, column_name) if target.type == 'postgres' else none -%}
select {{ grouped or column_name }} as identifier, count(*) as rows_for_person
from {{ model }}
group by 1
having count(*) > 1
{% endmacro %}
