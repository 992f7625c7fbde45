{#- Implementation of the generic test `not_in_future` (tests/generic/not_in_future.sql); dispatched so an adapter can override it. -#}
{% macro default__test_not_in_future(model, column_name, tolerance_minutes) %}
{%- set tolerance = tolerance_minutes if tolerance_minutes is not none else var('cio_future_tolerance_minutes', 5) -%}
select {{ column_name }} as future_timestamp
from {{ cio_sync.sendable_rows(model) }}
where {{ column_name }} > {{ dbt.dateadd('minute', tolerance, cio_sync.utc_now()) }}
{% endmacro %}
