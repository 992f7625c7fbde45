{#- Implementation of the generic test `attribute_limits` (tests/generic/attribute_limits.sql); dispatched so an adapter can override it. -#}
{% macro default__test_attribute_limits(model, exclude, max_attributes, max_name_bytes, max_value_bytes) %}
{%- set columns = cio_sync.relation_columns(model) -%}
{%- set attributes = [] -%}
{%- for column in columns if column.name | lower not in (exclude | map('lower') | list) -%}
    {%- do attributes.append(column) -%}
{%- endfor -%}
{%- set text_attributes = [] -%}
{%- for column in attributes if column.is_string() -%}
    {%- do text_attributes.append(column) -%}
{%- endfor -%}
{%- if text_attributes %}
{#- One pass over the model: how many values of each text attribute are too long. #}
with too_long as (
    select
        {%- for column in text_attributes %}
        sum(case when {{ cio_sync.byte_length(adapter.quote(column.name)) }} > {{ max_value_bytes }} then 1 else 0 end) as c{{ loop.index }}{{ ',' if not loop.last }}
        {%- endfor %}
    from {{ cio_sync.sendable_rows(model) }}
)
{%- endif %}

select
    cast('too many attributes' as {{ cio_sync.type_string() }}) as problem,
    cast('{{ attributes | length }}' as {{ cio_sync.type_string() }}) as detail
where {{ attributes | length }} > {{ max_attributes }}
{%- for column in attributes if column.name | length > max_name_bytes %}
union all
select 'attribute name over {{ max_name_bytes }} bytes', '{{ column.name }}'
{%- endfor %}
{%- for column in text_attributes %}
union all
select 'value over {{ max_value_bytes }} bytes', '{{ column.name }}'
from too_long
where c{{ loop.index }} > 0
{%- endfor %}
{% endmacro %}
