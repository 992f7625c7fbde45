{#- Two incremental strategies that write a mart as a difference: the held rows with no
    identical fresh row are deleted, the fresh rows with no identical held row inserted, so
    that a row that came out as it was is neither deleted nor written again (write_difference).
    Identical: the same key and the same values in every column, nulls included (same_value);
    the key makes the comparison a hash join. A row whose key is null is never identical: it is
    written again.

    - `cio_sync_mirror`, for the marts that are whole snapshots (cio_devices,
      cio_subscription_objects, cio_subscription_relationships): each build selects every row,
      as a table would, and the held rows are the whole table, matched on the model's
      unique_key. Rebuilt as tables, the 740,000 devices of a 1,000,000-customer shop were
      written again at every build (79 MB of write-ahead log on PostgreSQL for a build with
      nothing to do). The table ends with the fresh rows as long as the unique_key holds (its
      test): a key repeated with identical values is kept as often as it was held.
    - `cio_sync_recompute`, for the event marts recomputed by time (cio_event_cart_abandoned,
      cio_event_replenishment_due), with the pre-hook step hold_rows_to_recompute: the held
      rows are those the pre-hook names (the rows of every key the model recomputes, so the mart
      ends as a delete of all of them and an insert would leave it), matched on event_id. They
      recompute every cart and run-out date that elapsed within the lookback (var
      cio_event_lookback_hours) at every build and rewrote them all (122,760 carts and 17,520
      run-out dates in a build with nothing changed at 1,000,000 customers).

    On PostgreSQL two builds of one such mart at once take turns from the hold (or the write)
    to their commit, through a lock that lets cio-export read: each writes the difference
    against what the other committed, where both would insert the same new row, and the row
    ids it holds stay its rows until it deletes them (`for update` on the rows instead would
    write a log record for each, as much as the rewrite it spares). Redshift has no row id:
    there the rows are replaced as before. -#}

{% macro get_incremental_cio_sync_mirror_sql(arg_dict) -%}
    {%- if not cio_sync.is_incremental_run() or target.type == 'redshift' -%}
        {#- A whole build into the table dbt kept (whole_build_reason: the pre-hook emptied it),
            or Redshift, whose rows are replaced whole in the build's transaction. -#}
        {{ return(('delete from ' ~ arg_dict['target_relation'] ~ ';\n' if target.type == 'redshift' else '')
            ~ get_incremental_append_sql(arg_dict)) }}
    {%- endif -%}
    {%- set keys = [arg_dict['unique_key']] if arg_dict['unique_key'] is string else arg_dict['unique_key'] -%}
    {%- if target.type == 'postgres' -%}
        lock table {{ arg_dict['target_relation'] }} in share row exclusive mode;
    {%- endif %}
    {{ cio_sync.write_difference(arg_dict, keys, held=arg_dict['target_relation'], held_row=cio_sync.row_id()) }}
{%- endmacro %}

{% macro get_incremental_cio_sync_recompute_sql(arg_dict) -%}
    {%- if not cio_sync.is_incremental_run() or target.type == 'redshift' -%}
        {#- A whole build (the pre-hook held nothing), or Redshift (the pre-hook deleted). -#}
        {{ return(get_incremental_append_sql(arg_dict)) }}
    {%- endif -%}
    {{ cio_sync.write_difference(arg_dict, ['event_id'], held='cio_held_rows', held_row='_cio_held_row') }}
{%- endmacro %}

{#- The rows of `held` (the mart, or a copy of some of its rows carrying their row id in
    `held_row`) with no identical row in dbt's temporary table of fresh rows are deleted from
    the mart by row id, then the fresh rows with no identical held row inserted. PostgreSQL
    analyzes the fresh rows first, as cio_sync_replace does (dbt's temporary table has no
    statistics). -#}
{% macro write_difference(arg_dict, keys, held, held_row) -%}
    {%- set mart, source = arg_dict['target_relation'], arg_dict['temp_relation'] -%}
    {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    {%- set same -%}
        {%- for key in keys %}fresh.{{ key }} = held.{{ key }} and {% endfor -%}
        {%- for column in arg_dict['dest_columns'] | map(attribute='name') -%}
            {{ cio_sync.same_value('fresh.' ~ adapter.quote(column), 'held.' ~ adapter.quote(column)) }}{{ ' and ' if not loop.last }}
        {%- endfor -%}
    {%- endset -%}
    {%- set postgres = target.type == 'postgres' -%}
    {%- if postgres %}
    analyze {{ source }};
    {%- endif %}

    delete from {{ mart }}
    where {{ cio_sync.row_id() }} {{ '= any(array(' if postgres else 'in (' }}
        select held.{{ held_row }} from {{ held }} as held
        where not exists (select 1 from {{ source }} as fresh where {{ same }})
    ){{ ')' if postgres }};

    insert into {{ mart }} ({{ columns }})
    select {{ columns }} from {{ source }} as fresh
    where not exists (select 1 from {{ held }} as held where {{ same }})
{%- endmacro %}

{#- The column naming a row where it lies: PostgreSQL's ctid, DuckDB's rowid. -#}
{% macro row_id() -%}
    {{ return('ctid' if target.type == 'postgres' else 'rowid') }}
{%- endmacro %}

{#- Pre-hook step of a `cio_sync_recompute` mart: its rows that match one of `predicates` (each a
    condition on the mart's rows: those of every key the model recomputes), with their row id,
    in a temporary table the strategy reads. -#}
{% macro hold_rows_to_recompute(predicates) -%}
    {{ return(adapter.dispatch('hold_rows_to_recompute', 'cio_sync')(predicates)) }}
{%- endmacro %}

{% macro default__hold_rows_to_recompute(predicates) -%}
    create or replace temporary table cio_held_rows as
    {{ cio_sync.held_rows_select(predicates) }}
{%- endmacro %}

{#- PostgreSQL: locked against other writers of the mart, dropped at commit. -#}
{% macro postgres__hold_rows_to_recompute(predicates) -%}
    lock table {{ this }} in share row exclusive mode;
    create temporary table cio_held_rows on commit drop as
    {{ cio_sync.held_rows_select(predicates) }};
    analyze cio_held_rows
{%- endmacro %}

{#- Redshift: the rows are deleted here and the fresh ones appended. -#}
{% macro redshift__hold_rows_to_recompute(predicates) -%}
    {%- for predicate in predicates %}
    delete from {{ this }} where {{ predicate }};
    {%- endfor %}
{%- endmacro %}

{% macro held_rows_select(predicates) -%}
    select held.{{ cio_sync.row_id() }} as _cio_held_row, held.*
    from {{ this }} as held
    where {% for predicate in predicates %}({{ predicate }}){{ ' or ' if not loop.last }}{% endfor %}
{%- endmacro %}
