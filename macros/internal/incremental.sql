{#- How the package's models build incrementally (docs/models.md, "Incremental builds").

    Staging re-reads the rows of an input whose change time (its loaded_at column, else its
    event time) is at most var cio_event_lookback_hours older than the newest one it staged, and
    writes only the rows that differ from what it holds, stamped with _cio_staged_at (the time of
    the build, the warehouse's clock). Every model after staging recomputes only what depends on
    rows stamped after its own last build (the build log the record_build() post-hook writes),
    and replaces those rows: nothing is read twice, nothing is left stale. -#}

{#- The time of this model's last build (the build log), or a time before any row when there is
    none (a first incremental build after the log was emptied recomputes everything). Asked
    when the model compiles and written into its SQL as a literal, so the planner can estimate
    how many rows changed since (a subquery's value it cannot); a subquery when compiling
    offline. -#}
{#- Asked once per model and kept in its context (a model's SQL and hooks ask it several times). -#}
{% macro last_built_at() -%}
    {%- set cached = model is defined and model is mapping and '_cio_last_built_at' in model -%}
    {%- if cached -%}{{ return(model['_cio_last_built_at']) }}{%- endif -%}
    {%- set sql = "select max(built_at) from " ~ cio_sync.build_log_relation()
        ~ " where relation_name = '" ~ (this | string | replace("'", "''")) ~ "'" -%}
    {%- set value = cio_sync.timestamp_value(sql) -%}
    {%- if execute and flags.INTROSPECT and model is defined and model is mapping -%}
        {%- do model.update({'_cio_last_built_at': value}) -%}
    {%- endif -%}
    {{ return(value) }}
{%- endmacro %}

{#- The "now" of this model's last build (cio_now when it was pinned, else the time of that
    build: the build log's clock_at), as a literal; none when it cannot be known (no build
    logged, one logged before clock_at existed, or compiling offline). Kept like last_built_at. -#}
{% macro last_clock_at() -%}
    {%- if not (execute and flags.INTROSPECT and model is defined and model is mapping) -%}
        {{ return(none) }}
    {%- endif -%}
    {%- if '_cio_last_clock_at' not in model -%}
        {%- set rows = run_query("select clock_at from " ~ cio_sync.build_log_relation()
            ~ " where relation_name = '" ~ (this | string | replace("'", "''")) ~ "'"
            ~ " order by built_at desc limit 1").columns[0].values() -%}
        {%- set value = rows[0] if rows | length > 0 else none -%}
        {%- do model.update({'_cio_last_clock_at': none if value is none
            else "cast('" ~ value ~ "' as " ~ dbt.type_timestamp() ~ ")"}) -%}
    {%- endif -%}
    {{ return(model['_cio_last_clock_at']) }}
{%- endmacro %}

{#- A timestamp query's value as a literal (asked now), or the query itself when the warehouse
    cannot be asked; a time before any row when it is null. -#}
{% macro timestamp_value(sql) -%}
    {%- set floor = "cast('1900-01-01 00:00:00' as " ~ dbt.type_timestamp() ~ ")" -%}
    {%- if execute and flags.INTROSPECT -%}
        {%- set value = run_query(sql).columns[0].values()[0] -%}
        {{ return(floor if value is none else "cast('" ~ value ~ "' as " ~ dbt.type_timestamp() ~ ")") }}
    {%- endif -%}
    {{ return('coalesce((' ~ sql ~ '), ' ~ floor ~ ')') }}
{%- endmacro %}

{#- Rows of an upstream model stamped after this model's last build. -#}
{% macro changed_since_last_build(alias='') -%}
    {{ (alias ~ '.') if alias }}_cio_staged_at > {{ cio_sync.last_built_at() }}
{%- endmacro %}

{#- The _cio_staged_at stamp of the rows a model writes: the warehouse's clock, never cio_now. -#}
{% macro staged_at() -%}
    cast({{ cio_sync.utc_now_real() }} as {{ dbt.type_timestamp() }})
{%- endmacro %}

{#- Pre-hook of a staging model: its rows without a key inside the window are re-read from the
    input, so they are deleted first (rows with a key are replaced by delete+insert). -#}
{% macro delete_keyless_rows(input_name) -%}
    {%- if execute and flags.INTROSPECT and cio_sync.is_incremental_run() -%}
        {%- set columns = cio_sync.source_columns(cio_sync.input_relation(input_name)) -%}
        delete from {{ this }}
        where ({% for key in cio_sync.input_keys(input_name) %}{{ key }} is null{{ ' or ' if not loop.last }}{% endfor %})
            and {{ cio_sync.in_staged_window(input_name, columns) }}
    {%- endif -%}
{%- endmacro %}

{#- Pre-hook of a model whose rows are replaced per key: deletes the rows of the keys the build
    recomputes (`keys_sql` selects them), so a row whose key no longer qualifies is gone. -#}
{% macro delete_rows_of(column, keys_sql) -%}
    {%- if execute and flags.INTROSPECT and cio_sync.is_incremental_run() -%}
        delete from {{ this }} where {{ cio_sync.rows_of(column, keys_sql) }}
    {%- endif -%}
{%- endmacro %}

{#- The condition on the model's rows that selects those of the keys `keys_sql` selects. -#}
{% macro rows_of(column, keys_sql) -%}
    {{ return(adapter.dispatch('rows_of', 'cio_sync')(column, keys_sql)) }}
{%- endmacro %}

{% macro default__rows_of(column, keys_sql) -%}
    {{ column }} in ({{ keys_sql }})
{%- endmacro %}

{#- With a B-tree index on the column (lookup_index), the rows are found key by key through it
    and named by their row ids, as the cio_sync_replace strategy does, where `column in (...)`
    would read the whole table (cio_people, cio_event_order_placed, cio_event_checkout_started,
    cio_event_replenishment_due's persons; the smaller event marts have no such index and are
    read whole). -#}
{% macro postgres__rows_of(column, keys_sql) -%}
    {%- set lookup = cio_sync.lookup_column(this, column) -%}
    {%- if lookup is not none -%}
        ctid = any(array(
            select looked_up.ctid
            from (select distinct lookup_keys.k from ({{ keys_sql }}) as lookup_keys (k)) as wanted
            cross join lateral (select ctid from {{ this }} where {{ lookup }} = wanted.k offset 0) as looked_up
        ))
    {%- else -%}
        {{ cio_sync.default__rows_of(column, keys_sql) }}
    {%- endif -%}
{%- endmacro %}

{#- Key sets: what an incremental build recomputes (the keys of changed rows, the persons they
    belong to), selected once per build. On PostgreSQL a pre-hook (stage_key_set) writes the set
    to a temporary table dropped at commit and gathers its statistics, and the model and its
    other hooks read that table (key_set): the planner then knows how many keys there are and
    how many distinct, where it would guess 200 for a union or a common table expression.
    Elsewhere, and when compiling offline, key_set is the query itself. `name` tells a model's
    sets apart; `sql` selects one column, or is a macro that returns that query (called only
    when the query is needed: asking what to recompute can itself take a query). -#}
{% macro stage_key_set(name, sql) -%}
    {{ return(adapter.dispatch('stage_key_set', 'cio_sync')(name, sql)) }}
{%- endmacro %}

{% macro default__stage_key_set(name, sql) -%}{%- endmacro %}

{#- The query of a key set given as a query or as a macro returning it. -#}
{% macro key_set_sql(sql) -%}
    {{ return(sql() if sql is callable else sql) }}
{%- endmacro %}

{% macro postgres__stage_key_set(name, sql) -%}
    {%- if execute and flags.INTROSPECT and cio_sync.is_incremental_run() -%}
        create temporary table cio_keys_{{ name }} on commit drop as {{ cio_sync.key_set_sql(sql) }};
        analyze cio_keys_{{ name }}
    {%- endif -%}
{%- endmacro %}

{% macro redshift__stage_key_set(name, sql) -%}{%- endmacro %}

{% macro key_set(name, sql) -%}
    {{ return(adapter.dispatch('key_set', 'cio_sync')(name, sql)) }}
{%- endmacro %}

{% macro default__key_set(name, sql) -%}{{ cio_sync.key_set_sql(sql) }}{%- endmacro %}

{% macro postgres__key_set(name, sql) -%}
    {%- if execute and flags.INTROSPECT and cio_sync.is_incremental_run() -%}
        select * from cio_keys_{{ name }}
    {%- else -%}
        {{ cio_sync.key_set_sql(sql) }}
    {%- endif -%}
{%- endmacro %}

{% macro redshift__key_set(name, sql) -%}{{ cio_sync.key_set_sql(sql) }}{%- endmacro %}

{#- Written after `name as` of a common table expression read several times that must not be
    computed once and kept (PostgreSQL would estimate 200 distinct values in each of its
    columns): a key set it only reads, or a filter that is cheap to repeat. -#}
{% macro inline_cte() -%}
    {{ return(adapter.dispatch('inline_cte', 'cio_sync')()) }}
{%- endmacro %}

{% macro default__inline_cte() -%}{%- endmacro %}

{% macro postgres__inline_cte() -%}not materialized{%- endmacro %}

{% macro redshift__inline_cte() -%}{%- endmacro %}

{#- True when `a` and `b` hold the same value, nulls included; false, never null, when one of
    them is null (`a = b or (a is null and b is null)` is null there, and a row whose only
    change was a value removed or added would not count as changed). -#}
{% macro same_value(a, b) -%}
    coalesce({{ a }} = {{ b }}, {{ a }} is null and {{ b }} is null)
{%- endmacro %}

{#- A staged row differs from the one held for its key (compares every listed column). -#}
{% macro row_differs(new, old, columns) -%}
    not (
        {%- for column in columns %}
        {{ cio_sync.same_value(new ~ '.' ~ column, old ~ '.' ~ column) }}{{ ' and' if not loop.last }}
        {%- endfor %}
    )
{%- endmacro %}

{#- Post-hook: fresh statistics for the planner on PostgreSQL after a full build (later joins
    need real row counts); nothing elsewhere (DuckDB keeps its own, Redshift analyzes on load). -#}
{% macro analyze_after_build() -%}
    {{ return(adapter.dispatch('analyze_after_build', 'cio_sync')()) }}
{%- endmacro %}

{% macro default__analyze_after_build() -%}{%- endmacro %}

{% macro postgres__analyze_after_build() -%}
    {%- if execute and flags.INTROSPECT and model is defined and config.get('materialized') in ('table', 'incremental') -%}
        {#- After an incremental build only the stamp's statistics: later models select the rows
            stamped after their own last build, which PostgreSQL would otherwise estimate at one
            row (the stamps are newer than the statistics' newest value). -#}
        {%- if not cio_sync.is_incremental_run() -%}
            {#- A whole build into the table dbt kept: the indexes empty_for_whole_build() dropped. -#}
            {%- for definition in model.get('_cio_dropped_indexes', []) %}
            {{ definition }};
            {%- endfor %}
            analyze {{ this }}
        {%- elif model.package_name == 'cio_sync' and model.fqn[1] in ('staging', 'intermediate')
            and cio_sync.rows_inserted() != 0 -%}
            {#- Every staging and intermediate table of the package is stamped (staged_at),
                known without asking the catalog for its columns. A build that inserted no
                row added no stamp: the statistics stand (each of the 15 stamped tables was
                analyzed in every build, whatever it wrote). #}
            analyze {{ this }} (_cio_staged_at)
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{% macro redshift__analyze_after_build() -%}{%- endmacro %}

{#- In a post-hook: the rows the model's main statement inserted (its last statement, the
    insert, for the package's strategies), or -1 when dbt does not say. -#}
{% macro rows_inserted() -%}
    {%- set result = load_result('main') -%}
    {%- set response = result.response if result else none -%}
    {%- set rows = response.rows_affected if response else none -%}
    {{ return(-1 if rows is none else rows) }}
{%- endmacro %}

{#- Indexes a model gets on PostgreSQL: a BRIN index on _cio_staged_at, so later models find
    the newly staged rows without reading the whole table. -#}
{% macro staged_at_index() -%}
    {{ return([{'columns': ['_cio_staged_at'], 'type': 'brin'}] if target.type == 'postgres' else []) }}
{%- endmacro %}

{#- B-tree indexes a model gets on PostgreSQL for the lookups of an incremental build (see
    rows_with_keys) on text keys; none elsewhere. In byte order (collate "C"): built by
    comparing bytes, where the database's collation compares each pair of keys through the C
    library (10 million customer ids: 11 s against 34 s); keys equal in one are equal in the
    other. A lookup names the index's collation (lookup_column) or the index is not used. -#}
{#- `unique`: the model's key, which a unique index then holds to one row per key as rows are
    written (a duplicate fails the model's build, naming the key), and the key's unique_key
    test need not read the table (postgres__test_unique_key). -#}
{% macro lookup_index(columns, unique=false) -%}
    {%- if target.type != 'postgres' -%}{{ return([]) }}{%- endif -%}
    {%- set collated = [] -%}
    {%- for column in columns -%}{%- do collated.append(column ~ ' collate "C"') -%}{%- endfor -%}
    {{ return([{'columns': collated, 'type': 'btree', 'unique': unique}]) }}
{%- endmacro %}

{#- A B-tree index on PostgreSQL on a timestamp column. -#}
{% macro time_index(column) -%}
    {{ return([{'columns': [column], 'type': 'btree'}] if target.type == 'postgres' else []) }}
{%- endmacro %}

{#- A B-tree index on PostgreSQL on a staging model's change time: the start of the next
    build's window (window_start: the newest change held) is then read from the index's end,
    and the rows of the window (the pre-hook's keyless rows) through it, instead of reading
    the whole table (5.5 s for stg_cio__order_lines' 15 million rows). -#}
{% macro changed_at_index() -%}
    {{ return(cio_sync.time_index('_cio_changed_at')) }}
{%- endmacro %}

{#- B-trees on PostgreSQL on a staging model's customer_id (and email): an incremental build
    finds the rows of the customers that changed through them (keys_to_resolve), where it read
    the whole table twice (6.4 s for stg_cio__orders' 10 million rows). Staging tables are
    unlogged, so keeping them costs no write-ahead log. -#}
{% macro identity_indexes(email=true) -%}
    {{ return(cio_sync.lookup_index(['customer_id']) + (cio_sync.lookup_index(['email']) if email else [])) }}
{%- endmacro %}

{#- The rows of `relation` whose `key` is one of those `keys_sql` selects, as a subquery to
    join: a few thousand rows looked up in a table of millions. On PostgreSQL each distinct key
    is looked up through the index (lookup_index), a lateral subquery that cannot be flattened
    (`offset 0`): the one plan is a loop over the keys, each an index descent, whatever the
    nested-loop setting, and the planner estimates the rows from the keys' count. (A hash join
    would read the whole table; `key = any(array(...))` is estimated at a guess, and once its
    rows no longer fit an exact bitmap it compares each row with every key.) Elsewhere a
    semi-join. -#}
{#- `whole_otherwise`: where there is no such lookup, the whole relation (for a join that reads
    it anyway) rather than a semi-join on the keys. -#}
{% macro rows_with_keys(relation, key, keys_sql, whole_otherwise=false) -%}
    {{ return(adapter.dispatch('rows_with_keys', 'cio_sync')(relation, key, keys_sql, whole_otherwise)) }}
{%- endmacro %}

{% macro default__rows_with_keys(relation, key, keys_sql, whole_otherwise=false) -%}
    {%- if whole_otherwise -%}
    {{ relation }}
    {%- else -%}
    (select * from {{ relation }} where {{ key }} in ({{ keys_sql }}))
    {%- endif -%}
{%- endmacro %}

{#- Only with such an index: without one (a table built before the package gave it one, or its
    indexes overridden), each key would read the whole table. -#}
{% macro postgres__rows_with_keys(relation, key, keys_sql, whole_otherwise=false) -%}
    {%- set lookup = cio_sync.lookup_column(relation, key) -%}
    {%- if lookup is not none -%}
    (select looked_up.* from (select distinct lookup_keys.k from ({{ keys_sql }}) as lookup_keys (k)) as wanted
        cross join lateral (select * from {{ relation }} where {{ lookup }} = wanted.k offset 0) as looked_up)
    {%- else -%}
    {{ return(cio_sync.default__rows_with_keys(relation, key, keys_sql, whole_otherwise)) }}
    {%- endif -%}
{%- endmacro %}

{#- The expression a lookup of `column` compares, so that it goes through such an index:
    `column collate "C"` for an index in byte order (lookup_index), the bare column for one in
    the column's collation (a table built before the package made them in byte order, or
    indexes configured by the project); none without one, or compiling offline. -#}
{% macro lookup_column(relation, column) -%}
    {%- if not (execute and flags.INTROSPECT) -%}{{ return(none) }}{%- endif -%}
    {%- set sql -%}
        select count(*), count(case when coll.collname = 'C' then 1 end) from pg_index as i
        inner join pg_class as ix on ix.oid = i.indexrelid
        inner join pg_am as am on am.oid = ix.relam
        inner join pg_attribute as a on a.attrelid = i.indrelid and a.attnum = i.indkey[0]
        left join pg_collation as coll on coll.oid = i.indcollation[0]
        where i.indrelid = to_regclass('{{ (relation | string) | replace("'", "''") }}')
            and i.indisvalid and a.attname = '{{ column | replace("'", "''") }}' and am.amname = 'btree'
    {%- endset -%}
    {%- set row = run_query(sql).rows[0] -%}
    {%- if row[0] == 0 -%}{{ return(none) }}{%- endif -%}
    {{ return(column ~ ' collate "C"' if row[1] > 0 else column) }}
{%- endmacro %}

{% macro redshift__rows_with_keys(relation, key, keys_sql, whole_otherwise=false) -%}
    {{ return(cio_sync.default__rows_with_keys(relation, key, keys_sql, whole_otherwise)) }}
{%- endmacro %}

{#- Ends a subquery whose columns are expensive to compute so that PostgreSQL computes them
    once per row instead of once per reference (it would otherwise inline them). -#}
{% macro compute_once() -%}
    {{ return(adapter.dispatch('compute_once', 'cio_sync')()) }}
{%- endmacro %}

{% macro default__compute_once() -%}{%- endmacro %}

{% macro postgres__compute_once() -%}offset 0{%- endmacro %}

{% macro redshift__compute_once() -%}{%- endmacro %}

{#- The last step of a staging model: its rows with the _cio_staged_at stamp. In an incremental
    build only the rows that are new or differ from the row held for their key (and rows without
    a key, which the pre-hook deleted); `previous` names held columns to carry along as
    _cio_previous_<name>, so later models can recompute what depended on the old value. -#}
{% macro staged_rows(relation, input_name, columns, previous=[]) -%}
    {%- set keys = cio_sync.input_keys(input_name) -%}
select
    {%- for column in columns %}
    new.{{ column }},
    {%- endfor %}
    {%- for column in previous %}
    {{ cio_sync.held_value(column) }} as _cio_previous_{{ column }},
    {%- endfor %}
    {{ cio_sync.staged_at() }} as _cio_staged_at
from {{ relation }} as new
{%- if cio_sync.is_incremental_run() %}
left join {{ cio_sync.rows_with_keys(this, keys[0], 'select ' ~ keys[0] ~ ' from ' ~ relation, whole_otherwise=true) }} as held
    on {% for key in keys %}held.{{ key }} = new.{{ key }}{{ ' and ' if not loop.last }}{% endfor %}
where held.{{ keys[0] }} is null
    or {{ cio_sync.row_differs('new', 'held', columns) }}
{%- endif %}
{%- endmacro %}

{#- A text key to partition or sort by, compared byte by byte: on PostgreSQL a sort under the
    database's collation (en_US.UTF-8, C.UTF-8) compares with strcoll and cannot use abbreviated
    keys, several times slower on millions of rows; byte order is also DuckDB's order. -#}
{% macro sort_key(expr) -%}
    {{ return(adapter.dispatch('sort_key', 'cio_sync')(expr)) }}
{%- endmacro %}

{% macro default__sort_key(expr) -%}{{ expr }}{%- endmacro %}

{% macro postgres__sort_key(expr) -%}{{ expr }} collate "C"{%- endmacro %}

{% macro redshift__sort_key(expr) -%}{{ expr }}{%- endmacro %}

{#- Pre-hook of every package model on PostgreSQL (`set local`: for the model's transaction
    only). No nested loops (var cio_postgres_nestloop): every join of the package is between
    sets, and a misjudged row count (a filter on the last build's time cannot be estimated)
    must never turn one into a loop over millions of rows. No JIT (var cio_postgres_jit): it
    cost about a second a statement and made none faster (docs/benchmarks.md). Memory for
    sorts and hashes (var cio_postgres_work_mem, 64MB): at PostgreSQL's default of 4MB a hash
    aggregate that outgrows its memory mid-way can split into hundreds of thousands of batches
    (the `select distinct` of 229,000 keys took 208 s instead of 2.5 s, at random). -#}
{% macro session_settings() -%}
    {{ return(adapter.dispatch('session_settings', 'cio_sync')()) }}
{%- endmacro %}

{% macro default__session_settings() -%}{%- endmacro %}

{% macro postgres__session_settings() -%}
    {%- set settings = [] -%}
    {%- if not var('cio_postgres_nestloop', false) -%}{%- do settings.append('set local enable_nestloop = off') -%}{%- endif -%}
    {%- if not var('cio_postgres_jit', false) -%}{%- do settings.append('set local jit = off') -%}{%- endif -%}
    {%- set work_mem = var('cio_postgres_work_mem', '64MB') -%}
    {%- if work_mem -%}{%- do settings.append("set local work_mem = '" ~ (work_mem | string | replace("'", "''")) ~ "'") -%}{%- endif -%}
    {{ settings | join('; ') }}
{%- endmacro %}

{% macro redshift__session_settings() -%}{%- endmacro %}

{#- The rows this model held for the keys an incremental build recomputes, to be joined as
    `held`: only those, so that PostgreSQL hashes the few thousand rows it needs, not the whole
    table (spilled to disk at millions of rows), and finds them through the key's index when
    the model has one (rows_with_keys) rather than reading every row. `keys_sql` selects the
    keys (a key_set). -#}
{% macro held_rows(key, keys_sql) -%}
    {{ return(cio_sync.rows_with_keys(this, key, keys_sql)) }}
{%- endmacro %}

{#- A text column of the row this model held for the key before this build (joined as `held`),
    or null in a full build; cast alike in both, so the column's type never changes. -#}
{% macro held_value(column) -%}
    cast({{ ('held.' ~ column) if cio_sync.is_incremental_run() else 'null' }} as {{ cio_sync.type_string() }})
{%- endmacro %}

{#- A rank as 10 characters ('0000000003') that sort as the numbers do, to prefix a value with. -#}
{% macro rank_prefix(rank) -%}
    lpad(cast({{ rank }} as {{ cio_sync.type_string() }}), 10, '0')
{%- endmacro %}
