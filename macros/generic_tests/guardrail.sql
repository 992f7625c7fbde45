{#- Implementation of the generic test `guardrail` (tests/generic/guardrail.sql); dispatched so an adapter can override it. -#}
{% macro default__test_guardrail(model, condition, max_rows, max_share) %}
with counts as (
    select
        sum(case when {{ condition }} then 1 else 0 end) as matching_rows,
        count(*) as total_rows
    from {{ cio_sync.sendable_rows(model) }}
)

select
    matching_rows,
    total_rows,
    '{{ condition | replace("'", "''") }}' as guardrail
from counts
where matching_rows > {{ max_rows }}
{%- if max_share is not none %}
    and matching_rows > {{ max_share }} * total_rows
{%- endif %}
{% endmacro %}
