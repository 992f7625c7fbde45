{#- Rows an event mart recomputes are replaced only where they changed (incremental strategy
    `cio_sync_recompute`, with the pre-hook step hold_rows_to_recompute). The pre-hook names the
    held rows the build recomputes (each `predicates` entry a condition on the mart's rows); the
    model selects their fresh version; the strategy deletes the held rows that have no identical
    fresh row and inserts the fresh rows that have no identical held row (the same values in
    every column, nulls included, matched on event_id). A recomputed row that came out as it
    was is neither deleted nor written again: cio_event_cart_abandoned and
    cio_event_replenishment_due recompute every cart and run-out date that elapsed within the
    lookback (var cio_event_lookback_hours) at every build, and rewrote them all (122,760 carts
    and 17,520 run-out dates in a build with nothing changed at 1,000,000 customers).
    The fresh rows are those of the recomputed keys only, and every held row of those keys is
    among the held ones (the predicates cover the keys the model recomputes), so the mart ends
    as a delete of all of them and an insert would leave it. -#}
{% macro hold_rows_to_recompute(predicates) -%}
    {{ return(adapter.dispatch('hold_rows_to_recompute', 'cio_sync')(predicates)) }}
{%- endmacro %}

{#- DuckDB: the held rows with their rowid, in a temporary table the strategy reads. -#}
{% macro default__hold_rows_to_recompute(predicates) -%}
    create or replace temporary table cio_held_rows as
    select rowid as _cio_held_row, held.*
    from {{ this }} as held
    where {% for predicate in predicates %}({{ predicate }}){{ ' or ' if not loop.last }}{% endfor %}
{%- endmacro %}

{#- PostgreSQL: with their row ids, dropped at commit. Two builds of the mart at once take
    turns from here to their commit (the lock lets cio-export read; `for update` on the rows
    instead wrote a log record for each, as much as the rewrite it spares): each holds what
    the other committed, where both would insert the same new row, and the row ids it holds
    stay its rows until it deletes them. -#}
{% macro postgres__hold_rows_to_recompute(predicates) -%}
    lock table {{ this }} in share row exclusive mode;
    create temporary table cio_held_rows on commit drop as
    select held.ctid as _cio_held_row, held.*
    from {{ this }} as held
    where {% for predicate in predicates %}({{ predicate }}){{ ' or ' if not loop.last }}{% endfor %};
    analyze cio_held_rows
{%- endmacro %}

{#- Redshift has no row id: the held rows are deleted here and the fresh ones appended. -#}
{% macro redshift__hold_rows_to_recompute(predicates) -%}
    {%- for predicate in predicates %}
    delete from {{ this }} where {{ predicate }};
    {%- endfor %}
{%- endmacro %}

{% macro get_incremental_cio_sync_recompute_sql(arg_dict) -%}
    {%- set mart, source = arg_dict['target_relation'], arg_dict['temp_relation'] -%}
    {%- set names = arg_dict['dest_columns'] | map(attribute='name') | list -%}
    {%- set columns = get_quoted_csv(names) -%}
    {%- if not cio_sync.is_incremental_run() or target.type == 'redshift' -%}
        {#- A whole build (the pre-hook held nothing), or Redshift (the pre-hook deleted). -#}
        {{ return('insert into ' ~ mart ~ ' (' ~ columns ~ ') (select ' ~ columns ~ ' from ' ~ source ~ ')') }}
    {%- endif -%}
    {%- set same -%}
        fresh.event_id = held.event_id
        {%- for name in names %} and {{ cio_sync.same_value('fresh.' ~ adapter.quote(name), 'held.' ~ adapter.quote(name)) }}{% endfor -%}
    {%- endset -%}
    {%- set row_id = 'ctid' if target.type == 'postgres' else 'rowid' -%}
    {%- if target.type == 'postgres' %}
    analyze {{ source }};
    {%- endif %}
    {%- set changed -%}
        from cio_held_rows as held
        where not exists (select 1 from {{ source }} as fresh where {{ same }})
    {%- endset %}
    delete from {{ mart }}
    where {{ row_id }} {{ '= any(array(' if target.type == 'postgres' else 'in (' }}select held._cio_held_row {{ changed }}){{ ')' if target.type == 'postgres' }}
    {#- Only a row that holds one of the events held. #}
        and event_id in (select held.event_id {{ changed }});

    insert into {{ mart }} ({{ columns }})
    select {{ columns }} from {{ source }} as fresh
    where not exists (select 1 from cio_held_rows as held where {{ same }})
{%- endmacro %}
