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

{#- On PostgreSQL an identifier a unique index already holds to one row each (cio_people's,
    lookup_index with unique=true) is not grouped again: only rows without one, which the index
    does not hold to one (found through it), are counted. -#}
{% macro postgres__test_one_row_per_person(model, column_name) %}
{%- set column_name = column_name or cio_sync.identifier() -%}
{%- if cio_sync.unique_index_holds(model, [column_name]) %}
select {{ column_name }} as identifier, count(*) as rows_for_person
from {{ model }}
where {{ column_name }} is null
group by 1
having count(*) > 1
{%- else %}
{{ cio_sync.default__test_one_row_per_person(model, column_name) }}
{%- endif %}
{% endmacro %}

{% macro redshift__test_one_row_per_person(model, column_name) %}
{{ cio_sync.default__test_one_row_per_person(model, column_name) }}
{% endmacro %}
