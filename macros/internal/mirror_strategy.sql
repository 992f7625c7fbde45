{#- The incremental strategy of the marts that are whole snapshots (cio_devices,
    cio_subscription_objects, cio_subscription_relationships), `cio_sync_mirror`: each build
    selects every row, as a table would, but writes only the difference. The held rows with no
    identical fresh row are deleted and the fresh rows with no identical held row inserted, so
    that a build where nothing changed writes nothing: rebuilt as tables, the 700,000 devices
    of a 1,000,000-customer shop were written again at every build (79 MB of write-ahead log
    on PostgreSQL for a build with nothing to do). Identical: the same values in every column,
    nulls included (same_value); the join is on the model's unique_key, so that the comparison
    is a hash join. A row whose key is null is never identical: it is written again. The table
    ends with the fresh rows, as a whole build gives them, as long as the model's unique_key
    holds (its test): a key repeated with identical values is kept as often as it was held. -#}
{% macro get_incremental_cio_sync_mirror_sql(arg_dict) -%}
    {%- set mart, source = arg_dict['target_relation'], arg_dict['temp_relation'] -%}
    {%- set names = arg_dict['dest_columns'] | map(attribute='name') | list -%}
    {%- set columns = get_quoted_csv(names) -%}
    {%- if not cio_sync.is_incremental_run() -%}
        {#- A whole build into the table dbt kept (whole_build_reason): the pre-hook emptied it. -#}
        {{ return('insert into ' ~ mart ~ ' (' ~ columns ~ ') (select ' ~ columns ~ ' from ' ~ source ~ ')') }}
    {%- endif -%}
    {%- set keys = [arg_dict['unique_key']] if arg_dict['unique_key'] is string else arg_dict['unique_key'] -%}
    {%- set quoted = [] -%}
    {%- for name in names -%}{%- do quoted.append(adapter.quote(name)) -%}{%- endfor -%}
    {%- set same -%}
        {%- for key in keys %}fresh.{{ key }} = held.{{ key }} and {% endfor -%}
        {%- for column in quoted %}{{ cio_sync.same_value('fresh.' ~ column, 'held.' ~ column) }}{{ ' and ' if not loop.last }}{% endfor -%}
    {%- endset -%}
    {{ return(adapter.dispatch('mirror_rows_sql', 'cio_sync')(mart, source, columns, same)) }}
{%- endmacro %}

{#- DuckDB: rows named by their rowid. PostgreSQL: by their row ids, in the one statement that
    finds them; the fresh rows are analyzed first, as cio_sync_replace does (dbt's temporary
    table has no statistics), and two builds of the model at once take turns from here to
    their commit (the lock lets cio-export read): each writes the difference against what the
    other committed, where both would insert a new row. -#}
{% macro default__mirror_rows_sql(mart, source, columns, same) -%}
    {%- set postgres = target.type == 'postgres' -%}
    {%- if postgres %}
    lock table {{ mart }} in share row exclusive mode;
    analyze {{ source }};
    {%- endif %}

    delete from {{ mart }}
    where {{ 'ctid = any(array(' if postgres else 'rowid in (' }}
        select held.{{ 'ctid' if postgres else 'rowid' }} from {{ mart }} as held
        where not exists (select 1 from {{ source }} as fresh where {{ same }})
    ){{ ')' if postgres }};

    insert into {{ mart }} ({{ columns }})
    select {{ columns }} from {{ source }} as fresh
    where not exists (select 1 from {{ mart }} as held where {{ same }})
{%- endmacro %}

{#- Redshift has no row id to delete by: the table's rows are replaced whole, in the build's
    transaction (as a table materialization would rewrite them). -#}
{% macro redshift__mirror_rows_sql(mart, source, columns, same) -%}
    delete from {{ mart }};

    insert into {{ mart }} ({{ columns }})
    select {{ columns }} from {{ source }}
{%- endmacro %}
