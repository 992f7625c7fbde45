{#- Implementation of the generic test `unique_key` (tests/generic/unique_key.sql); dispatched so an adapter can override it. -#}
{% macro default__test_unique_key(model, columns, written_by_last_build) %}
{%- set columns = [columns] if columns is string else columns -%}
{%- set stamped = written_by_last_build and '_cio_staged_at' in (cio_sync.relation_columns(model) | map(attribute='name') | map('lower') | list) -%}
{%- set keys = columns | join(', ') -%}
{%- set not_null = columns | join(' is not null and ') ~ ' is not null' -%}
{%- if stamped %}
{#- The last build's time as a literal, asked when the test runs (a subquery there would have
    PostgreSQL expect a third of the table to match and read the whole key index). -#}
{%- set written = '_cio_staged_at >= ' ~ cio_sync.timestamp_value('select max(built_at) from '
    ~ cio_sync.build_log_relation() ~ " where relation_name = '" ~ (model | string | replace("'", "''")) ~ "'") -%}
{%- set held = written | replace('_cio_staged_at >=', '_cio_staged_at <') -%}
{#- Keys written twice by the last build, and keys it wrote that an older row holds too: the
    older rows are found among those of the written keys' first column (through its index on
    PostgreSQL, see rows_with_keys), and only when the table holds older rows at all (after a
    full build it holds none, and nothing is looked up). #}
select {{ keys }}, count(*) as occurrences
from {{ model }}
where {{ written }} and {{ not_null }}
group by {{ keys }}
having count(*) > 1
union all
select {% for column in columns %}held.{{ column }}{{ ', ' if not loop.last }}{% endfor %}, 1
from {{ cio_sync.rows_with_keys(model, columns[0], 'select ' ~ columns[0] ~ ' from ' ~ model ~ ' where ' ~ written) }} as held
where {{ held | replace('_cio_staged_at', 'held._cio_staged_at') }}
    and exists (select 1 from {{ model }} as older where {{ held | replace('_cio_staged_at', 'older._cio_staged_at') }})
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
