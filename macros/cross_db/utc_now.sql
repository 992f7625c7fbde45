{#- The current time as a naive UTC timestamp, or the pinned var cio_now
    (reproducible builds and tests). Never used as an event time: only to decide
    whether a window has elapsed or a timestamp lies in the future. -#}
{% macro utc_now() -%}
    {%- if var('cio_now', none) -%}
        cast('{{ var("cio_now") }}' as {{ dbt.type_timestamp() }})
    {%- else -%}
        {{ return(adapter.dispatch('utc_now', 'cio_sync')()) }}
    {%- endif -%}
{%- endmacro %}

{% macro default__utc_now() -%}
    cast(current_timestamp at time zone 'UTC' as {{ dbt.type_timestamp() }})
{%- endmacro %}

{#- sysdate: the start of the transaction, like current_timestamp elsewhere, so that a model's
    rows and its build log entry carry the same time. -#}
{% macro redshift__utc_now() -%}
    cast(sysdate as {{ dbt.type_timestamp() }})
{%- endmacro %}
