{#- "Now" as a naive UTC timestamp literal: the pinned var cio_now (reproducible builds and
    tests), else the time this dbt invocation started (run_started_at, dbt's clock, in UTC).
    Never used as an event time: only to decide whether a window has elapsed or a timestamp
    lies in the future. One value for the whole invocation: every model, hook and test of a
    `dbt build` agrees on it, it is the same when a model's SQL is compiled and when its hooks
    run (so the build log can record it, clock_at), and the planner reads it as a constant. -#}
{% macro utc_now() -%}
    {%- if var('cio_now', none) -%}
        cast('{{ var("cio_now") }}' as {{ dbt.type_timestamp() }})
    {%- else -%}
        cast('{{ run_started_at.astimezone(modules.pytz.utc).strftime("%Y-%m-%d %H:%M:%S.%f") }}' as {{ dbt.type_timestamp() }})
    {%- endif -%}
{%- endmacro %}

{#- The warehouse's clock (utc_now_real): when rows were staged and a build happened. -#}
{% macro default__utc_now() -%}
    cast(current_timestamp at time zone 'UTC' as {{ dbt.type_timestamp() }})
{%- endmacro %}

{#- sysdate: the start of the transaction, like current_timestamp elsewhere, so that a model's
    rows and its build log entry carry the same time. -#}
{% macro redshift__utc_now() -%}
    cast(sysdate as {{ dbt.type_timestamp() }})
{%- endmacro %}
