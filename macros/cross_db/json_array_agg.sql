{#- Aggregate JSON object texts (see json_object) into a JSON array text, ordered.
    Built from strings because Redshift has neither json_agg nor json_build_object;
    every adapter produces the same bytes for the same rows. -#}
{% macro json_array_agg(object_expr, order_by) -%}
    {{ return(adapter.dispatch('json_array_agg', 'cio_sync')(object_expr, order_by)) }}
{%- endmacro %}

{% macro default__json_array_agg(object_expr, order_by) -%}
    '[' || coalesce(string_agg({{ object_expr }}, ',' order by {{ order_by }}), '') || ']'
{%- endmacro %}

{% macro redshift__json_array_agg(object_expr, order_by) -%}
    '[' || coalesce(listagg({{ object_expr }}, ',') within group (order by {{ order_by }}), '') || ']'
{%- endmacro %}

{#- The same array as a window function: every row of a partition gets the array of the whole
    partition, in `order_by` order (nulls are left out). Computed in the sort a row_number() over
    the same window needs anyway, so a per-group array costs no second sort. -#}
{% macro json_array_window(object_expr, partition_by, order_by) -%}
    {{ return(adapter.dispatch('json_array_window', 'cio_sync')(object_expr, partition_by, order_by)) }}
{%- endmacro %}

{% macro default__json_array_window(object_expr, partition_by, order_by) -%}
    '[' || coalesce(string_agg({{ object_expr }}, ',') over (
        partition by {{ partition_by }} order by {{ order_by }}
        rows between unbounded preceding and unbounded following
    ), '') || ']'
{%- endmacro %}

{% macro redshift__json_array_window(object_expr, partition_by, order_by) -%}
    '[' || coalesce(listagg({{ object_expr }}, ',') within group (order by {{ order_by }}) over (
        partition by {{ partition_by }}
    ), '') || ']'
{%- endmacro %}

{#- A JSON object text from (key, sql_expr, kind) triples; kind is 'string' or 'number'.
    Nulls become JSON null; strings are escaped (backslash, quote, control characters). -#}
{% macro json_object(fields) -%}
    {{ return(adapter.dispatch('json_object', 'cio_sync')(fields)) }}
{%- endmacro %}

{% macro default__json_object(fields) -%}
    '{'
    {%- for key, expr, kind in fields %}
    || '{{ "," if not loop.first }}"{{ key }}":' || {{ cio_sync.json_value(expr, kind) }}
    {%- endfor %}
    || '}'
{%- endmacro %}

{% macro json_value(expr, kind='string') -%}
    {{ return(adapter.dispatch('json_value', 'cio_sync')(expr, kind)) }}
{%- endmacro %}

{#- Backslashes are written as chr(92): string-literal escaping differs between adapters. -#}
{% macro default__json_value(expr, kind) -%}
    {%- if kind == 'number' -%}
        coalesce(cast({{ expr }} as {{ cio_sync.type_string() }}), 'null')
    {%- else -%}
        coalesce('"' || replace(replace(replace(replace(replace(
            cast({{ expr }} as {{ cio_sync.type_string(1024) }}),
            chr(92), chr(92) || chr(92)), '"', chr(92) || '"'),
            chr(10), chr(92) || 'n'), chr(13), chr(92) || 'r'), chr(9), chr(92) || 't') || '"', 'null')
    {%- endif -%}
{%- endmacro %}
