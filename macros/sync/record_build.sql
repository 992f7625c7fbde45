{#- Post-hook on every synced model: record which dbt invocation built the relation, in the
    same transaction as the build. cio-export reads this proof in the same snapshot as the rows
    and refuses to send a relation rebuilt by any invocation other than the one whose
    run_results.json it checked (an overlapping `dbt build` whose tests have not run yet).

    Use on your own synced models too:  +post-hook: "{{ cio_sync.record_build() }}"
    The state schema is var cio_state_schema (cio-export --state-schema), default cio_sync_state. -#}
{% macro record_build() -%}
    {%- if execute and flags.INTROSPECT and model is defined -%}
        {%- do run_query('insert into ' ~ cio_sync.build_log_relation()
            ~ " (model_unique_id, relation_name, invocation_id, built_at, full_build, clock_at) values ('"
            ~ model.unique_id ~ "', '" ~ (this | string | replace("'", "''")) ~ "', '" ~ invocation_id ~ "', "
            ~ cio_sync.utc_now_real() ~ ", " ~ ('false' if cio_sync.is_incremental_run() else 'true') ~ ", "
            ~ cio_sync.utc_now() ~ ")") -%}
    {%- endif -%}
{%- endmacro %}

{#- on-run-start: the state schema and the append-only build log, created once per run (so
    concurrent model threads never race to create them). -#}
{% macro create_build_log() -%}
    {#- Not when compiling offline (--no-introspect): there is no warehouse to write to. -#}
    {%- if execute and flags.INTROSPECT -%}
        {%- do run_query(cio_sync.create_schema_if_missing(var('cio_state_schema', 'cio_sync_state'))) -%}
        {%- do run_query('create table if not exists ' ~ cio_sync.build_log_relation()
            ~ ' (model_unique_id ' ~ cio_sync.type_string(512) ~ ', relation_name ' ~ cio_sync.type_string(1024)
            ~ ', invocation_id ' ~ cio_sync.type_string(64) ~ ', built_at ' ~ dbt.type_timestamp()
            ~ ', full_build ' ~ dbt.type_boolean() ~ ', clock_at ' ~ dbt.type_timestamp() ~ ')') -%}
        {#- full_build (whether the model was built whole) and clock_at (the "now" its SQL used:
            cio_now when pinned, else the time of the build) came later: a log made before, or
            by cio-export, gets them. -#}
        {#- Asked with run_query, which opens no transaction: adapter.get_columns_in_relation
            opens one that dbt rolls back after its on-run-start hooks, and took the new column
            with it. -#}
        {%- set log_columns = run_query("select lower(column_name) from information_schema.columns"
            ~ " where table_catalog = current_database() and table_schema = '"
            ~ (var('cio_state_schema', 'cio_sync_state') | replace("'", "''")) ~ "' and table_name = 'cio_builds'")
            .columns[0].values() | list -%}
        {%- for name, type in [('full_build', dbt.type_boolean()), ('clock_at', dbt.type_timestamp())] if name not in log_columns -%}
            {%- do run_query(cio_sync.add_column_sql(cio_sync.build_log_relation(), name, type)) -%}
        {%- endfor -%}
        {%- set index_sql = cio_sync.build_log_index_sql() -%}
        {%- if index_sql -%}{%- do run_query(index_sql) -%}{%- endif -%}
    {%- endif -%}
{%- endmacro %}

{#- `alter table ... add column`, with `if not exists` where the warehouse has it: two builds
    starting at once after an upgrade both find the column missing, and the second's would
    fail. Redshift has no `if not exists` here. -#}
{% macro add_column_sql(relation, name, type) -%}
    {{ return(adapter.dispatch('add_column_sql', 'cio_sync')(relation, name, type)) }}
{%- endmacro %}

{% macro default__add_column_sql(relation, name, type) -%}
    {{ return('alter table ' ~ relation ~ ' add column if not exists ' ~ name ~ ' ' ~ type) }}
{%- endmacro %}

{% macro redshift__add_column_sql(relation, name, type) -%}
    {{ return('alter table ' ~ relation ~ ' add column ' ~ name ~ ' ' ~ type) }}
{%- endmacro %}

{#- The build log grows by a row per model and build (a build every five minutes: about three
    million rows a year), and every build asks it about each model's last build some 175
    times, as cio-export asks it for each model's build proof. On PostgreSQL a B-tree on
    (relation_name, built_at) answers each from the index where a scan would read the whole
    log (made once, by the first build after an upgrade). Redshift and DuckDB: none. -#}
{% macro build_log_index_sql() -%}
    {{ return(adapter.dispatch('build_log_index_sql', 'cio_sync')()) }}
{%- endmacro %}

{% macro default__build_log_index_sql() -%}{{ return('') }}{%- endmacro %}

{% macro postgres__build_log_index_sql() -%}
    {{ return('create index if not exists cio_builds_by_relation on ' ~ cio_sync.build_log_relation()
        ~ ' (relation_name, built_at)') }}
{%- endmacro %}

{#- Redshift, which would inherit PostgreSQL's, has no indexes. -#}
{% macro redshift__build_log_index_sql() -%}{{ return('') }}{%- endmacro %}

{% macro build_log_relation() -%}
    {{ return(adapter.quote(var('cio_state_schema', 'cio_sync_state')) ~ '.' ~ adapter.quote('cio_builds')) }}
{%- endmacro %}

{% macro create_schema_if_missing(schema) -%}
    {{ return(adapter.dispatch('create_schema_if_missing', 'cio_sync')(schema)) }}
{%- endmacro %}

{% macro default__create_schema_if_missing(schema) -%}
    create schema if not exists {{ adapter.quote(schema) }}
{%- endmacro %}

{#- The wall-clock time, never the pinned cio_now: a build proof records when it really happened. -#}
{% macro utc_now_real() -%}
    {{ return(adapter.dispatch('utc_now', 'cio_sync')()) }}
{%- endmacro %}
