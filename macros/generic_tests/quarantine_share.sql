{#- Implementation of the generic test `quarantine_share` (tests/generic/quarantine_share.sql); dispatched so an adapter can override it. -#}
{% macro default__test_quarantine_share(model, max_share, reason_column, staging, keys) %}
{%- set max_share = max_share if max_share is not none else var('cio_max_quarantine_share', 0.05) -%}
with counts as (
    select
        sum(case when {{ reason_column }} is not null then 1 else 0 end) as quarantined_rows,
        count(*) as total_rows
    from {{ model }}
    {%- if staging is not none %}
    union all
    select count(*), count(*)
    from {{ staging }}
    where {% for key in keys %}{{ key }} is null{{ ' or ' if not loop.last }}{% endfor %}
    {%- endif %}
),

totals as (
    select sum(quarantined_rows) as quarantined_rows, sum(total_rows) as total_rows
    from counts
)

select quarantined_rows, total_rows
from totals
where quarantined_rows > {{ max_share }} * total_rows
{% endmacro %}
