{#- Implementation of the generic test `quarantine_share` (tests/generic/quarantine_share.sql); dispatched so an adapter can override it. -#}
{% macro default__test_quarantine_share(model, max_share, reason_column) %}
{%- set max_share = max_share if max_share is not none else var('cio_max_quarantine_share', 0.05) -%}
with counts as (
    select
        sum(case when {{ reason_column }} is not null then 1 else 0 end) as quarantined_rows,
        count(*) as total_rows
    from {{ model }}
)

select quarantined_rows, total_rows
from counts
where quarantined_rows > {{ max_share }} * total_rows
{% endmacro %}
