{#- Implementation of the generic test `consistent_event_names` (tests/generic/consistent_event_names.sql); dispatched so an adapter can override it. -#}
{% macro default__test_consistent_event_names(model, column_name) %}
with names as (
    select distinct {{ column_name }} as event_name from {{ cio_sync.sendable_rows(model) }}
),

checked as (
    select
        event_name,
        lower(replace(replace(trim(event_name), ' ', '_'), '-', '_')) as canonical_name
    from names
)

select event_name, canonical_name, 'not lower snake_case' as problem
from checked
where event_name is null
    or event_name <> canonical_name
    or {{ cio_sync.byte_length('event_name') }} > 100
union all
select min(event_name), canonical_name, 'several spellings of one event'
from checked
group by canonical_name
having count(*) > 1
{% endmacro %}
