{#- Implementation of the generic test `unique_key` (tests/generic/unique_key.sql); dispatched so an adapter can override it. -#}
{% macro default__test_unique_key(model, columns, written_by_last_build) %}
{%- set columns = [columns] if columns is string else columns -%}
{%- set stamped = written_by_last_build and '_cio_staged_at' in (cio_sync.relation_columns(model) | map(attribute='name') | map('lower') | list) -%}
{%- set keys = columns | join(', ') -%}
{%- set not_null = columns | join(' is not null and ') ~ ' is not null' -%}
{%- if stamped %}
{%- set written = '_cio_staged_at >= coalesce((select max(built_at) from ' ~ cio_sync.build_log_relation()
    ~ " where relation_name = '" ~ (model | string | replace("'", "''")) ~ "'), cast('1900-01-01' as "
    ~ dbt.type_timestamp() ~ '))' -%}
{#- Keys written twice by the last build, and keys it wrote that an older row holds too. #}
select {{ keys }}, count(*) as occurrences
from {{ model }}
where {{ written }} and {{ not_null }}
group by {{ keys }}
having count(*) > 1
union all
select {{ keys }}, 1
from {{ model }} as held
where not ({{ written }})
    and exists (
        select 1 from {{ model }} as fresh
        where {% for column in columns %}fresh.{{ column }} = held.{{ column }} and {% endfor %}{{ written | replace('_cio_staged_at', 'fresh._cio_staged_at') }}
    )
{%- else %}
select {{ keys }}, count(*) as occurrences
from {{ model }}
where {{ not_null }}
group by {{ keys }}
having count(*) > 1
{%- endif %}
{% endmacro %}
