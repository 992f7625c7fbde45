{#- Types the package declares, so Redshift gets real lengths (plain text there is varchar(256)). -#}
{% macro type_string(length=256) -%}
    {{ return(adapter.dispatch('type_string', 'cio_sync')(length)) }}
{%- endmacro %}

{% macro default__type_string(length) -%}varchar{%- endmacro %}

{% macro redshift__type_string(length) -%}varchar({{ length }}){%- endmacro %}

{% macro type_money() -%}
    {{ return(adapter.dispatch('type_money', 'cio_sync')()) }}
{%- endmacro %}

{% macro default__type_money() -%}numeric(18,2){%- endmacro %}

{#- A value parsed as boolean. Booleans pass through; text and numbers are read as
    true/t/yes/y/1 and false/f/no/n/0 (any case); anything else is null. -#}
{% macro safe_cast_boolean(expr, source_kind='text') -%}
    {{ return(adapter.dispatch('safe_cast_boolean', 'cio_sync')(expr, source_kind)) }}
{%- endmacro %}

{% macro default__safe_cast_boolean(expr, source_kind) -%}
    {%- if source_kind == 'boolean' -%}
        cast({{ expr }} as {{ dbt.type_boolean() }})
    {%- else -%}
        case
            when lower(trim(cast({{ expr }} as {{ cio_sync.type_string() }}))) in ('true', 't', 'yes', 'y', '1') then true
            when lower(trim(cast({{ expr }} as {{ cio_sync.type_string() }}))) in ('false', 'f', 'no', 'n', '0') then false
        end
    {%- endif -%}
{%- endmacro %}

{#- A value parsed as a number of the given type, or null when it is not a plain decimal
    number ('129.00', ' 42 ', '-3.5'). Numbers pass through. -#}
{% macro safe_cast_number(expr, source_kind='text', data_type=none) -%}
    {%- set data_type = data_type or cio_sync.type_money() -%}
    {{ return(adapter.dispatch('safe_cast_number', 'cio_sync')(expr, source_kind, data_type)) }}
{%- endmacro %}

{% macro default__safe_cast_number(expr, source_kind, data_type) -%}
    {%- if source_kind == 'number' -%}
        cast({{ expr }} as {{ data_type }})
    {%- else -%}
        try_cast(trim(cast({{ expr }} as {{ cio_sync.type_string() }})) as {{ data_type }})
    {%- endif -%}
{%- endmacro %}

{% macro postgres__safe_cast_number(expr, source_kind, data_type) -%}
    {%- if source_kind == 'number' -%}
        cast({{ expr }} as {{ data_type }})
    {%- else -%}
        case
            when trim(cast({{ expr }} as {{ cio_sync.type_string() }})) ~ '^[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)$'
            then cast(trim(cast({{ expr }} as {{ cio_sync.type_string() }})) as {{ data_type }})
        end
    {%- endif -%}
{%- endmacro %}
