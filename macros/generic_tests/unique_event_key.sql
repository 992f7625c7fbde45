{#- Implementation of the generic test `unique_event_key` (tests/generic/unique_event_key.sql); dispatched so an adapter can override it. -#}
{% macro default__test_unique_event_key(model, column_name) %}
select {{ column_name }} as event_key, count(*) as occurrences
from {{ cio_sync.sendable_rows(model) }}
group by {{ column_name }}
having count(*) > 1 or {{ column_name }} is null
{% endmacro %}
