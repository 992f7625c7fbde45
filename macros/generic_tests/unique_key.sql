{#- Implementation of the generic test `unique_key` (tests/generic/unique_key.sql); dispatched so an adapter can override it. -#}
{% macro default__test_unique_key(model, columns, written_by_last_build) %}
{%- set columns = [columns] if columns is string else columns -%}
{%- set stamped = written_by_last_build and '_cio_staged_at' in (cio_sync.relation_columns(model) | map(attribute='name') | map('lower') | list) -%}
{%- if stamped %}
with written as (
    select distinct {{ columns | join(', ') }}
    from {{ model }}
    where _cio_staged_at >= coalesce(
        (select max(built_at) from {{ cio_sync.build_log_relation() }}
         where relation_name = '{{ model | string | replace("'", "''") }}'),
        cast('1900-01-01' as {{ dbt.type_timestamp() }})
    )
)

select {% for column in columns %}keyed.{{ column }}, {% endfor %}count(*) as occurrences
from {{ model }} as keyed
inner join written
    on {% for column in columns %}written.{{ column }} = keyed.{{ column }}{{ ' and ' if not loop.last }}{% endfor %}
group by {% for column in columns %}keyed.{{ column }}{{ ', ' if not loop.last }}{% endfor %}
having count(*) > 1
{%- else %}
select {{ columns | join(', ') }}, count(*) as occurrences
from {{ model }}
where {% for column in columns %}{{ column }} is not null{{ ' and ' if not loop.last }}{% endfor %}
group by {{ columns | join(', ') }}
having count(*) > 1
{%- endif %}
{% endmacro %}
