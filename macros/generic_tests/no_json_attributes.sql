{#- Implementation of the generic test `no_json_attributes` (tests/generic/no_json_attributes.sql); dispatched so an adapter can override it. -#}
{% macro default__test_no_json_attributes(model, allow) %}
{%- set columns = cio_sync.relation_columns(model) -%}
{%- set allowed = allow | map('lower') | list -%}
{%- set nested_types = ['JSON', 'JSONB', 'SUPER', 'ARRAY', 'STRUCT', 'MAP', 'UNION', '[]'] -%}
select cast(null as {{ cio_sync.type_string() }}) as column_name, cast(null as {{ cio_sync.type_string() }}) as problem
where 1 = 0
{%- for column in columns if column.name | lower not in allowed %}
{%- set dtype = column.dtype | upper -%}
{%- set ns = namespace(nested=false) -%}
{%- for t in nested_types if t in dtype %}{% set ns.nested = true %}{% endfor %}
{%- if ns.nested %}
union all
select '{{ column.name }}', 'nested type {{ column.dtype }}'
{%- elif column.is_string() %}
union all
select '{{ column.name }}', 'JSON text value'
from {{ cio_sync.sendable_rows(model) }}
where left(trim({{ adapter.quote(column.name) }}), 1) in ('{', '[')
{%- endif %}
{%- endfor %}
{% endmacro %}
