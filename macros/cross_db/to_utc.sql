{#- Convert a timestamp to a naive timestamp in UTC.
    kind = 'aware' for timestamp-with-time-zone columns (the instant is known, the zone is dropped);
    kind = 'naive' for wall-clock values in `source_timezone` (var cio_source_timezone). -#}
{% macro to_utc(expr, kind='naive', source_timezone=none) -%}
    {%- set tz = source_timezone if source_timezone is not none else var('cio_source_timezone', 'UTC') -%}
    {{ return(adapter.dispatch('to_utc', 'cio_sync')(expr, kind, tz)) }}
{%- endmacro %}

{% macro default__to_utc(expr, kind, tz) -%}
    {%- if kind == 'aware' -%}
        cast(({{ expr }}) at time zone 'UTC' as {{ dbt.type_timestamp() }})
    {%- elif tz | upper in ('UTC', 'ETC/UTC', 'GMT', 'Z') -%}
        cast({{ expr }} as {{ dbt.type_timestamp() }})
    {%- else -%}
        cast((cast({{ expr }} as {{ dbt.type_timestamp() }}) at time zone '{{ tz }}') at time zone 'UTC' as {{ dbt.type_timestamp() }})
    {%- endif -%}
{%- endmacro %}

{% macro redshift__to_utc(expr, kind, tz) -%}
    {%- if kind == 'aware' -%}
        convert_timezone('UTC', {{ expr }})
    {%- elif tz | upper in ('UTC', 'ETC/UTC', 'GMT', 'Z') -%}
        cast({{ expr }} as {{ dbt.type_timestamp() }})
    {%- else -%}
        convert_timezone('{{ tz }}', 'UTC', cast({{ expr }} as {{ dbt.type_timestamp() }}))
    {%- endif -%}
{%- endmacro %}
